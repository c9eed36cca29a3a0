// The cold migration controller's shell: reads a cold VMIM and what it touches from the caches, asks planColdMigration
// for the one next step, does it, and lets the watch events (or a short requeue) bring the next round. It keeps no
// state: a controller killed between any two writes picks up from what the API shows.

import { isColdMigration as isCold, Migration } from "../../api/index.js";
import {
  type Client,
  type DataVolume,
  type Informer,
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
import { setCondition, timestamp } from "../conditions.js";
import type { Recorder } from "../events/index.js";
import {
  type ColdLookup,
  type ColdStep,
  heldBy,
  isSwapped,
  planColdMigration,
  shortHash,
  swappedVmSpec,
  type Vmim,
} from "./plan.js";

export interface ColdDeps {
  client: Client;
  vmims: Informer<Vmim>;
  vms: Informer<VirtualMachine>;
  vmis: Informer<VirtualMachineInstance>;
  dvs: Informer<DataVolume>;
  nodes: Informer<Node>;
  /** The storage controller's caches and its free-space accounting. */
  storage: {
    claims: Informer<PersistentVolumeClaim>;
    volumes: Informer<PersistentVolume>;
    freeBytes(): Map<string, number>;
  };
  recorder: Recorder;
  log: Logger;
  now: () => Date;
}

/** After a write, look again soon even if no watch event names this VMIM (a safety net, not the trigger). */
const AFTER_WRITE_MS = 1_000;

export function coldLookup(deps: ColdDeps): ColdLookup {
  return {
    dv: (ns, name) => deps.dvs.get(`${ns}/${name}`),
    claim: (ns, name) => deps.storage.claims.get(`${ns}/${name}`),
    volume: (name) => deps.storage.volumes.get(name),
  };
}

async function ignoreNotFound(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** Re-read, change, write, up to a few times on a conflict (the VM controller writes the VM's status too). */
async function retryOnConflict(fn: () => Promise<void>): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!isConflict(err) || i >= 4) throw err;
    }
  }
}

export async function reconcileColdMigration(deps: ColdDeps, key: string): Promise<ReconcileResult> {
  const vmim = deps.vmims.get(key);
  if (!vmim) return {};
  const ns = vmim.metadata.namespace ?? "";
  const vmName = vmim.spec.vmiName ?? "";
  const siblings = deps.vmims
    .list(ns)
    .filter((m) => m.spec.vmiName === vmName && m.metadata.uid !== vmim.metadata.uid && isCold(m));
  const vm = deps.vms.get(`${ns}/${vmName}`);
  const vmi = deps.vmis.get(`${ns}/${vmName}`);
  const step = planColdMigration({
    vmim,
    ...(vm ? { vm } : {}),
    ...(vmi ? { vmi } : {}),
    siblings,
    nodes: deps.nodes.list(),
    free: deps.storage.freeBytes(),
    lookup: coldLookup(deps),
    now: deps.now(),
  });
  return applyStep(deps, vmim, step);
}

async function applyStep(deps: ColdDeps, vmim: Vmim, step: ColdStep): Promise<ReconcileResult> {
  const c = deps.client;
  const log = forObject(deps.log, vmim);
  const ns = vmim.metadata.namespace ?? "";
  const vmName = vmim.spec.vmiName ?? "";
  switch (step.kind) {
    case "none":
      if (step.requeueAfterMs !== undefined) return { requeueAfterMs: step.requeueAfterMs };
      return {};
    case "finalizer": {
      const cur = vmim.metadata.finalizers ?? [];
      const next = step.add ? [...cur, Migration.finalizer] : cur.filter((f) => f !== Migration.finalizer);
      await ignoreNotFound(
        c.patch(resources.vmims, ns, vmim.metadata.name ?? "", "json", [
          { op: "test", path: "/metadata/finalizers", value: vmim.metadata.finalizers ?? null },
          next.length > 0
            ? { op: "add", path: "/metadata/finalizers", value: next }
            : { op: "remove", path: "/metadata/finalizers" },
        ]),
      );
      log.info(step.add ? "Cold migration: finalizer added" : "Cold migration: finalizer removed");
      return {};
    }
    case "status": {
      await c.updateStatus(resources.vmims, { ...vmim, status: step.status });
      log.info("Cold migration", { phase: step.status.phase, why: step.why });
      if (step.event) deps.recorder.event(vmim, step.event.type, step.event.reason, step.why);
      return { requeueAfterMs: AFTER_WRITE_MS };
    }
    case "vmStatus": {
      await retryOnConflict(async () => {
        const vm = await c.get<VirtualMachine>(resources.vms, ns, vmName);
        const status = { ...(vm.status ?? {}) };
        status.conditions = setCondition([...(status.conditions ?? [])], step.condition, timestamp(deps.now()));
        if (step.migratedVolumes === null) delete status.volumeUpdateState;
        else if (step.migratedVolumes)
          status.volumeUpdateState = { volumeMigrationState: { migratedVolumes: step.migratedVolumes } };
        await c.updateStatus(resources.vms, { ...vm, status });
      });
      log.info("Cold migration: VM status", { condition: step.condition.status, reason: step.condition.reason });
      return { requeueAfterMs: AFTER_WRITE_MS };
    }
    case "createDataVolumes": {
      for (const dv of step.dvs) {
        try {
          await c.create(resources.datavolumes, ns, dv);
          log.info("Cold migration: created clone DataVolume", { dataVolume: dv.metadata.name });
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
        }
      }
      return { requeueAfterMs: AFTER_WRITE_MS };
    }
    case "delete": {
      for (const d of step.dvs)
        await ignoreNotFound(c.delete(resources.datavolumes, ns, d.name, { preconditions: { uid: d.uid } }));
      for (const p of step.claims)
        await ignoreNotFound(c.delete(resources.pvcs, ns, p.name, { preconditions: { uid: p.uid } }));
      log.info("Cold migration: deleted", {
        why: step.why,
        dataVolumes: step.dvs.map((d) => d.name),
        claims: step.claims.map((p) => p.name),
      });
      return { requeueAfterMs: AFTER_WRITE_MS };
    }
    case "swap": {
      // The VM must still be stopped: a VMI made from the old spec would run on the old disks.
      const vmi = await c.get(resources.vmis, ns, vmName).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      if (vmi) return { requeueAfterMs: AFTER_WRITE_MS };
      await retryOnConflict(async () => {
        const vm = await c.get<VirtualMachine>(resources.vms, ns, vmName);
        if (isSwapped(vm, step.moved) || !heldBy(vm, shortHash(vmim.metadata.uid ?? ""))) return;
        await c.update(resources.vms, { ...vm, spec: swappedVmSpec(vm, step.moved, step.templates) });
      });
      log.info("Cold migration: VM now names the moved disks", {
        volumes: step.moved.map((m) => `${m.sourcePVCInfo?.claimName}→${m.destinationPVCInfo?.claimName}`),
      });
      return { requeueAfterMs: AFTER_WRITE_MS };
    }
  }
}

/** The cold VMIMs a changed VM, VMI, DataVolume or claim concerns: those of its namespace naming the VM. */
export function coldKeysFor(deps: Pick<ColdDeps, "vmims">, namespace: string | undefined, vmName?: string): string[] {
  return deps.vmims
    .list(namespace)
    .filter((m) => isCold(m) && (vmName === undefined || m.spec.vmiName === vmName))
    .map(keyOf);
}
