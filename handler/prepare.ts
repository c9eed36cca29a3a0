// The node's half of volume preparation (KubeVirt: virt-handler + kubelet's volume mounts): what only the node can
// supply before a launcher converts its VMI — containerDisks pulled (with the volume's pull secret and policy, at
// the digest the VMI first booted from), ConfigMap/Secret/serviceAccount/downwardAPI contents read through the API,
// cloud-init secrets, hostDisk paths checked against the node's root. The launcher (no API access) creates the rest:
// overlays, emptyDisks and ISOs (launcher/converter/prepare.ts). Pure planners first, one thin I/O shell last.
import { readFile, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, relative, sep } from "node:path";
import type { ConfigMap, Secret, VirtualMachineInstance, Volume } from "../api/index.js";
import { volumesOnNode } from "../api/index.js";
import {
  type Credentials,
  formatReference,
  type PullPolicy,
  parseDockerConfigJson,
  parseReference,
} from "../images/index.js";
import type { NodePrepared } from "../launcher/index.js";
import { invalid, isStatusError, type StatusCause, statusError } from "../lib/errors.js";
import { isLocalVolume, volumeModeOf, volumeNode, volumeSize } from "../storage/index.js";
import { volumePaths as localVolumePaths, loopDevicesOf } from "../storage/node/index.js";
import {
  type ApiClient,
  type DataVolume,
  type ImagePuller,
  type PersistentVolume,
  type PersistentVolumeClaim,
  type ResourceRef,
  refs,
} from "./ports.js";

const { configMaps, secrets } = refs;
const VMI = { group: "kubevirt.io", kind: "VirtualMachineInstance" };

/** What the node prepared for a VMI: the launcher's payload (without taps) and the digest each containerDisk is at. */
export interface NodePreparation {
  prepared: Omit<NodePrepared, "taps">;
  /** containerDisk volume name → manifest digest (recorded in status.volumeStatus[].containerDiskVolume.digest). */
  digests: Record<string, string>;
}

export interface NodePrepareDeps {
  api: Pick<ApiClient, "get">;
  puller: ImagePuller;
  /** hostDisk is allowed only below this directory (tsvirt handler --host-disk-root); absent: hostDisk refused. */
  hostDiskRoot?: string | undefined;
  node?: string;
  /** The node's data dir: tsvirt-local volumes live below <data dir>/volumes (absent: claims are refused). */
  dataDir?: string;
  /** A Block volume's loop device (storage/node's loopDevicesOf; tests fake it). */
  loopDeviceOf?: (image: string) => Promise<string | undefined>;
  /** QEMU's user: a live migration's new disk must be owned by it before the stream starts (absent: not checked). */
  volumeOwner?: { uid: number; gid: number };
  /** A volume's size (volumeBytes; tests fake a loop device's). */
  volumeBytes?: (path: string, block: boolean) => Promise<number>;
}

// ---- pure ------------------------------------------------------------------------------------------------------

/** The digest this VMI's containerDisk volume booted from, as its status records it. */
export function recordedDigest(vmi: VirtualMachineInstance, volume: string): string | undefined {
  return vmi.status?.volumeStatus?.find((s) => s.name === volume)?.containerDiskVolume?.digest;
}

/** The reference to pull: the volume's image, pinned to the recorded digest when the VMI already booted from one. */
export function imageToPull(image: string, digest: string | undefined): string {
  if (!digest) return image;
  try {
    return formatReference({ ...parseReference(image), digest });
  } catch {
    return image; // a bad reference fails in the puller with ErrImagePull naming it
  }
}

/** KubeVirt's volumeStatus with each containerDisk's digest recorded (other entries and fields kept). Pure. */
export function withContainerDiskDigests(
  vmi: VirtualMachineInstance,
  digests: Readonly<Record<string, string>>,
): NonNullable<VirtualMachineInstance["status"]>["volumeStatus"] {
  const old = vmi.status?.volumeStatus ?? [];
  const out = old.map((s) => {
    const d = digests[s.name];
    return d && s.containerDiskVolume?.digest !== d
      ? { ...s, containerDiskVolume: { ...s.containerDiskVolume, digest: d } }
      : s;
  });
  for (const [name, digest] of Object.entries(digests)) {
    if (out.some((s) => s.name === name)) continue;
    out.push({ name, target: diskTarget(vmi, name), containerDiskVolume: { digest } });
  }
  return out;
}

/** The guest device name of a volume's disk as the converter assigns it (vda, vdb, … / sda, …), or "". */
function diskTarget(vmi: VirtualMachineInstance, volume: string): string {
  const count = { vd: 0, sd: 0 };
  // (read defensively: the VMI comes from the cache as the API stored it)
  for (const d of vmi.spec.domain?.devices?.disks ?? []) {
    const bus = d.cdrom?.bus ?? d.lun?.bus ?? d.disk?.bus ?? (d.cdrom ? "sata" : d.lun ? "scsi" : "virtio");
    const prefix = bus === "virtio" ? "vd" : "sd";
    const n = count[prefix]++;
    if (d.name === volume) return n < 26 ? `${prefix}${String.fromCharCode(97 + n)}` : "";
  }
  return "";
}

/** Files of a ConfigMap (data as UTF-8, binaryData as is), base64 by relative path. */
export function configMapFiles(cm: ConfigMap): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(cm.data ?? {})) out[k] = Buffer.from(v, "utf8").toString("base64");
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) out[k] = v;
  return out;
}

/** Files of a Secret (data is base64 already; stringData is only an input field, never stored). */
export function secretFiles(s: Secret): Record<string, string> {
  return { ...(s.data ?? {}) };
}

/** The value of a Secret key, decoded (cloud-init: userdata/userData, networkdata/networkData). */
function secretValue(s: Secret, ...keys: string[]): string | undefined {
  for (const k of keys) {
    const v = s.data?.[k];
    if (v !== undefined) return Buffer.from(v, "base64").toString("utf8");
  }
  return undefined;
}

/** Kubernetes' downward API file format for a map: `key="value"` lines, sorted, values escaped as Go's %q. */
function formatMap(m: Readonly<Record<string, string>> | undefined): string {
  return Object.keys(m ?? {})
    .sort()
    .map((k) => `${k}=${JSON.stringify(m?.[k] ?? "")}\n`)
    .join("");
}

/** downwardAPI volume files from the VMI's metadata (KubeVirt supports fieldRef on metadata.*). Pure. */
export function downwardApiFiles(vmi: VirtualMachineInstance, volume: Volume, field: string): Record<string, string> {
  const out: Record<string, string> = {};
  const causes: StatusCause[] = [];
  (volume.downwardAPI?.fields ?? []).forEach((f, i) => {
    const path = f.fieldRef?.fieldPath;
    const md = vmi.metadata ?? {};
    let text: string | undefined;
    if (path === "metadata.name") text = md.name ?? "";
    else if (path === "metadata.namespace") text = md.namespace ?? "";
    else if (path === "metadata.uid") text = md.uid ?? "";
    else if (path === "metadata.labels") text = formatMap(md.labels);
    else if (path === "metadata.annotations") text = formatMap(md.annotations);
    else {
      const m = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(path ?? "");
      if (m) text = (m[1] === "labels" ? md.labels : md.annotations)?.[m[2] ?? ""] ?? "";
    }
    if (text === undefined) {
      causes.push({
        type: "FieldValueNotSupported",
        field: `${field}.fields[${i}]`,
        message: `only fieldRef on metadata.name, namespace, uid, labels and annotations is supported`,
      });
      return;
    }
    out[f.path] = Buffer.from(text, "utf8").toString("base64");
  });
  if (causes.length) throw invalid(VMI, vmi.metadata?.name ?? "", causes);
  return out;
}

/** Whether `p` (already resolved) is `root` itself or below it. */
export function isBelow(root: string, p: string): boolean {
  const r = relative(root, p);
  return r !== "" && r !== ".." && !r.startsWith(`..${sep}`) && !r.startsWith("/");
}

// ---- I/O -------------------------------------------------------------------------------------------------------

async function getOrUndefined<T extends ConfigMap | Secret | PersistentVolumeClaim | PersistentVolume>(
  api: NodePrepareDeps["api"],
  ref: ResourceRef,
  ns: string | undefined,
  name: string,
): Promise<T | undefined> {
  try {
    return await api.get<T & { metadata: { name?: string } }>(ref, ns, name);
  } catch (e) {
    if (isStatusError(e) && e.code === 404) return undefined;
    throw e;
  }
}

/** The path a hostDisk may use on this node: resolved (symlinks followed) and below the resolved root. */
export async function checkHostDisk(
  path: string,
  type: string,
  root: string | undefined,
  field: string,
  vmiName: string,
): Promise<string> {
  const refuse = (message: string): never => {
    throw invalid(VMI, vmiName, [{ type: "FieldValueInvalid", field, message }]);
  };
  if (!root) return refuse("hostDisk is disabled on this node (tsvirt handler --host-disk-root DIR enables it)");
  if (!path.startsWith("/") || path.split("/").includes("..")) return refuse(`hostDisk path "${path}" is not allowed`);
  const realRoot = await realpath(root).catch(() => refuse(`the node's hostDisk root ${root} does not exist`));
  // The deepest existing ancestor decides (DiskOrCreate may name a file, even directories, not there yet).
  let existing = path;
  let rest = "";
  for (;;) {
    const r = await realpath(existing).catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : e));
    if (typeof r === "string") {
      const resolved = rest ? join(r, rest) : r;
      if (!isBelow(realRoot, resolved))
        return refuse(`hostDisk path "${path}" is outside the node's hostDisk root ${root}`);
      if (rest && type !== "DiskOrCreate") return refuse(`hostDisk path "${path}" does not exist`);
      return resolved;
    }
    if (r instanceof Error) return refuse(`hostDisk path "${path}": ${r.message}`);
    if (existing === "/") return refuse(`hostDisk path "${path}" does not exist`);
    rest = rest ? join(basename(existing), rest) : basename(existing);
    existing = dirname(existing);
  }
}

/** Registry credentials from the volume's imagePullSecret (a kubernetes.io/dockerconfigjson Secret). */
async function pullCredentials(
  deps: NodePrepareDeps,
  vmi: VirtualMachineInstance,
  secretName: string,
  field: string,
): Promise<Credentials> {
  const ns = vmi.metadata?.namespace ?? "default";
  const s = await getOrUndefined<Secret>(deps.api, secrets, ns, secretName);
  const refuse = (message: string): never => {
    throw invalid(VMI, vmi.metadata?.name ?? "", [{ type: "FieldValueInvalid", field, message }]);
  };
  if (!s) return refuse(`imagePullSecret "${secretName}" not found in namespace ${ns}`);
  const raw = s.data?.[".dockerconfigjson"];
  if (s.type !== "kubernetes.io/dockerconfigjson" || raw === undefined)
    return refuse(`imagePullSecret "${secretName}" is not of type kubernetes.io/dockerconfigjson`);
  try {
    return parseDockerConfigJson(Buffer.from(raw, "base64").toString("utf8"));
  } catch (e) {
    return refuse(`imagePullSecret "${secretName}": ${(e as Error).message}`);
  }
}

/**
 * A claim's volume on this node (kubelet's volume manager): the claim Bound, its PV a tsvirt-local volume pinned to
 * this node, and its data there (the volume sync makes it). Anything else is a 422 naming the field; the VMI sync
 * retries it (level-triggered), so a claim still being bound or provisioned just delays the start.
 */
export async function claimVolume(
  deps: NodePrepareDeps,
  ns: string,
  claimName: string,
  field: string,
  vmiName: string,
  kind: { group: string; kind: string } = VMI,
): Promise<{ path: string; block: boolean; image: string; bytes: number }> {
  const refuse = (message: string): never => {
    throw invalid(kind, vmiName, [{ type: "FieldValueInvalid", field, message }]);
  };
  const pvc = await getOrUndefined<PersistentVolumeClaim>(deps.api, refs.pvcs, ns, claimName);
  if (!pvc) return refuse(`PersistentVolumeClaim "${claimName}" not found in namespace ${ns}`);
  const pvName = pvc.spec?.volumeName;
  if (pvc.status?.phase !== "Bound" || !pvName) {
    return refuse(`PersistentVolumeClaim "${claimName}" is not Bound yet (phase ${pvc.status?.phase ?? "Pending"})`);
  }
  const pv = await getOrUndefined<PersistentVolume>(deps.api, refs.pvs, undefined, pvName);
  if (!pv) return refuse(`PersistentVolumeClaim "${claimName}": its PersistentVolume "${pvName}" does not exist`);
  if (!isLocalVolume(pv) || !deps.dataDir) {
    return refuse(`PersistentVolume "${pvName}" of claim "${claimName}" is not a tsvirt-local volume of this node`);
  }
  const on = volumeNode(pv);
  if (on !== deps.node) {
    return refuse(
      `PersistentVolume "${pvName}" of claim "${claimName}" is on node ${on ?? "(none)"}, not ${deps.node}`,
    );
  }
  const { image } = localVolumePaths(deps.dataDir, pvName);
  const st = await stat(image).catch(() => undefined);
  if (!st?.isFile()) return refuse(`the volume of claim "${claimName}" (${image}) is not made yet`);
  const bytes = volumeSize(pv);
  if (volumeModeOf(pv) !== "Block") return { path: image, block: false, image, bytes };
  const loopOf = deps.loopDeviceOf ?? (async (f: string) => (await loopDevicesOf(f))[0]);
  const device = await loopOf(image);
  if (!device) return refuse(`the block volume of claim "${claimName}" has no loop device yet`);
  return { path: device, block: true, image, bytes };
}

/**
 * A dataVolume volume is used only once its DataVolume is Succeeded (written, verified, then marked: storage
 * contract §2), so the guest never starts on a disk still being filled. Anything else is a 422 the VMI sync retries.
 */
export async function dataVolumeReady(
  deps: NodePrepareDeps,
  ns: string,
  dvName: string,
  field: string,
  vmiName: string,
) {
  const dv = await getOrUndefined<DataVolume>(deps.api, refs.datavolumes, ns, dvName);
  const refuse = (message: string): never => {
    throw invalid(VMI, vmiName, [{ type: "FieldValueInvalid", field, message }]);
  };
  if (!dv) return refuse(`DataVolume "${dvName}" not found in namespace ${ns}`);
  const phase = dv.status?.phase || "Pending";
  if (phase === "Succeeded") return;
  const progress = dv.status?.progress && dv.status.progress !== "N/A" ? `, progress ${dv.status.progress}` : "";
  refuse(`DataVolume "${dvName}" is not ready yet (phase ${phase}${progress}): the guest starts once it is Succeeded`);
}

/** A volume's size on the node: a file's length, or a block device's (sysfs counts 512-byte sectors). */
export async function volumeBytes(path: string, block: boolean): Promise<number> {
  if (!block) return (await stat(path)).size;
  return Number((await readFile(`/sys/block/${basename(path)}/size`, "utf8")).trim()) * 512;
}

/**
 * A live migration's new disk, before the stream starts: the block copy writes into it, so it must be there at its
 * full size and owned by QEMU's user (the private libvirtd cannot create or chown it). A 422 the agent retries.
 */
async function movedDiskReady(
  deps: NodePrepareDeps,
  c: { path: string; block: boolean; image: string; bytes: number },
  claimName: string,
  field: string,
  vmiName: string,
): Promise<void> {
  const refuse = (message: string): never => {
    throw invalid(VMI, vmiName, [{ type: "FieldValueInvalid", field, message }]);
  };
  // a Block claim: the loop device QEMU opens, at the full size (the mirror writes up to it) and QEMU's
  for (const [what, path, block] of [
    ["the new disk", c.image, false],
    ...(c.block ? [["the loop device " + c.path, c.path, true] as const] : []),
  ] as const) {
    const st = await stat(path);
    const size = await (deps.volumeBytes ?? volumeBytes)(path, block);
    if (size < c.bytes) refuse(`${what} of claim "${claimName}" has ${size} of ${c.bytes} bytes yet`);
    const o = deps.volumeOwner;
    if (o && (st.uid !== o.uid || st.gid !== o.gid))
      refuse(`${what} of claim "${claimName}" is owned by ${st.uid}:${st.gid}, not QEMU's ${o.uid}:${o.gid}`);
  }
}

const POLICIES = new Set<string>(["Always", "IfNotPresent", "Never"]);

/**
 * Everything the node supplies for the VMI's volumes. Throws ErrImagePull (from the puller) for images, and a 422
 * naming the volume's field for anything else the node cannot supply (missing ConfigMap/Secret, hostDisk refused).
 */
export async function prepareNode(vmi: VirtualMachineInstance, deps: NodePrepareDeps): Promise<NodePreparation> {
  const uid = vmi.metadata?.uid ?? "";
  const ns = vmi.metadata?.namespace ?? "default";
  const name = vmi.metadata?.name ?? "";
  const baseImages: Record<string, string> = {};
  const digests: Record<string, string> = {};
  const volumePaths: Record<string, string> = {};
  const blockVolumes: string[] = [];
  const volumeFiles: Record<string, Record<string, string>> = {};
  const cloudInitSecrets: Record<string, { userData?: string; networkData?: string }> = {};
  const missing = (field: string, what: string): never => {
    throw invalid(VMI, name, [{ type: "FieldValueInvalid", field, message: `${what} not found in namespace ${ns}` }]);
  };
  // on a live migration's target, a moved node-local disk is its new claim (api volumesOnNode)
  for (const [i, v] of volumesOnNode(vmi, deps.node).entries()) {
    const field = `spec.volumes[${i}]`;
    if (v.containerDisk) {
      const cd = v.containerDisk;
      const opts: { pullPolicy?: PullPolicy; credentials?: Credentials } = {};
      if (cd.imagePullPolicy && POLICIES.has(cd.imagePullPolicy)) opts.pullPolicy = cd.imagePullPolicy as PullPolicy;
      if (cd.imagePullSecret) {
        opts.credentials = await pullCredentials(
          deps,
          vmi,
          cd.imagePullSecret,
          `${field}.containerDisk.imagePullSecret`,
        );
      }
      const pulled = await deps.puller
        .pull(imageToPull(cd.image, recordedDigest(vmi, v.name)), uid, opts)
        .catch((e: unknown) => {
          // Whatever the puller threw is an image pull failure (kubelet's back-off applies), not a spec error.
          throw isStatusError(e) && e.reason === "ErrImagePull"
            ? e
            : statusError(500, "ErrImagePull", `${cd.image}: ${(e as Error).message}`);
        });
      baseImages[v.name] = pulled.path;
      digests[v.name] = pulled.digest;
    } else if (v.configMap) {
      const cmName = v.configMap.name ?? "";
      const cm = await getOrUndefined<ConfigMap>(deps.api, configMaps, ns, cmName);
      if (!cm && !v.configMap.optional) missing(`${field}.configMap.name`, `ConfigMap "${cmName}"`);
      volumeFiles[v.name] = cm ? configMapFiles(cm) : {};
    } else if (v.secret) {
      const sName = v.secret.secretName ?? "";
      const s = await getOrUndefined<Secret>(deps.api, secrets, ns, sName);
      if (!s && !v.secret.optional) missing(`${field}.secret.secretName`, `Secret "${sName}"`);
      volumeFiles[v.name] = s ? secretFiles(s) : {};
    } else if (v.sysprep) {
      const ref = v.sysprep.configMap ?? v.sysprep.secret;
      const obj = v.sysprep.configMap
        ? await getOrUndefined<ConfigMap>(deps.api, configMaps, ns, ref?.name ?? "")
        : await getOrUndefined<Secret>(deps.api, secrets, ns, ref?.name ?? "");
      if (!obj) missing(`${field}.sysprep`, `"${ref?.name ?? ""}"`);
      volumeFiles[v.name] = v.sysprep.configMap ? configMapFiles(obj as ConfigMap) : secretFiles(obj as Secret);
    } else if (v.serviceAccount) {
      // KubeVirt's serviceAccount disk holds the account's namespace, token and ca.crt; this cluster issues no
      // service-account tokens yet, so the disk carries the namespace only.
      volumeFiles[v.name] = { namespace: Buffer.from(ns).toString("base64") };
    } else if (v.downwardAPI) {
      volumeFiles[v.name] = downwardApiFiles(vmi, v, `${field}.downwardAPI`);
    } else if (v.cloudInitNoCloud || v.cloudInitConfigDrive) {
      const src = v.cloudInitNoCloud ?? v.cloudInitConfigDrive;
      const kind = v.cloudInitNoCloud ? "cloudInitNoCloud" : "cloudInitConfigDrive";
      const out: { userData?: string; networkData?: string } = {};
      if (src?.secretRef) {
        const s = await getOrUndefined<Secret>(deps.api, secrets, ns, src.secretRef.name ?? "");
        if (!s) missing(`${field}.${kind}.secretRef`, `Secret "${src.secretRef.name ?? ""}"`);
        const ud = s && secretValue(s, "userdata", "userData");
        if (ud !== undefined) out.userData = ud;
        const nd = s && secretValue(s, "networkdata", "networkData");
        if (nd !== undefined && !src.networkDataSecretRef) out.networkData = nd;
      }
      if (src?.networkDataSecretRef) {
        const s = await getOrUndefined<Secret>(deps.api, secrets, ns, src.networkDataSecretRef.name ?? "");
        if (!s) missing(`${field}.${kind}.networkDataSecretRef`, `Secret "${src.networkDataSecretRef.name ?? ""}"`);
        const nd = s && secretValue(s, "networkdata", "networkData");
        if (nd !== undefined) out.networkData = nd;
      }
      if (src?.secretRef || src?.networkDataSecretRef) cloudInitSecrets[v.name] = out;
    } else if (v.persistentVolumeClaim || v.dataVolume) {
      // A dataVolume's claim has the DataVolume's name (CDI's convention).
      const claim = v.persistentVolumeClaim?.claimName ?? v.dataVolume?.name ?? "";
      const claimField = v.persistentVolumeClaim
        ? `${field}.persistentVolumeClaim.claimName`
        : `${field}.dataVolume.name`;
      if (v.dataVolume) await dataVolumeReady(deps, ns, claim, claimField, name);
      const c = await claimVolume(deps, ns, claim, claimField, name);
      if (v !== vmi.spec.volumes?.[i]) await movedDiskReady(deps, c, claim, claimField, name);
      volumePaths[v.name] = c.path;
      if (c.block) blockVolumes.push(v.name);
    } else if (v.hostDisk) {
      volumePaths[v.name] = await checkHostDisk(
        v.hostDisk.path,
        v.hostDisk.type,
        deps.hostDiskRoot,
        `${field}.hostDisk.path`,
        name,
      );
    }
  }
  const prepared: NodePreparation["prepared"] = { baseImages };
  if (Object.keys(volumePaths).length) prepared.volumePaths = volumePaths;
  if (blockVolumes.length) prepared.blockVolumes = blockVolumes;
  if (Object.keys(volumeFiles).length) prepared.volumeFiles = volumeFiles;
  if (Object.keys(cloudInitSecrets).length) prepared.cloudInitSecrets = cloudInitSecrets;
  return { prepared, digests };
}
