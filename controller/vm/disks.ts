// A VM's disks, pure: the DataVolumes its dataVolumeTemplates make (KubeVirt's CreateDataVolumeManifest), whether an
// existing DataVolume of a template's name is the VM's own, may be adopted (retained from a deleted VM of this
// name) or is someone else's, whether the VM may start its VMI, the printable-status facts about its DataVolumes
// and claims (kubevirt-lifecycle-2.md §7), the node its local disks are pinned to, and the release of its disks
// when it is deleted (tsvirt keeps them; issue 11 item 5).

import { CREATED_BY_LABEL, controllerRef, RetainedDisks } from "../../api/index.js";
import type {
  Condition,
  DataVolume,
  KObject,
  Node,
  OwnerReference,
  PersistentVolume,
  PersistentVolumeClaim,
  VirtualMachine,
} from "../../client/index.js";
import { volumeNode } from "../../storage/index.js";
import {
  dataVolumeError,
  dataVolumeProvisioning,
  dataVolumeStartable,
  describeDataVolume,
} from "../lifecycle/index.js";

export const DV_API_VERSION = "cdi.kubevirt.io/v1beta1";

/** Where a reconcile reads a VM's DataVolumes, claims, volumes and nodes from (the controller's caches). */
export interface DiskLookup {
  dv(namespace: string, name: string): DataVolume | undefined;
  claim(namespace: string, name: string): PersistentVolumeClaim | undefined;
  volume(name: string): PersistentVolume | undefined;
  node(name: string): Node | undefined;
}

/** The DataVolume a template makes: named as written, labelled with the VM's uid, controlled by the VM. */
export function dataVolumeFromTemplate(
  vm: VirtualMachine,
  tpl: NonNullable<VirtualMachine["spec"]["dataVolumeTemplates"]>[number],
): DataVolume {
  const md = tpl.metadata ?? {};
  return {
    apiVersion: DV_API_VERSION,
    kind: "DataVolume",
    metadata: {
      name: md.name ?? "",
      namespace: vm.metadata.namespace ?? "",
      labels: { ...(md.labels ?? {}), [CREATED_BY_LABEL]: vm.metadata.uid ?? "" },
      ...(md.annotations ? { annotations: { ...md.annotations } } : {}),
      ownerReferences: [controllerRef(vm, "kubevirt.io/v1", "VirtualMachine")],
    },
    spec: structuredClone(tpl.spec),
  };
}

export type TemplateDisk =
  | { name: string; state: "missing" }
  | { name: string; state: "owned"; dv: DataVolume }
  | { name: string; state: "adoptable"; dv: DataVolume }
  | { name: string; state: "foreign"; dv: DataVolume; why: string };

function controllerOf(o: KObject): OwnerReference | undefined {
  return o.metadata.ownerReferences?.find((r) => r.controller);
}

/**
 * A template's DataVolume as this VM sees it. Adopted: only one that no one controls and that was retained from a
 * VM of this very name (recover / re-apply); anything else of that name is not taken over (KubeVirt adopts any
 * orphan; a retained disk of another VM must never become this one's).
 */
export function templateDisk(vm: VirtualMachine, name: string, dv: DataVolume | undefined): TemplateDisk {
  if (!dv) return { name, state: "missing" };
  const ctrl = controllerOf(dv);
  if (ctrl) {
    if (ctrl.uid === vm.metadata.uid) return { name, state: "owned", dv };
    return { name, state: "foreign", dv, why: `it is controlled by ${ctrl.kind} ${ctrl.name}` };
  }
  const from = dv.metadata.labels?.[RetainedDisks.fromVmLabel];
  if (from === vm.metadata.name && !dv.metadata.deletionTimestamp) return { name, state: "adoptable", dv };
  if (dv.metadata.deletionTimestamp) return { name, state: "foreign", dv, why: "it is being deleted" };
  const why = from
    ? `it was retained from VM ${from}, not from a VM named ${vm.metadata.name}`
    : `it was not retained from a VM named ${vm.metadata.name} (label it ${RetainedDisks.fromVmLabel}=${vm.metadata.name} to let this VM adopt it)`;
  return { name, state: "foreign", dv, why };
}

export function templateDisks(vm: VirtualMachine, lookup: Pick<DiskLookup, "dv">): TemplateDisk[] {
  const ns = vm.metadata.namespace ?? "";
  return (vm.spec.dataVolumeTemplates ?? []).flatMap((t) => {
    const name = t.metadata?.name;
    return name ? [templateDisk(vm, name, lookup.dv(ns, name))] : [];
  });
}

const RETENTION_KEYS = {
  labels: [RetainedDisks.fromVmLabel],
  annotations: [RetainedDisks.uidAnnotation, RetainedDisks.specAnnotation],
};

function without(m: Record<string, string> | undefined, keys: readonly string[]): Record<string, string> | undefined {
  if (!m) return undefined;
  const out = { ...m };
  for (const k of keys) delete out[k];
  return Object.keys(out).length > 0 ? out : undefined;
}

function setMeta<T extends KObject>(o: T, key: "labels" | "annotations", v: Record<string, string> | undefined): T {
  const next = { ...o, metadata: { ...o.metadata } };
  if (v) next.metadata[key] = v;
  else delete next.metadata[key];
  return next;
}

/** A retained DataVolume taken back: controlled by the VM again, the retention marks gone. Its data is kept. */
export function adoptedDataVolume(vm: VirtualMachine, dv: DataVolume): DataVolume {
  let next = setMeta(dv, "labels", {
    ...(without(dv.metadata.labels, RETENTION_KEYS.labels) ?? {}),
    [CREATED_BY_LABEL]: vm.metadata.uid ?? "",
  });
  next = setMeta(next, "annotations", without(dv.metadata.annotations, RETENTION_KEYS.annotations));
  next.metadata.ownerReferences = [
    ...(dv.metadata.ownerReferences ?? []),
    controllerRef(vm, "kubevirt.io/v1", "VirtualMachine"),
  ];
  return next;
}

/** The retention marks taken off (a recovered VM's claim); undefined when there are none. */
export function unretained<T extends KObject>(o: T): T | undefined {
  const has = (m: Record<string, string> | undefined, keys: readonly string[]) =>
    keys.some((k) => m?.[k] !== undefined);
  if (!has(o.metadata.labels, RETENTION_KEYS.labels) && !has(o.metadata.annotations, RETENTION_KEYS.annotations))
    return undefined;
  const next = setMeta(o, "labels", without(o.metadata.labels, RETENTION_KEYS.labels));
  return setMeta(next, "annotations", without(next.metadata.annotations, RETENTION_KEYS.annotations));
}

/** The retention marks for a disk of `vm`: its name (label), uid and last spec (annotations). */
export function retentionMarks(vm: VirtualMachine): {
  labels: Record<string, string>;
  annotations: Record<string, string>;
} {
  return {
    labels: { [RetainedDisks.fromVmLabel]: vm.metadata.name ?? "" },
    annotations: {
      [RetainedDisks.uidAnnotation]: vm.metadata.uid ?? "",
      [RetainedDisks.specAnnotation]: JSON.stringify(vm.spec),
    },
  };
}

/**
 * An object of a deleted VM as retained: the VM's ownerReference dropped, the marks added. Undefined when it is
 * already so (each step of the release is idempotent: a controller killed midway redoes only what is missing).
 */
export function retainedObject<T extends KObject>(vm: VirtualMachine, o: T): T | undefined {
  const marks = retentionMarks(vm);
  const refs = (o.metadata.ownerReferences ?? []).filter((r) => r.uid !== vm.metadata.uid);
  const done =
    refs.length === (o.metadata.ownerReferences ?? []).length &&
    Object.entries(marks.labels).every(([k, v]) => o.metadata.labels?.[k] === v) &&
    Object.entries(marks.annotations).every(([k, v]) => o.metadata.annotations?.[k] === v);
  if (done) return undefined;
  const next = { ...o, metadata: { ...o.metadata } };
  if (refs.length > 0) next.metadata.ownerReferences = refs;
  else delete next.metadata.ownerReferences;
  next.metadata.labels = { ...(o.metadata.labels ?? {}), ...marks.labels };
  next.metadata.annotations = { ...(o.metadata.annotations ?? {}), ...marks.annotations };
  return next;
}

/**
 * The DataVolumes a deleted VM releases: its template DataVolumes it still controls, or already released by this
 * VM (uid) in an earlier round that may not have reached the claim.
 */
export function disksToRetain(vm: VirtualMachine, lookup: Pick<DiskLookup, "dv">): DataVolume[] {
  return templateDisks(vm, lookup).flatMap((d) => {
    if (d.state === "owned") return [d.dv];
    if (d.state === "missing") return [];
    return d.dv.metadata.annotations?.[RetainedDisks.uidAnnotation] === vm.metadata.uid ? [d.dv] : [];
  });
}

/** The claim of a DataVolume: status.claimName, else the DataVolume's name (CDI's convention). */
export function claimNameOf(dv: DataVolume): string {
  return dv.status?.claimName || (dv.metadata.name ?? "");
}

export function isPoolMember(vm: VirtualMachine): OwnerReference | undefined {
  const c = controllerOf(vm);
  return c?.kind === "VirtualMachinePool" ? c : undefined;
}

/**
 * Whether a live VM keeps its disks when deleted: it has template disks, and neither it says "delete them" nor it is
 * a pool member whose pool does not say "keep them" (annotation "false" on the pool).
 */
export function retainsDisks(vm: VirtualMachine, pool: KObject | undefined): boolean {
  if ((vm.spec.dataVolumeTemplates ?? []).length === 0) return false;
  const own = vm.metadata.annotations?.[RetainedDisks.deleteWithVmAnnotation];
  if (own === "true") return false;
  if (own === "false") return true;
  if (isPoolMember(vm)) return pool?.metadata.annotations?.[RetainedDisks.deleteWithVmAnnotation] === "false";
  return true;
}

/**
 * Whether a deleted VM's disks are released now: its finalizer records the decision of its last live round; the
 * VM's own annotation (and the pool's, while the pool exists) may still turn it to "delete". An orphan delete
 * keeps everything as Kubernetes does (the API server already dropped the ownerReferences).
 */
export function releaseOnDelete(vm: VirtualMachine, pool: KObject | undefined): boolean {
  if (!(vm.metadata.finalizers ?? []).includes(RetainedDisks.finalizer)) return false;
  if ((vm.metadata.finalizers ?? []).includes("orphan")) return false;
  if (isPoolMember(vm) && !pool) return vm.metadata.annotations?.[RetainedDisks.deleteWithVmAnnotation] !== "true";
  return retainsDisks(vm, pool);
}

// ---- what the VM's disks say about its state ----

/** The DataVolume and claim names the VM's template volumes refer to (a dataVolume's claim has its name). */
export function volumeClaims(vm: VirtualMachine): { dataVolumes: string[]; claims: string[] } {
  const vols = vm.spec.template.spec?.volumes ?? [];
  const dataVolumes = vols.flatMap((v) => (v.dataVolume ? [v.dataVolume.name] : []));
  const claims = vols.flatMap((v) =>
    v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : v.dataVolume ? [v.dataVolume.name] : [],
  );
  return { dataVolumes: [...new Set(dataVolumes)], claims: [...new Set(claims)] };
}

export interface DiskFacts {
  /** Some referenced DataVolume failed (printableStatus DataVolumeError). */
  error?: string;
  /** Some referenced DataVolume is provisioning (printableStatus Provisioning). */
  provisioning?: string;
  /** Some referenced claim is not Bound (printableStatus WaitingForVolumeBinding when set to start). */
  unbound?: string;
  /** Not every referenced DataVolume is Succeeded (DataVolumesReady False). */
  notReady: string[];
  /** A template DataVolume of another owner (the VM does not start; DataVolumesReady False). */
  conflicts: string[];
  /** The VM may create its VMI as far as its DataVolumes go (KubeVirt's handleDataVolumes). */
  startable: boolean;
  /** The node holding its local disks when that node is not Ready, with the claims there. */
  nodeDown?: { node: string; claims: string[] };
}

export function diskFacts(vm: VirtualMachine, lookup: DiskLookup): DiskFacts {
  const ns = vm.metadata.namespace ?? "";
  const { dataVolumes, claims } = volumeClaims(vm);
  const tpl = templateDisks(vm, lookup);
  const facts: DiskFacts = { notReady: [], conflicts: [], startable: true };
  for (const d of tpl) {
    if (d.state === "foreign") facts.conflicts.push(`DataVolume ${d.name} exists and is not this VM's: ${d.why}`);
    if (d.state !== "owned" || !dataVolumeStartable(d.dv)) facts.startable = false;
  }
  for (const name of dataVolumes) {
    const dv = lookup.dv(ns, name);
    if (!dv) {
      facts.notReady.push(`${name} (not found)`);
      if (tpl.some((t) => t.name === name)) facts.provisioning ??= `DataVolume ${name} is being created`;
      continue;
    }
    if (dv.status?.phase !== "Succeeded") facts.notReady.push(describeDataVolume(dv));
    if (dataVolumeError(dv)) {
      const r = dv.status?.conditions?.find((c) => c.type === "Running");
      facts.error ??= `DataVolume ${describeDataVolume(dv)}: ${r?.message ?? r?.reason ?? "failed"}`;
    }
    if (dataVolumeProvisioning(dv)) facts.provisioning ??= `DataVolume ${describeDataVolume(dv)}`;
  }
  const byNode = new Map<string, string[]>();
  for (const name of claims) {
    const pvc = lookup.claim(ns, name);
    if (!pvc) continue;
    if (pvc.status?.phase !== "Bound") facts.unbound ??= `PersistentVolumeClaim ${name} is not Bound`;
    const pv = pvc.spec.volumeName ? lookup.volume(pvc.spec.volumeName) : undefined;
    const node = pv ? volumeNode(pv) : undefined;
    if (!node) continue;
    const ready = lookup.node(node)?.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
    if (!ready) byNode.set(node, [...(byNode.get(node) ?? []), name]);
  }
  const down = [...byNode.entries()][0];
  if (down) facts.nodeDown = { node: down[0], claims: down[1] };
  return facts;
}

/** The VM condition naming the node its disks are on while that node is down (none otherwise). */
export const DISKS_NODE_CONDITION = "DisksNodeReady";

export function diskConditions(facts: DiskFacts, hasDataVolumes: boolean): { set: Condition[]; clear: string[] } {
  const set: Condition[] = [];
  const clear: string[] = [];
  if (facts.conflicts.length > 0) {
    set.push({
      type: "DataVolumesReady",
      status: "False",
      reason: "DataVolumeConflict",
      message: `${facts.conflicts.join("; ")}: not adopted, the VM does not start`,
    });
  } else if (facts.notReady.length > 0) {
    set.push({
      type: "DataVolumesReady",
      status: "False",
      reason: "NotAllDVsReady",
      message: `Not all of the VMI's DVs are ready: ${facts.notReady.join(", ")}`,
    });
  } else if (hasDataVolumes) {
    set.push({
      type: "DataVolumesReady",
      status: "True",
      reason: "AllDVsReady",
      message: "All of the VMI's DVs are bound and ready",
    });
  } else {
    clear.push("DataVolumesReady");
  }
  if (facts.nodeDown) {
    const { node, claims } = facts.nodeDown;
    set.push({
      type: DISKS_NODE_CONDITION,
      status: "False",
      reason: "NodeNotReady",
      message: `the VM's disks (claims ${claims.join(", ")}) are on node ${node}, which is not Ready: the VM starts there when the node returns, never elsewhere`,
    });
  } else {
    clear.push(DISKS_NODE_CONDITION);
  }
  return { set, clear };
}
