// What the launcher must create on disk before the domain starts, as data (pure planner), and a thin executor
// (qemu-img and xorriso through execFile; never a shell). Crash-only: every step is idempotent and atomic.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chown, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { VirtualMachineInstance } from "../../api/index.js";
import { buildNoCloudIso, type CloudInitSecrets, type NoCloudFiles, noCloudFiles } from "./cloudinit.js";
import { type ConverterContext, type PreparedVolume, podPaths } from "./context.js";
import { parseQuantity } from "./quantity.js";
import { volumeKind } from "./storage.js";

const run = promisify(execFile);

/** What the node knows about a VMI's volumes and interfaces before its launcher starts. */
export interface NodeFacts {
  kvm: boolean;
  /** containerDisk volume → the extracted base image (read-only, shared by VMIs on the node). */
  containerDisks?: Readonly<Record<string, { path: string; format: "raw" | "qcow2" }>>;
  /** PVC / dataVolume (also ephemeral's PVC) volume → its file or block device. */
  claims?: Readonly<Record<string, { type: "file"; path: string } | { type: "block"; path: string }>>;
  /** configMap / secret / serviceAccount / downwardAPI / sysprep volume → an ISO the node built. */
  isos?: Readonly<Record<string, string>>;
  /** interface name → tap device. */
  taps?: Readonly<Record<string, string>>;
  kernelBoot?: { kernel: string; initrd?: string };
}

/**
 * The converter context for a VMI whose launcher works in `podDir`: sockets and per-VMI files under it, container
 * disks and ephemeral PVCs as overlays there, emptyDisks and cloud-init ISOs there, the rest from the node's facts.
 * Volumes the node has no facts for are left out (the converter then names them in its error).
 */
export function contextFor(vmi: VirtualMachineInstance, podDir: string, facts: NodeFacts): ConverterContext {
  const paths = podPaths(podDir);
  const volumes: Record<string, PreparedVolume> = {};
  for (const v of vmi.spec.volumes ?? []) {
    const dir = join(podDir, "disks", v.name);
    switch (volumeKind(v)) {
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
      case "dataVolume": {
        const c = facts.claims?.[v.name];
        if (c) volumes[v.name] = c.type === "file" ? { type: "file", path: c.path, format: "raw" } : c;
        break;
      }
      case "emptyDisk":
        volumes[v.name] = { type: "file", path: join(dir, "empty.qcow2"), format: "qcow2" };
        break;
      case "cloudInitNoCloud":
      case "cloudInitConfigDrive":
        volumes[v.name] = { type: "file", path: paths.cloudInitIso(v.name), format: "raw" };
        break;
      case "configMap":
      case "secret":
      case "serviceAccount":
      case "downwardAPI":
      case "sysprep": {
        const iso = facts.isos?.[v.name];
        if (iso) volumes[v.name] = { type: "file", path: iso, format: "raw" };
        break;
      }
      case "hostDisk": {
        const c = facts.claims?.[v.name];
        if (c) volumes[v.name] = c.type === "file" ? { type: "file", path: c.path, format: "raw" } : c;
        break; // else the converter takes the VMI's path
      }
      default:
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
    serialLog: paths.serialLog,
    vncSocket: paths.vncSocket,
  };
  if (facts.kernelBoot) ctx.kernelBoot = facts.kernelBoot;
  return ctx;
}

/** The node's preparations as the launcher's Sync request carries them (launcher/protocol.ts NodePrepared). */
export interface PreparedByNode {
  baseImages?: Readonly<Record<string, string>>;
  kernelBoot?: { kernel: string; initrd?: string | undefined };
  volumePaths?: Readonly<Record<string, string>>;
  blockVolumes?: readonly string[];
  taps?: Readonly<Record<string, string>>;
}

/**
 * NodeFacts from a Sync request's `prepared`. Base image formats come from the caller (e.g. `qemu-img info`);
 * a base image without one is taken as qcow2. Volumes in `volumePaths` are claims (PVC, dataVolume, ephemeral's
 * PVC, hostDisk) unless they are config volumes, which are ISOs.
 */
export function nodeFactsFromPrepared(
  vmi: VirtualMachineInstance,
  prepared: PreparedByNode | undefined,
  opts: { kvm: boolean; baseFormats?: Readonly<Record<string, "raw" | "qcow2">> },
): NodeFacts {
  const containerDisks: Record<string, { path: string; format: "raw" | "qcow2" }> = {};
  for (const [name, path] of Object.entries(prepared?.baseImages ?? {})) {
    containerDisks[name] = { path, format: opts.baseFormats?.[name] ?? "qcow2" };
  }
  const claims: Record<string, { type: "file"; path: string } | { type: "block"; path: string }> = {};
  const isos: Record<string, string> = {};
  const block = new Set(prepared?.blockVolumes ?? []);
  const isoKinds = new Set(["configMap", "secret", "serviceAccount", "downwardAPI", "sysprep"]);
  for (const [name, path] of Object.entries(prepared?.volumePaths ?? {})) {
    const vol = (vmi.spec.volumes ?? []).find((v) => v.name === name);
    const kind = vol ? volumeKind(vol) : undefined;
    if (kind && isoKinds.has(kind)) isos[name] = path;
    else claims[name] = block.has(name) ? { type: "block", path } : { type: "file", path };
  }
  const facts: NodeFacts = { kvm: opts.kvm, containerDisks, claims, isos, taps: { ...(prepared?.taps ?? {}) } };
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
  | { kind: "noCloudIso"; path: string; files: NoCloudFiles };

/** The files to create before `virsh define/start`, in order. Pure. */
export function planPreparation(
  vmi: VirtualMachineInstance,
  ctx: ConverterContext,
  secrets: Readonly<Record<string, CloudInitSecrets>> = {},
): PrepareStep[] {
  const steps: PrepareStep[] = [{ kind: "mkdir", path: dirname(ctx.serialSocket) }];
  (vmi.spec.volumes ?? []).forEach((v, i) => {
    const p = ctx.volumes[v.name];
    const kind = volumeKind(v);
    if (kind === "hostDisk" && v.hostDisk?.type === "DiskOrCreate") {
      const bytes = v.hostDisk.capacity !== undefined ? parseQuantity(v.hostDisk.capacity) : undefined;
      if (bytes !== undefined) steps.push({ kind: "hostDisk", path: v.hostDisk.path, bytes: Math.ceil(bytes) });
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
    } else if (kind === "cloudInitNoCloud" || kind === "cloudInitConfigDrive") {
      steps.push({ kind: "mkdir", path: dirname(p.path) });
      steps.push({
        kind: "noCloudIso",
        path: p.path,
        files: noCloudFiles(vmi, v, secrets[v.name], `spec.volumes[${i}].${kind}`),
      });
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
      case "noCloudIso":
        await rm(`${s.path}.tmp`, { force: true });
        await buildNoCloudIso(s.files, s.path);
        await own(s.path);
        break;
    }
  }
}
