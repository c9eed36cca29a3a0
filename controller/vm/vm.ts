// The VM reconciler: level-triggered, keyed by namespace/name. Reads the VM and its VMI from the caches, plans
// (pure), applies the one VMI action, then writes the status if it changed.

import { isDeepStrictEqual } from "node:util";
import {
  type Client,
  type Informer,
  keyOf,
  resources,
  type VirtualMachine,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { isAlreadyExists, isNotFound } from "../../lib/errors.js";
import { forObject, type Logger } from "../../lib/log.js";
import type { ReconcileResult } from "../../lib/workqueue/index.js";
import { timestamp } from "../conditions.js";
import { Reasons, type Recorder } from "../events/index.js";
import type { Expectations } from "../expectations.js";
import { computeVmStatus, planVm, vmiFromTemplate } from "./plan.js";

export interface VmDeps {
  client: Client;
  vms: Informer<VirtualMachine>;
  vmis: Informer<VirtualMachineInstance>;
  expectations: Expectations;
  recorder: Recorder;
  log: Logger;
  now: () => Date;
}

/** The VM's own VMI: same name, and controlled by this VM (or not controlled by anything). */
export function ownVmi(vm: VirtualMachine, vmis: Informer<VirtualMachineInstance>): VirtualMachineInstance | undefined {
  const vmi = vmis.get(keyOf(vm));
  if (!vmi) return undefined;
  const ctrl = vmi.metadata.ownerReferences?.find((r) => r.controller);
  if (ctrl && ctrl.uid !== vm.metadata.uid) return undefined;
  return vmi;
}

export async function reconcileVm(deps: VmDeps, key: string): Promise<ReconcileResult> {
  const vm = deps.vms.get(key);
  if (!vm) {
    deps.expectations.delete(key);
    return {};
  }
  if (!deps.expectations.satisfied(key)) return { requeueAfterMs: 5_000 };
  const log = forObject(deps.log, vm);
  let vmi = ownVmi(vm, deps.vmis);
  const plan = planVm(vm, vmi, { nowMs: deps.now().getTime(), random: Math.random() });
  let failure: unknown;

  if (plan.action === "create") {
    const want = vmiFromTemplate(vm, plan.startPaused);
    deps.expectations.expectCreations(key);
    try {
      vmi = await deps.client.create(resources.vmis, vm.metadata.namespace, want);
      log.info("Created VMI", { why: plan.why, vmiUid: vmi.metadata.uid });
      deps.recorder.event(
        vm,
        "Normal",
        Reasons.SuccessfulCreate,
        `Started the virtual machine by creating the new virtual machine instance ${want.metadata.name}`,
      );
    } catch (err) {
      deps.expectations.creationObserved(key);
      if (!isAlreadyExists(err)) {
        failure = err;
        deps.recorder.event(
          vm,
          "Warning",
          Reasons.FailedCreate,
          `Error creating virtual machine instance: ${(err as Error).message}`,
        );
      }
    }
  } else if (plan.action === "delete" && vmi) {
    deps.expectations.expectDeletions(key);
    try {
      await deps.client.delete(resources.vmis, vmi.metadata.namespace, vmi.metadata.name!, {
        preconditions: { uid: vmi.metadata.uid! },
      });
      log.info("Deleted VMI", { why: plan.why, vmiUid: vmi.metadata.uid });
      deps.recorder.event(
        vm,
        "Normal",
        Reasons.SuccessfulDelete,
        `Stopped the virtual machine by deleting the virtual machine instance ${vmi.metadata.uid}`,
      );
      vmi = { ...vmi, metadata: { ...vmi.metadata, deletionTimestamp: timestamp(deps.now()) } };
    } catch (err) {
      deps.expectations.deletionObserved(key);
      if (!isNotFound(err)) {
        failure = err;
        deps.recorder.event(
          vm,
          "Warning",
          Reasons.FailedDelete,
          `Error deleting virtual machine instance: ${(err as Error).message}`,
        );
      }
    }
  }

  const status = computeVmStatus(vm, vmi, plan, timestamp(deps.now()));
  if (!isDeepStrictEqual(status, vm.status ?? {})) {
    try {
      await deps.client.updateStatus(resources.vms, { ...vm, status });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  if (failure) throw failure;
  return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : {};
}
