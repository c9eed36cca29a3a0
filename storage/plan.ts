// Pure volume-binding logic (k8s pkg/controller/volume/persistentvolume and the scheduler's VolumeBinding plugin, cut
// to what tsvirt needs) and the tsvirt-local provisioner's thick accounting. Nothing here does I/O: the controller,
// the scheduler and the tests feed it objects and act on what it returns.

import { formatBytes, parseQuantity, StorageAnnotations } from "../api/index.js";
import type {
  PersistentVolumeClaim as Claim,
  StorageClass as Class,
  CSIStorageCapacity,
  Node,
  PersistentVolume as Volume,
} from "../client/index.js";
import { nodeSelectorTermMatches } from "../lib/selectors.js";

/** The node-local class and its provisioner (a PV's `pv.kubernetes.io/provisioned-by`). */
export const LOCAL_CLASS = "tsvirt-local";
export const LOCAL_PROVISIONER = "tsvirt.io/local";
/** On every local PV: the node agent removes it once the volume's data is gone (reclaim policy Delete). */
export const LOCAL_VOLUME_FINALIZER = "tsvirt.io/local-volume";
/**
 * A clone DV's claim → its PV: the volume is made as a copy of a same-node source (as a CSI provisioner gets the
 * claim's content source in CreateVolume). Written by the DV controller; the node checks it against the DV.
 */
export const CLONE_REQUEST_ANNOTATION = "tsvirt.io/clone-request";
/** Node status.capacity/allocatable resource: the bytes the node offers to local volumes (`--node-storage`). */
export const NODE_STORAGE_RESOURCE = "tsvirt.io/local-storage";
/** Where the CSIStorageCapacity objects live (tsvirt's own namespace). */
export const CAPACITY_NAMESPACE = "kubevirt";
export const HOSTNAME_LABEL = "kubernetes.io/hostname";

/** The default class tsvirt creates when absent. */
export function localStorageClass(): Class {
  return {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: LOCAL_CLASS, annotations: { [StorageAnnotations.isDefaultClass]: "true" } },
    provisioner: LOCAL_PROVISIONER,
    reclaimPolicy: "Delete",
    volumeBindingMode: "WaitForFirstConsumer",
    allowVolumeExpansion: true,
  };
}

export function bytesOf(q: string | number | undefined): number {
  const v = q === undefined ? undefined : parseQuantity(q);
  return v === undefined || Number.isNaN(v) ? 0 : Math.ceil(v);
}

/** The claim's requested size in bytes. */
export function claimSize(pvc: Claim): number {
  return bytesOf(pvc.spec?.resources?.requests?.storage);
}

export function volumeSize(pv: Volume): number {
  return bytesOf(pv.spec?.capacity?.storage);
}

export function volumeModeOf(o: { spec?: { volumeMode?: string } }): string {
  return o.spec?.volumeMode ?? "Filesystem";
}

/** The claim's class: its storageClassName, else (unset, not "") the default class, as the admission plugin does. */
export function classOf<C extends Class>(pvc: Claim, classes: readonly C[]): C | undefined {
  const name = pvc.spec?.storageClassName;
  if (name !== undefined) return classes.find((c) => c.metadata.name === name);
  return classes.find((c) => c.metadata.annotations?.[StorageAnnotations.isDefaultClass] === "true");
}

export function isWaitForFirstConsumer(cls: Class | undefined): boolean {
  return cls?.volumeBindingMode === "WaitForFirstConsumer";
}

/** The bytes a node offers to local volumes, from status.allocatable (else capacity); undefined: it offers none. */
export function nodeStorageCapacity(node: Node): number | undefined {
  const q = node.status?.allocatable?.[NODE_STORAGE_RESOURCE] ?? node.status?.capacity?.[NODE_STORAGE_RESOURCE];
  if (q === undefined) return undefined;
  const v = parseQuantity(q);
  return v === undefined ? undefined : Math.floor(v);
}

/** The node a local PV is pinned to (its node affinity's kubernetes.io/hostname In [node]). */
export function volumeNode(pv: Volume): string | undefined {
  for (const t of pv.spec?.nodeAffinity?.required?.nodeSelectorTerms ?? []) {
    for (const e of t.matchExpressions ?? []) {
      if (e.key === HOSTNAME_LABEL && e.operator === "In" && e.values?.length === 1) return e.values[0];
    }
  }
  return undefined;
}

/** Whether the PV's node affinity admits the node (no affinity: every node). */
export function volumeFitsNode(pv: Volume, node: Node): boolean {
  const terms = pv.spec?.nodeAffinity?.required?.nodeSelectorTerms;
  if (!terms || terms.length === 0) return true;
  const labels = { [HOSTNAME_LABEL]: node.metadata.name ?? "", ...node.metadata.labels };
  return terms.some((t) => nodeSelectorTermMatches(t, labels, node.metadata.name ?? ""));
}

export function isLocalVolume(pv: Volume): boolean {
  return pv.metadata.annotations?.[StorageAnnotations.provisionedBy] === LOCAL_PROVISIONER;
}

/** What a node's local space is spent on: every local PV (any phase, until the node deleted its data), plus claims
 * headed there (selected-node set) that have no PV yet, plus `extra` (the scheduler's assumed claims). Thick. */
export function usedByNode(
  pvs: readonly Volume[],
  claims: readonly Claim[],
  isLocal: (claim: Claim) => boolean,
  extra: readonly { node: string; claim: Claim }[] = [],
): Map<string, number> {
  const used = new Map<string, number>();
  const add = (node: string, n: number) => used.set(node, (used.get(node) ?? 0) + n);
  const covered = new Set<string>();
  for (const pv of pvs) {
    if (!isLocalVolume(pv)) continue;
    const node = volumeNode(pv);
    if (node) add(node, volumeSize(pv));
    if (pv.spec?.claimRef?.uid) covered.add(pv.spec.claimRef.uid);
  }
  const pending = [
    ...claims.map((claim) => ({ node: claim.metadata.annotations?.[StorageAnnotations.selectedNode], claim })),
    ...extra,
  ];
  for (const { node, claim } of pending) {
    const uid = claim.metadata.uid ?? "";
    if (!node || covered.has(uid) || claim.spec?.volumeName) continue;
    if (!isLocal(claim)) continue;
    covered.add(uid);
    add(node, claimSize(claim));
  }
  return used;
}

/** Free local bytes per node that offers storage. */
export function freeByNode(nodes: readonly Node[], used: ReadonlyMap<string, number>): Map<string, number> {
  const free = new Map<string, number>();
  for (const n of nodes) {
    const cap = nodeStorageCapacity(n);
    if (cap !== undefined) free.set(n.metadata.name ?? "", Math.max(0, cap - (used.get(n.metadata.name ?? "") ?? 0)));
  }
  return free;
}

export function capacityName(node: string): string {
  return `${LOCAL_CLASS}-${node}`;
}

/** The CSIStorageCapacity the provisioner publishes for each node that offers local storage. */
export function capacityObjects(free: ReadonlyMap<string, number>): CSIStorageCapacity[] {
  return [...free.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([node, bytes]) => ({
      apiVersion: "storage.k8s.io/v1",
      kind: "CSIStorageCapacity",
      metadata: {
        name: capacityName(node),
        namespace: CAPACITY_NAMESPACE,
        labels: { "app.kubernetes.io/managed-by": "tsvirt", [HOSTNAME_LABEL]: node },
      },
      storageClassName: LOCAL_CLASS,
      nodeTopology: { matchLabels: { [HOSTNAME_LABEL]: node } },
      capacity: formatBytes(bytes),
      maximumVolumeSize: formatBytes(bytes),
    }));
}

/** Why the PV cannot hold the claim (undefined: it can). Node: the claim's selected node, when known. */
export function volumeMismatch(pvc: Claim, pv: Volume, node?: Node, className?: string): string | undefined {
  if (pv.metadata.deletionTimestamp) return "volume is being deleted";
  if ((pv.spec?.storageClassName ?? "") !== (className ?? pvc.spec?.storageClassName ?? ""))
    return "storage class differs";
  if (volumeModeOf(pv) !== volumeModeOf(pvc)) return "volume mode differs";
  const modes = pv.spec?.accessModes ?? [];
  if (!(pvc.spec?.accessModes ?? []).every((m) => modes.includes(m))) return "access modes differ";
  if (volumeSize(pv) < claimSize(pvc)) return "too small";
  if (node && !volumeFitsNode(pv, node)) return "node affinity conflict";
  return undefined;
}

/** An unbound PV pre-bound to the claim (claimRef by name, uid unset or the claim's). */
export function preboundFor(pvc: Claim, pvs: readonly Volume[]): Volume | undefined {
  return pvs.find((pv) => {
    const r = pv.spec?.claimRef;
    return (
      r?.name === pvc.metadata.name &&
      r?.namespace === pvc.metadata.namespace &&
      (r?.uid === undefined || r.uid === pvc.metadata.uid)
    );
  });
}

/** The smallest Available PV that holds the claim (the binder's findBestMatchForClaim). */
export function findMatchingVolume(
  pvc: Claim,
  pvs: readonly Volume[],
  node?: Node,
  className?: string,
): Volume | undefined {
  let best: Volume | undefined;
  for (const pv of pvs) {
    if (pv.spec?.claimRef) continue;
    if (pv.status?.phase !== undefined && pv.status.phase !== "Available") continue;
    if (volumeMismatch(pvc, pv, node, className)) continue;
    if (!best || volumeSize(pv) < volumeSize(best)) best = pv;
  }
  return best;
}

// ---- the binder ----

export type ClaimAction =
  /** PV's claimRef → the claim (and PV phase Bound), then the claim's volumeName and phase. */
  | { kind: "bind"; volume: string }
  /** The claim's status to Bound with the PV's capacity and access modes. */
  | { kind: "markBound"; volume: string }
  | { kind: "provision" }
  | { kind: "lost"; message: string }
  | { kind: "pending"; reason: string; message: string; eventType: "Normal" | "Warning" }
  /** Nothing to change; a Warning event on the claim. */
  | { kind: "warn"; reason: string; message: string }
  /** Grow the PV to `bytes` if its node has room (thick), marking the claim Resizing. */
  | { kind: "expand"; volume: string; bytes: number }
  /** The node grew the volume: the claim's status.capacity to the PV's, its resize conditions cleared. */
  | { kind: "expanded"; volume: string }
  /** The PV is grown, its node has not grown the data yet: the claim shows Resizing meanwhile. */
  | { kind: "resizing"; volume: string }
  | { kind: "none" };

/**
 * One claim's next binding step (syncClaim). `pvs` are all PVs; `node` is the selected node, when the claim has one.
 */
export function planClaim(
  pvc: Claim,
  cls: Class | undefined,
  pvs: readonly Volume[],
  node: Node | undefined,
): ClaimAction {
  if (pvc.metadata.deletionTimestamp) return { kind: "none" };
  const volumeName = pvc.spec?.volumeName;
  if (volumeName) {
    const pv = pvs.find((v) => v.metadata.name === volumeName);
    if (!pv) {
      if (pvc.status?.phase === "Bound" || pvc.status?.phase === "Lost")
        return pvc.status.phase === "Lost"
          ? { kind: "none" }
          : { kind: "lost", message: "Bound claim has lost its PersistentVolume. Data on the volume is lost!" };
      return { kind: "pending", reason: "", message: "", eventType: "Normal" };
    }
    const ref = pv.spec?.claimRef;
    if (!ref) return { kind: "bind", volume: volumeName };
    if (ref.uid !== pvc.metadata.uid || ref.name !== pvc.metadata.name || ref.namespace !== pvc.metadata.namespace) {
      if (pvc.status?.phase === "Bound") {
        return { kind: "lost", message: "Two claims are bound to the same volume, this one is bound incorrectly" };
      }
      return {
        kind: "pending",
        reason: "FailedBinding",
        message: `volume "${volumeName}" already bound to a different claim.`,
        eventType: "Warning",
      };
    }
    if (pvc.status?.phase !== "Bound" || pv.status?.phase !== "Bound") return { kind: "markBound", volume: volumeName };
    return planExpansion(pvc, pv);
  }
  // An unset class means the default class (kube's admission fills it in; here the binder reads it so).
  const className = pvc.spec?.storageClassName ?? cls?.metadata.name;
  const prebound = preboundFor(pvc, pvs);
  if (prebound && !volumeMismatch(pvc, prebound, undefined, className)) {
    return { kind: "bind", volume: prebound.metadata.name ?? "" };
  }
  const selected = pvc.metadata.annotations?.[StorageAnnotations.selectedNode];
  if (isWaitForFirstConsumer(cls) && !selected) {
    return {
      kind: "pending",
      reason: "WaitForFirstConsumer",
      message: "waiting for first consumer to be created before binding",
      eventType: "Normal",
    };
  }
  const match = findMatchingVolume(pvc, pvs, node, className);
  if (match) return { kind: "bind", volume: match.metadata.name ?? "" };
  if (cls?.provisioner === LOCAL_PROVISIONER) return { kind: "provision" };
  const message = cls
    ? `waiting for a volume to be created by "${cls.provisioner}" or manually by the system administrator`
    : pvc.spec?.storageClassName
      ? `storageclass.storage.k8s.io "${pvc.spec.storageClassName}" not found`
      : "no persistent volumes available for this claim and no storage class is set";
  return { kind: "pending", reason: cls ? "ExternalProvisioning" : "FailedBinding", message, eventType: "Warning" };
}

/** On a local PV: the bytes its node's data has (written by the node agent once disk.img / the loop device is that
 * large). The controller finishes an expansion only when this reaches the PV's capacity. */
export const NODE_VOLUME_BYTES_ANNOTATION = "tsvirt.io/node-volume-bytes";

/** The PVC condition an expansion in progress shows (external-resizer's). */
export const RESIZING_CONDITION = "Resizing";

/**
 * The expansion step of a bound claim (kube's external-resizer, with tsvirt-local as a volume whose "controller
 * expansion" is the node growing disk.img): requests above the PV's capacity grow the PV (room permitting, the
 * controller checks); a PV larger than the claim's status.capacity waits for its node, then the claim takes the new
 * size. No FileSystemResizePending step: the volume is a raw disk image (or a loop device over one) handed to the
 * guest whole; there is no host-side filesystem on it to grow, the guest owns whatever is inside.
 */
export function planExpansion(pvc: Claim, pv: Volume): ClaimAction {
  const name = pv.metadata.name ?? "";
  const want = claimSize(pvc);
  const have = volumeSize(pv);
  if (want > have) {
    if (!isLocalVolume(pv)) {
      return {
        kind: "warn",
        reason: "VolumeResizeFailed",
        message: `volume ${name} is not provisioned by ${LOCAL_PROVISIONER}; only its volumes can be expanded (it keeps ${formatBytes(have)})`,
      };
    }
    return { kind: "expand", volume: name, bytes: want };
  }
  const shown = bytesOf(pvc.status?.capacity?.storage);
  if (shown >= have || !isLocalVolume(pv)) return { kind: "none" };
  if (bytesOf(pv.metadata.annotations?.[NODE_VOLUME_BYTES_ANNOTATION]) >= have)
    return { kind: "expanded", volume: name };
  return { kind: "resizing", volume: name };
}

/** Whether the PV's node has room to grow it to `bytes` (thick: the difference must be free there); the event
 * message when it has not. `free`: each node's free bytes with this PV counted at its current size. */
export function expansionRoom(pv: Volume, bytes: number, free: ReadonlyMap<string, number>): string | undefined {
  const node = volumeNode(pv) ?? "";
  const more = bytes - volumeSize(pv);
  const avail = free.get(node) ?? 0;
  if (more <= avail) return undefined;
  return `expanding volume ${pv.metadata.name} from ${formatBytes(volumeSize(pv))} to ${formatBytes(bytes)} needs ${formatBytes(more)} more on node "${node}", which has ${formatBytes(avail)} of local storage free; the claim keeps its size`;
}

export type VolumeAction =
  | { kind: "phase"; phase: "Available" | "Bound" | "Released" | "Failed"; message?: string }
  /** Reclaim policy Delete of a local PV: delete the object; its finalizer waits for the node to free the data. */
  | { kind: "delete" }
  | { kind: "none" };

/** One PV's next step (syncVolume). `claim`: the object its claimRef names, if it exists. */
export function planVolume(pv: Volume, claim: Claim | undefined): VolumeAction {
  if (pv.metadata.deletionTimestamp) return { kind: "none" };
  const phase = pv.status?.phase;
  const want = (p: "Available" | "Bound" | "Released" | "Failed", message?: string): VolumeAction =>
    phase === p ? { kind: "none" } : { kind: "phase", phase: p, ...(message ? { message } : {}) };
  const ref = pv.spec?.claimRef;
  if (!ref) return want("Available");
  if (!ref.uid) return want("Available"); // pre-bound by the user: waits for its claim
  const sameClaim = claim && claim.metadata.uid === ref.uid;
  if (sameClaim) {
    if (claim.spec?.volumeName === pv.metadata.name || claim.spec?.volumeName === undefined) return want("Bound");
    return want("Released"); // the claim went to another volume: ours is free of it
  }
  // The claim is gone: released, then reclaimed per policy.
  if (phase === "Failed") return { kind: "none" };
  const policy = pv.spec?.persistentVolumeReclaimPolicy ?? "Retain";
  if (phase !== "Released") return { kind: "phase", phase: "Released" };
  if (policy === "Retain") return { kind: "none" };
  if (policy === "Delete" && isLocalVolume(pv)) return { kind: "delete" };
  return {
    kind: "phase",
    phase: "Failed",
    message:
      policy === "Delete"
        ? "error getting deleter volume plugin for volume: no deletable volume plugin matched"
        : "recycling is not supported",
  };
}

// ---- the provisioner ----

export type ProvisionResult = { ok: true; volume: Volume } | { ok: false; message: string };

/** A PV's claimRef to the claim (kube's reference.GetReference). */
export function claimRefOf(pvc: Claim): NonNullable<Volume["spec"]["claimRef"]> {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    namespace: pvc.metadata.namespace,
    name: pvc.metadata.name,
    uid: pvc.metadata.uid,
  };
}

export function localVolumeName(pvc: Claim): string {
  return `pvc-${pvc.metadata.uid}`;
}

/** Claims that go before `pvc` for a node's space: older ones (then by name), so of two claims that together
 * overfill a node the older is provisioned and the younger waits, never both. */
export function claimedBefore(pvc: Claim, claims: readonly Claim[]): Claim[] {
  const key = (c: Claim) => `${c.metadata.creationTimestamp ?? ""}\u0000${c.metadata.namespace}/${c.metadata.name}`;
  const mine = key(pvc);
  return claims.filter((c) => c.metadata.uid !== pvc.metadata.uid && key(c) < mine);
}

/**
 * The PV for a local claim on its selected node, pre-bound to the claim, or why the node cannot hold it.
 * `free`: each node's free bytes not counting this claim.
 */
export function planProvision(
  pvc: Claim,
  cls: Class,
  nodeName: string,
  node: Node | undefined,
  free: ReadonlyMap<string, number>,
): ProvisionResult {
  const size = claimSize(pvc);
  if (size <= 0) return { ok: false, message: "the claim requests no storage (spec.resources.requests.storage)" };
  if (!node) return { ok: false, message: `selected node "${nodeName}" does not exist` };
  const avail = free.get(nodeName);
  if (avail === undefined) {
    return { ok: false, message: `node "${nodeName}" offers no local storage (resource ${NODE_STORAGE_RESOURCE})` };
  }
  if (size > avail) {
    return {
      ok: false,
      message: `node "${nodeName}" has ${formatBytes(avail)} of local storage free, the claim requests ${formatBytes(size)}`,
    };
  }
  const modes = pvc.spec?.accessModes?.length ? pvc.spec.accessModes : ["ReadWriteOnce" as const];
  const cloneRequest = pvc.metadata.annotations?.[CLONE_REQUEST_ANNOTATION];
  if (modes.some((m) => m !== "ReadWriteOnce" && m !== "ReadWriteOncePod")) {
    return { ok: false, message: `a node-local volume supports ReadWriteOnce only, not ${modes.join(",")}` };
  }
  return {
    ok: true,
    volume: {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: {
        name: localVolumeName(pvc),
        annotations: {
          [StorageAnnotations.provisionedBy]: LOCAL_PROVISIONER,
          ...(cloneRequest ? { [CLONE_REQUEST_ANNOTATION]: cloneRequest } : {}),
        },
        finalizers: [LOCAL_VOLUME_FINALIZER],
      },
      spec: {
        capacity: { storage: pvc.spec?.resources?.requests?.storage ?? formatBytes(size) },
        accessModes: [...modes],
        volumeMode: volumeModeOf(pvc) === "Block" ? "Block" : "Filesystem",
        persistentVolumeReclaimPolicy: cls.reclaimPolicy ?? "Delete",
        storageClassName: cls.metadata.name ?? LOCAL_CLASS,
        claimRef: claimRefOf(pvc),
        nodeAffinity: {
          required: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: HOSTNAME_LABEL, operator: "In", values: [nodeName] }] }],
          },
        },
        local: { path: localVolumePath(localVolumeName(pvc)) },
      },
    },
  };
}

/** The PV's path as the node sees it, relative to the node's data dir (the node resolves it: storage/node). */
export function localVolumePath(pvName: string): string {
  return `volumes/${pvName}`;
}

/** Why no node can hold a claim of `size` bytes, naming each node's free space (for the claim's event). */
export function noRoomMessage(size: number, free: ReadonlyMap<string, number>): string {
  if (free.size === 0) return `no node offers local storage (node resource ${NODE_STORAGE_RESOURCE})`;
  const nodes = [...free.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([n, f]) => `${n} has ${formatBytes(f)} free`)
    .join(", ");
  return `requested ${formatBytes(size)} fits no node: ${nodes}`;
}

// ---- the scheduler's volume binding (kube-scheduler's VolumeBinding plugin) ----

export interface ClaimLookup {
  claim(namespace: string, name: string): Claim | undefined;
  volume(name: string): Volume | undefined;
  classOf(claim: Claim): Class | undefined;
  /** All PVs, for claims that may bind to an existing Available one. */
  volumes(): readonly Volume[];
}

/** A pod's claims: bound ones by their PV, unbound WaitForFirstConsumer ones to place with the pod. */
export interface PodVolumes {
  bound: Volume[];
  unbound: Claim[];
}

type PodLike = {
  metadata: { namespace?: string };
  spec: { volumes?: readonly { persistentVolumeClaim?: { claimName: string } }[] };
};

export function podClaimNames(pod: PodLike): string[] {
  const names = (pod.spec.volumes ?? []).flatMap((v) =>
    v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : [],
  );
  return [...new Set(names)];
}

/** The pod's claims, or why the pod cannot be scheduled at all (kube-scheduler's PreFilter messages). */
export function podVolumes(pod: PodLike, lookup: ClaimLookup): PodVolumes | { error: string } {
  const out: PodVolumes = { bound: [], unbound: [] };
  for (const name of podClaimNames(pod)) {
    const claim = lookup.claim(pod.metadata.namespace ?? "", name);
    if (!claim) return { error: `persistentvolumeclaim "${name}" not found` };
    if (claim.metadata.deletionTimestamp) return { error: `persistentvolumeclaim "${name}" is being deleted` };
    const volumeName = claim.spec?.volumeName;
    if (volumeName) {
      const pv = lookup.volume(volumeName);
      if (!pv) return { error: `persistentvolume "${volumeName}" not found` };
      out.bound.push(pv);
      continue;
    }
    if (!isWaitForFirstConsumer(lookup.classOf(claim))) {
      return { error: "pod has unbound immediate PersistentVolumeClaims" };
    }
    out.unbound.push(claim);
  }
  return out;
}

/**
 * Whether the pod's volumes allow the node: bound PVs' node affinity, and for each unbound claim an Available PV
 * there or room on the node for the local provisioner (thick: all of them together). `free`: the node's free bytes
 * with claims already headed there counted. Undefined: it fits.
 */
export function volumesFitNode(
  vols: PodVolumes,
  node: Node,
  lookup: ClaimLookup,
  free: ReadonlyMap<string, number>,
): string | undefined {
  if (vols.bound.some((pv) => !volumeFitsNode(pv, node))) return "node(s) had volume node affinity conflict";
  const name = node.metadata.name ?? "";
  const taken = new Set<string>();
  let need = 0;
  for (const claim of vols.unbound) {
    const selected = claim.metadata.annotations?.[StorageAnnotations.selectedNode];
    if (selected && selected !== name) return "node(s) had volume node affinity conflict";
    const cls = lookup.classOf(claim);
    const pv = findMatchingVolume(
      claim,
      lookup.volumes().filter((v) => !taken.has(v.metadata.name ?? "")),
      node,
      claim.spec?.storageClassName ?? cls?.metadata.name,
    );
    if (pv) {
      taken.add(pv.metadata.name ?? "");
      continue;
    }
    if (cls?.provisioner !== LOCAL_PROVISIONER) {
      return "node(s) didn't find available persistent volumes to bind";
    }
    if (!selected) need += claimSize(claim); // a claim selected here is in `free` already
  }
  if (need > 0 && need > (free.get(name) ?? -1)) return "node(s) did not have enough free storage";
  return undefined;
}
