// What the launcher must create on disk before the domain starts, as data (pure planner), and a thin executor
// (qemu-img and xorriso through execFile; never a shell). Crash-only: every step is idempotent and atomic. The
// launcher's only preparation path (its DomainBuilder is prepareAndConvert).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { VirtualMachineInstance } from "../../api/index.js";
import { invalid } from "../../lib/errors.js";
import { podPaths } from "../pod.js";
import type { NodePrepared } from "../protocol.js";
import { buildIso, type CloudInitSecrets, configDriveFiles, ISO_LABELS, noCloudFiles } from "./cloudinit.js";
import type { ConverterContext, PreparedVolume } from "./context.js";
import { vmiToDomainXml } from "./convert.js";
import { parseQuantity } from "./quantity.js";
import { volumeKind } from "./storage.js";

const run = promisify(execFile);

/** What the node knows about a VMI's volumes and interfaces before its launcher starts. */
export interface NodeFacts {
  kvm: boolean;
  /** containerDisk volume → the extracted base image (read-only, shared by VMIs on the node). */
  containerDisks?: Readonly<Record<string, { path: string; format: "raw" | "qcow2" }>>;
  /** PVC / dataVolume (also ephemeral's PVC) / hostDisk volume → its file or block device (hostDisk: the path the
   * node checked against its root). */
  claims?: Readonly<Record<string, { type: "file"; path: string } | { type: "block"; path: string }>>;
  /** configMap / secret / serviceAccount / downwardAPI / sysprep volume → its files (path → base64), read by the node. */
  files?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** cloud-init volume → user/network data from the secrets it names, read by the node. */
  cloudInitSecrets?: Readonly<Record<string, CloudInitSecrets>>;
  /** interface name → tap device. */
  taps?: Readonly<Record<string, string>>;
  kernelBoot?: { kernel: string; initrd?: string };
}

/** Volume kinds whose content the node reads from the API and the launcher writes into an ISO. */
export const CONFIG_VOLUME_KINDS: ReadonlySet<string> = new Set([
  "configMap",
  "secret",
  "serviceAccount",
  "downwardAPI",
  "sysprep",
]);

/**
 * The converter context for a VMI whose launcher works in `podDir` (paths from podPaths(), the one pod layout):
 * sockets and per-VMI files in the directory QEMU's user owns, container disks and ephemeral PVCs as overlays
 * there, emptyDisks and ISOs (cloud-init, config volumes) there, the rest from the node's facts. Volumes the node
 * has no facts for are left out (the converter then names them in its error).
 */
export function contextFor(vmi: VirtualMachineInstance, podDir: string, facts: NodeFacts): ConverterContext {
  const paths = podPaths(podDir);
  const volumes: Record<string, PreparedVolume> = {};
  for (const v of vmi.spec.volumes ?? []) {
    const dir = paths.volumeDir(v.name);
    const kind = volumeKind(v);
    switch (kind) {
      case "containerDisk": {
        const base = facts.containerDisks?.[v.name];
        if (base)
          volumes[v.name] = { type: "overlay", path: join(dir, "overlay.qcow2"), backing: { type: "file", ...base } };
        break;
      }
      case "ephemeral": {
        const c = facts.claims?.[v.name];
        if (c) {
          volumes[v.name] = {
            type: "overlay",
            path: join(dir, "overlay.qcow2"),
            backing: c.type === "file" ? { type: "file", path: c.path, format: "raw" } : c,
          };
        }
        break;
      }
      case "persistentVolumeClaim":
      case "dataVolume":
      case "hostDisk": {
        const c = facts.claims?.[v.name];
        if (c) volumes[v.name] = c.type === "file" ? { type: "file", path: c.path, format: "raw" } : c;
        break;
      }
      case "emptyDisk":
        volumes[v.name] = { type: "file", path: join(dir, "empty.qcow2"), format: "qcow2" };
        break;
      case "cloudInitNoCloud":
        volumes[v.name] = { type: "file", path: join(dir, "noCloud.iso"), format: "raw" };
        break;
      case "cloudInitConfigDrive":
        volumes[v.name] = { type: "file", path: join(dir, "configdrive.iso"), format: "raw" };
        break;
      default:
        if (kind && CONFIG_VOLUME_KINDS.has(kind) && facts.files?.[v.name]) {
          volumes[v.name] = { type: "file", path: join(dir, `${kind}.iso`), format: "raw" };
        }
        break;
    }
  }
  const interfaces: Record<string, { tap: string }> = {};
  for (const [name, tap] of Object.entries(facts.taps ?? {})) interfaces[name] = { tap };
  const ctx: ConverterContext = {
    arch: "x86_64",
    kvm: facts.kvm,
    volumes,
    interfaces,
    serialSocket: paths.serialSocket,
    serialLog: paths.serialConsoleLog,
    vncSocket: paths.vncSocket,
    guestAgentSocket: paths.guestAgentSocket,
  };
  if (facts.kernelBoot) ctx.kernelBoot = facts.kernelBoot;
  return ctx;
}

/**
 * NodeFacts from a Sync request's `prepared`. Base image formats come from the caller (e.g. `qemu-img info`);
 * a base image without one is taken as qcow2. `volumePaths` are claims (PVC, dataVolume, ephemeral's PVC, hostDisk).
 */
export function nodeFactsFromPrepared(
  prepared: NodePrepared | undefined,
  opts: { kvm: boolean; baseFormats?: Readonly<Record<string, "raw" | "qcow2">> },
): NodeFacts {
  const containerDisks: Record<string, { path: string; format: "raw" | "qcow2" }> = {};
  for (const [name, path] of Object.entries(prepared?.baseImages ?? {})) {
    containerDisks[name] = { path, format: opts.baseFormats?.[name] ?? "qcow2" };
  }
  const claims: Record<string, { type: "file"; path: string } | { type: "block"; path: string }> = {};
  const block = new Set(prepared?.blockVolumes ?? []);
  for (const [name, path] of Object.entries(prepared?.volumePaths ?? {})) {
    claims[name] = block.has(name) ? { type: "block", path } : { type: "file", path };
  }
  const facts: NodeFacts = {
    kvm: opts.kvm,
    containerDisks,
    claims,
    files: { ...(prepared?.volumeFiles ?? {}) },
    cloudInitSecrets: { ...(prepared?.cloudInitSecrets ?? {}) },
    taps: { ...(prepared?.taps ?? {}) },
  };
  if (prepared?.kernelBoot) {
    facts.kernelBoot =
      prepared.kernelBoot.initrd !== undefined
        ? { kernel: prepared.kernelBoot.kernel, initrd: prepared.kernelBoot.initrd }
        : { kernel: prepared.kernelBoot.kernel };
  }
  return facts;
}

export type PrepareStep =
  | { kind: "mkdir"; path: string }
  | { kind: "overlay"; path: string; backing: string; backingFormat: "raw" | "qcow2" }
  | { kind: "emptyDisk"; path: string; bytes: number }
  | { kind: "hostDisk"; path: string; bytes: number }
  /** An existing file QEMU must open read-write (hostDisk type Disk): handed to QEMU's user, as KubeVirt does. */
  | { kind: "own"; path: string }
  | { kind: "iso"; path: string; label: string; files: Record<string, string | Buffer> };

/** The files to create before `virsh define/start`, in order. Pure. */
export function planPreparation(
  vmi: VirtualMachineInstance,
  ctx: ConverterContext,
  facts: Pick<NodeFacts, "files" | "cloudInitSecrets"> = {},
): PrepareStep[] {
  const steps: PrepareStep[] = [{ kind: "mkdir", path: dirname(ctx.serialSocket) }];
  (vmi.spec.volumes ?? []).forEach((v, i) => {
    const p = ctx.volumes[v.name];
    const kind = volumeKind(v);
    const field = `spec.volumes[${i}].${kind}`;
    if (kind === "hostDisk" && v.hostDisk) {
      const bytes = v.hostDisk.capacity !== undefined ? parseQuantity(v.hostDisk.capacity) : undefined;
      const path = p && p.type === "file" ? p.path : v.hostDisk.path;
      if (v.hostDisk.type === "DiskOrCreate" && bytes !== undefined) {
        steps.push({ kind: "hostDisk", path, bytes: Math.ceil(bytes) });
      }
      steps.push({ kind: "own", path });
      return;
    }
    if (!p) return;
    if (p.type === "overlay") {
      steps.push({ kind: "mkdir", path: dirname(p.path) });
      steps.push({
        kind: "overlay",
        path: p.path,
        backing: p.backing.path,
        backingFormat: p.backing.type === "file" ? p.backing.format : "raw",
      });
    } else if (kind === "emptyDisk" && v.emptyDisk) {
      const bytes = parseQuantity(v.emptyDisk.capacity);
      steps.push({ kind: "mkdir", path: dirname(p.path) });
      steps.push({ kind: "emptyDisk", path: p.path, bytes: Math.ceil(bytes ?? 0) });
    } else if (kind === "cloudInitNoCloud") {
      steps.push({ kind: "mkdir", path: dirname(p.path) });
      const files = noCloudFiles(vmi, v, facts.cloudInitSecrets?.[v.name], field);
      steps.push({ kind: "iso", path: p.path, label: ISO_LABELS.noCloud, files: { ...files } });
    } else if (kind === "cloudInitConfigDrive") {
      steps.push({ kind: "mkdir", path: dirname(p.path) });
      const files = configDriveFiles(vmi, v, facts.cloudInitSecrets?.[v.name], field);
      steps.push({ kind: "iso", path: p.path, label: ISO_LABELS.configDrive, files });
    } else if (kind && CONFIG_VOLUME_KINDS.has(kind)) {
      const files: Record<string, Buffer> = {};
      for (const [name, b64] of Object.entries(facts.files?.[v.name] ?? {})) files[name] = Buffer.from(b64, "base64");
      steps.push({ kind: "mkdir", path: dirname(p.path) });
      const label = v.configMap?.volumeLabel ?? v.secret?.volumeLabel ?? v.downwardAPI?.volumeLabel;
      steps.push({ kind: "iso", path: p.path, label: label?.slice(0, 32) || ISO_LABELS.config, files });
    }
  });
  return steps;
}

/**
 * Runs the steps. Overlays and empty disks are created once (a restarted launcher keeps the guest's writes);
 * ISOs are rebuilt (their content follows the VMI). Every file appears atomically (temp name + rename).
 */
export async function executePreparation(
  steps: readonly PrepareStep[],
  opts: { owner?: { uid: number; gid: number } } = {},
): Promise<void> {
  const own = async (p: string): Promise<void> => {
    if (opts.owner) await chown(p, opts.owner.uid, opts.owner.gid);
  };
  for (const s of steps) {
    switch (s.kind) {
      case "mkdir":
        await mkdir(s.path, { recursive: true });
        await own(s.path);
        break;
      case "overlay":
        if (!existsSync(s.path)) {
          await run("qemu-img", [
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            s.backing,
            "-F",
            s.backingFormat,
            `${s.path}.tmp`,
          ]);
          await own(`${s.path}.tmp`);
          await rename(`${s.path}.tmp`, s.path);
        }
        break;
      case "emptyDisk":
      case "hostDisk":
        if (!existsSync(s.path)) {
          const fmt = s.kind === "emptyDisk" ? "qcow2" : "raw";
          await mkdir(dirname(s.path), { recursive: true });
          await run("qemu-img", ["create", "-q", "-f", fmt, `${s.path}.tmp`, String(s.bytes)]);
          await own(`${s.path}.tmp`);
          await rename(`${s.path}.tmp`, s.path);
        }
        break;
      case "own":
        await own(s.path);
        break;
      case "iso":
        await rm(`${s.path}.tmp`, { force: true });
        await buildIso(s.files, s.label, s.path);
        await own(s.path);
        break;
    }
  }
}

/**
 * The launcher's whole "Sync → domain XML" step: detects the base images' formats (`qemu-img info`), builds the
 * context for `podDir`, creates overlays / empty disks / ISOs (owned by QEMU's user if given), and converts.
 * Throws the converter's 422 StatusError for anything it cannot honour. The launcher's DomainBuilder.
 */
export async function prepareAndConvert(
  vmi: VirtualMachineInstance,
  prepared: NodePrepared | undefined,
  opts: {
    podDir: string;
    kvm: boolean;
    owner?: { uid: number; gid: number };
    /** Extra context (EFI files, hotplug ports, emulator); applied over the defaults. */
    context?: Partial<ConverterContext>;
  },
): Promise<string> {
  // A hostDisk is used only at the path the node checked against its root (the launcher cannot know the root).
  const unapproved = (vmi.spec.volumes ?? []).flatMap((v, i) =>
    v.hostDisk && prepared?.volumePaths?.[v.name] === undefined
      ? [
          {
            type: "FieldValueInvalid" as const,
            field: `spec.volumes[${i}].hostDisk.path`,
            message: `the node did not approve hostDisk path "${v.hostDisk.path}"`,
          },
        ]
      : [],
  );
  if (unapproved.length) {
    throw invalid({ group: "kubevirt.io", kind: "VirtualMachineInstance" }, vmi.metadata?.name ?? "", unapproved);
  }
  const baseFormats: Record<string, "raw" | "qcow2"> = {};
  for (const [name, path] of Object.entries(prepared?.baseImages ?? {})) {
    const { stdout } = await run("qemu-img", ["info", "-U", "--output=json", path]);
    const format = (JSON.parse(stdout) as { format?: string }).format;
    baseFormats[name] = format === "raw" ? "raw" : "qcow2";
  }
  const facts = nodeFactsFromPrepared(prepared, { kvm: opts.kvm, baseFormats });
  const ctx = { ...contextFor(vmi, opts.podDir, facts), ...opts.context };
  // Convert first (pure): a VMI we cannot honour creates no files.
  const xml = vmiToDomainXml(vmi, ctx);
  await executePreparation(planPreparation(vmi, ctx, facts), opts.owner ? { owner: opts.owner } : {});
  return xml;
}
