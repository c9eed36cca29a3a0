// Disks: VMI disks + volumes + what the launcher prepared → libvirt <disk>s (KubeVirt's storage/disk.go, volume.go).
import type { Disk as VmiDisk, Volume } from "../../api/index.js";
import type { Disk, DiskSource, Domain, PciAddress } from "../domain/index.js";
import type { PreparedVolume } from "./context.js";
import { type Configure, type ConvertInput, invalidField, required, unsupported } from "./types.js";

const DEV = "spec.domain.devices";

/** 0 → a, 25 → z, 26 → aa (the kernel's disk naming). */
export function diskLetters(i: number): string {
  let s = "";
  let n = i;
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return s;
}

/** "0000:81:01.0" → a PCI address; undefined if malformed. */
export function parsePciAddress(s: string): PciAddress | undefined {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(s);
  if (!m) return undefined;
  return {
    type: "pci",
    domain: Number.parseInt(m[1] ?? "", 16),
    bus: Number.parseInt(m[2] ?? "", 16),
    slot: Number.parseInt(m[3] ?? "", 16),
    function: Number(m[4]),
  };
}

type VolumeKind = Exclude<keyof Volume, "name">;
const SUPPORTED: ReadonlySet<VolumeKind> = new Set<VolumeKind>([
  "containerDisk",
  "persistentVolumeClaim",
  "dataVolume",
  "ephemeral",
  "emptyDisk",
  "hostDisk",
  "cloudInitNoCloud",
  "cloudInitConfigDrive",
  "configMap",
  "secret",
  "serviceAccount",
  "downwardAPI",
  "sysprep",
]);

export function volumeKind(v: Volume): VolumeKind | undefined {
  const kinds = (Object.keys(v) as (keyof Volume)[]).filter((k) => k !== "name" && v[k] !== undefined);
  return kinds[0] as VolumeKind | undefined;
}

function toSource(p: { type: "file" | "block"; path: string }): DiskSource {
  return p.type === "file" ? { type: "file", file: p.path } : { type: "block", dev: p.path };
}

/** The prepared volume for a VMI volume: from the context, or (hostDisk) from the VMI itself. */
function prepared(input: ConvertInput, vol: Volume, vi: number): PreparedVolume | undefined {
  const p = input.ctx.volumes[vol.name];
  const field = `spec.volumes[${vi}]`;
  const kind = volumeKind(vol);
  if (kind === undefined) {
    required(input, field, `volume "${vol.name}" has no source`);
    return undefined;
  }
  if (!SUPPORTED.has(kind)) {
    unsupported(input, `${field}.${kind}`, `${kind} volumes are not supported`);
    return undefined;
  }
  if (p) {
    if ((kind === "containerDisk" || kind === "ephemeral") && p.type !== "overlay") {
      invalidField(input, `${field}.${kind}`, `the launcher must prepare an overlay for ${kind} "${vol.name}"`);
    }
    return p;
  }
  if (kind === "hostDisk" && vol.hostDisk) return { type: "file", path: vol.hostDisk.path, format: "raw" };
  required(input, `${field}.${kind}`, `the node prepared no host path for volume "${vol.name}"`);
  return undefined;
}

const CACHE = new Set(["none", "writethrough", "writeback"]);
const IO = new Set(["native", "threads"]);
const ERR = new Set(["stop", "report", "ignore", "enospace"]);
const BUS = new Set(["virtio", "sata", "scsi", "usb"]);

/** Every VMI disk with its volume, in order: device, bus, target name, driver, source, backing store, flags. */
export const disks: Configure = (input, dom) => {
  const { vmi } = input;
  const devs = vmi.spec.domain.devices;
  const volumes = vmi.spec.volumes ?? [];
  const counters: Record<"vd" | "sd", number> = { vd: 0, sd: 0 };
  let scsiUnit = 0;
  const out: Disk[] = [];
  const transitional = devs.useVirtioTransitional === true;
  const policy = vmi.spec.domain.ioThreadsPolicy;
  if (policy !== undefined && policy !== "shared" && policy !== "auto") {
    unsupported(input, "spec.domain.ioThreadsPolicy", `ioThreadsPolicy "${policy}" is not supported`);
  }
  const vcpus = Math.max(1, dom.vcpu);
  const virtioCount = (devs.disks ?? []).filter(
    (d) => !d.cdrom && !d.lun && (d.disk?.bus ?? "virtio") === "virtio",
  ).length;
  const autoPool = Math.max(1, Math.min(virtioCount, 2 * vcpus));
  let iothreads = 0;
  let sharedThread: number | undefined;
  let autoNext = 0;
  (devs.disks ?? []).forEach((d: VmiDisk, i) => {
    const field = `${DEV}.disks[${i}]`;
    const vi = volumes.findIndex((v) => v.name === d.name);
    const vol = volumes[vi];
    if (!vol) {
      required(input, `${field}.name`, `no volume named "${d.name}"`);
      return;
    }
    const targets = [d.disk, d.cdrom, d.lun].filter((t) => t !== undefined).length;
    if (targets > 1) invalidField(input, field, "only one of disk, cdrom, lun may be set");
    const device: Disk["device"] = d.cdrom ? "cdrom" : d.lun ? "lun" : "disk";
    const bus =
      d.cdrom?.bus ?? d.lun?.bus ?? d.disk?.bus ?? (device === "cdrom" ? "sata" : device === "lun" ? "scsi" : "virtio");
    if (!BUS.has(bus)) {
      invalidField(input, `${field}.${device}.bus`, `unknown bus "${bus}"`);
      return;
    }
    if (device === "cdrom" && bus === "virtio") invalidField(input, `${field}.cdrom.bus`, "a cdrom cannot use virtio");
    if (device === "lun" && bus !== "scsi") invalidField(input, `${field}.lun.bus`, "a lun needs the scsi bus");
    const p = prepared(input, vol, vi);
    if (!p) return;
    const prefix = bus === "virtio" ? "vd" : "sd";
    const dev = prefix + diskLetters(counters[prefix]++);
    const volKind = volumeKind(vol);
    const readonly =
      d.disk?.readonly === true ||
      d.lun?.readonly === true ||
      (device === "cdrom" && d.cdrom?.readonly !== false) ||
      vol.persistentVolumeClaim?.readOnly === true;
    if (readonly && device === "disk" && bus === "sata") {
      invalidField(input, `${field}.disk.readonly`, "a read-only disk cannot use the sata bus (libvirt refuses it)");
    }
    const disk: Disk = {
      device,
      source: p.type === "overlay" ? { type: "file", file: p.path } : toSource(p),
      target: { bus: bus as Disk["target"]["bus"], dev },
      driver: { type: p.type === "overlay" ? "qcow2" : p.type === "file" ? p.format : "raw" },
      readonly,
      shareable: d.shareable === true,
      alias: `ua-${d.name}`,
    };
    if (p.type === "overlay") {
      disk.backingStore = {
        source: toSource(p.backing),
        format: p.backing.type === "file" ? p.backing.format : "raw",
      };
    }
    if (bus === "virtio") disk.model = transitional ? "virtio-transitional" : "virtio-non-transitional";
    if (device === "cdrom") disk.target.tray = d.cdrom?.tray === "open" ? "open" : "closed";
    if (d.cdrom?.tray !== undefined && d.cdrom.tray !== "open" && d.cdrom.tray !== "closed") {
      invalidField(input, `${field}.cdrom.tray`, `unknown tray "${d.cdrom.tray}"`);
    }
    if (bus === "scsi") disk.address = { type: "drive", controller: 0, bus: 0, target: 0, unit: scsiUnit++ };
    if (d.cache !== undefined) {
      if (!CACHE.has(d.cache)) invalidField(input, `${field}.cache`, `unknown cache mode "${d.cache}"`);
      else disk.driver.cache = d.cache as Disk["driver"]["cache"];
    } else if (d.shareable) disk.driver.cache = "none";
    if (d.shareable && disk.driver.cache !== "none")
      invalidField(input, `${field}.cache`, "a shareable disk needs cache none");
    if (d.io !== undefined) {
      if (!IO.has(d.io)) invalidField(input, `${field}.io`, `unknown io mode "${d.io}"`);
      else if (d.io === "native" && disk.driver.cache !== "none") {
        invalidField(input, `${field}.io`, "io native needs cache none");
      } else disk.driver.io = d.io as Disk["driver"]["io"];
    }
    const ep = d.errorPolicy ?? "stop";
    if (!ERR.has(ep)) invalidField(input, `${field}.errorPolicy`, `unknown error policy "${ep}"`);
    else disk.driver.errorPolicy = ep as Disk["driver"]["errorPolicy"];
    if (device !== "cdrom") disk.driver.discard = "unmap";
    if (d.serial !== undefined) disk.serial = d.serial;
    if (d.bootOrder !== undefined) {
      if (d.bootOrder < 1) invalidField(input, `${field}.bootOrder`, "must be at least 1");
      else disk.bootOrder = d.bootOrder;
    }
    if (d.blockSize?.custom) {
      disk.blockio = { logical: d.blockSize.custom.logical, physical: d.blockSize.custom.physical };
      if (d.blockSize.custom.discardGranularity !== undefined) {
        disk.blockio.discardGranularity = d.blockSize.custom.discardGranularity;
      }
    } else if (d.blockSize?.matchVolume?.enabled) unsupported(input, `${field}.blockSize.matchVolume`);
    if (d.changedBlockTracking) unsupported(input, `${field}.changedBlockTracking`);
    if (d.lun?.reservation) disk.reservations = true;
    if (d.disk?.pciAddress !== undefined) {
      const a = parsePciAddress(d.disk.pciAddress);
      if (!a) invalidField(input, `${field}.disk.pciAddress`, `"${d.disk.pciAddress}" is not a PCI address`);
      else if (bus !== "virtio")
        invalidField(input, `${field}.disk.pciAddress`, "only virtio disks have a PCI address");
      else disk.address = a;
    }
    if (bus === "virtio" && device === "disk") {
      if (d.dedicatedIOThread) disk.driver.iothread = ++iothreads;
      else if (policy === "shared") {
        sharedThread ??= ++iothreads;
        disk.driver.iothread = sharedThread;
      } else if (policy === "auto") {
        disk.driver.iothread = -1 - (autoNext++ % autoPool); // placeholder, renumbered below
      }
    }
    if (volKind === "hostDisk" && vol.hostDisk?.shared && !d.shareable) {
      invalidField(input, `${field}.shareable`, "a shared hostDisk must be shareable");
    }
    out.push(disk);
  });
  // auto: a pool after the dedicated/shared threads.
  const base = iothreads;
  let autoMax = 0;
  for (const disk of out) {
    const t = disk.driver.iothread;
    if (t !== undefined && t < 0) {
      disk.driver.iothread = base - t;
      autoMax = Math.max(autoMax, -t);
    }
  }
  iothreads = base + autoMax;
  const next: Domain = { ...dom, devices: { ...dom.devices, disks: out } };
  if (iothreads > 0) next.iothreads = iothreads;
  // Volumes no disk uses are fine in KubeVirt only for a few kinds (e.g. filesystems); flag the rest.
  volumes.forEach((v, vi) => {
    if (!(devs.disks ?? []).some((d) => d.name === v.name)) {
      const kind = volumeKind(v);
      if (kind !== "cloudInitNoCloud" && kind !== "cloudInitConfigDrive" && kind !== "downwardMetrics") {
        unsupported(
          input,
          `spec.volumes[${vi}]`,
          `volume "${v.name}" is not used by any disk (filesystems are not supported)`,
        );
      }
    }
  });
  return next;
};
