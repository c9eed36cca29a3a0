// The DataVolume controller's decisions (storage contract §1-§3), pure: the DV's claim, the node an immediate-bind
// claim goes to, which worker pods to create or delete, when to retry, and the DV's status (phase, conditions with
// CDI's reasons, progress, restartCount) from the DV, its PVC and PV, the worker pod and the pod's termination
// message. The shell (controller.ts) reads caches, calls planDataVolume, and does what it says.

import type { DataVolumeCondition, DataVolumePhase, DataVolumeStatus } from "../../api/index.js";
import { nowRfc3339, StorageAnnotations, setCondition } from "../../api/index.js";
import type {
  PersistentVolumeClaim as Claim,
  StorageClass as Class,
  DataVolume,
  Pod,
  PersistentVolume as Volume,
} from "../../client/index.js";
import { claimSize, classOf, isWaitForFirstConsumer, noRoomMessage, volumeModeOf, volumeNode } from "../plan.js";
import {
  answers,
  CloneAnnotations,
  type ClonePods,
  type CloneRequest,
  cloneGate,
  clonePods,
  cloneRequestOf,
  cloneResultOf,
  formatCloneAnnotation,
} from "./clone.js";
import {
  DvAnnotations,
  dvOwnerRef,
  parseOutcome,
  renderCloneSourcePod,
  renderImporterPod,
  renderUploadPod,
  WORKER_APP,
  WORKER_APP_LABEL,
} from "./pods.js";

export type Operation = "Import" | "Upload" | "Clone";

/** What the DV does: a registry/http/blank source imports, upload uploads, pvc clones. */
export function operationOf(dv: DataVolume): Operation {
  const src = dv.spec.source ?? {};
  if (src.upload) return "Upload";
  if (src.pvc) return "Clone";
  return "Import";
}

/** CDI's controller for each operation: the `source.component` of a DV's events (GetEventRecorderFor(name)). */
export const DvComponents: Record<Operation, string> = {
  Import: "datavolume-import-controller",
  Upload: "datavolume-upload-controller",
  Clone: "datavolume-pvc-clone-controller",
};

// ---- §1 the claim ----

export type ClaimPlan = { ok: true; claim: Claim } | { ok: false; message: string };

/**
 * The DV's PVC: same namespace and name, a controller ownerReference to the DV, the DV's labels and annotations, and
 * the spec from `spec.pvc` as written or from `spec.storage` completed from the class (RWO, Filesystem, the class's
 * name; a clone without a size takes the source's). tsvirt-local adds no filesystem overhead: disk.img is the size.
 */
export function planClaimFor(dv: DataVolume, classes: readonly Class[], source?: Claim): ClaimPlan {
  const meta = {
    name: dv.metadata.name ?? "",
    namespace: dv.metadata.namespace ?? "",
    labels: { ...dv.metadata.labels, [WORKER_APP_LABEL]: WORKER_APP },
    ...(dv.metadata.annotations ? { annotations: { ...dv.metadata.annotations } } : {}),
    ownerReferences: [dvOwnerRef(dv)],
  };
  if (dv.spec.pvc) {
    return { ok: true, claim: { apiVersion: "v1", kind: "PersistentVolumeClaim", metadata: meta, spec: dv.spec.pvc } };
  }
  const st = dv.spec.storage;
  if (!st) return { ok: false, message: "spec.pvc or spec.storage is required" };
  let size = st.resources?.requests?.storage;
  if (size === undefined && dv.spec.source?.pvc) {
    size = source?.spec.resources?.requests?.storage ?? source?.status?.capacity?.storage;
    if (size === undefined) {
      const s = dv.spec.source.pvc;
      return { ok: false, message: `waiting for the clone source ${s.namespace}/${s.name} to take its size from` };
    }
  }
  if (size === undefined) return { ok: false, message: "spec.storage.resources.requests.storage is required" };
  const probe: Claim = {
    metadata: {},
    spec: st.storageClassName === undefined ? {} : { storageClassName: st.storageClassName },
  };
  const cls = classOf(probe, classes);
  const spec: Claim["spec"] = {
    accessModes: st.accessModes?.length ? ([...st.accessModes] as Claim["spec"]["accessModes"]) : ["ReadWriteOnce"],
    volumeMode: (st.volumeMode ?? "Filesystem") as Claim["spec"]["volumeMode"],
    resources: { ...(st.resources?.limits ? { limits: st.resources.limits } : {}), requests: { storage: size } },
  };
  const className = st.storageClassName ?? cls?.metadata.name;
  if (className !== undefined) spec.storageClassName = className;
  if (st.selector) spec.selector = st.selector;
  if (st.volumeName) spec.volumeName = st.volumeName;
  if (st.dataSource) spec.dataSource = st.dataSource;
  if (st.dataSourceRef) spec.dataSourceRef = st.dataSourceRef;
  return { ok: true, claim: { apiVersion: "v1", kind: "PersistentVolumeClaim", metadata: meta, spec } };
}

/** Whether the PVC is this DV's (its controller ownerReference names the DV's uid). */
export function ownsClaim(dv: DataVolume, pvc: Claim): boolean {
  return (pvc.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === dv.metadata.uid);
}

export function wantsImmediateBind(o: { metadata: { annotations?: Record<string, string> } }): boolean {
  return o.metadata.annotations?.[DvAnnotations.immediateBind] === "true";
}

/**
 * The node for an immediate-bind claim of `size` bytes: `prefer` (a clone's source node) when it has room, else the
 * node with the most free space that holds it (ties by name). `free`: each node's free bytes without this claim.
 */
export function chooseNode(size: number, free: ReadonlyMap<string, number>, prefer?: string): string | undefined {
  if (prefer !== undefined && (free.get(prefer) ?? -1) >= size) return prefer;
  let best: [string, number] | undefined;
  for (const [node, f] of [...free.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (f >= size && (!best || f > best[1])) best = [node, f];
  }
  return best?.[0];
}

// ---- retries ----

/** Backoff before the next worker after `restarts` failures: min(2^restarts s, 60 s). */
export function backoffMs(restarts: number): number {
  return Math.min(2 ** Math.max(0, restarts), 60) * 1000;
}

/** What the PVC's annotations say of the last worker failure. */
export interface FailureRecord {
  restarts: number;
  podUid?: string;
  at?: string;
  reason?: string;
  message?: string;
}

export function failureRecord(pvc: Claim | undefined): FailureRecord {
  const a = pvc?.metadata.annotations ?? {};
  const n = Number.parseInt(a[DvAnnotations.restarts] ?? "0", 10);
  const rec: FailureRecord = { restarts: Number.isFinite(n) && n > 0 ? n : 0 };
  if (a[DvAnnotations.lastFailedPod]) rec.podUid = a[DvAnnotations.lastFailedPod];
  if (a[DvAnnotations.lastFailedAt]) rec.at = a[DvAnnotations.lastFailedAt];
  if (a[DvAnnotations.runningReason]) rec.reason = a[DvAnnotations.runningReason];
  if (a[DvAnnotations.runningMessage] !== undefined) rec.message = a[DvAnnotations.runningMessage];
  return rec;
}

/** The PVC annotations recording one more counted failure. */
export function failureAnnotations(rec: Required<FailureRecord>): Record<string, string> {
  return {
    [DvAnnotations.restarts]: String(rec.restarts),
    [DvAnnotations.lastFailedPod]: rec.podUid,
    [DvAnnotations.lastFailedAt]: rec.at,
    [DvAnnotations.runningReason]: rec.reason,
    [DvAnnotations.runningMessage]: rec.message,
  };
}

// ---- the worker pod's state ----

export type WorkerState =
  | { kind: "none" }
  | { kind: "deleting" }
  | { kind: "pending"; reason: string; message: string }
  | { kind: "running"; ready: boolean }
  | { kind: "succeeded" }
  | { kind: "fatal"; reason: string; message: string }
  | { kind: "transient"; reason: string; message: string };

function terminated(pod: Pod) {
  return pod.status?.containerStatuses?.[0]?.state?.terminated;
}

/** One worker pod as the DV sees it: its phase plus the outcome line it left. */
export function workerState(pod: Pod | undefined): WorkerState {
  if (!pod) return { kind: "none" };
  if (pod.metadata.deletionTimestamp) return { kind: "deleting" };
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") {
    const t = terminated(pod);
    const out = parseOutcome(t?.message);
    if (phase === "Succeeded" && out?.outcome === "Succeeded") return { kind: "succeeded" };
    if (out?.outcome === "Failed" && out.fatal) return { kind: "fatal", reason: out.reason, message: out.message };
    if (out?.outcome === "Failed") return { kind: "transient", reason: "Error", message: out.message };
    const how = t
      ? `exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ""}${t.message ? `: ${t.message.trim()}` : ""}`
      : (pod.status?.message ?? pod.status?.reason ?? "no termination state");
    return {
      kind: "transient",
      reason: "Error",
      message:
        phase === "Succeeded"
          ? `the worker exited without its Succeeded line (${how})`
          : `the worker ended without an outcome: ${how}`,
    };
  }
  if (phase === "Running") {
    const ready = pod.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
    return { kind: "running", ready };
  }
  const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
  return { kind: "pending", reason: waiting?.reason ?? "Pending", message: waiting?.message ?? "" };
}

// ---- the plan ----

export interface DvInput {
  dv: DataVolume;
  /** The claim named like the DV (any owner). */
  pvc?: Claim;
  pv?: Volume;
  classes: readonly Class[];
  /** The DV's worker pod (importer-/cdi-upload-<dv>). */
  pod?: Pod;
  /**
   * A clone's source claim, its volume and the source pod; `pods`: the pods of the source's namespace (a clone waits
   * while one of them uses the source claim: storage/datavolume/clone.ts).
   */
  source?: { pvc?: Claim; pv?: Volume; pod?: Pod; pods?: readonly Pod[] };
  /** Free local bytes per node (storage/plan.ts), for immediate bind. */
  free: ReadonlyMap<string, number>;
  now: Date;
}

export type DvAction =
  | { kind: "createClaim"; claim: Claim }
  | { kind: "selectNode"; node: string }
  | { kind: "createPod"; pod: Pod }
  | { kind: "deletePod"; namespace: string; name: string; uid: string }
  /** Merge these annotations into the PVC (a counted worker failure). */
  | { kind: "annotateClaim"; annotations: Record<string, string> }
  /** Merge these annotations into the DV's PV (a same-node clone's request to the node). */
  | { kind: "annotateVolume"; name: string; annotations: Record<string, string> }
  | { kind: "event"; type: "Normal" | "Warning"; reason: string; message: string };

export interface DvPlan {
  actions: DvAction[];
  /** The DV's status after the actions (the shell writes it when it differs). */
  status: DataVolumeStatus;
  requeueAfterMs?: number;
}

const PHASES: Record<Operation, { scheduled: DataVolumePhase; running: DataVolumePhase }> = {
  Import: { scheduled: "ImportScheduled", running: "ImportInProgress" },
  Upload: { scheduled: "UploadScheduled", running: "UploadReady" },
  Clone: { scheduled: "CloneScheduled", running: "CloneInProgress" },
};

/** Retry of a DV waiting for room or a clone source (besides the retries cache events trigger). */
export const WAIT_RETRY_MS = 30_000;

/** A clone's preconditions (storage/datavolume/clone.ts): undefined when the source can be read now, else why not. */
export function cloneSourceProblem(dv: DataVolume, input: DvInput): string | undefined {
  const gate = cloneGate({ dv, target: input.pvc, targetPV: input.pv, source: input.source });
  return gate.ok ? undefined : gate.message;
}

function podRef(pod: Pod): { namespace: string; name: string; uid: string } {
  return { namespace: pod.metadata.namespace ?? "", name: pod.metadata.name ?? "", uid: pod.metadata.uid ?? "" };
}

/**
 * What the DV controller adds to the claim it creates, each saving a round later: the node of an immediate-bind claim
 * (chosen as it would be once the claim exists), and for a same-node-capable clone whose source can be read now the
 * clone request, which the provisioner copies to the PV so the node makes the volume as a copy at once. A request
 * annotation the user wrote on the DV is never passed on.
 */
function withClaimHints(claim: Claim, input: DvInput, op: Operation, attempt: number): Claim {
  const { dv } = input;
  const annotations = { ...claim.metadata.annotations };
  delete annotations[CloneAnnotations.request];
  delete annotations[CloneAnnotations.result];
  const srcPv = op === "Clone" ? input.source?.pv : undefined;
  if (
    wantsImmediateBind(dv) &&
    isWaitForFirstConsumer(classOf(claim, input.classes)) &&
    !annotations[StorageAnnotations.selectedNode]
  ) {
    const node = chooseNode(claimSize(claim), input.free, srcPv ? volumeNode(srcPv) : undefined);
    if (node) annotations[StorageAnnotations.selectedNode] = node;
  }
  // Only a claim headed to the source's node is cloned by that node: one pinned elsewhere (a cold migration's) is
  // streamed between the nodes by worker pods, and the hint would make the target node refuse a copy it cannot do.
  if (
    srcPv &&
    volumeModeOf(claim) !== "Block" &&
    annotations[StorageAnnotations.selectedNode] === volumeNode(srcPv) &&
    cloneGate({ dv, source: input.source }).ok
  ) {
    const req: CloneRequest = { uid: dv.metadata.uid ?? "", source: srcPv.metadata.name ?? "", attempt };
    annotations[CloneAnnotations.request] = formatCloneAnnotation(req);
  }
  return { ...claim, metadata: { ...claim.metadata, annotations } };
}

/** Everything the DV needs next. */
export function planDataVolume(input: DvInput): DvPlan {
  const { dv, pvc, now } = input;
  const op = operationOf(dv);
  const prev = dv.status ?? {};
  const actions: DvAction[] = [];
  const ts = nowRfc3339(now.getTime());
  const name = dv.metadata.name ?? "";
  const deletePods = (...pods: (Pod | undefined)[]) => {
    for (const p of pods) if (p && !p.metadata.deletionTimestamp) actions.push({ kind: "deletePod", ...podRef(p) });
  };
  const rec = failureRecord(pvc);
  let restartCount = Math.max(prev.restartCount ?? 0, rec.restarts);
  const ownClaim = pvc && ownsClaim(dv, pvc) ? pvc : undefined;

  let phase: DataVolumePhase = prev.phase || "Pending";
  let progress = prev.progress || "N/A";
  let running: Cond = { status: "False", reason: "", message: "" };
  let requeueAfterMs: number | undefined;
  const bound = boundCondition(ownClaim, name, prev.phase === "Succeeded" || prev.claimName !== undefined);
  /** Counts a transient failure once (`marker`: the failed pod's uid, or the node copy's attempt). */
  const countFailure = (marker: string, reason: string, message: string) => {
    if (rec.podUid === marker) return;
    restartCount += 1;
    actions.push({
      kind: "annotateClaim",
      annotations: failureAnnotations({ restarts: restartCount, podUid: marker, at: ts, reason, message }),
    });
    actions.push({ kind: "event", type: "Warning", reason: `Err${op}Failed`, message });
  };
  const finish = (): DvPlan => {
    const status = buildStatus(prev, {
      phase,
      progress,
      restartCount,
      claimName: ownClaim ? name : prev.claimName,
      bound,
      running,
      ts,
    });
    return { actions: [...actions, ...phaseEvents(dv, op, prev.phase, status)], status, requeueAfterMs };
  };

  if (dv.metadata.deletionTimestamp) return { actions: [], status: prev };

  // Terminal: a Succeeded DV never goes back; a Failed one waits for the user (delete and re-create).
  if (prev.phase === "Succeeded" || prev.phase === "Failed") {
    if (prev.phase === "Succeeded") {
      deletePods(input.pod, input.source?.pod);
      progress = "100.0%";
      running = { status: "False", reason: "Completed", message: "" };
    } else {
      deletePods(input.source?.pod); // keep the failed worker for its log
      const r = prev.conditions?.find((c) => c.type === "Running");
      running = { status: "False", reason: r?.reason ?? "", message: r?.message ?? "" };
    }
    return finish();
  }

  // ---- the claim ----
  if (pvc && !ownClaim) {
    actions.push({
      kind: "event",
      type: "Warning",
      reason: "ErrResourceExists",
      message: `Resource "${name}" already exists and is not managed by DataVolume`,
    });
    phase = "Pending";
    return finish();
  }
  if (!ownClaim || ownClaim.metadata.deletionTimestamp) {
    deletePods(input.pod, input.source?.pod);
    if (ownClaim) {
      phase = "Pending";
      return finish(); // the old claim goes first; then a new one
    }
    const plan = planClaimFor(dv, input.classes, input.source?.pvc);
    phase = "Pending";
    if (!plan.ok) {
      bound.message = plan.message;
      requeueAfterMs = WAIT_RETRY_MS;
      return finish();
    }
    actions.push({ kind: "createClaim", claim: withClaimHints(plan.claim, input, op, rec.restarts) });
    return finish();
  }
  if (ownClaim.status?.phase === "Lost") {
    deletePods(input.pod, input.source?.pod);
    actions.push({ kind: "event", type: "Warning", reason: "ErrClaimLost", message: `PVC ${name} lost` });
    phase = "Failed";
    running = { status: "False", reason: "ClaimLost", message: `PVC ${name} lost` };
    return finish();
  }
  const volumeName = ownClaim.spec.volumeName;
  if (!volumeName || ownClaim.status?.phase !== "Bound") {
    const cls = classOf(ownClaim, input.classes);
    const selected = ownClaim.metadata.annotations?.[StorageAnnotations.selectedNode];
    phase = "Pending";
    if (isWaitForFirstConsumer(cls) && !selected && !volumeName) {
      if (!wantsImmediateBind(dv) && !wantsImmediateBind(ownClaim)) {
        phase = "WaitForFirstConsumer";
        return finish();
      }
      const size = claimSize(ownClaim);
      const prefer = input.source?.pv ? volumeNode(input.source.pv) : undefined;
      const node = chooseNode(size, input.free, op === "Clone" ? prefer : undefined);
      if (!node) {
        const message = noRoomMessage(size, input.free);
        bound.message = message;
        actions.push({ kind: "event", type: "Warning", reason: "ErrNoRoom", message });
        requeueAfterMs = WAIT_RETRY_MS;
        return finish();
      }
      actions.push({ kind: "selectNode", node });
    }
    return finish();
  }
  const node = input.pv ? volumeNode(input.pv) : undefined;
  if (!node) {
    phase = "Pending";
    bound.message = input.pv ? `volume ${volumeName} is not node-local` : bound.message;
    return finish();
  }

  // ---- the worker pods ----
  const phases = PHASES[op];
  phase = phases.scheduled;
  const isClone = op === "Clone";
  // A clone: same node → the importer reads the source file (no source pod); other node → a source pod first.
  let clone: ClonePods | undefined;
  if (isClone) {
    const gate = cloneGate({ dv, target: ownClaim, targetPV: input.pv, source: input.source });
    if (!gate.ok) {
      deletePods(input.pod, input.source?.pod);
      const prevRunning = prev.conditions?.find((c) => c.type === "Running");
      if (prevRunning?.reason !== gate.reason) {
        actions.push({ kind: "event", type: "Warning", reason: gate.reason, message: gate.message });
      }
      running = { status: "False", reason: gate.reason, message: gate.message };
      requeueAfterMs = WAIT_RETRY_MS;
      return finish();
    }
    if (gate.onNode && input.pv && input.source?.pv) {
      // The node copies the file (no worker pod): ask on the target PV, read its answer there.
      deletePods(input.pod, input.source.pod);
      const want: CloneRequest = {
        uid: dv.metadata.uid ?? "",
        source: input.source.pv.metadata.name ?? "",
        attempt: rec.restarts,
      };
      const req = cloneRequestOf(input.pv);
      const current = req?.uid === want.uid && req.source === want.source && req.attempt === want.attempt;
      const res = cloneResultOf(input.pv);
      if (current && answers(res, req)) {
        if (res.outcome === "Succeeded") {
          phase = "Succeeded";
          progress = "100.0%";
          running = { status: "False", reason: "Completed", message: "" };
          return finish();
        }
        if (res.fatal) {
          phase = "Failed";
          running = { status: "False", reason: res.reason, message: res.message };
          return finish();
        }
        countFailure(`${want.uid}/attempt-${want.attempt}`, "Error", res.message);
        running = { status: "False", reason: "Error", message: res.message };
        requeueAfterMs = backoffMs(restartCount);
        return finish();
      }
      if (!current) {
        const wait = rec.restarts > 0 && rec.at ? Date.parse(rec.at) + backoffMs(rec.restarts) - now.getTime() : 0;
        if (wait > 0) {
          running = { status: "False", reason: rec.reason ?? "Error", message: rec.message ?? "" };
          requeueAfterMs = wait;
          return finish();
        }
        actions.push({
          kind: "annotateVolume",
          name: input.pv.metadata.name ?? "",
          annotations: { [CloneAnnotations.request]: formatCloneAnnotation(want) },
        });
      }
      phase = phases.running;
      progress = (current && input.pv.metadata.annotations?.[DvAnnotations.progress]) || "N/A";
      running = { status: "True", reason: "CloneInProgress", message: "the node copies the source volume" };
      return finish();
    }
    clone = clonePods(gate, input.source?.pod?.metadata.deletionTimestamp ? undefined : input.source?.pod);
    if (clone.sourcePod === "delete") deletePods(input.source?.pod);
  }
  const main = workerState(input.pod);
  const src =
    clone && clone.sourcePod !== "delete" ? workerState(input.source?.pod) : ({ kind: "none" } as WorkerState);
  const failed = [main, src].find((s) => s.kind === "fatal") ?? [main, src].find((s) => s.kind === "transient");

  if (failed?.kind === "fatal") {
    phase = "Failed";
    running = { status: "False", reason: failed.reason, message: failed.message };
    deletePods(input.source?.pod);
    return finish();
  }
  if (failed?.kind === "transient") {
    const failedPod = main.kind === "transient" ? input.pod : input.source?.pod;
    countFailure(failedPod?.metadata.uid ?? "", failed.reason, failed.message);
    deletePods(input.pod, input.source?.pod);
    running = { status: "False", reason: failed.reason, message: failed.message };
    requeueAfterMs = backoffMs(restartCount);
    return finish();
  }
  if (main.kind === "succeeded" && (!isClone || src.kind !== "fatal")) {
    phase = "Succeeded";
    progress = "100.0%";
    running = { status: "False", reason: "Completed", message: "" };
    deletePods(input.pod, input.source?.pod);
    return finish();
  }
  if (main.kind === "deleting" || src.kind === "deleting") {
    running = { status: "False", reason: "Pending", message: "waiting for the previous worker pod to go" };
    return finish();
  }

  // Missing pods: after the backoff of the last counted failure, (re)create them.
  if (main.kind === "none" || (clone?.sourcePod === "create" && src.kind === "none")) {
    if (rec.restarts > 0 && rec.at) {
      const wait = Date.parse(rec.at) + backoffMs(rec.restarts) - now.getTime();
      if (wait > 0) {
        running = { status: "False", reason: rec.reason ?? "Error", message: rec.message ?? "" };
        requeueAfterMs = wait;
        return finish();
      }
    }
    if (clone?.sourcePod === "create" && src.kind === "none" && input.source?.pvc && input.source.pv) {
      const srcNode = volumeNode(input.source.pv) ?? "";
      actions.push({ kind: "createPod", pod: renderCloneSourcePod(dv, input.source.pvc, srcNode) });
    }
    if (main.kind === "none" && clone && !clone.importer) {
      // The target connects to the source pod's IP: it starts once that pod serves (Ready).
      running = { status: "False", reason: "Pending", message: "waiting for the clone source pod to be ready" };
      return finish();
    }
    if (main.kind === "none") {
      const pod = op === "Upload" ? renderUploadPod(dv, ownClaim, node) : renderImporterPod(dv, ownClaim, node);
      actions.push({ kind: "createPod", pod });
      progress = "N/A";
    }
    running = { status: "False", reason: "Pending", message: "" };
    return finish();
  }

  if (main.kind === "pending") {
    running = { status: "False", reason: main.reason, message: main.message };
    return finish();
  }
  if (main.kind === "running") {
    running = { status: "True", reason: "Pod is running", message: "" };
    // An upload's is N/A until Succeeded, as CDI's (its upload controller reports none): the upload server takes
    // attempt after attempt, and the bytes of one refused or cut short are no progress of the volume.
    progress = op === "Upload" ? "N/A" : (input.pod?.metadata.annotations?.[DvAnnotations.progress] ?? "N/A");
    phase = op === "Upload" && !main.ready ? phases.scheduled : phases.running;
    return finish();
  }
  return finish();
}

// ---- status ----

interface Cond {
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

function boundCondition(pvc: Claim | undefined, name: string, hadClaim: boolean): Cond {
  if (!pvc || pvc.metadata.deletionTimestamp) {
    return hadClaim
      ? { status: "False", reason: "ClaimLost", message: `PVC ${name} lost` }
      : { status: "False", reason: "NotFound", message: "No PVC found" };
  }
  switch (pvc.status?.phase) {
    case "Bound":
      return { status: "True", reason: "Bound", message: `PVC ${name} Bound` };
    case "Lost":
      return { status: "False", reason: "ClaimLost", message: "Claim Lost" };
    default:
      return { status: "False", reason: "Pending", message: `PVC ${name} Pending` };
  }
}

function buildStatus(
  prev: DataVolumeStatus,
  s: {
    phase: DataVolumePhase;
    progress: string;
    restartCount: number;
    claimName: string | undefined;
    bound: Cond;
    running: Cond;
    ts: string;
  },
): DataVolumeStatus {
  const ready: Cond =
    s.phase === "Succeeded"
      ? { status: "True", reason: "", message: "" }
      : s.running.status === "True"
        ? { status: "False", reason: "TransferRunning", message: "" }
        : { status: "False", reason: "", message: "" };
  let conds = prev.conditions ?? [];
  for (const [type, c] of [
    ["Bound", s.bound],
    ["Running", s.running],
    ["Ready", ready],
  ] as const) {
    const old = conds.find((x) => x.type === type);
    const same = old && old.status === c.status && (old.reason ?? "") === c.reason && (old.message ?? "") === c.message;
    if (same) continue;
    const next: DataVolumeCondition = {
      type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastHeartbeatTime: s.ts,
    };
    conds = setCondition(conds, next, s.ts);
  }
  const out: DataVolumeStatus = {
    ...prev,
    phase: s.phase,
    progress: s.progress,
    restartCount: s.restartCount,
    conditions: conds,
  };
  if (s.claimName !== undefined) out.claimName = s.claimName;
  return out;
}

/** CDI's events for a phase change (ImportScheduled, ImportInProgress, ImportSucceeded, UploadReady, …). */
function phaseEvents(dv: DataVolume, op: Operation, from: string | undefined, to: DataVolumeStatus): DvAction[] {
  if (from === to.phase) return [];
  const pvc = dv.metadata.name ?? "";
  const src = dv.spec.source?.pvc;
  const what =
    op === "Clone"
      ? `Cloning from ${src?.namespace}/${src?.name} into ${dv.metadata.namespace}/${pvc}`
      : `${op} into ${pvc}`;
  const ev = (type: "Normal" | "Warning", reason: string, message: string): DvAction[] => [
    { kind: "event", type, reason, message },
  ];
  switch (to.phase) {
    case "Pending":
      return ev("Normal", "Pending", `PVC ${pvc} Pending`);
    case "WaitForFirstConsumer":
      return ev("Normal", "WaitForFirstConsumer", `PVC ${pvc} waits for its first consumer to select a node`);
    case "ImportScheduled":
    case "UploadScheduled":
    case "CloneScheduled":
      return ev("Normal", to.phase, `${what} scheduled`);
    case "ImportInProgress":
    case "CloneInProgress":
      return ev("Normal", to.phase, `${what} in progress`);
    case "UploadReady":
      return ev("Normal", "UploadReady", `Upload into ${pvc} ready`);
    case "Succeeded":
      return ev(
        "Normal",
        `${op}Succeeded`,
        op === "Import"
          ? `Successfully imported into PVC ${pvc}`
          : op === "Upload"
            ? `Successfully uploaded into ${pvc}`
            : `Successfully cloned from ${src?.namespace}/${src?.name} into ${dv.metadata.namespace}/${pvc}`,
      );
    case "Failed": {
      const r = to.conditions?.find((c) => c.type === "Running");
      return ev("Warning", `${op}Failed`, `${op} into ${pvc} failed: ${r?.message || r?.reason || "unknown"}`);
    }
    default:
      return [];
  }
}
