// Cold migration of a stopped VM (issue 12 item 6, migration contract §6), pure: from the VMIM, its VM (and any VMI),
// the nodes, their free local space and the VM's DataVolumes/claims/volumes, the ONE next step. Every decision rests on
// API state, so a controller killed anywhere resumes (or rolls back) from what it finds:
//
//   Pending     finalizer on; the VM's node-local claims found (all on one node) → Scheduling (sourceNode)
//   Scheduling  target node chosen (not the source, Ready, schedulable, the VM's and addedNodeSelector's constraints,
//               room for the disks) → status targetNode; then the VM is locked: VM condition ColdMigration=True naming
//               the VMIM (a start waits) and status.volumeUpdateState…migratedVolumes old→new (KubeVirt's shape,
//               written BEFORE anything is made, as KubeVirt records migratedVolumes before it switches) → Running
//   Running     one clone DataVolume per claim (source.pvc, `<claim>-m<hash of the VMIM uid>`, pinned to the target,
//               bind-immediate, controlled by the VM: retained-disk rules apply) → all Succeeded (the cross-node clone
//               verified the bytes by sha256) → the swap: ONE VM update naming the new claims in volumes and
//               dataVolumeTemplates (the VM always names complete disks: the old ones before it, the new after)
//   swapped     the new claims verified on the target → VM condition False (a held start goes on) → Succeeded
//   Succeeded   old claims released once the VM booted on the target (VMI Running there) when it is started, at once
//               when it stays stopped → finalizer off
//   cancel      VMIM deleted before the swap, or the VM started/deleted, or a clone failed: new DataVolumes deleted,
//               the VM unlocked (migratedVolumes cleared), Failed (abortStatus Succeeded on a cancel) → finalizer off.
//               After the swap a delete only waits for the release.

import {
  ColdMigration,
  Migration,
  movedClaimName,
  nowRfc3339,
  SCHEDULABLE_LABEL,
  StorageAnnotations,
  shortHash,
} from "../../api/index.js";
import type {
  Condition,
  DataVolume,
  MigrationState,
  Node,
  PersistentVolume,
  PersistentVolumeClaim,
  Pod,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineInstanceMigration,
} from "../../client/index.js";
import { chooseNode, DvAnnotations } from "../../storage/datavolume/index.js";
import { isLocalVolume, LOCAL_CLASS, volumeNode, volumeSize } from "../../storage/index.js";
import { getCondition } from "../conditions.js";
import { runStrategyOf } from "../lifecycle/index.js";
import { nodeAffinity, nodeReady, nodeUnschedulable, taintToleration } from "../scheduler/predicates.js";
import { claimNameOf, dataVolumeFromTemplate } from "../vm/disks.js";
import { setToStart } from "../vm/plan.js";

export type Vmim = VirtualMachineInstanceMigration;
type VmimStatus = NonNullable<Vmim["status"]>;
type MigratedVolume = NonNullable<
  NonNullable<NonNullable<VirtualMachine["status"]>["volumeUpdateState"]>["volumeMigrationState"]
>["migratedVolumes"] extends (infer T)[] | undefined
  ? T
  : never;
type DvTemplate = NonNullable<VirtualMachine["spec"]["dataVolumeTemplates"]>[number];

/** On the DataVolumes a cold migration makes: the uid of the VMIM (only those are ever rolled back). */
export const COLD_UID_LABEL = "tsvirt.io/cold-migration-uid";
/** KubeVirt's unschedulable-target timeout: a migration with no node to go to fails after it. */
export const SCHEDULING_TIMEOUT_MS = 5 * 60_000;
/** Re-look while waiting for room, a sibling migration or a cache that has not shown our own write yet. */
export const RETRY_MS = 10_000;

export const Reasons = {
  inProgress: "ColdMigrationInProgress",
  succeeded: "ColdMigrationSucceeded",
  cancelled: "ColdMigrationCancelled",
  failed: "ColdMigrationFailed",
} as const;

export interface ColdLookup {
  dv(namespace: string, name: string): DataVolume | undefined;
  claim(namespace: string, name: string): PersistentVolumeClaim | undefined;
  volume(name: string): PersistentVolume | undefined;
}

export interface ColdInput {
  vmim: Vmim;
  /** The VM named by spec.vmiName (same namespace), if it exists. */
  vm?: VirtualMachine;
  /** A VMI of that name, if any (a stopped VM has none). */
  vmi?: VirtualMachineInstance;
  /** The other cold VMIMs of the namespace naming the same VM. */
  siblings: readonly Vmim[];
  nodes: readonly Node[];
  /** Free local bytes per node (storage/plan.ts). */
  free: ReadonlyMap<string, number>;
  lookup: ColdLookup;
  now: Date;
}

export interface Ref {
  name: string;
  uid: string;
}

/** The one next step; `none` waits (for an event, or `requeueAfterMs`). */
export type ColdStep =
  | { kind: "none"; why: string; requeueAfterMs?: number }
  | { kind: "finalizer"; add: boolean }
  | { kind: "status"; status: VmimStatus; why: string; event?: { type: "Normal" | "Warning"; reason: string } }
  /** VM status: the ColdMigration condition; migratedVolumes set (a list) or cleared (null) or kept (undefined). */
  | { kind: "vmStatus"; condition: Condition; migratedVolumes: MigratedVolume[] | null | undefined }
  | { kind: "createDataVolumes"; dvs: DataVolume[] }
  /** Delete these DataVolumes (the rollback's new ones) and/or claims (old bare PVCs on release). */
  | { kind: "delete"; dvs: Ref[]; claims: Ref[]; why: string }
  /** The swap: the VM's volumes and dataVolumeTemplates name the new claims (swappedVmSpec of the fresh VM). */
  | { kind: "swap"; moved: MigratedVolume[]; templates: DvTemplate[] };

// ---- names (shared with the live migration: api/kubevirt/v1/volume-migration.ts) ----

export { movedClaimName, shortHash };

// ---- the VM's disks ----

export interface LocalDisk {
  volumeName: string;
  claim: PersistentVolumeClaim;
  node: string;
  bytes: number;
}

/** The VM's volumes' claim names (dataVolume: the DV's claim; persistentVolumeClaim: as written). */
function volumeClaim(vm: VirtualMachine, volumeName: string, lookup?: ColdLookup): string | undefined {
  const v = (vm.spec.template.spec?.volumes ?? []).find((x) => x.name === volumeName);
  if (v?.dataVolume) {
    const dv = lookup?.dv(vm.metadata.namespace ?? "", v.dataVolume.name);
    return dv ? claimNameOf(dv) : v.dataVolume.name;
  }
  return v?.persistentVolumeClaim?.claimName;
}

/**
 * The VM's node-local disks: claims bound to a tsvirt-local volume. A claim not bound yet holds no data (its first
 * consumer will place it anywhere) and a volume that is not node-local needs no move; both are skipped. A DataVolume
 * still being written cannot be moved now.
 */
export function localDisks(vm: VirtualMachine, lookup: ColdLookup): { disks: LocalDisk[] } | { error: string } {
  const ns = vm.metadata.namespace ?? "";
  const disks: LocalDisk[] = [];
  for (const v of vm.spec.template.spec?.volumes ?? []) {
    if (!v.dataVolume && !v.persistentVolumeClaim) continue;
    const name = volumeClaim(vm, v.name, lookup) ?? "";
    const claim = lookup.claim(ns, name);
    if (!claim) return { error: `volume ${v.name}: claim ${name} does not exist` };
    if (claim.status?.phase !== "Bound" || !claim.spec.volumeName) continue;
    const pv = lookup.volume(claim.spec.volumeName);
    if (!pv || !isLocalVolume(pv)) continue;
    const node = volumeNode(pv);
    if (!node) continue;
    const dv = v.dataVolume ? lookup.dv(ns, v.dataVolume.name) : undefined;
    if (dv && dv.status?.phase !== "Succeeded")
      return { error: `volume ${v.name}: DataVolume ${v.dataVolume?.name} is ${dv.status?.phase ?? "Pending"}` };
    disks.push({ volumeName: v.name, claim, node, bytes: volumeSize(pv) });
  }
  return { disks };
}

function pvcInfo(claim: PersistentVolumeClaim, name = claim.metadata.name ?? "") {
  const capacity = claim.status?.capacity ?? claim.spec.resources?.requests ?? {};
  return {
    claimName: name,
    accessModes: [...(claim.spec.accessModes ?? ["ReadWriteOnce"])],
    volumeMode: claim.spec.volumeMode ?? "Filesystem",
    capacity: { ...capacity },
    requests: { ...(claim.spec.resources?.requests ?? {}) },
  };
}

/** The record of the move (VM status migratedVolumes): old claim → new claim, per volume. */
export function migratedVolumes(disks: readonly LocalDisk[], hash: string): MigratedVolume[] {
  return disks.map((d) => {
    const src = pvcInfo(d.claim);
    return {
      volumeName: d.volumeName,
      sourcePVCInfo: src,
      destinationPVCInfo: { ...src, claimName: movedClaimName(src.claimName, hash) },
    };
  });
}

/** This VMIM's record on the VM: the migratedVolumes whose destinations carry its hash. */
export function movedBy(vm: VirtualMachine | undefined, hash: string): MigratedVolume[] {
  const all = vm?.status?.volumeUpdateState?.volumeMigrationState?.migratedVolumes ?? [];
  return all.filter((m) => m.destinationPVCInfo?.claimName?.endsWith(`-m${hash}`));
}

const src = (m: MigratedVolume) => m.sourcePVCInfo?.claimName ?? "";
const dst = (m: MigratedVolume) => m.destinationPVCInfo?.claimName ?? "";

/** On the DataVolumes a live migration makes (controller/migration): the uid of the VMIM. */
export const LIVE_UID_LABEL = "tsvirt.io/migration-uid";

/**
 * The dataVolumeTemplate of a new claim. Cold (a target node): a clone of the old one pinned to the target, bound at
 * once. Live (no target): blank, bound by its first consumer, the migration's target launcher pod (the scheduler picks
 * the node for the pod and its claims together), filled by the block copy of the running guest's disk.
 */
export function movedTemplate(
  vm: VirtualMachine,
  m: MigratedVolume,
  target: string | undefined,
  vmimUid: string,
): DvTemplate {
  const old = (vm.spec.dataVolumeTemplates ?? []).find((t) => t.metadata?.name === src(m));
  const info = m.destinationPVCInfo ?? {};
  const size = info.capacity?.storage ?? info.requests?.storage;
  const annotations: Record<string, string> = { ...(old?.metadata?.annotations ?? {}) };
  // the old claim's node pin must not follow it
  delete annotations[StorageAnnotations.selectedNode];
  delete annotations[DvAnnotations.immediateBind];
  if (target) {
    annotations[StorageAnnotations.selectedNode] = target;
    annotations[DvAnnotations.immediateBind] = "true";
  }
  return {
    metadata: {
      name: dst(m),
      labels: { ...(old?.metadata?.labels ?? {}), [target ? COLD_UID_LABEL : LIVE_UID_LABEL]: vmimUid },
      annotations,
    },
    spec: {
      source: target ? { pvc: { namespace: vm.metadata.namespace ?? "", name: src(m) } } : { blank: {} },
      storage: {
        accessModes: [...(info.accessModes ?? ["ReadWriteOnce"])],
        volumeMode: (info.volumeMode ?? "Filesystem") as "Filesystem" | "Block",
        storageClassName: LOCAL_CLASS,
        ...(size === undefined ? {} : { resources: { requests: { storage: String(size) } } }),
      },
    },
  } as DvTemplate;
}

/** The VM spec after the swap: each moved volume names its new claim, its template replaced (or added). */
export function swappedVmSpec(
  vm: VirtualMachine,
  moved: readonly MigratedVolume[],
  templates: readonly DvTemplate[],
): VirtualMachine["spec"] {
  const spec = structuredClone(vm.spec);
  const tspec = spec.template.spec;
  for (const m of moved) {
    const v = (tspec?.volumes ?? []).find((x) => x.name === m.volumeName);
    if (v?.dataVolume) v.dataVolume.name = dst(m);
    else if (v?.persistentVolumeClaim) v.persistentVolumeClaim.claimName = dst(m);
  }
  const out = (spec.dataVolumeTemplates ?? []).filter(
    (t) => !moved.some((m) => t.metadata?.name === src(m) || t.metadata?.name === dst(m)),
  );
  spec.dataVolumeTemplates = [...out, ...structuredClone([...templates])];
  return spec;
}

/** Whether the VM spec already names every new claim (the swap is one update: all or none). */
export function isSwapped(vm: VirtualMachine | undefined, moved: readonly MigratedVolume[]): boolean {
  if (!vm || moved.length === 0) return false;
  return moved.every((m) => {
    const v = (vm.spec.template.spec?.volumes ?? []).find((x) => x.name === m.volumeName);
    return (v?.dataVolume?.name ?? v?.persistentVolumeClaim?.claimName) === dst(m);
  });
}

// ---- the target node ----

/**
 * Nodes the moved VM could run on: not the source, Ready, schedulable, matching the VM's node selector, affinity and
 * tolerations plus the VMIM's addedNodeSelector, with room for all the disks. The one with the most room wins.
 */
export function chooseTarget(
  vm: VirtualMachine,
  vmim: Vmim,
  source: string,
  bytes: number,
  nodes: readonly Node[],
  free: ReadonlyMap<string, number>,
): { node: string } | { message: string } {
  const t = vm.spec.template.spec;
  const probe: Pod = {
    metadata: { name: vm.metadata.name ?? "", namespace: vm.metadata.namespace ?? "" },
    spec: {
      containers: [],
      nodeSelector: { ...(t?.nodeSelector ?? {}), ...(vmim.spec.addedNodeSelector ?? {}), [SCHEDULABLE_LABEL]: "true" },
      ...(t?.affinity ? { affinity: t.affinity as NonNullable<Pod["spec"]["affinity"]> } : {}),
      ...(t?.tolerations ? { tolerations: t.tolerations as NonNullable<Pod["spec"]["tolerations"]> } : {}),
    },
  } as Pod;
  const reasons: string[] = [];
  const fits = new Map<string, number>();
  for (const n of nodes) {
    const name = n.metadata.name ?? "";
    if (name === source) continue;
    const why = [nodeReady, nodeUnschedulable, nodeAffinity, taintToleration].flatMap(
      (p) => p(probe, n, { usage: new Map() } as never) ?? [],
    );
    if (why.length > 0) reasons.push(`${name}: ${why.join(", ")}`);
    else fits.set(name, free.get(name) ?? 0);
  }
  const node = chooseNode(bytes, fits);
  if (node) return { node };
  for (const [name, f] of fits) reasons.push(`${name}: ${f} bytes free, ${bytes} needed`);
  return { message: `no node to move to (source ${source}): ${reasons.join("; ") || "no other node"}` };
}

// ---- the plan ----

function phaseOf(m: Vmim): string {
  return m.status?.phase || "Pending";
}

function isFinalPhase(p: string): boolean {
  return p === "Succeeded" || p === "Failed";
}

/** A sibling that goes first: active (not final, or still holding its finalizer) and older. */
function blockedBy(m: Vmim, siblings: readonly Vmim[]): Vmim | undefined {
  const key = (x: Vmim) => `${x.metadata.creationTimestamp ?? ""}/${x.metadata.name ?? ""}`;
  return siblings.find(
    (s) =>
      s.metadata.uid !== m.metadata.uid &&
      (!isFinalPhase(phaseOf(s)) || (s.metadata.finalizers ?? []).includes(Migration.finalizer)) &&
      key(s) < key(m),
  );
}

function withPhase(m: Vmim, phase: VmimStatus["phase"], now: Date, state: MigrationState = {}): VmimStatus {
  const st = structuredClone(m.status ?? {});
  const ts = nowRfc3339(now.getTime());
  if (st.phase !== phase) {
    st.phase = phase;
    st.phaseTransitionTimestamps = [...(st.phaseTransitionTimestamps ?? []), { phase, phaseTransitionTimestamp: ts }];
  }
  st.migrationState = { ...(st.migrationState ?? {}), ...state };
  return st;
}

function sinceMs(m: Vmim, phase: string, now: Date): number {
  const t = [...(m.status?.phaseTransitionTimestamps ?? [])].reverse().find((x) => x.phase === phase);
  const at = t?.phaseTransitionTimestamp ? Date.parse(t.phaseTransitionTimestamp) : Number.NaN;
  return Number.isNaN(at) ? 0 : now.getTime() - at;
}

function lockCondition(m: Vmim, target: string): Condition {
  return {
    type: ColdMigration.condition,
    status: "True",
    reason: Reasons.inProgress,
    message: `VirtualMachineInstanceMigration ${m.metadata.name} (uid ${m.metadata.uid}) is copying the disks to node ${target}: a start waits`,
  };
}

function endCondition(m: Vmim, reason: string, message: string): Condition {
  return {
    type: ColdMigration.condition,
    status: "False",
    reason,
    message: `VirtualMachineInstanceMigration ${m.metadata.name} (uid ${m.metadata.uid}): ${message}`,
  };
}

/** Whether this VMIM (by its hash) holds the VM: condition True and its record of the move. */
export function heldBy(vm: VirtualMachine | undefined, hash: string): boolean {
  const c = getCondition(vm?.status?.conditions, ColdMigration.condition);
  return c?.status === "True" && movedBy(vm, hash).length > 0;
}

function failed(m: Vmim, now: Date, reason: string, cancelled: boolean): ColdStep {
  const state: MigrationState = {
    failed: true,
    failureReason: reason,
    endTimestamp: nowRfc3339(now.getTime()),
  };
  if (cancelled) state.abortStatus = "Succeeded";
  return {
    kind: "status",
    status: withPhase(m, "Failed", now, state),
    why: reason,
    event: { type: "Warning", reason: cancelled ? "MigrationCancelled" : "FailedMigration" },
  };
}

/**
 * The release of the old claims after a success: what to delete now, or why not yet. Never a claim the VM or the
 * VMI still names. Shared with the live migration (whose VMI runs on the target by then).
 */
export function release(
  input: Pick<ColdInput, "vmim" | "vm" | "vmi" | "lookup">,
  moved: readonly MigratedVolume[],
  target: string,
): Extract<ColdStep, { kind: "none" } | { kind: "delete" }> | undefined {
  const { vm, vmi, lookup } = input;
  const ns = input.vmim.metadata.namespace ?? "";
  const dvs: Ref[] = [];
  const claims: Ref[] = [];
  for (const m of moved) {
    const name = src(m);
    // never a claim the VM still names (a later edit may have brought it back)
    if (vm && (vm.spec.template.spec?.volumes ?? []).some((v) => volumeClaim(vm, v.name, lookup) === name)) continue;
    if ((vmi?.spec.volumes ?? []).some((v) => (v.dataVolume?.name ?? v.persistentVolumeClaim?.claimName) === name))
      continue;
    const dv = lookup.dv(ns, name);
    const claim = lookup.claim(ns, name);
    if (dv && !dv.metadata.deletionTimestamp) dvs.push({ name, uid: dv.metadata.uid ?? "" });
    else if (claim && !claim.metadata.deletionTimestamp) {
      // a DataVolume's claim goes with it (garbage collector); a bare claim, or one whose DataVolume is gone, directly
      const owner = claim.metadata.ownerReferences?.find((r) => r.controller && r.kind === "DataVolume");
      const ownerDv = owner ? lookup.dv(ns, owner.name) : undefined;
      if (ownerDv?.metadata.uid === owner?.uid && ownerDv) {
        if (!ownerDv.metadata.deletionTimestamp) dvs.push({ name: owner?.name ?? "", uid: owner?.uid ?? "" });
      } else claims.push({ name, uid: claim.metadata.uid ?? "" });
    }
  }
  if (dvs.length === 0 && claims.length === 0) return undefined;
  if (vm) {
    if (vmi) {
      const booted = vmi.status?.phase === "Running" && vmi.status.nodeName === target;
      if (!booted) return { kind: "none", why: `old disks kept until the VM runs on ${target}` };
    } else if (setToStart(undefined, vm.status?.stateChangeRequests ?? [], runStrategyOf(vm))) {
      return { kind: "none", why: `old disks kept until the VM runs on ${target}` };
    }
  }
  return { kind: "delete", dvs, claims, why: "release the old disks" };
}

/** The next step of a cold migration. */
export function planColdMigration(input: ColdInput): ColdStep {
  const { vmim: m, vm, vmi, lookup, now } = input;
  const ns = m.metadata.namespace ?? "";
  const uid = m.metadata.uid ?? "";
  const hash = shortHash(uid);
  const phase = phaseOf(m);
  const hasFinalizer = (m.metadata.finalizers ?? []).includes(Migration.finalizer);
  const deleting = m.metadata.deletionTimestamp !== undefined;
  const moved = movedBy(vm, hash);
  const target = m.status?.migrationState?.targetNode ?? "";
  const swapped = isSwapped(vm, moved);

  // The new DataVolumes this VMIM made (only those carry its uid: a rollback never touches anything else).
  const newDvs = moved.flatMap((mv) => {
    const dv = lookup.dv(ns, dst(mv));
    return dv && dv.metadata.labels?.[COLD_UID_LABEL] === uid ? [dv] : [];
  });

  if (isFinalPhase(phase)) {
    if (!hasFinalizer) return { kind: "none", why: phase };
    if (phase === "Succeeded") {
      const r = release(input, moved, target);
      if (r) return r;
    } else if (!swapped) {
      // Failed: the rollback (the reason is on record first, so it survives the new disks going)
      const doomed = newDvs.filter((dv) => !dv.metadata.deletionTimestamp);
      if (doomed.length > 0) {
        return {
          kind: "delete",
          dvs: doomed.map((dv) => ({ name: dv.metadata.name ?? "", uid: dv.metadata.uid ?? "" })),
          claims: [],
          why: `roll back: ${m.status?.migrationState?.failureReason ?? "failed"}`,
        };
      }
      if (vm && heldBy(vm, hash)) {
        const cancelled = m.status?.migrationState?.abortStatus === "Succeeded";
        return {
          kind: "vmStatus",
          condition: endCondition(
            m,
            cancelled ? Reasons.cancelled : Reasons.failed,
            m.status?.migrationState?.failureReason ?? "failed",
          ),
          migratedVolumes: null,
        };
      }
    }
    return { kind: "finalizer", add: false };
  }
  if (!hasFinalizer) {
    // nothing is made before the finalizer is on: a VMIM deleted before that has nothing to undo
    return deleting ? { kind: "none", why: "deleted before it started" } : { kind: "finalizer", add: true };
  }

  // ---- after the swap: only forward ----
  if (swapped && vm) {
    for (const mv of moved) {
      const dv = lookup.dv(ns, dst(mv));
      const claim = lookup.claim(ns, dst(mv));
      const pv = claim?.spec.volumeName ? lookup.volume(claim.spec.volumeName) : undefined;
      if (dv?.status?.phase !== "Succeeded" || !pv || volumeNode(pv) !== target)
        return { kind: "none", why: `verifying ${dst(mv)} on ${target}`, requeueAfterMs: 2_000 };
    }
    if (heldBy(vm, hash))
      return {
        kind: "vmStatus",
        condition: endCondition(m, Reasons.succeeded, `the disks moved to node ${target}`),
        migratedVolumes: undefined,
      };
    const state: MigrationState = { completed: true, endTimestamp: nowRfc3339(now.getTime()) };
    if (deleting) state.abortStatus = "Failed"; // too late to cancel: the VM already names the new disks
    return {
      kind: "status",
      status: withPhase(m, "Succeeded", now, state),
      why: "swapped and verified",
      event: { type: "Normal", reason: "SuccessfulMigration" },
    };
  }

  // ---- before the swap: anything wrong fails the migration, then the Failed phase rolls back ----
  const broken = newDvs.find((dv) => dv.status?.phase === "Failed");
  if (deleting) return failed(m, now, "the migration was cancelled (VMIM deleted) before the disks were swapped", true);
  if (!vm) return failed(m, now, `VM ${ns}/${m.spec.vmiName} does not exist`, false);
  if (vmi) return failed(m, now, `the VM was started (VMI ${vmi.metadata.name}) before its disks were moved`, false);
  if (broken) {
    const c = broken.status?.conditions?.find((x) => x.type === "Running");
    return failed(m, now, `clone ${broken.metadata.name} failed: ${c?.reason ?? ""} ${c?.message ?? ""}`.trim(), false);
  }
  const theVm = vm as VirtualMachine;

  if (phase === "Pending") {
    const first = blockedBy(m, input.siblings);
    if (first) return { kind: "none", why: `waiting for ${first.metadata.name}`, requeueAfterMs: RETRY_MS };
    const found = localDisks(theVm, lookup);
    if ("error" in found) return failed(m, now, found.error, false);
    if (found.disks.length === 0) return failed(m, now, "the VM has no node-local disk to move", false);
    const nodes = [...new Set(found.disks.map((d) => d.node))];
    if (nodes.length > 1) return failed(m, now, `the VM's disks are on several nodes (${nodes.join(", ")})`, false);
    return {
      kind: "status",
      status: withPhase(m, "Scheduling", now, { sourceNode: nodes[0], migrationUid: uid }),
      why: "disks found",
    };
  }

  if (phase === "Scheduling") {
    if (!target) {
      const found = localDisks(theVm, lookup);
      if ("error" in found) return failed(m, now, found.error, false);
      const source = m.status?.migrationState?.sourceNode ?? found.disks[0]?.node ?? "";
      const bytes = found.disks.reduce((n, d) => n + d.bytes, 0);
      const choice = chooseTarget(theVm, m, source, bytes, input.nodes, input.free);
      if ("node" in choice)
        return {
          kind: "status",
          status: withPhase(m, "Scheduling", now, { targetNode: choice.node }),
          why: "target chosen",
        };
      if (sinceMs(m, "Scheduling", now) >= SCHEDULING_TIMEOUT_MS) return failed(m, now, choice.message, false);
      return { kind: "none", why: choice.message, requeueAfterMs: RETRY_MS };
    }
    if (!heldBy(theVm, hash)) {
      const other = getCondition(theVm.status?.conditions, ColdMigration.condition);
      if (other?.status === "True")
        return { kind: "none", why: `the VM is held: ${other.message}`, requeueAfterMs: RETRY_MS };
      const found = localDisks(theVm, lookup);
      if ("error" in found) return failed(m, now, found.error, false);
      return {
        kind: "vmStatus",
        condition: lockCondition(m, target),
        migratedVolumes: migratedVolumes(found.disks, hash),
      };
    }
    return {
      kind: "status",
      status: withPhase(m, "Running", now, { startTimestamp: nowRfc3339(now.getTime()) }),
      why: "VM held, copying",
    };
  }

  // ---- Running ----
  if (moved.length === 0) return failed(m, now, "the VM lost the record of the move (status.volumeUpdateState)", false);
  const edited = moved.find((mv) => volumeClaim(theVm, mv.volumeName, lookup) !== src(mv));
  if (edited) return failed(m, now, `the VM's volume ${edited.volumeName} was changed during the migration`, false);
  const templates = moved.map((mv) => movedTemplate(theVm, mv, target, uid));
  const missing = templates.filter((t) => !lookup.dv(ns, t.metadata?.name ?? ""));
  if (missing.length > 0)
    return { kind: "createDataVolumes", dvs: missing.map((t) => dataVolumeFromTemplate(theVm, t)) };
  const foreign = moved.find((mv) => !newDvs.some((dv) => dv.metadata.name === dst(mv)));
  if (foreign) return failed(m, now, `DataVolume ${dst(foreign)} exists and is not this migration's`, false);
  const waiting = newDvs.find((dv) => dv.status?.phase !== "Succeeded");
  if (waiting)
    return {
      kind: "none",
      why: `clone ${waiting.metadata.name} is ${waiting.status?.phase ?? "Pending"} (${waiting.status?.progress ?? "N/A"})`,
    };
  return { kind: "swap", moved, templates };
}
