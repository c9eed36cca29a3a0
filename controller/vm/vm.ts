// The VM reconciler: level-triggered, keyed by namespace/name. Reads the VM and its VMI from the caches, plans
// (pure), applies the one VMI action, then writes the status if it changed.

import { isDeepStrictEqual } from "node:util";
import {
  type Client,
  type DataVolume,
  type Informer,
  type KObject,
  keyOf,
  type Node,
  type PersistentVolume,
  type PersistentVolumeClaim,
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
  adoptedDataVolume,
  claimNameOf,
  type DiskFacts,
  type DiskLookup,
  dataVolumeFromTemplate,
  diskFacts,
  disksToRetain,
  isPoolMember,
  releaseOnDelete,
  retainedObject,
  retainsDisks,
  templateDisks,
  unretained,
} from "./disks.js";
import {
  computeVmStatus,
  holdForColdMigration,
  holdForDisks,
  nextFinalizers,
  planVm,
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
  /** The VMs' DataVolumes, claims, volumes, nodes and pools (absent: a VM without disks only). */
  dvs?: Informer<DataVolume>;
  claims?: Informer<PersistentVolumeClaim>;
  volumes?: Informer<PersistentVolume>;
  nodes?: Informer<Node>;
  pools?: Informer<KObject>;
}

/** The caches as disks.ts reads them. */
export function cacheLookup(deps: VmDeps): DiskLookup {
  return {
    dv: (ns, name) => deps.dvs?.get(`${ns}/${name}`),
    claim: (ns, name) => deps.claims?.get(`${ns}/${name}`),
    volume: (name) => deps.volumes?.get(name),
    node: (name) => deps.nodes?.get(name),
  };
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
async function patchFinalizers(deps: VmDeps, vm: VirtualMachine, next: string[]): Promise<VirtualMachine> {
  return deps.client.patch<VirtualMachine>(resources.vms, vm.metadata.namespace, vm.metadata.name!, "json", [
    { op: "test", path: "/metadata/finalizers", value: vm.metadata.finalizers ?? null },
    { op: "add", path: "/metadata/finalizers", value: next },
  ]);
}

function poolOf(deps: VmDeps, vm: VirtualMachine): KObject | undefined {
  const ref = isPoolMember(vm);
  const pool = ref ? deps.pools?.get(`${vm.metadata.namespace}/${ref.name}`) : undefined;
  return pool && pool.metadata.uid === ref?.uid ? pool : undefined;
}

async function getOrUndefined<T extends KObject>(
  deps: VmDeps,
  ref: (typeof resources)[keyof typeof resources],
  ns: string,
  name: string,
): Promise<T | undefined> {
  try {
    return await deps.client.get<T>(ref, ns, name);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * A deleted VM lets go of its disks before the garbage collector can see it gone: each template DataVolume loses the
 * VM's ownerReference and gets the retention marks (one update), then its claim gets the marks. Read from the API,
 * not the cache (a DataVolume the cache has not shown yet must not be collected). Every step is skipped when done,
 * so a controller killed midway redoes only the rest.
 */
async function releaseDisks(deps: VmDeps, vm: VirtualMachine): Promise<void> {
  const ns = vm.metadata.namespace ?? "";
  const fresh = new Map<string, DataVolume | undefined>();
  for (const t of vm.spec.dataVolumeTemplates ?? []) {
    const name = t.metadata?.name;
    if (name) fresh.set(name, await getOrUndefined<DataVolume>(deps, resources.datavolumes, ns, name));
  }
  const log = forObject(deps.log, vm);
  for (const dv of disksToRetain(vm, { dv: (_ns, name) => fresh.get(name) })) {
    const next = retainedObject(vm, dv);
    if (next) {
      await deps.client.update(resources.datavolumes, next);
      log.info("Retained DataVolume", { dataVolume: dv.metadata.name });
    }
    const pvc = await getOrUndefined<PersistentVolumeClaim>(deps, resources.pvcs, ns, claimNameOf(dv));
    const nextPvc = pvc && retainedObject(vm, pvc);
    if (nextPvc) await deps.client.update(resources.pvcs, nextPvc);
  }
  if ((vm.spec.dataVolumeTemplates ?? []).length > 0) {
    deps.recorder.event(
      vm,
      "Normal",
      "DisksRetained",
      `Kept the VM's disks (${[...fresh.keys()].join(", ")}): list them with virtctl recover --list, bring the VM back with virtctl recover ${vm.metadata.name}`,
    );
  }
}

/**
 * A live VM's template DataVolumes: created when missing, adopted when retained from a VM of this name (their
 * claims' marks removed too), a conflict reported once per change for anyone else's.
 */
async function syncDataVolumes(deps: VmDeps, vm: VirtualMachine, lookup: DiskLookup): Promise<void> {
  const ns = vm.metadata.namespace ?? "";
  const log = forObject(deps.log, vm);
  for (const d of templateDisks(vm, lookup)) {
    if (d.state === "missing") {
      const tpl = vm.spec.dataVolumeTemplates!.find((t) => t.metadata?.name === d.name)!;
      try {
        await deps.client.create(resources.datavolumes, ns, dataVolumeFromTemplate(vm, tpl));
        log.info("Created DataVolume", { dataVolume: d.name });
        deps.recorder.event(vm, "Normal", "SuccessfulDataVolumeCreate", `Created DataVolume ${d.name}`);
      } catch (err) {
        if (isAlreadyExists(err)) continue; // the cache has not shown it yet: the next round sees whose it is
        deps.recorder.event(
          vm,
          "Warning",
          "FailedDataVolumeCreate",
          `Error creating DataVolume ${d.name}: ${(err as Error).message}`,
        );
        throw err;
      }
    } else if (d.state === "adoptable") {
      await deps.client.update(resources.datavolumes, adoptedDataVolume(vm, d.dv));
      log.info("Adopted retained DataVolume", { dataVolume: d.name });
      deps.recorder.event(
        vm,
        "Normal",
        "DataVolumeAdopted",
        `Adopted the retained DataVolume ${d.name} (its data is kept)`,
      );
    } else if (d.state === "owned") {
      const pvc = lookup.claim(ns, claimNameOf(d.dv));
      const next = pvc && unretained(pvc);
      if (next) await deps.client.update(resources.pvcs, next);
    }
  }
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
  const pool = poolOf(deps, vm);
  const lookup = cacheLookup(deps);
  // A deleted VM releases its disks (unless they go with it) before its retain-disks finalizer comes off.
  if (vm.metadata.deletionTimestamp && releaseOnDelete(vm, pool)) await releaseDisks(deps, vm);
  // The finalizers go on in the VM's first round (one write per VM, not per start); KubeVirt's comes off once the
  // VMI is gone; the VM then disappears, so no status is written after it.
  const finalizers = nextFinalizers(vm, vmi, !vm.metadata.deletionTimestamp && retainsDisks(vm, pool));
  let current = vm;
  if (!isDeepStrictEqual(finalizers, vm.metadata.finalizers ?? [])) {
    try {
      current = await patchFinalizers(deps, vm, finalizers);
    } catch (err) {
      if (isNotFound(err)) return {};
      throw err;
    }
    if (vm.metadata.deletionTimestamp && !finalizers.includes(VM_FINALIZER)) {
      log.info("Removed the VM finalizer", { vmi: vmi ? "orphaned" : "gone" });
      return {};
    }
  }
  if (!vm.metadata.deletionTimestamp && deps.dvs) await syncDataVolumes(deps, vm, lookup);
  const disks: DiskFacts | undefined = deps.dvs ? diskFacts(vm, lookup) : undefined;
  const plan = holdForColdMigration(
    holdForDisks(planVm(vm, vmi, { nowMs: deps.now().getTime(), random: Math.random() }), disks),
    vm,
  );
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

  const status = computeVmStatus(vm, vmi, plan, timestamp(deps.now()), disks);
  const dvCond = (st: typeof status | undefined) => st?.conditions?.find((c) => c.type === "DataVolumesReady");
  if (dvCond(status)?.reason === "DataVolumeConflict" && dvCond(vm.status)?.message !== dvCond(status)?.message) {
    deps.recorder.event(vm, "Warning", "DataVolumeConflict", dvCond(status)?.message ?? "");
  }
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
