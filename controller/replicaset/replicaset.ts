// The VMI ReplicaSet reconciler: claim (adopt/release by owner references), scale with expectations so a crash or a
// slow cache never creates extras, then write status (replicas, readyReplicas, labelSelector, ReplicaFailure).

import { isDeepStrictEqual } from "node:util";
import { controllerRef } from "../../api/index.js";
import {
  type Client,
  type Informer,
  resources,
  type VirtualMachineInstance,
  type VirtualMachineInstanceReplicaSet,
} from "../../client/index.js";
import { isConflict, isNotFound } from "../../lib/errors.js";
import { forObject, type Logger } from "../../lib/log.js";
import type { ReconcileResult } from "../../lib/workqueue/index.js";
import { timestamp } from "../conditions.js";
import { Reasons, type Recorder } from "../events/index.js";
import type { Expectations } from "../expectations.js";
import { claimVmis, computeRsStatus, planReplicaSet, vmiFromRsTemplate } from "./plan.js";

/** At most this many creates or deletes per round, as KubeVirt's burstReplicas. */
export const BURST_REPLICAS = 250;

export interface RsDeps {
  client: Client;
  replicasets: Informer<VirtualMachineInstanceReplicaSet>;
  vmis: Informer<VirtualMachineInstance>;
  expectations: Expectations;
  recorder: Recorder;
  log: Logger;
  now: () => Date;
}

export async function reconcileReplicaSet(deps: RsDeps, key: string): Promise<ReconcileResult> {
  const rs = deps.replicasets.get(key);
  if (!rs) {
    deps.expectations.delete(key);
    return {};
  }
  if (!deps.expectations.satisfied(key)) return { requeueAfterMs: 5_000 };
  const log = forObject(deps.log, rs);
  const claim = claimVmis(rs, deps.vmis.list(rs.metadata.namespace));
  const ownerRef = controllerRef(rs, "kubevirt.io/v1", "VirtualMachineInstanceReplicaSet");
  for (const v of claim.adopt) {
    try {
      // The resourceVersion makes the adoption conditional: a VMI changed meanwhile is looked at again.
      await deps.client.patch(resources.vmis, v.metadata.namespace, v.metadata.name!, "merge", {
        metadata: {
          ownerReferences: [...(v.metadata.ownerReferences ?? []), ownerRef],
          resourceVersion: v.metadata.resourceVersion,
        },
      });
      claim.owned.push(v);
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
  for (const v of claim.release) {
    try {
      await deps.client.patch(resources.vmis, v.metadata.namespace, v.metadata.name!, "merge", {
        metadata: {
          ownerReferences: (v.metadata.ownerReferences ?? []).filter((r) => r.uid !== rs.metadata.uid),
          resourceVersion: v.metadata.resourceVersion,
        },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  const plan = planReplicaSet(rs, claim.owned);
  let failure: string | undefined;
  const creates = Math.min(plan.create, BURST_REPLICAS);
  if (creates > 0) {
    deps.expectations.expectCreations(key, creates);
    log.info("Scaling up", { create: creates });
    const results = await Promise.allSettled(
      Array.from({ length: creates }, () =>
        deps.client.create(resources.vmis, rs.metadata.namespace, vmiFromRsTemplate(rs)),
      ),
    );
    for (const r of results) {
      if (r.status === "fulfilled") {
        deps.recorder.event(
          rs,
          "Normal",
          Reasons.SuccessfulCreate,
          `Created virtual machine: ${r.value.metadata.name}`,
        );
      } else {
        deps.expectations.creationObserved(key);
        failure = (r.reason as Error).message;
        deps.recorder.event(rs, "Warning", Reasons.FailedCreate, `Error creating VMI: ${failure}`);
      }
    }
  }
  const deletes = plan.delete.slice(0, BURST_REPLICAS);
  if (deletes.length > 0) {
    deps.expectations.expectDeletions(key, deletes.length);
    log.info("Scaling down", { delete: deletes.length });
    await Promise.all(
      deletes.map(async (v) => {
        try {
          await deps.client.delete(resources.vmis, v.metadata.namespace, v.metadata.name!, {
            preconditions: { uid: v.metadata.uid! },
          });
          deps.recorder.event(
            rs,
            "Normal",
            Reasons.SuccessfulDelete,
            `Deleted finished virtual machine: ${v.metadata.uid}`,
          );
        } catch (err) {
          deps.expectations.deletionObserved(key);
          if (!isNotFound(err)) failure ??= (err as Error).message;
        }
      }),
    );
  }

  const status = computeRsStatus(rs, claim.owned, failure, timestamp(deps.now()));
  if (!isDeepStrictEqual(status, rs.status ?? {})) {
    try {
      await deps.client.updateStatus(resources.vmirs, { ...rs, status });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
  if (failure) throw new Error(failure);
  return {};
}
