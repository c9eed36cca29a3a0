// The VMI reconciler: creates the launcher pod (found by owner reference first, with expectations, so a crash or a
// slow cache never makes a second one), moves the phase up to Scheduled, fails the VMI when its pod fails or goes,
// deletes pods of deleted/final VMIs and then removes the finalizer, and syncs the pod's readiness gate.

import { isDeepStrictEqual } from "node:util";
import { VMI_FINALIZER } from "../../api/index.js";
import {
  type Client,
  type DataVolume,
  type Informer,
  type PersistentVolumeClaim,
  type Pod,
  resources,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { isConflict, isNotFound } from "../../lib/errors.js";
import { forObject, type Logger } from "../../lib/log.js";
import type { ReconcileResult } from "../../lib/workqueue/index.js";
import { setCondition, timestamp } from "../conditions.js";
import { Reasons, type Recorder } from "../events/index.js";
import type { Expectations } from "../expectations.js";
import { migratability } from "../migration/migratable.js";
import { dataVolumesGate, missingClaims, planVmi } from "./plan.js";
import { isLauncherPodOf, LABEL_NODE_NAME, renderLauncherPod } from "./pod.js";

export const OWNER_INDEX = "owner";

export interface VmiDeps {
  client: Client;
  vmis: Informer<VirtualMachineInstance>;
  /** Launcher pods, indexed by owner uid under OWNER_INDEX. */
  pods: Informer<Pod>;
  expectations: Expectations;
  recorder: Recorder;
  log: Logger;
  now: () => Date;
  /** DataVolumes: the launcher pod waits for those of the VMI's dataVolume volumes (absent: no gate). */
  dvs?: Informer<DataVolume>;
  /** Claims: whether the VMI's PVCs are shared (LiveMigratable); absent: every claim counts as node-local. */
  claims?: Informer<PersistentVolumeClaim>;
}

export async function reconcileVmi(deps: VmiDeps, key: string): Promise<ReconcileResult> {
  const vmi = deps.vmis.get(key);
  if (!vmi) {
    deps.expectations.delete(key);
    return {};
  }
  if (!deps.expectations.satisfied(key)) return { requeueAfterMs: 5_000 };
  const log = forObject(deps.log, vmi);
  const pods = deps.pods.byIndex(OWNER_INDEX, vmi.metadata.uid ?? "").filter((p) => isLauncherPodOf(p, vmi));
  const now = timestamp(deps.now());
  const dvs = deps.dvs;
  const gate = dvs ? dataVolumesGate(vmi, (n) => dvs.get(`${vmi.metadata.namespace}/${n}`)) : undefined;
  const claims = deps.claims;
  const migratable = migratability(vmi, (n) => claims?.get(`${vmi.metadata.namespace}/${n}`));
  // a claims informer that never ran (no storage, no scheduler) knows of no claim: then nothing is "missing"
  const missing = claims?.hasSynced() ? missingClaims(vmi, (n) => claims.get(`${vmi.metadata.namespace}/${n}`)) : [];
  const plan = planVmi(vmi, pods, now, gate, migratable, missing);

  for (const pod of plan.deletePods) {
    deps.expectations.expectDeletions(key);
    try {
      await deps.client.delete(resources.pods, pod.metadata.namespace, pod.metadata.name!, {
        preconditions: { uid: pod.metadata.uid! },
      });
      deps.recorder.event(vmi, "Normal", Reasons.SuccessfulDelete, `Deleted virtual machine pod ${pod.metadata.name}`);
    } catch (err) {
      deps.expectations.deletionObserved(key);
      if (!isNotFound(err)) throw err;
    }
  }

  if (plan.createPod) {
    deps.expectations.expectCreations(key);
    try {
      const pod = await deps.client.create(resources.pods, vmi.metadata.namespace, renderLauncherPod(vmi));
      log.info("Created launcher pod", { pod: pod.metadata.name });
      deps.recorder.event(vmi, "Normal", Reasons.SuccessfulCreate, `Created virtual machine pod ${pod.metadata.name}`);
    } catch (err) {
      deps.expectations.creationObserved(key);
      deps.recorder.event(vmi, "Warning", Reasons.FailedCreate, `Error creating pod: ${(err as Error).message}`);
      throw err;
    }
  }

  for (const e of plan.events) deps.recorder.event(vmi, e.type, e.reason, e.message);

  if (plan.podGate) {
    const { pod, condition } = plan.podGate;
    const conditions = setCondition(pod.status?.conditions, condition, now);
    try {
      await deps.client.updateStatus(resources.pods, { ...pod, status: { ...pod.status, conditions } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  // The VMI has no status subresource: status, the nodeName label and the finalizer go in one update.
  const next: VirtualMachineInstance = { ...vmi, metadata: { ...vmi.metadata }, status: plan.status };
  if (plan.nodeName !== undefined && vmi.metadata.labels?.[LABEL_NODE_NAME] !== plan.nodeName) {
    next.metadata.labels = { ...(vmi.metadata.labels ?? {}), [LABEL_NODE_NAME]: plan.nodeName };
  }
  if (plan.removeFinalizer)
    next.metadata.finalizers = (vmi.metadata.finalizers ?? []).filter((f) => f !== VMI_FINALIZER);
  if (!isDeepStrictEqual(next, vmi)) {
    try {
      await deps.client.update(resources.vmis, next);
      if (plan.status.phase !== vmi.status?.phase)
        log.info("VMI phase", { from: vmi.status?.phase ?? "", to: plan.status.phase });
    } catch (err) {
      if (isNotFound(err)) return {};
      // A newer version exists; its watch event queues this key again.
      if (isConflict(err)) return {};
      throw err;
    }
  }
  return {};
}
