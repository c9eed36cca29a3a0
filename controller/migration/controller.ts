// The migration controller's shell (KubeVirt's virt-controller migration controller): reads the VMIM, its VMI, the
// VMI's launcher pods, the settings and the other VMIMs from the shared informers, asks planMigration, and writes:
// finalizer, target pod (with expectations: a crash or a slow cache never makes a second one), the VMI (handoff,
// label, abortRequested) before the VMIM status that depends on it, then the finalizer's release and the GC: the
// oldest finished VMIMs of a VMI beyond 5, and every VMIM whose VMI is gone (KubeVirt's both).
import { isDeepStrictEqual } from "node:util";
import { isColdMigration, Migration, shortHash } from "../../api/index.js";
import {
  type Client,
  type ClusterConfig,
  type DataVolume,
  type Informer,
  type KObject,
  keyOf,
  type MigrationPolicy,
  type PersistentVolume,
  type PersistentVolumeClaim,
  type Pod,
  resources,
  type VirtualMachine,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from "../../client/index.js";
import { isAlreadyExists, isConflict, isNotFound } from "../../lib/errors.js";
import { forObject, type Logger } from "../../lib/log.js";
import type { ReconcileResult } from "../../lib/workqueue/index.js";
import { LIVE_UID_LABEL } from "../coldmigration/index.js";
import { removeCondition, setCondition, timestamp } from "../conditions.js";
import type { Recorder } from "../events/index.js";
import type { Expectations } from "../expectations.js";
import { isLauncherPodOf } from "../vmi/pod.js";
import { OWNER_INDEX } from "../vmi/vmi.js";
import { migratability } from "./migratable.js";
import { planMigration } from "./plan.js";
import { VOLUMES_CHANGE } from "./volumes.js";

export interface MigrationDeps {
  client: Client;
  vmims: Informer<VirtualMachineInstanceMigration>;
  vmis: Informer<VirtualMachineInstance>;
  /** Pods indexed by owner uid under OWNER_INDEX. */
  pods: Informer<Pod>;
  policies: Informer<MigrationPolicy>;
  namespaces: Informer<KObject>;
  /** Claims (whether a VMI's PVCs are shared); absent: every claim counts as node-local. */
  claims?: Informer<PersistentVolumeClaim>;
  /** Node-local disks that move with the VM (all three, or such disks are not moved: volumes.ts). */
  vms?: Informer<VirtualMachine>;
  dvs?: Informer<DataVolume>;
  volumes?: Informer<PersistentVolume>;
  clusterConfig: ClusterConfig;
  expectations: Expectations;
  recorder: Recorder;
  log: Logger;
  now: () => Date;
}

export async function reconcileMigration(deps: MigrationDeps, key: string): Promise<ReconcileResult> {
  let vmim = deps.vmims.get(key);
  if (!vmim) {
    deps.expectations.delete(key);
    return {};
  }
  if (!deps.expectations.satisfied(key)) return { requeueAfterMs: 5_000 };
  const ns = vmim.metadata.namespace ?? "";
  const log = forObject(deps.log, vmim);
  const vmi = deps.vmis.get(`${ns}/${vmim.spec.vmiName}`);
  // No VMI in the cache fails the migration and deletes it: only once the API confirms it (a cache may lag a VMI)
  if (!vmi && !isColdMigration(vmim) && !(await vmiGone(deps, ns, vmim.spec.vmiName ?? "")))
    return { requeueAfterMs: 1_000 };
  const pods = vmi ? deps.pods.byIndex(OWNER_INDEX, vmi.metadata.uid ?? "").filter((p) => isLauncherPodOf(p, vmi)) : [];
  const claims = deps.claims;
  const nowDate = deps.now();
  const plan = planMigration({
    vmim,
    vmi,
    pods,
    ...(vmi ? { migratable: migratability(vmi, (n) => claims?.get(`${ns}/${n}`)) } : {}),
    config: deps.clusterConfig.current.migrations ?? {},
    policies: deps.policies.list(),
    namespaceLabels: deps.namespaces.get(ns)?.metadata.labels ?? {},
    others: deps.vmims
      .list()
      .filter((m) => m.metadata.uid !== vmim?.metadata.uid)
      .map((m) => {
        const s = deps.vmis.get(`${m.metadata.namespace}/${m.spec.vmiName}`)?.status;
        const node = s?.migrationState?.migrationUid === m.metadata.uid ? s?.migrationState?.sourceNode : s?.nodeName;
        return node ? { vmim: m, sourceNode: node } : { vmim: m };
      }),
    now: timestamp(nowDate),
    nowMs: nowDate.getTime(),
    ...volumeInput(deps, vmim),
  });
  if (plan.ignore) return {};

  try {
    if (plan.addFinalizer) {
      vmim = await deps.client.update(resources.vmims, {
        ...vmim,
        metadata: { ...vmim.metadata, finalizers: [...(vmim.metadata.finalizers ?? []), Migration.finalizer] },
      });
    }

    for (const dv of plan.createDataVolumes) {
      try {
        await deps.client.create(resources.datavolumes, ns, dv);
        log.info("Created DataVolume for a moved disk", { dataVolume: dv.metadata.name });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
      }
    }

    for (const pod of plan.deletePods) {
      try {
        await deps.client.delete(resources.pods, pod.metadata.namespace, pod.metadata.name!, {
          preconditions: { uid: pod.metadata.uid! },
        });
        log.info("Deleted migration pod", { pod: pod.metadata.name });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }

    if (plan.createPod) {
      deps.expectations.expectCreations(key);
      try {
        const pod = await deps.client.create(resources.pods, ns, plan.createPod);
        log.info("Created migration target pod", { pod: pod.metadata.name });
        deps.recorder.event(vmim, "Normal", "SuccessfulCreate", `Created migration target pod ${pod.metadata.name}`);
      } catch (err) {
        deps.expectations.creationObserved(key);
        deps.recorder.event(vmim, "Warning", "FailedCreate", `Error creating pod: ${(err as Error).message}`);
        throw err;
      }
    }

    // The VMI first: the VMIM's phase says what the VMI already carries (the handoff), never the other way round.
    if (plan.vmi && vmi) {
      const next: VirtualMachineInstance = {
        ...vmi,
        metadata: { ...vmi.metadata, labels: { ...(vmi.metadata.labels ?? {}) } },
        status: { ...(vmi.status ?? {}) },
      };
      if (plan.vmi.migrationState) next.status = { ...next.status, migrationState: plan.vmi.migrationState };
      if (plan.vmi.migratedVolumes) next.status = { ...next.status, migratedVolumes: plan.vmi.migratedVolumes };
      else if (plan.vmi.migratedVolumes === null) {
        const hash = shortHash(vmim.metadata.uid ?? "");
        const rest = (next.status?.migratedVolumes ?? []).filter(
          (m) => !m.destinationPVCInfo?.claimName?.endsWith(`-m${hash}`),
        );
        next.status = { ...next.status, migratedVolumes: rest };
        if (rest.length === 0) delete next.status.migratedVolumes;
      }
      if (plan.vmi.volumesChange === null)
        next.status = { ...next.status, conditions: removeCondition(next.status?.conditions, VOLUMES_CHANGE) };
      else if (plan.vmi.volumesChange)
        next.status = {
          ...next.status,
          conditions: setCondition(next.status?.conditions, plan.vmi.volumesChange, timestamp(nowDate)),
        };
      // the controller's identity may change a VMI's volumes (admission: KubeVirt's service accounts only)
      if (plan.vmi.volumes) next.spec = { ...next.spec, volumes: plan.vmi.volumes };
      if (plan.vmi.targetNodeLabel === null) delete next.metadata.labels?.[Migration.targetNodeLabel];
      else if (plan.vmi.targetNodeLabel !== undefined)
        next.metadata.labels = { ...next.metadata.labels, [Migration.targetNodeLabel]: plan.vmi.targetNodeLabel };
      if (!isDeepStrictEqual(next, vmi)) await deps.client.update(resources.vmis, next);
    }

    // the VM before the VMIM's Succeeded; a VM changed since the cache was read: the next round plans again
    if (plan.vm && !(await writeVm(deps, ns, vmim.spec.vmiName ?? "", plan.vm))) return { requeueAfterMs: 1_000 };

    if (!isDeepStrictEqual(plan.status, vmim.status ?? {})) {
      vmim = await deps.client.updateStatus(resources.vmims, { ...vmim, status: plan.status });
      log.info("Migration phase", { phase: plan.status.phase ?? "" });
    }
    for (const e of plan.events) deps.recorder.event(vmim, e.type, e.reason, e.message);

    if (plan.removeFinalizer) {
      const metadata = { ...vmim.metadata };
      const rest = (vmim.metadata.finalizers ?? []).filter((f) => f !== Migration.finalizer);
      if (rest.length > 0) metadata.finalizers = rest;
      else delete metadata.finalizers;
      await deps.client.update(resources.vmims, { ...vmim, metadata });
    }
  } catch (err) {
    // A newer version exists (its watch event queues this key again) or the object is gone.
    if (isConflict(err) || isNotFound(err)) return {};
    throw err;
  }

  for (const d of plan.deleteDataVolumes) await deleteQuietly(deps, resources.datavolumes, ns, d);
  for (const p of plan.deleteClaims) await deleteQuietly(deps, resources.pvcs, ns, p);
  if (plan.deleteDataVolumes.length + plan.deleteClaims.length > 0)
    log.info("Deleted disks of the migration", {
      dataVolumes: plan.deleteDataVolumes.map((d) => d.name),
      claims: plan.deleteClaims.map((c) => c.name),
    });

  if (plan.deleteOrphan) {
    try {
      await deps.client.delete(resources.vmims, ns, vmim.metadata.name ?? "", {
        preconditions: { uid: vmim.metadata.uid ?? "" },
      });
      log.info("Deleted the migration of a VMI that no longer exists", { vmi: vmim.spec.vmiName });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  for (const g of plan.garbage) {
    try {
      await deps.client.delete(resources.vmims, g.metadata.namespace, g.metadata.name!, {
        preconditions: { uid: g.metadata.uid! },
      });
      log.info("Garbage-collected finished migration", { migration: keyOf(g) });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }
  return plan.requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(1_000, plan.requeueAfterMs) } : {};
}

/** What the planner needs for node-local disks (absent caches: such disks are not moved, the VMI not migratable). */
function volumeInput(
  deps: MigrationDeps,
  vmim: VirtualMachineInstanceMigration,
): Pick<Parameters<typeof planMigration>[0], "volumes"> {
  const { dvs, claims, volumes, vms } = deps;
  if (!dvs || !claims || !volumes) return {};
  const ns = vmim.metadata.namespace ?? "";
  const vm = vms?.get(`${ns}/${vmim.spec.vmiName}`);
  return {
    volumes: {
      ...(vm ? { vm } : {}),
      lookup: {
        dv: (n, name) => dvs.get(`${n}/${name}`),
        claim: (n, name) => claims.get(`${n}/${name}`),
        volume: (name) => volumes.get(name),
      },
      own: dvs.list(ns).filter((d) => d.metadata.labels?.[LIVE_UID_LABEL] === vmim.metadata.uid),
    },
  };
}

/**
 * The VM's record of the moved disks (status), then its spec naming them: the record first, as KubeVirt's. False:
 * the VM's spec changed since the plan was made from the cache; nothing written.
 */
async function writeVm(
  deps: MigrationDeps,
  ns: string,
  name: string,
  change: NonNullable<ReturnType<typeof planMigration>["vm"]>,
): Promise<boolean> {
  let vm = await deps.client.get<VirtualMachine>(resources.vms, ns, name);
  // the new spec was computed from the cached VM: an edit since then wins (the next round computes it again)
  const seen = deps.vms?.get(`${ns}/${name}`);
  if (change.spec && (!seen || !isDeepStrictEqual(seen.spec, vm.spec))) return false;
  if (change.migratedVolumes) {
    vm = await deps.client.updateStatus(resources.vms, {
      ...vm,
      status: {
        ...(vm.status ?? {}),
        volumeUpdateState: { volumeMigrationState: { migratedVolumes: change.migratedVolumes } },
      },
    });
  }
  if (change.spec) await deps.client.update(resources.vms, { ...vm, spec: change.spec });
  return true;
}

/** Whether the API has no VMI of that name (the cache's word is not enough to fail and delete a migration). */
async function vmiGone(deps: MigrationDeps, ns: string, name: string): Promise<boolean> {
  try {
    await deps.client.get<VirtualMachineInstance>(resources.vmis, ns, name);
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

async function deleteQuietly(
  deps: MigrationDeps,
  resource: typeof resources.datavolumes | typeof resources.pvcs,
  ns: string,
  ref: { name: string; uid: string },
): Promise<void> {
  try {
    await deps.client.delete(resource, ns, ref.name, { preconditions: { uid: ref.uid } });
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}
