// Ties admission's "accepted but not implemented" list (api/kubevirt/v1/unimplemented.ts) to what the converter
// really does: every listed field, set on an otherwise clean VMI, is refused by the converter or leaves the domain
// unchanged (ignored); every field the converter honours (changes the domain, no problem) is not listed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UNIMPLEMENTED_VMI_FIELDS, unimplementedFields, type VirtualMachineInstance } from "../../api/index.js";
import { convertWithProblems, vmiToDomainXml } from "./convert.js";
import { preparedContext } from "./fixtures.js";
import { newVmi } from "./testutil.js";

const POD = "/var/run/tsvirt/pods/unimpl";
// biome-ignore lint/suspicious/noExplicitAny: the samples write arbitrary KubeVirt fields into a spec
type Spec = Record<string, any>;
type Sample = (spec: Spec) => void;

function base(): VirtualMachineInstance {
  return newVmi({
    domain: {
      memory: { guest: "128Mi" },
      devices: {
        disks: [{ name: "root", disk: { bus: "virtio" } }],
        interfaces: [{ name: "default", masquerade: {} }],
      },
    },
    networks: [{ name: "default", pod: {} }],
    volumes: [{ name: "root", containerDisk: { image: "registry.example/disk:1" } }],
  });
}

const dom = (s: Spec): Spec => s.domain;
const dev = (s: Spec): Spec => s.domain.devices;
const volume =
  (kind: string, value: unknown): Sample =>
  (s) => {
    s.volumes[0] = { name: "root", [kind]: value };
  };
const binding =
  (kind: string, value: unknown = {}): Sample =>
  (s) => {
    s.domain.devices.interfaces[0] = { name: "default", [kind]: value };
  };

/** One way to set each listed field (a field added to the list needs one here). */
const UNIMPLEMENTED_SAMPLES: Record<string, Sample> = {
  "domain.devices.gpus": (s) => (dev(s).gpus = [{ name: "g", deviceName: "nvidia.com/GP100" }]),
  "domain.devices.hostDevices": (s) => (dev(s).hostDevices = [{ name: "h", deviceName: "vendor.com/dev" }]),
  "domain.devices.filesystems": (s) => {
    dev(s).filesystems = [{ name: "fs", virtiofs: {} }];
    s.volumes.push({ name: "fs", persistentVolumeClaim: { claimName: "c" } });
  },
  "domain.devices.tpm": (s) => (dev(s).tpm = {}),
  "domain.devices.sound": (s) => (dev(s).sound = { name: "audio" }),
  "domain.devices.downwardMetrics": (s) => (dev(s).downwardMetrics = {}),
  "domain.devices.clientPassthrough": (s) => (dev(s).clientPassthrough = {}),
  "domain.devices.autoattachVSOCK": (s) => (dev(s).autoattachVSOCK = true),
  "domain.devices.blockMultiQueue": (s) => (dev(s).blockMultiQueue = true),
  "domain.devices.interfaces[].sriov": binding("sriov"),
  "domain.devices.interfaces[].macvtap": binding("macvtap"),
  "domain.devices.interfaces[].slirp": binding("slirp"),
  "domain.devices.interfaces[].passt": binding("passt"),
  "domain.devices.interfaces[].passtBinding": binding("passtBinding"),
  "domain.devices.interfaces[].binding": binding("binding", { name: "plugin" }),
  "domain.devices.interfaces[].portRanges": (s) => (dev(s).interfaces[0].portRanges = [{ start: 80, end: 90 }]),
  "domain.devices.disks[].blockSize": (s) => (dev(s).disks[0].blockSize = { matchVolume: { enabled: true } }),
  "domain.devices.disks[].changedBlockTracking": (s) => (dev(s).disks[0].changedBlockTracking = true),
  "domain.cpu.dedicatedCpuPlacement": (s) => (dom(s).cpu = { dedicatedCpuPlacement: true }),
  "domain.cpu.isolateEmulatorThread": (s) => (dom(s).cpu = { isolateEmulatorThread: true }),
  "domain.cpu.numa": (s) => (dom(s).cpu = { numa: { guestMappingPassthrough: {} } }),
  "domain.cpu.realtime": (s) => (dom(s).cpu = { realtime: {} }),
  "domain.cpu.maxSockets": (s) => (dom(s).cpu = { sockets: 1, maxSockets: 4 }),
  "domain.memory.maxGuest": (s) => (dom(s).memory.maxGuest = "1Gi"),
  "domain.memory.reservedOverhead": (s) => (dom(s).memory.reservedOverhead = { memLock: "Required" }),
  "domain.firmware.acpi": (s) => (dom(s).firmware = { acpi: { slicNameRef: "slic" } }),
  "domain.firmware.bootloader.efi.persistent": (s) =>
    (dom(s).firmware = { bootloader: { efi: { secureBoot: false, persistent: true } } }),
  "domain.launchSecurity": (s) => (dom(s).launchSecurity = { sev: {} }),
  "domain.ioThreads": (s) => (dom(s).ioThreads = { supplementalPoolThreadCount: 2 }),
  "networks[].multus": (s) => (s.networks[0] = { name: "default", multus: { networkName: "net" } }),
  "networks[].resourceClaim": (s) =>
    (s.networks[0] = { name: "default", resourceClaim: { claimName: "c", requestName: "r" } }),
  "volumes[].downwardMetrics": volume("downwardMetrics", {}),
  "volumes[].memoryDump": volume("memoryDump", { claimName: "dump" }),
  "volumes[].containerPath": volume("containerPath", { path: "/x" }),
  livenessProbe: (s) => (s.livenessProbe = { tcpSocket: { port: 22 } }),
  readinessProbe: (s) => (s.readinessProbe = { tcpSocket: { port: 22 } }),
  accessCredentials: (s) =>
    (s.accessCredentials = [
      {
        sshPublicKey: {
          source: { secret: { secretName: "k" } },
          propagationMethod: { noCloud: {} },
        },
      },
    ]),
  resourceClaims: (s) => (s.resourceClaims = [{ name: "r" }]),
  utilityVolumes: (s) => (s.utilityVolumes = [{ name: "u", persistentVolumeClaim: { claimName: "c" } }]),
};

/** Fields the converter honours that were once listed, and others near them: never warned about. */
const HONOURED_SAMPLES: Record<string, Sample> = {
  "domain.firmware.kernelBoot": (s) =>
    (dom(s).firmware = { kernelBoot: { container: { image: "k:1", kernelPath: "/vmlinuz" }, kernelArgs: "quiet" } }),
  "domain.devices.disks[].lun": (s) => {
    dev(s).disks.push({ name: "lun", lun: { bus: "scsi" } });
    s.volumes.push({ name: "lun", persistentVolumeClaim: { claimName: "c" } });
  },
  "domain.devices.panicDevices": (s) => (dev(s).panicDevices = [{ model: "hyperv" }]),
  "domain.memory.hugepages": (s) => (dom(s).memory.hugepages = { pageSize: "2Mi" }),
  "domain.features.hyperv": (s) => (dom(s).features = { hyperv: { relaxed: {}, vapic: {} } }),
  "domain.features.hypervPassthrough": (s) => (dom(s).features = { hypervPassthrough: { enabled: true } }),
  "volumes[].hostDisk": volume("hostDisk", { path: "/var/lib/vm/disk.img", type: "Disk" }),
  "volumes[].sysprep": (s) => {
    dev(s).disks.push({ name: "sys", cdrom: { bus: "sata" } });
    s.volumes.push({ name: "sys", sysprep: { configMap: { name: "unattend" } } });
  },
  "domain.ioThreadsPolicy": (s) => (dom(s).ioThreadsPolicy = "shared"),
  "domain.devices.watchdog": (s) => (dev(s).watchdog = { name: "w", i6300esb: { action: "poweroff" } }),
  "domain.devices.rng": (s) => (dev(s).rng = {}),
};

function convert(sample?: Sample): { xml: string; problems: string[] } {
  const vmi = base();
  sample?.(vmi.spec as Spec);
  const { problems } = convertWithProblems(vmi, preparedContext(vmi, POD));
  const xml = problems.length === 0 ? vmiToDomainXml(vmi, preparedContext(vmi, POD)) : "";
  return { xml, problems: problems.map((p) => `${p.field}: ${p.message}`) };
}

function warned(sample: Sample): string[] {
  const vmi = base();
  sample(vmi.spec as Spec);
  return unimplementedFields(vmi.spec);
}

describe("the unimplemented-field list is what the converter does not honour", () => {
  const clean = convert();
  it("the base VMI converts cleanly and is warned about nothing", () => {
    assert.deepEqual(clean.problems, []);
    assert.deepEqual(unimplementedFields(base().spec), []);
  });
  it("every listed field has a sample here", () => {
    assert.deepEqual([...UNIMPLEMENTED_VMI_FIELDS].sort(), Object.keys(UNIMPLEMENTED_SAMPLES).sort());
  });
  for (const [path, sample] of Object.entries(UNIMPLEMENTED_SAMPLES)) {
    it(`${path}: warned, and the converter refuses or ignores it`, () => {
      assert.deepEqual(warned(sample), [`spec.${path.replaceAll("[]", "[0]")}`]);
      const r = convert(sample);
      assert.ok(r.problems.length > 0 || r.xml === clean.xml, `the converter honours ${path}: unlist it`);
    });
  }
  for (const [path, sample] of Object.entries(HONOURED_SAMPLES)) {
    it(`${path}: honoured by the converter, and not warned about`, () => {
      const r = convert(sample);
      assert.deepEqual(r.problems, []);
      assert.notEqual(r.xml, clean.xml, `${path} changes nothing in the domain`);
      assert.deepEqual(warned(sample), []);
    });
  }
});
