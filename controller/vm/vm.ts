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
import { isAlreadyExists, isConflict, isNotFound } from "../../lib/errors.js";
import { forObject, type Logger } from "../../lib/log.js";
import type { ReconcileResult } from "../../lib/workqueue/index.js";
import { timestamp } from "../conditions.js";
import { Reasons, type Recorder } from "../events/index.js";
import type { Expectations } from "../expectations.js";
import {
  computeVmStatus,
  type FinalizerAction,
  planVm,
  planVmFinalizer,
  VM_FINALIZER,
  vmiFromTemplate,
} from "./plan.js";

export interface VmDeps {
  client: Client;
  vms: Informer<VirtualMachine>;
  vmis: Informer<VirtualMachineInstance>;
  expectations: Expectations;
  recorder: Recorder;
  log: Logger;
  now: () => Date;
}

/**
 * The VM's own VMI: same name, and controlled by this VM (or not controlled by anything, unless the VM is being
 * deleted: a VM being deleted adopts nothing, so a VMI orphaned by its deletion is not its own).
 */
export function ownVmi(vm: VirtualMachine, vmis: Informer<VirtualMachineInstance>): VirtualMachineInstance | undefined {
  const vmi = vmis.get(keyOf(vm));
  if (!vmi) return undefined;
  const ctrl = vmi.metadata.ownerReferences?.find((r) => r.controller);
  if (ctrl && ctrl.uid !== vm.metadata.uid) return undefined;
  if (!ctrl && vm.metadata.deletionTimestamp) return undefined;
  return vmi;
}

/** JSON patch of the finalizer list, tested against the cached list (KubeVirt's getPatchFinalizerOps). */
async function patchFinalizer(deps: VmDeps, vm: VirtualMachine, action: FinalizerAction): Promise<VirtualMachine> {
  const cur = vm.metadata.finalizers;
  const next = action === "add" ? [...(cur ?? []), VM_FINALIZER] : (cur ?? []).filter((f) => f !== VM_FINALIZER);
  return deps.client.patch<VirtualMachine>(resources.vms, vm.metadata.namespace, vm.metadata.name!, "json", [
    { op: "test", path: "/metadata/finalizers", value: cur ?? null },
    { op: "add", path: "/metadata/finalizers", value: next },
  ]);
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
  // The finalizer goes on in the VM's first round (one write per VM, not per start) and comes off once the VMI is
  // gone; the VM then disappears, so no status is written after it.
  const finalizer = planVmFinalizer(vm, vmi);
  if (finalizer === "remove") {
    try {
      await patchFinalizer(deps, vm, "remove");
      log.info("Removed the VM finalizer", { vmi: vmi ? "orphaned" : "gone" });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return {};
  }
  let current = vm;
  if (finalizer === "add") current = await patchFinalizer(deps, vm, "add");
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
    // A deleted VM's VMI is deleted only as the cache shows it: a VMI orphaned meanwhile (propagationPolicy=Orphan
    // drops its ownerReference) has a newer resourceVersion, so the delete fails and the next round sees the orphan.
    const preconditions: { uid: string; resourceVersion?: string } = { uid: vmi.metadata.uid! };
    if (vm.metadata.deletionTimestamp && vmi.metadata.resourceVersion) {
      preconditions.resourceVersion = vmi.metadata.resourceVersion;
    }
    try {
      await deps.client.delete(resources.vmis, vmi.metadata.namespace, vmi.metadata.name!, { preconditions });
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
      if (vm.metadata.deletionTimestamp && isConflict(err)) {
        failure = err; // a stale cache: retried with a fresh one, no FailedDelete event
      } else if (!isNotFound(err)) {
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
      await deps.client.updateStatus(resources.vms, { ...current, status });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  if (failure) throw failure;
  return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : {};
}
