// VMI spec fields tsvirt accepts (they are KubeVirt API) but does not implement yet. Admission answers each one
// present with a Warning naming it; the launcher's converter should reject or ignore the same list, so the two
// stay consistent. Paths are relative to a VMI spec (`spec.` or `spec.template.spec.` is prefixed by the caller).

/** Field paths (under a VMI spec); `[]` marks "in any element of this list". */
export const UNIMPLEMENTED_VMI_FIELDS: readonly string[] = [
  "domain.devices.gpus",
  "domain.devices.hostDevices",
  "domain.devices.filesystems",
  "domain.devices.tpm",
  "domain.devices.sound",
  "domain.devices.downwardMetrics",
  "domain.devices.clientPassthrough",
  "domain.devices.panicDevices",
  "domain.devices.interfaces[].sriov",
  "domain.devices.interfaces[].macvtap",
  "domain.devices.interfaces[].slirp",
  "domain.devices.interfaces[].passt",
  "domain.devices.interfaces[].passtBinding",
  "domain.devices.interfaces[].binding",
  "domain.devices.interfaces[].portRanges",
  "domain.devices.disks[].lun",
  "domain.cpu.dedicatedCpuPlacement",
  "domain.cpu.isolateEmulatorThread",
  "domain.cpu.numa",
  "domain.cpu.realtime",
  "domain.memory.hugepages",
  "domain.memory.maxGuest",
  "domain.features.hyperv",
  "domain.features.hypervPassthrough",
  "domain.firmware.kernelBoot",
  "domain.firmware.acpi",
  "domain.launchSecurity",
  "domain.ioThreadsPolicy",
  "networks[].multus",
  "networks[].resourceClaim",
  "volumes[].sysprep",
  "volumes[].hostDisk",
  "volumes[].downwardMetrics",
  "volumes[].memoryDump",
  "volumes[].containerPath",
  "livenessProbe",
  "readinessProbe",
  "accessCredentials",
  "resourceClaims",
  "utilityVolumes",
];

function present(value: unknown, parts: string[], path: string, out: string[]): void {
  if (value === undefined || value === null) return;
  if (parts.length === 0) {
    if (value === false || (Array.isArray(value) && value.length === 0)) return;
    out.push(path);
    return;
  }
  const [head, ...rest] = parts as [string, ...string[]];
  if (head.endsWith("[]")) {
    const key = head.slice(0, -2);
    const list = (value as Record<string, unknown>)[key];
    if (!Array.isArray(list)) return;
    list.forEach((item, i) => {
      present(item, rest, `${path}.${key}[${i}]`, out);
    });
    return;
  }
  if (typeof value !== "object") return;
  present((value as Record<string, unknown>)[head], rest, `${path}.${head}`, out);
}

/** The unimplemented fields set in a VMI spec, as full paths under `prefix` (e.g. "spec.template.spec"). */
export function unimplementedFields(vmiSpec: unknown, prefix = "spec"): string[] {
  const out: string[] = [];
  for (const f of UNIMPLEMENTED_VMI_FIELDS) present(vmiSpec, f.split("."), prefix, out);
  return out;
}
