// The migration controller's thinking, pure (KubeVirt's pkg/virt-controller/watch/migration/migration.go, shaped by
// the migration contract §1/§2): given a VMIM, its VMI, the VMI's launcher pods, the cluster's settings and the other
// VMIMs, what to write. Phases Pending → Scheduling (target pod exists) → Scheduled (target pod bound to a node) →
// PreparingTarget (handoff written to the VMI) → TargetReady (target agent published its address) → Running (the
// source started: startTimestamp) → Succeeded (completed and the VMI's nodeName is the target) / Failed. A round may
// pass several phases (the controller was down); each gets its transition timestamp.

import type {
  MigratedVolume,
  MigrationConfiguration,
  MigrationPhase,
  MigrationState,
  Volume,
} from "../../api/index.js";
import { isColdMigration, Migration, movedByMigration } from "../../api/index.js";
import type {
  DataVolume,
  MigrationPolicy,
  Pod,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineInstanceMigration,
} from "../../client/index.js";
import type { ColdLookup, Ref } from "../coldmigration/index.js";
import { getCondition, setCondition } from "../conditions.js";
import type { Migratability } from "./migratable.js";
import { effectiveMigrationConfiguration, matchPolicy } from "./policy.js";
import { isTargetPodOf, renderTargetPod } from "./target-pod.js";
import {
  beforeTarget,
  cleanup,
  owningVm,
  swapWrites,
  VOLUMES_CHANGE,
  type VolumeContext,
  volumesChangeCondition,
} from "./volumes.js";

type VmimStatus = NonNullable<VirtualMachineInstanceMigration["status"]>;

/** KubeVirt's handlePendingPodTimeout bounds (seconds), each overridable by an annotation on the VMIM. */
export const UNSCHEDULABLE_TIMEOUT_S = 300;
export const PENDING_TIMEOUT_S = 900;
export const UNSCHEDULABLE_TIMEOUT_ANNOTATION = "kubevirt.io/migrationUnschedulablePodTimeoutSeconds";
export const PENDING_TIMEOUT_ANNOTATION = "kubevirt.io/migrationPendingPodTimeoutSeconds";
/** Requeue while over a limit (KubeVirt's getRequeueDelayForPriority for user-triggered migrations). */
export const LIMIT_REQUEUE_MS = 3_000;
export const ABORT_REQUESTED = "migrationAbortRequested";

const ORDER: MigrationPhase[] = ["Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running"];

export interface MigrationInput {
  vmim: VirtualMachineInstanceMigration;
  vmi: VirtualMachineInstance | undefined;
  /** The VMI's launcher pods (owner reference to it): the source pod and, once made, the target pod. */
  pods: Pod[];
  /** The VMI's LiveMigratable/migrationMethod, computed now (migratable.ts). */
  migratable?: Migratability;
  /** The cluster's migration settings (KubeVirt object, defaulted). */
  config: MigrationConfiguration;
  policies: MigrationPolicy[];
  namespaceLabels?: Record<string, string>;
  /** Every other VMIM of the cluster, with the node its VMI runs on (for the per-node limit). */
  others: { vmim: VirtualMachineInstanceMigration; sourceNode?: string }[];
  now: string;
  nowMs: number;
  /** Node-local disks (volumes.ts): the VM named like the VMI, the storage caches, this VMIM's new DataVolumes. */
  volumes?: { vm?: VirtualMachine; lookup: ColdLookup; own: DataVolume[] };
}

export interface VmiChange {
  /** The VMI's new status.migrationState (undefined: leave it). */
  migrationState?: MigrationState;
  /** Set (string) or remove (null) the label kubevirt.io/migrationTargetNodeName. */
  targetNodeLabel?: string | null;
  /** status.migratedVolumes: set (a list) or cleared of this migration's moves (null). */
  migratedVolumes?: MigratedVolume[] | null;
  /** The VolumesChange condition: set, or removed (null). */
  volumesChange?: ReturnType<typeof volumesChangeCondition> | null;
  /** spec.volumes naming the moved disks' new claims (after the move). */
  volumes?: Volume[];
}

export interface VmChange {
  /** status.volumeUpdateState.volumeMigrationState.migratedVolumes (the record), written before the spec. */
  migratedVolumes?: MigratedVolume[];
  spec?: VirtualMachine["spec"];
}

export interface MigrationPlan {
  /** Nothing to do: a cold migration (another controller's) or an unknown phase. */
  ignore: boolean;
  status: VmimStatus;
  addFinalizer: boolean;
  removeFinalizer: boolean;
  createPod?: Pod;
  deletePods: Pod[];
  vmi?: VmiChange;
  vm?: VmChange;
  /** Node-local disks: new DataVolumes (before the target pod), and deletions (rollback, or the old ones released). */
  createDataVolumes: DataVolume[];
  deleteDataVolumes: Ref[];
  deleteClaims: Ref[];
  /** Finished VMIMs of the same VMI beyond KubeVirt's buffer of 5. */
  garbage: VirtualMachineInstanceMigration[];
  /**
   * Its VMI is gone (deleted, or its VM stopped): the VMIM is deleted, after its status says Failed if it was not
   * final (KubeVirt's migration controller deletes a migration whose VMI no longer exists). The shell confirms the
   * VMI's absence with the API first: a lagging cache never deletes the migration of a live VMI.
   */
  deleteOrphan: boolean;
  requeueAfterMs?: number;
  events: { type: "Normal" | "Warning"; reason: string; message: string }[];
}

function withVm(vm: VirtualMachine | undefined): { vm?: VirtualMachine } {
  return vm ? { vm } : {};
}

export function isFinal(m: VirtualMachineInstanceMigration): boolean {
  const p = m.status?.phase;
  return p === "Succeeded" || p === "Failed";
}

/**
 * The VMI's running launcher pod on the source node. Not "a pod without a migration label": after one migration the
 * VMI runs in the former target pod, which keeps its kubevirt.io/migrationJobUID label.
 */
function sourcePodOf(
  pods: Pod[],
  sourceNode: string | undefined,
  vmim: VirtualMachineInstanceMigration,
): Pod | undefined {
  return pods.find(
    (p) =>
      p.spec.nodeName === sourceNode &&
      !isTargetPodOf(p, vmim) &&
      !p.metadata.deletionTimestamp &&
      p.status?.phase !== "Succeeded" &&
      p.status?.phase !== "Failed",
  );
}

export const isCold = (m: VirtualMachineInstanceMigration): boolean => isColdMigration(m);

/** Past Pending and not final: holds a slot of the limits. */
function inFlight(m: VirtualMachineInstanceMigration): boolean {
  const p = m.status?.phase ?? "";
  return p !== "" && p !== "Pending" && !isFinal(m);
}

function older(a: VirtualMachineInstanceMigration, b: VirtualMachineInstanceMigration): boolean {
  const ta = a.metadata.creationTimestamp ?? "";
  const tb = b.metadata.creationTimestamp ?? "";
  return ta !== tb ? ta < tb : (a.metadata.name ?? "") < (b.metadata.name ?? "");
}

function withPhase(status: VmimStatus, phase: MigrationPhase, now: string): VmimStatus {
  if (status.phase === phase) return status;
  const ts = [...(status.phaseTransitionTimestamps ?? [])];
  const from = ORDER.indexOf(status.phase ?? "Pending");
  const to = ORDER.indexOf(phase);
  // every phase passed on the way, so the timestamps read as KubeVirt's do
  const passed = from >= 0 && to > from ? ORDER.slice(from + 1, to + 1) : [phase];
  if (!status.phase && to >= 0) passed.unshift(...ORDER.slice(0, to).filter((p) => !passed.includes(p)));
  for (const p of passed) if (!ts.some((t) => t.phase === p)) ts.push({ phase: p, phaseTransitionTimestamp: now });
  return { ...status, phase, phaseTransitionTimestamps: ts };
}

function podDown(p: Pod): boolean {
  return Boolean(p.metadata.deletionTimestamp) || p.status?.phase === "Failed" || p.status?.phase === "Succeeded";
}

function timeoutOf(vmim: VirtualMachineInstanceMigration, annotation: string, def: number): number {
  const v = Number(vmim.metadata.annotations?.[annotation]);
  return Number.isFinite(v) && v > 0 ? v : def;
}

export function planMigration(input: MigrationInput): MigrationPlan {
  const { vmim, vmi, now } = input;
  const plan: MigrationPlan = {
    ignore: false,
    status: structuredClone(vmim.status ?? {}),
    addFinalizer: false,
    removeFinalizer: false,
    deletePods: [],
    createDataVolumes: [],
    deleteDataVolumes: [],
    deleteClaims: [],
    garbage: [],
    deleteOrphan: false,
    events: [],
  };
  if (isCold(vmim)) return { ...plan, ignore: true };
  // its finalizer (disk moves to roll back) still holds a deleted VMIM until the final round below has cleaned up
  plan.deleteOrphan = !vmi && !vmim.metadata.deletionTimestamp;
  const vol = input.volumes;
  const ctx: VolumeContext | undefined =
    vol && vmi ? { vmim, vmi, lookup: vol.lookup, own: vol.own, ...withVm(owningVm(vmi, vol.vm)) } : undefined;
  /** Whether this migration recorded disks to move (or made new ones): its finalizer stays until they are settled. */
  const moves = () =>
    (vol?.own.length ?? 0) > 0 || movedByMigration(vmi?.status?.migratedVolumes, vmim.metadata.uid ?? "").length > 0;
  const uid = vmim.metadata.uid ?? "";
  const hasFinalizer = (vmim.metadata.finalizers ?? []).includes(Migration.finalizer);
  const state = vmi?.status?.migrationState;
  const ours = state?.migrationUid === uid && uid !== "";
  const target = input.pods.find((p) => isTargetPodOf(p, vmim));
  const liveTarget = target && !target.metadata.deletionTimestamp ? target : undefined;
  const sourceNode = vmi?.status?.nodeName;

  const fail = (reason: string, opts: { deleteTarget?: boolean } = { deleteTarget: true }) => {
    plan.status = withPhase(plan.status, "Failed", now);
    // the reason lives where KubeVirt keeps a finished migration's story: status.migrationState
    plan.status.migrationState = ours
      ? { ...structuredClone(state), failed: true, failureReason: state?.failureReason ?? reason }
      : {
          migrationUid: uid,
          ...(sourceNode ? { sourceNode } : {}),
          failed: true,
          failureReason: reason,
        };
    if (opts.deleteTarget && liveTarget) plan.deletePods.push(liveTarget);
    plan.events.push({ type: "Warning", reason: "FailedMigration", message: reason });
    if (ours && vmi?.metadata.labels?.[Migration.targetNodeLabel] !== undefined)
      plan.vmi = { ...(plan.vmi ?? {}), targetNodeLabel: null };
    finalize();
    // the rollback of the disks (final phase) runs before the finalizer goes
    if (moves()) plan.removeFinalizer = false;
    return plan;
  };
  const finalize = () => {
    plan.removeFinalizer = hasFinalizer;
    plan.addFinalizer = false;
    const mine = input.others
      .map((o) => o.vmim)
      .filter(
        (m) =>
          m.metadata.namespace === vmim.metadata.namespace &&
          m.spec.vmiName === vmim.spec.vmiName &&
          !isCold(m) &&
          isFinal(m) &&
          !m.metadata.deletionTimestamp,
      );
    const finished = [...mine, { ...vmim, status: plan.status }].sort((a, b) => (older(a, b) ? 1 : -1));
    plan.garbage = finished.slice(Migration.finishedKeptPerVmi).filter((m) => m.metadata.uid !== uid);
  };

  // Final: clean up what the migration leaves (label, target pod of a failure, source pod of a success).
  if (isFinal(vmim)) {
    finalize();
    if (vmim.status?.phase === "Failed" && liveTarget && !(ours && vmi?.status?.nodeName === liveTarget.spec.nodeName))
      plan.deletePods.push(liveTarget);
    if (ours && vmi?.metadata.labels?.[Migration.targetNodeLabel] !== undefined) plan.vmi = { targetNodeLabel: null };
    if (vmim.status?.phase === "Succeeded" && ours && state?.sourcePod && vmi?.status?.nodeName === state.targetNode) {
      const src = input.pods.find((p) => p.metadata.name === state.sourcePod && !p.metadata.deletionTimestamp);
      if (src && !isTargetPodOf(src, vmim)) plan.deletePods.push(src);
    }
    if (vol) {
      const c = cleanup(
        {
          vmim,
          lookup: vol.lookup,
          own: vol.own,
          ...(vmi ? { vmi } : {}),
          ...withVm(vmi ? owningVm(vmi, vol.vm) : vol.vm),
        },
        vmim.status?.phase === "Succeeded",
        vmim.status?.migrationState?.targetNode ?? (ours ? state?.targetNode : undefined),
      );
      plan.deleteDataVolumes = c.dvs;
      plan.deleteClaims = c.claims;
      // The condition speaks for every record on the VMI: a later migration may have recorded its own move already
      // (this one is final, the next may start): then the condition is that one's and stays.
      const all = vmi?.status?.migratedVolumes ?? [];
      const own = movedByMigration(all, uid).length;
      const alone = all.length === own;
      if (c.clearRecord)
        plan.vmi = {
          ...(plan.vmi ?? {}),
          migratedVolumes: null,
          ...(alone ? { volumesChange: volumesChangeCondition("cancelled") } : {}),
        };
      // A success: once the old disks are released the record goes, and the condition with it (KubeVirt clears
      // both when the migration is finalized; here the record names what to release until then).
      const flagged = getCondition(vmi?.status?.conditions, VOLUMES_CHANGE) !== undefined;
      if (vmim.status?.phase === "Succeeded" && !c.pending && (own > 0 || (flagged && alone)))
        plan.vmi = {
          ...(plan.vmi ?? {}),
          ...(own > 0 ? { migratedVolumes: null } : {}),
          ...(flagged && alone ? { volumesChange: null } : {}),
        };
      if (c.pending) {
        plan.removeFinalizer = false;
        plan.requeueAfterMs = LIMIT_REQUEUE_MS;
      }
    }
    return plan;
  }

  plan.addFinalizer = !hasFinalizer && !vmim.metadata.deletionTimestamp;
  if (!plan.status.phase) plan.status = withPhase(plan.status, "Pending", now);
  const phase = plan.status.phase ?? "Pending";
  const handedOff = ours && Boolean(state?.targetNode);

  if (!vmi || vmi.metadata.deletionTimestamp)
    return fail(`VMI ${vmim.spec.vmiName} does not exist or is being deleted`);
  if (vmi.status?.phase === "Succeeded" || vmi.status?.phase === "Failed")
    return fail(`VMI ${vmim.spec.vmiName} is in final phase ${vmi.status.phase}`);
  if (handedOff === false && phase !== "Pending" && phase !== "Scheduling" && phase !== "Scheduled")
    return fail("The migration state was taken over by another migration", { deleteTarget: true });

  // Cancel: deletion before the handoff ends it here; after it, the source agent aborts (abortRequested).
  if (vmim.metadata.deletionTimestamp) {
    plan.status.conditions = setCondition(
      plan.status.conditions,
      {
        type: ABORT_REQUESTED,
        status: "True",
        reason: "MigrationAbortRequested",
        message: "The migration was deleted",
      },
      now,
    );
    if (!handedOff)
      return fail("Migration aborted: the VirtualMachineInstanceMigration was deleted before the handoff");
    if (!state?.completed && !state?.failed) {
      // The source cannot start without the target's address: before it, abort is the controller's alone.
      if (!state?.targetNodeAddress && !state?.startTimestamp) {
        plan.vmi = {
          migrationState: {
            ...structuredClone(state),
            abortRequested: true,
            abortStatus: "Succeeded",
            failed: true,
            failureReason: "Migration aborted before it started",
            endTimestamp: now,
          },
        };
        return fail("Migration aborted before it started");
      }
      if (!state.abortRequested) plan.vmi = { migrationState: { ...structuredClone(state), abortRequested: true } };
    }
  }

  if (handedOff && state) {
    if (state.failed) return fail(state.failureReason ?? "Migration failed");
    if (state.completed && vmi.status?.nodeName === state.targetNode) {
      // the moved disks: the VMI's volumes, then the VM's record and spec, all before Succeeded (volumes.ts)
      const w = ctx ? swapWrites(ctx) : {};
      if (w.vmiVolumes) plan.vmi = { ...(plan.vmi ?? {}), volumes: w.vmiVolumes };
      if (w.vmMigratedVolumes || w.vmSpec)
        plan.vm = {
          ...(w.vmMigratedVolumes ? { migratedVolumes: w.vmMigratedVolumes } : {}),
          ...(w.vmSpec ? { spec: w.vmSpec } : {}),
        };
      plan.status = withPhase(plan.status, "Succeeded", now);
      plan.status.migrationState = structuredClone(state);
      plan.vmi = { ...(plan.vmi ?? {}), targetNodeLabel: null };
      const src = input.pods.find((p) => p.metadata.name === state.sourcePod && !p.metadata.deletionTimestamp);
      if (src && !isTargetPodOf(src, vmim)) plan.deletePods.push(src);
      plan.events.push({
        type: "Normal",
        reason: "SuccessfulMigration",
        message: `Source node reported migration succeeded; the VMI runs on ${state.targetNode}`,
      });
      finalize();
      // the old disks are released from the final phase, before the finalizer goes
      if (moves()) plan.removeFinalizer = false;
      return plan;
    }
    // The target pod going away before the guest moved fails the migration (KubeVirt: "Target pod is down");
    // once the source started, the source's job fails by itself and the source agent reports it.
    if (!state.completed && (!target || podDown(target))) {
      if (!state.startTimestamp) {
        plan.vmi = {
          ...(plan.vmi ?? {}),
          migrationState: {
            ...structuredClone(state),
            ...(plan.vmi?.migrationState ?? {}),
            failed: true,
            completed: false,
            failureReason: "Target pod is down",
            endTimestamp: now,
          },
        };
        return fail("Target pod is down");
      }
    }
    let next: MigrationPhase = "PreparingTarget";
    if (state.targetNodeAddress) next = "TargetReady";
    if (state.startTimestamp) next = "Running";
    if (ORDER.indexOf(next) > ORDER.indexOf(phase)) plan.status = withPhase(plan.status, next, now);
    if (vmi.metadata.labels?.[Migration.targetNodeLabel] !== state.targetNode && !state.completed)
      plan.vmi = { ...(plan.vmi ?? {}), targetNodeLabel: state.targetNode ?? null };
    return plan;
  }

  // ---- before the handoff: Pending → Scheduling → Scheduled → (handoff) PreparingTarget ----
  const otherActive = input.others.find(
    (o) =>
      o.vmim.metadata.namespace === vmim.metadata.namespace &&
      o.vmim.spec.vmiName === vmim.spec.vmiName &&
      !isCold(o.vmim) &&
      !isFinal(o.vmim) &&
      (inFlight(o.vmim) || older(o.vmim, vmim)),
  );
  if (otherActive)
    return fail(
      `another migration job is in progress: ${otherActive.vmim.metadata.name} (${otherActive.vmim.status?.phase ?? "Pending"})`,
    );
  if (state && !ours && state.migrationUid && !state.completed && !state.failed) {
    const owner = input.others.find((o) => o.vmim.metadata.uid === state.migrationUid);
    if (owner && !isFinal(owner.vmim)) return fail("another migration job is in progress");
  }

  if (!liveTarget) {
    if (target) return fail("Target pod is down");
    if (phase !== "Pending") return fail("Target pod is down: it disappeared before it was scheduled");
    if (vmi.status?.phase !== "Running" || !sourceNode) {
      plan.requeueAfterMs = LIMIT_REQUEUE_MS;
      return plan;
    }
    const m = input.migratable;
    if (m && m.condition.status === "False")
      return fail(`Cannot migrate VMI, Reason: ${m.condition.reason}, Message: ${m.condition.message}`);
    const perCluster = input.config.parallelMigrationsPerCluster ?? 5;
    const perNode = input.config.parallelOutboundMigrationsPerNode ?? 2;
    const active = input.others.filter((o) => !isCold(o.vmim) && inFlight(o.vmim));
    if (active.length >= perCluster) {
      plan.requeueAfterMs = LIMIT_REQUEUE_MS;
      return plan;
    }
    if (active.filter((o) => o.sourceNode === sourceNode).length >= perNode) {
      plan.requeueAfterMs = LIMIT_REQUEUE_MS;
      return plan;
    }
    // node-local disks first: the record, then the new DataVolumes; the target pod names them (volumes.ts)
    const before = ctx ? beforeTarget(ctx) : { kind: "none" as const };
    if (before.kind === "error") return fail(`Cannot migrate the VMI's node-local disks: ${before.message}`);
    if (before.kind === "record" || before.kind === "create" || before.kind === "wait") {
      if (before.kind === "record")
        plan.vmi = { migratedVolumes: before.migratedVolumes, volumesChange: volumesChangeCondition("recorded") };
      else if (before.kind === "create") plan.createDataVolumes = before.dvs;
      plan.requeueAfterMs = 1_000;
      return plan;
    }
    const podVmi = before.kind === "ready" ? before.vmi : vmi;
    plan.createPod = renderTargetPod(podVmi, vmim, sourceNode, sourcePodOf(input.pods, sourceNode, vmim));
    // Scheduling means "the target pod exists": written only once the create succeeded
    plan.status = withPhase(plan.status, "Scheduling", now);
    return plan;
  }

  if (podDown(liveTarget)) return fail("Target pod is down");
  if (ORDER.indexOf(phase) < ORDER.indexOf("Scheduling")) plan.status = withPhase(plan.status, "Scheduling", now);

  if (!liveTarget.spec.nodeName) {
    // KubeVirt's handlePendingPodTimeout: unschedulable for 300 s, or pending for 900 s, fails the migration
    const sched = getCondition(liveTarget.status?.conditions, "PodScheduled");
    const created = Date.parse(liveTarget.metadata.creationTimestamp ?? now);
    const unschedS = timeoutOf(vmim, UNSCHEDULABLE_TIMEOUT_ANNOTATION, UNSCHEDULABLE_TIMEOUT_S);
    const pendingS = timeoutOf(vmim, PENDING_TIMEOUT_ANNOTATION, PENDING_TIMEOUT_S);
    if (sched?.status === "False" && sched.reason === "Unschedulable") {
      const since = Date.parse(sched.lastTransitionTime ?? liveTarget.metadata.creationTimestamp ?? now);
      const left = since + unschedS * 1000 - input.nowMs;
      if (left <= 0)
        return fail(`Migration target pod was unschedulable for ${unschedS}s: ${sched.message ?? "no node fits"}`);
      plan.requeueAfterMs = left;
    }
    const left = created + pendingS * 1000 - input.nowMs;
    if (left <= 0) return fail(`Migration target pod was pending for ${pendingS}s`);
    plan.requeueAfterMs = Math.min(plan.requeueAfterMs ?? left, left);
    return plan;
  }

  // Bound: Scheduled, and the handoff in the same round (the VMI write first; the phase only if it succeeds).
  plan.status = withPhase(plan.status, "Scheduled", now);
  const policy = matchPolicy(input.policies, vmi.metadata.labels, input.namespaceLabels);
  const sourcePod = sourcePodOf(input.pods, sourceNode, vmim);
  const handoff: MigrationState = {
    migrationUid: uid,
    sourceNode: sourceNode ?? "",
    targetNode: liveTarget.spec.nodeName,
    targetPod: liveTarget.metadata.name ?? "",
    mode: "PreCopy",
    migrationConfiguration: effectiveMigrationConfiguration(input.config, policy),
  };
  if (sourcePod?.metadata.name) handoff.sourcePod = sourcePod.metadata.name;
  if (policy?.metadata.name) handoff.migrationPolicyName = policy.metadata.name;
  plan.vmi = { migrationState: handoff, targetNodeLabel: liveTarget.spec.nodeName };
  plan.status = withPhase(plan.status, "PreparingTarget", now);
  return plan;
}
