// The VMI controller's thinking, pure: given a VMI and its launcher pods, which pod to create or delete, the VMI
// phase (Pending → Scheduling → Scheduled; Failed when the pod fails or vanishes), nodeName, conditions, whether
// the finalizer can go, and the pod readiness-gate condition to sync. From Running on, virt-handler owns VMI status.

import { Migration, VMI_FINALIZER } from "../../api/index.js";
import type { Condition, DataVolume, Pod, VirtualMachineInstance, VmiPhase, VmiStatus } from "../../client/index.js";
import { getCondition, setCondition } from "../conditions.js";
import { describeDataVolume } from "../lifecycle/index.js";
import { READINESS_GATE } from "./pod.js";

export interface VmiPlan {
  createPod: boolean;
  deletePods: Pod[];
  status: VmiStatus;
  /** Value for the label kubevirt.io/nodeName (set once Scheduled). */
  nodeName?: string;
  removeFinalizer: boolean;
  /** The readiness-gate condition the launcher pod should carry, when it differs from what it has. */
  podGate?: { pod: Pod; condition: Condition };
  events: { type: "Normal" | "Warning"; reason: string; message: string }[];
}

function isTerminal(pod: Pod): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

function isFinalPhase(p: VmiPhase | undefined): boolean {
  return p === "Succeeded" || p === "Failed";
}

/** Bound and running: phase Running and, when the runner reports containers, the compute container ready. */
export function podIsRunning(pod: Pod): boolean {
  if (!pod.spec.nodeName || pod.status?.phase !== "Running") return false;
  const cr = getCondition(pod.status.conditions, "ContainersReady");
  if (cr) return cr.status === "True";
  const compute = pod.status.containerStatuses?.find((c) => c.name === "compute");
  return compute ? compute.ready === true : true;
}

function withPhase(status: VmiStatus, phase: VmiPhase, now: string): VmiStatus {
  if (status.phase === phase) return status;
  const ts = [...(status.phaseTransitionTimestamps ?? [])];
  if (ts[ts.length - 1]?.phase !== phase) ts.push({ phase, phaseTransitionTimestamp: now });
  return { ...status, phase, phaseTransitionTimestamps: ts };
}

/** Whether the launcher pod may be made, as the VMI's DataVolumes go (storage contract §4). */
export interface DataVolumesGate {
  /** Every DataVolume is Succeeded, or waits for its first consumer (the launcher pod selects the node). */
  podAllowed: boolean;
  condition: Condition;
}

/**
 * The gate of a VMI's dataVolume volumes: the pod waits while any DataVolume is missing or being filled; a
 * WaitForFirstConsumer one lets it go (the node agent then waits for Succeeded before the guest starts).
 */
export function dataVolumesGate(
  vmi: VirtualMachineInstance,
  dv: (name: string) => DataVolume | undefined,
): DataVolumesGate | undefined {
  const names = [...new Set((vmi.spec.volumes ?? []).flatMap((v) => (v.dataVolume ? [v.dataVolume.name] : [])))];
  if (names.length === 0) return undefined;
  const blocking: string[] = [];
  const notReady: string[] = [];
  for (const name of names) {
    const d = dv(name);
    const phase = d?.status?.phase;
    if (phase === "Succeeded") continue;
    const what = d ? describeDataVolume(d) : `${name} (not found)`;
    notReady.push(what);
    if (phase !== "WaitForFirstConsumer" && phase !== "PendingPopulation") blocking.push(what);
  }
  const condition: Condition =
    notReady.length === 0
      ? {
          type: "DataVolumesReady",
          status: "True",
          reason: "AllDVsReady",
          message: "All of the VMI's DVs are bound and ready",
        }
      : {
          type: "DataVolumesReady",
          status: "False",
          reason: "NotAllDVsReady",
          message: `Not all of the VMI's DVs are ready: ${notReady.join(", ")}`,
        };
  return { podAllowed: blocking.length === 0, condition };
}

/** KubeVirt's reason (VMI controller) while a `persistentVolumeClaim` volume names a claim that does not exist. */
export const FAILED_PVC_NOT_FOUND = "FailedPvcNotFound";

/** The claims the VMI's `persistentVolumeClaim` volumes name that do not exist (`claim`: a lookup by name). */
export function missingClaims(vmi: VirtualMachineInstance, claim: (name: string) => unknown): string[] {
  const names = (vmi.spec.volumes ?? []).flatMap((v) =>
    v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : [],
  );
  return [...new Set(names)].filter((n) => !claim(n));
}

/**
 * Plans one round. `pods` are the VMI's launcher pods (owner reference to its uid); `dvGate` its DataVolumes' gate
 * (dataVolumesGate), absent without dataVolume volumes; `migratable` its LiveMigratable condition and migrationMethod
 * (controller/migration's migratability), written once the VMI is Scheduled: this controller is their one writer.
 */
export function planVmi(
  vmi: VirtualMachineInstance,
  all: Pod[],
  now: string,
  dvGate?: DataVolumesGate,
  migratable?: { condition: Condition; method: string },
  missing: readonly string[] = [],
): VmiPlan {
  const plan: VmiPlan = {
    createPod: false,
    deletePods: [],
    status: { ...(vmi.status ?? {}) },
    removeFinalizer: false,
    events: [],
  };
  const phase: VmiPhase = vmi.status?.phase ?? "";
  const final = isFinalPhase(phase);
  // A migration target pod (the migration controller's) is the VMI's pod only once the VMI runs on its node.
  const nodeName = vmi.status?.nodeName;
  const target = (p: Pod) =>
    p.metadata.labels?.[Migration.jobUidLabel] !== undefined && !(nodeName && p.spec.nodeName === nodeName);
  const pods = vmi.metadata.deletionTimestamp || final ? all : all.filter((p) => !target(p));
  const live = pods.filter((p) => !p.metadata.deletionTimestamp);

  // Deleted or finished: its pods go; once none is left the finalizer goes too.
  if (vmi.metadata.deletionTimestamp || final) {
    plan.deletePods = live.filter((p) => vmi.metadata.deletionTimestamp || !isTerminal(p) || final);
    if (vmi.metadata.deletionTimestamp && !final && pods.length === 0) {
      plan.status = { ...withPhase(plan.status, "Failed", now), reason: plan.status.reason ?? "Deleted" };
    }
    plan.removeFinalizer = all.length === 0 && (vmi.metadata.finalizers ?? []).includes(VMI_FINALIZER);
    return plan;
  }

  // The newest live pod is the launcher; a second one (a crash between create and cache) would be deleted.
  // (after a migration's handover: the pod on the VMI's node, the old source pod is the extra one)
  const onNode = (p: Pod) => (nodeName && p.spec.nodeName === nodeName ? 1 : 0);
  const sorted = [...pods].sort(
    (a, b) =>
      onNode(b) - onNode(a) || (b.metadata.creationTimestamp ?? "").localeCompare(a.metadata.creationTimestamp ?? ""),
  );
  const pod = sorted.find((p) => !p.metadata.deletionTimestamp) ?? sorted[0];
  if (live.length > 1) plan.deletePods = live.filter((p) => p !== pod);

  if (!plan.status.phaseTransitionTimestamps?.some((t) => t.phase === "Pending")) {
    const pending = vmi.metadata.creationTimestamp ?? now;
    plan.status = {
      ...plan.status,
      phaseTransitionTimestamps: [
        { phase: "Pending", phaseTransitionTimestamp: pending },
        ...(plan.status.phaseTransitionTimestamps ?? []),
      ],
    };
  }

  if (dvGate && phase !== "Running" && phase !== "Unknown") {
    plan.status.conditions = setCondition(plan.status.conditions, dvGate.condition, now);
  }
  // KubeVirt's: no launcher pod while a claim is missing (users or CDI may still be making it); it waits, and the
  // VM shows ErrorPvcNotFound. Once the claims exist the condition goes (the node agent owns Synchronized later).
  const pvcMissing = !pod && (phase === "" || phase === "Pending") && missing.length > 0;
  const prevSync = getCondition(plan.status.conditions, "Synchronized");
  if (pvcMissing) {
    const ns = vmi.metadata.namespace ?? "default";
    const message = missing.map((n) => `PVC ${ns}/${n} does not exist, waiting for it to appear`).join("; ");
    if (prevSync?.reason !== FAILED_PVC_NOT_FOUND || prevSync.message !== message)
      plan.events.push({ type: "Normal", reason: FAILED_PVC_NOT_FOUND, message });
    plan.status.conditions = setCondition(
      plan.status.conditions,
      { type: "Synchronized", status: "False", reason: FAILED_PVC_NOT_FOUND, message },
      now,
    );
  } else if (prevSync?.reason === FAILED_PVC_NOT_FOUND) {
    plan.status.conditions = (plan.status.conditions ?? []).filter((c) => c.type !== "Synchronized");
  }

  switch (phase) {
    case "":
    case "Pending":
    case "Scheduling": {
      if ((!pod && dvGate && !dvGate.podAllowed && phase !== "Scheduling") || pvcMissing) {
        plan.status = withPhase(plan.status, "Pending", now);
        return plan;
      }
      if (!pod) {
        if (phase === "Scheduling") {
          plan.status = { ...withPhase(plan.status, "Failed", now), reason: "PodNotExists" };
          plan.events.push({
            type: "Warning",
            reason: "FailedCreate",
            message: "The virt-launcher pod disappeared before the VMI was scheduled",
          });
          return plan;
        }
        // Scheduling means "the launcher pod exists": written only once the create succeeded.
        plan.createPod = true;
        plan.status = withPhase(withPhase(plan.status, "Pending", now), "Scheduling", now);
        return plan;
      }
      if (isTerminal(pod) || pod.metadata.deletionTimestamp) {
        plan.status = {
          ...withPhase(plan.status, "Failed", now),
          reason: pod.metadata.deletionTimestamp ? "PodTerminating" : "PodFailed",
        };
        return plan;
      }
      plan.status = withPhase(plan.status, "Scheduling", now);
      const sched = getCondition(pod.status?.conditions, "PodScheduled");
      if (sched && !pod.spec.nodeName) {
        const c: Condition = { type: "PodScheduled", status: sched.status };
        if (sched.reason) c.reason = sched.reason;
        if (sched.message) c.message = sched.message;
        plan.status.conditions = setCondition(plan.status.conditions, c, now);
      }
      if (podIsRunning(pod)) {
        plan.status = withPhase(plan.status, "Scheduled", now);
        plan.status.nodeName = pod.spec.nodeName!;
        plan.status.conditions = (plan.status.conditions ?? []).filter((c) => c.type !== "PodScheduled");
        plan.nodeName = pod.spec.nodeName!;
        // with the Scheduled write, so a VM start costs no extra update for it
        if (migratable) {
          plan.status.conditions = setCondition(plan.status.conditions, migratable.condition, now);
          plan.status.migrationMethod = migratable.method;
        }
      }
      break;
    }
    case "Scheduled":
    case "Running":
    case "Unknown": {
      if (!pod) {
        plan.status = { ...withPhase(plan.status, "Failed", now), reason: "PodNotExists" };
        plan.events.push({ type: "Warning", reason: "Stopped", message: "The virt-launcher pod no longer exists" });
        return plan;
      }
      if (pod.status?.phase === "Failed") {
        plan.status = { ...withPhase(plan.status, "Failed", now), reason: "PodFailed" };
        plan.events.push({
          type: "Warning",
          reason: "Stopped",
          message: `The virt-launcher pod failed: ${pod.status.reason ?? pod.status.message ?? "unknown reason"}`,
        });
        return plan;
      }
      if (pod.spec.nodeName && vmi.metadata.labels?.["kubevirt.io/nodeName"] === undefined)
        plan.nodeName = pod.spec.nodeName;
      if (migratable && phase !== "Unknown") {
        plan.status.conditions = setCondition(plan.status.conditions, migratable.condition, now);
        plan.status.migrationMethod = migratable.method;
      }
      break;
    }
    default:
      break;
  }

  // The gate matters once the pod runs (it only gates readiness). Written no earlier: an embedded node agent reports
  // Running with the gate already set, so a write while the pod is Pending would be one more write per VM start.
  if (pod?.spec.nodeName && pod.status?.phase === "Running" && !pod.metadata.deletionTimestamp) {
    const paused = getCondition(vmi.status?.conditions, "Paused")?.status === "True";
    const want: Condition = paused
      ? { type: READINESS_GATE, status: "False", reason: "PausedByUser" }
      : { type: READINESS_GATE, status: "True" };
    const have = getCondition(pod.status?.conditions, READINESS_GATE);
    if (!have || have.status !== want.status) plan.podGate = { pod, condition: want };
  }
  return plan;
}
