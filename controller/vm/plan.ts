// The VM controller's thinking, pure: what to do with the VMI (create / delete / nothing) under the run strategy and
// the pending state-change requests, the VMI to create from the template, and the VM status that results.

import { ColdMigration, controllerRef, RetainedDisks } from "../../api/index.js";
import type {
  Condition,
  PrintableStatus,
  RunStrategy,
  StateChangeRequest,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineStatus,
} from "../../client/index.js";
import { getCondition, setCondition } from "../conditions.js";
import { isFinal, runStrategyOf } from "../lifecycle/index.js";
import { type DiskFacts, diskConditions } from "./disks.js";

export type VmAction = "create" | "delete" | "none";

/** virt-controller's finalizer on every VM it syncs: a deleted VM stays (Terminating) until its VMI is gone. */
export const VM_FINALIZER = "kubevirt.io/virtualMachineControllerFinalize";
/** The garbage collector's finalizer of a deletion with propagationPolicy=Orphan (Kubernetes' apiserver adds it). */
export const ORPHAN_FINALIZER = "orphan";

export type FinalizerAction = "add" | "remove" | "none";

/**
 * KubeVirt's vm.go sync: a live VM gets the finalizer; a deleted one keeps it until it has no VMI of its own, or at
 * once when its dependents are orphaned (the VMI stays, the garbage collector drops its ownerReference).
 */
export function planVmFinalizer(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): FinalizerAction {
  const finalizers = vm.metadata.finalizers ?? [];
  const has = finalizers.includes(VM_FINALIZER);
  if (!vm.metadata.deletionTimestamp) return has ? "none" : "add";
  if (!has) return "none";
  return vmi === undefined || finalizers.includes(ORPHAN_FINALIZER) ? "remove" : "none";
}

/**
 * The VM's finalizer list after this round. Live: KubeVirt's finalizer, and tsvirt's retain-disks one while the VM
 * keeps its disks when deleted (`retain`). Deleted: retain-disks goes (the caller released the disks first, or they
 * go with the VM), KubeVirt's as planVmFinalizer says.
 */
export function nextFinalizers(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, retain: boolean): string[] {
  const cur = vm.metadata.finalizers ?? [];
  if (!vm.metadata.deletionTimestamp) {
    const next = cur.filter((f) => f !== RetainedDisks.finalizer);
    if (!next.includes(VM_FINALIZER)) next.push(VM_FINALIZER);
    if (retain) next.push(RetainedDisks.finalizer);
    // keep the order as it is when nothing changes (no write)
    return next.length === cur.length && next.every((f) => cur.includes(f)) ? [...cur] : next;
  }
  const next = cur.filter((f) => f !== RetainedDisks.finalizer);
  return planVmFinalizer(vm, vmi) === "remove" ? next.filter((f) => f !== VM_FINALIZER) : next;
}

/**
 * KubeVirt's startVMI waits for the VM's DataVolumes ("Waiting on DataVolumes to be ready"): a create is held (a
 * Start request it would consume stays queued) until each template DataVolume is the VM's own and Succeeded or
 * waiting for its first consumer (the launcher pod).
 */
export function holdForDisks(plan: VmPlan, disks: Pick<DiskFacts, "startable"> | undefined): VmPlan {
  if (!disks || disks.startable) return plan;
  return held(plan, "waiting for DataVolumes");
}

/** A create held back: nothing happens this round and a Start request it would consume stays queued. */
function held(plan: VmPlan, why: string): VmPlan {
  if (plan.action !== "create") return plan;
  const out: VmPlan = { ...plan, action: "none", why, startPaused: false };
  if (plan.consumed) out.requests = [plan.consumed, ...plan.requests];
  delete out.consumed;
  return out;
}

/** Whether a cold migration holds the VM (its disks are being copied to another node: controller/coldmigration). */
export function coldMigrating(vm: VirtualMachine): boolean {
  return getCondition(vm.status?.conditions, ColdMigration.condition)?.status === "True";
}

/** A start waits while a cold migration copies the VM's disks (it resumes on the new disks once they are swapped). */
export function holdForColdMigration(plan: VmPlan, vm: VirtualMachine): VmPlan {
  return coldMigrating(vm) ? held(plan, "waiting for the cold migration") : plan;
}

export interface VmPlan {
  action: VmAction;
  /** stateChangeRequests left after this round. */
  requests: StateChangeRequest[];
  runStrategy: RunStrategy;
  /** Create the VMI paused (a Start request with startPaused). */
  startPaused: boolean;
  why: string;
  /** The Start request this round consumed, if any. */
  consumed?: StateChangeRequest;
  /** status.startFailure after this round (crash-loop back-off); undefined clears it. */
  startFailure?: NonNullable<VirtualMachineStatus["startFailure"]>;
  /** Set while a start is held back by the crash-loop back-off: come back then. */
  requeueAfterMs?: number;
}

/** KubeVirt's crash-loop back-off (vm.go calculateStartBackoffTime): max(10, 300/30)·n² + rand(0..delay/2), ≤ 300 s. */
export const MAX_CRASH_LOOP_BACKOFF_S = 300;
export function crashLoopDelaySeconds(failCount: number, random: number): number {
  const base = Math.max(10, MAX_CRASH_LOOP_BACKOFF_S / 30) * failCount * failCount;
  return Math.min(MAX_CRASH_LOOP_BACKOFF_S, base + Math.floor(random * (base / 2)));
}

export interface PlanClock {
  nowMs: number;
  /** In [0, 1): the jitter of the back-off. */
  random: number;
}

/** planVmCore plus the crash-loop back-off: a failed VMI's restart waits, and the wait grows with each failure. */
export function planVm(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  clock: PlanClock = { nowMs: Date.now(), random: Math.random() },
): VmPlan {
  const p = planVmCore(vm, vmi);
  let sf = vm.status?.startFailure;
  if (p.runStrategy !== "Always" && p.runStrategy !== "RerunOnFailure") sf = undefined;
  if (vmi?.status?.phase === "Running") sf = undefined;
  const restartingFailed = p.action === "delete" && vmi?.status?.phase === "Failed" && /restart|rerun/.test(p.why);
  if (restartingFailed && vmi?.metadata.uid !== sf?.lastFailedVMIUID) {
    const n = (sf?.consecutiveFailCount ?? 0) + 1;
    const delay = crashLoopDelaySeconds(n, clock.random);
    sf = {
      consecutiveFailCount: n,
      lastFailedVMIUID: vmi?.metadata.uid ?? "",
      retryAfterTimestamp: new Date(clock.nowMs + delay * 1000).toISOString().replace(/\.\d+Z$/, "Z"),
    };
  }
  const out: VmPlan = { ...p };
  if (sf) out.startFailure = sf;
  else delete out.startFailure;
  const until = sf?.retryAfterTimestamp ? Date.parse(sf.retryAfterTimestamp) : Number.NaN;
  if (p.action === "create" && until > clock.nowMs) {
    out.action = "none";
    out.why = "crash-loop back-off";
    out.requeueAfterMs = until - clock.nowMs;
    out.startPaused = false;
    if (p.consumed) out.requests = [p.consumed, ...p.requests];
  }
  return out;
}

function deleting(vmi: VirtualMachineInstance | undefined): boolean {
  return vmi?.metadata.deletionTimestamp !== undefined;
}

/** Decides the VMI action for one reconcile; `vmi` is the VM's own VMI (same name, controlled by it) if any. */
function planVmCore(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): VmPlan {
  const runStrategy = runStrategyOf(vm);
  let requests = [...(vm.status?.stateChangeRequests ?? [])];
  // A Stop request is satisfied once the VMI it names (or any VMI, if it names none) is gone.
  const head = requests[0];
  if (head?.action === "Stop" && (vmi === undefined || (head.uid !== undefined && head.uid !== vmi.metadata.uid))) {
    requests = requests.slice(1);
  }
  // A Start request is satisfied once a live VMI exists (a crash between creating it and writing status).
  if (requests[0]?.action === "Start" && vmi && !isFinal(vmi) && !deleting(vmi)) requests = requests.slice(1);
  const plan = (action: VmAction, why: string, consumeStart = false): VmPlan => {
    let startPaused = false;
    let reqs = requests;
    let consumed: StateChangeRequest | undefined;
    if (consumeStart && reqs[0]?.action === "Start") {
      consumed = reqs[0];
      startPaused = consumed.data?.startPaused === "true";
      reqs = reqs.slice(1);
    }
    const out: VmPlan = { action, requests: reqs, runStrategy, startPaused, why };
    if (consumed) out.consumed = consumed;
    return out;
  };
  const first = requests[0];

  if (vm.metadata.deletionTimestamp) {
    if ((vm.metadata.finalizers ?? []).includes(ORPHAN_FINALIZER)) return plan("none", "VM is being deleted: orphan");
    return vmi && !deleting(vmi) ? plan("delete", "VM is being deleted") : plan("none", "VM is being deleted");
  }
  if (first?.action === "Stop" && vmi) {
    return deleting(vmi) ? plan("none", "stop request: VMI terminating") : plan("delete", "stop request");
  }
  const firstTime = vm.status?.runStrategy !== runStrategy;
  switch (runStrategy) {
    case "Halted":
      return vmi && !deleting(vmi) ? plan("delete", "runStrategy Halted") : plan("none", "halted");
    case "Always":
      if (!vmi) return plan("create", "runStrategy Always", true);
      if (isFinal(vmi) && !deleting(vmi)) return plan("delete", `VMI ${vmi.status?.phase}: restart (Always)`);
      return plan("none", "running");
    case "RerunOnFailure":
      if (!vmi) {
        if (first?.action === "Start") return plan("create", "start request", true);
        return firstTime ? plan("create", "runStrategy RerunOnFailure") : plan("none", "stopped");
      }
      if (vmi.status?.phase === "Failed" && !deleting(vmi)) {
        return {
          ...plan("delete", "VMI Failed: rerun (RerunOnFailure)"),
          requests: [...requests, { action: "Start" }],
        };
      }
      return plan("none", vmi.status?.phase === "Succeeded" ? "VMI Succeeded: not rerun" : "running");
    case "Manual":
      if (!vmi && first?.action === "Start") return plan("create", "start request", true);
      return plan("none", vmi ? "running" : "stopped");
    case "Once":
      if (!vmi && firstTime) return plan("create", "runStrategy Once");
      return plan("none", vmi ? "ran once" : "stopped");
    case "WaitAsReceiver":
      return plan("none", "waiting for an incoming migration");
  }
}

/** The VMI the VM controller creates: named as the VM, from its template, controlled by it. */
export function vmiFromTemplate(vm: VirtualMachine, startPaused: boolean): VirtualMachineInstance {
  const t = vm.spec.template;
  const spec = structuredClone(t.spec!); // admission refuses a VM without template.spec
  if (startPaused) spec.startStrategy = "Paused";
  const vmi: VirtualMachineInstance = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: {
      name: vm.metadata.name!,
      namespace: vm.metadata.namespace!,
      labels: { ...(t.metadata?.labels ?? {}) },
      annotations: { ...(t.metadata?.annotations ?? {}) },
      ownerReferences: [controllerRef(vm, "kubevirt.io/v1", "VirtualMachine")],
    },
    spec,
  };
  if (vm.metadata.generation !== undefined) {
    vmi.metadata.annotations!["kubevirt.io/vm-generation"] = String(vm.metadata.generation);
  }
  return vmi;
}

function hasReason(vmi: VirtualMachineInstance, reason: string): boolean {
  return (vmi.status?.conditions ?? []).some((c) => c.status !== "True" && c.reason === reason);
}

/**
 * Whether the VM is meant to run now (KubeVirt's isSetToStart), for WaitingForVolumeBinding; admission asks it of a
 * VM without VMI (a VM about to start is no cold-migration candidate).
 */
export function setToStart(
  vmi: VirtualMachineInstance | undefined,
  requests: readonly StateChangeRequest[],
  runStrategy: RunStrategy,
): boolean {
  if (vmi && !isFinal(vmi)) return true;
  if (requests[0]?.action === "Start") return true;
  return runStrategy === "Always" || (runStrategy === "RerunOnFailure" && vmi?.status?.phase !== "Succeeded");
}

/**
 * status.printableStatus in KubeVirt's precedence order (kubevirt-lifecycle-2.md §7); first match wins. `disks`:
 * what the VM's DataVolumes and claims say (disks.ts diskFacts).
 */
export function printableStatus(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  requests: readonly StateChangeRequest[],
  runStrategy: RunStrategy,
  crashLoop = false,
  disks?: Pick<DiskFacts, "error" | "provisioning" | "unbound">,
): PrintableStatus {
  const active = vmi !== undefined && !isFinal(vmi);
  if (vm.metadata.deletionTimestamp) return "Terminating";
  if (active && (deleting(vmi) || requests[0]?.action === "Stop" || runStrategy === "Halted")) return "Stopping";
  if (
    active &&
    vmi.status?.migrationState &&
    !vmi.status.migrationState.completed &&
    !vmi.status.migrationState.failed
  ) {
    return "Migrating";
  }
  if (!active && coldMigrating(vm)) return "Migrating";
  if (active && getCondition(vmi.status?.conditions, "Paused")?.status === "True") return "Paused";
  if (active && vmi.status?.phase === "Running") return "Running";
  if (active && hasReason(vmi, "FailedPvcNotFound")) return "ErrorPvcNotFound";
  if (disks?.error) return "DataVolumeError";
  if (active) {
    const sched = getCondition(vmi.status?.conditions, "PodScheduled");
    if (sched?.status === "False" && sched.reason === "Unschedulable") return "ErrorUnschedulable";
  }
  if (disks?.provisioning) return "Provisioning";
  if (disks?.unbound && setToStart(vmi, requests, runStrategy)) return "WaitingForVolumeBinding";
  if (active) {
    if (hasReason(vmi, "ErrImagePull")) return "ErrImagePull";
    if (hasReason(vmi, "ImagePullBackOff")) return "ImagePullBackOff";
    return "Starting";
  }
  if (crashLoop) return "CrashLoopBackOff";
  if (runStrategy === "WaitAsReceiver") return "WaitingForReceiver";
  return "Stopped";
}

/** The VM status after this round: printable status, created/ready, Ready/Paused mirrored from the VMI. */
export function computeVmStatus(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  plan: Pick<VmPlan, "requests" | "runStrategy" | "startFailure" | "requeueAfterMs">,
  now: string,
  disks?: DiskFacts,
): VirtualMachineStatus {
  const cur = vm.status ?? {};
  const active = vmi !== undefined && !isFinal(vmi);
  const status: VirtualMachineStatus = { ...cur };
  // KubeVirt (isVirtualMachineStatusCrashLoopBackOff): a VM that will restart its failed VMI shows CrashLoopBackOff
  // from the round that notices the failure on, not a transient Stopped before the back-off is scheduled.
  const willRestart =
    plan.runStrategy === "Always"
      ? !active
      : plan.runStrategy === "RerunOnFailure" && vmi?.status?.phase !== "Succeeded";
  const restarting = (plan.startFailure?.consecutiveFailCount ?? 0) > 0 && willRestart && !active;
  status.printableStatus = printableStatus(
    vm,
    vmi,
    plan.requests,
    plan.runStrategy,
    plan.requeueAfterMs !== undefined || restarting,
    disks,
  );
  if (plan.startFailure) status.startFailure = plan.startFailure;
  else delete status.startFailure;
  status.runStrategy = plan.runStrategy;
  if (plan.requests.length > 0) status.stateChangeRequests = plan.requests;
  else delete status.stateChangeRequests;
  const vmiReady = getCondition(vmi?.status?.conditions, "Ready");
  const ready = active && vmiReady?.status === "True";
  if (vmi) status.created = true;
  else delete status.created;
  if (ready) status.ready = true;
  else delete status.ready;
  let conds: Condition[] = [...(cur.conditions ?? [])];
  if (!vmi) {
    conds = setCondition(
      conds,
      { type: "Ready", status: "False", reason: "VMINotExists", message: "VMI does not exist" },
      now,
    );
  } else if (!active) {
    conds = setCondition(
      conds,
      { type: "Ready", status: "False", reason: "VMINotExists", message: "VMI is in a final phase" },
      now,
    );
  } else if (vmiReady) {
    const mirrored: Condition = { type: "Ready", status: vmiReady.status };
    if (vmiReady.reason) mirrored.reason = vmiReady.reason;
    if (vmiReady.message) mirrored.message = vmiReady.message;
    conds = setCondition(conds, mirrored, now);
  } else {
    conds = setCondition(
      conds,
      { type: "Ready", status: "False", reason: "PodNotReady", message: "VMI is not ready yet" },
      now,
    );
  }
  const paused = active ? getCondition(vmi.status?.conditions, "Paused") : undefined;
  conds = paused ? setCondition(conds, { ...paused }, now) : conds.filter((c) => c.type !== "Paused");
  // KubeVirt's Failure condition: why the VMI failed (virt-handler's Synchronized=False) stays on the VM through the
  // crash-loop back-off, when the VMI itself is gone, until a VMI runs again.
  const syncFailed = getCondition(vmi?.status?.conditions, "Synchronized");
  if (syncFailed?.status === "False") {
    conds = setCondition(
      conds,
      { type: "Failure", status: "True", reason: syncFailed.reason ?? "SyncFailed", message: syncFailed.message ?? "" },
      now,
    );
  } else if (active && vmi.status?.phase === "Running") {
    conds = conds.filter((c) => c.type !== "Failure");
  }
  if (disks) {
    const dc = diskConditions(
      disks,
      (vm.spec.template.spec?.volumes ?? []).some((v) => v.dataVolume),
    );
    conds = conds.filter((c) => !dc.clear.includes(c.type));
    for (const c of dc.set) conds = setCondition(conds, c, now);
  }
  status.conditions = conds;
  if (vm.metadata.generation !== undefined) status.observedGeneration = vm.metadata.generation;
  return status;
}
