// VMI spec fields tsvirt accepts (they are KubeVirt API) but does not implement yet. Admission answers each one
// present with a Warning naming it. The list is what the launcher's converter does not honour (it refuses or
// ignores each): launcher/converter/unimplemented.test.ts converts a VMI with each field set and fails when the
// two disagree (api/ cannot import the converter, so the test ties them). Paths are relative to a VMI spec (`spec.` or `spec.template.spec.` is prefixed by the caller).

/** Field paths (under a VMI spec); `[]` marks "in any element of this list". */
export const UNIMPLEMENTED_VMI_FIELDS: readonly string[] = [
  "domain.devices.gpus",
  "domain.devices.hostDevices",
  "domain.devices.filesystems",
  "domain.devices.tpm",
  "domain.devices.sound",
  "domain.devices.downwardMetrics",
  "domain.devices.clientPassthrough",
  "domain.devices.autoattachVSOCK",
  "domain.devices.blockMultiQueue",
  "domain.devices.interfaces[].sriov",
  "domain.devices.interfaces[].macvtap",
  "domain.devices.interfaces[].slirp",
  "domain.devices.interfaces[].passt",
  "domain.devices.interfaces[].passtBinding",
  "domain.devices.interfaces[].binding",
  "domain.devices.interfaces[].portRanges",
  "domain.devices.disks[].blockSize",
  "domain.devices.disks[].changedBlockTracking",
  "domain.cpu.dedicatedCpuPlacement",
  "domain.cpu.isolateEmulatorThread",
  "domain.cpu.numa",
  "domain.cpu.realtime",
  "domain.cpu.maxSockets",
  "domain.memory.maxGuest",
  "domain.memory.reservedOverhead",
  "domain.firmware.acpi",
  "domain.firmware.bootloader.efi.persistent",
  "domain.launchSecurity",
  "domain.ioThreads",
  "networks[].multus",
  "networks[].resourceClaim",
  "volumes[].downwardMetrics",
  "volumes[].memoryDump",
  "volumes[].containerPath",
  "livenessProbe",
  "readinessProbe",
  "accessCredentials",
  "resourceClaims",
  "utilityVolumes",
];

// each path split once; walked without building strings or arrays until a field is found (admission runs this on
// every VM, VMI, ReplicaSet and pool write)
const SPLIT: readonly (readonly { key: string; list: boolean }[])[] = UNIMPLEMENTED_VMI_FIELDS.map((f) =>
  f.split(".").map((p) => (p.endsWith("[]") ? { key: p.slice(0, -2), list: true } : { key: p, list: false })),
);

function present(
  value: unknown,
  parts: readonly { key: string; list: boolean }[],
  i: number,
  at: string[],
  out: string[],
  prefix: string,
): void {
  if (value === undefined || value === null) return;
  if (i === parts.length) {
    if (value === false || (Array.isArray(value) && value.length === 0)) return;
    out.push(`${prefix}.${at.join(".")}`);
    return;
  }
  if (typeof value !== "object") return;
  const { key, list } = parts[i] as { key: string; list: boolean };
  const child = (value as Record<string, unknown>)[key];
  if (!list) {
    at.push(key);
    present(child, parts, i + 1, at, out, prefix);
    at.pop();
    return;
  }
  if (!Array.isArray(child)) return;
  for (let j = 0; j < child.length; j++) {
    at.push(`${key}[${j}]`);
    present(child[j], parts, i + 1, at, out, prefix);
    at.pop();
  }
}

/** The unimplemented fields set in a VMI spec, as full paths under `prefix` (e.g. "spec.template.spec"). */
export function unimplementedFields(vmiSpec: unknown, prefix = "spec"): string[] {
  const out: string[] = [];
  const at: string[] = [];
  for (const parts of SPLIT) present(vmiSpec, parts, 0, at, out, prefix);
  return out;
}

/**
 * KubeVirt-object spec fields tsvirt acts on (paths under `spec`). Every other field set in a KubeVirt object's spec
 * answers a Warning naming its topmost unimplemented path.
 */
export const IMPLEMENTED_KUBEVIRT_FIELDS: readonly string[] = [
  "configuration.machineType",
  "configuration.network.defaultNetworkInterface",
  // the eviction admission and the evacuation controller
  "configuration.evictionStrategy",
  "configuration.migrations.nodeDrainTaintKey",
  // the migration controller's limits and the settings it hands to the launchers (past the completion budget the
  // launcher switches to post-copy, or pauses the guest with allowWorkloadDisruption alone, as KubeVirt's monitor)
  "configuration.migrations.parallelMigrationsPerCluster",
  "configuration.migrations.parallelOutboundMigrationsPerNode",
  "configuration.migrations.bandwidthPerMigration",
  "configuration.migrations.completionTimeoutPerGiB",
  "configuration.migrations.progressTimeout",
  "configuration.migrations.allowAutoConverge",
  "configuration.migrations.allowPostCopy",
  "configuration.migrations.allowWorkloadDisruption",
];

/** Whether a value says something (unset, null, false, [] and {} do not). */
function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.values(v as Record<string, unknown>).some(isSet);
  return true;
}

/** The fields set in a KubeVirt object's spec that nothing in tsvirt acts on yet, as full paths under `prefix`. */
export function unimplementedKubeVirtFields(spec: unknown, prefix = "spec"): string[] {
  const out: string[] = [];
  const walk = (v: unknown, path: string): void => {
    if (!isSet(v)) return;
    if (IMPLEMENTED_KUBEVIRT_FIELDS.includes(path)) return;
    const inner = IMPLEMENTED_KUBEVIRT_FIELDS.some((f) => f.startsWith(`${path}.`));
    if (path && !inner) {
      out.push(`${prefix}.${path}`);
      return;
    }
    if (typeof v !== "object" || Array.isArray(v)) return;
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) walk(child, path ? `${path}.${k}` : k);
  };
  walk(spec, "");
  return out;
}
