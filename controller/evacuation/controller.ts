// The evacuation controller's shell: one key per node (KubeVirt's evacuation controller keys by node too). It reads
// the node, its VMIs, their launcher pods and the migrations from the shared informers, asks planEvacuation, and
// creates the VMIMs / clears stale marks. Expectations keep a slow migration cache from doubling a VMIM.
import type { KubeVirtConfiguration } from "../../api/index.js";
import {
  type Client,
  type Informer,
  type Node,
  type Pod,
  resources,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { isConflict, isNotFound } from "../../lib/errors.js";
import type { Logger } from "../../lib/log.js";
import type { ReconcileResult } from "../../lib/workqueue/index.js";
import { Reasons, type Recorder } from "../events/index.js";
import type { Expectations } from "../expectations.js";
import { OWNER_INDEX } from "../vmi/vmi.js";
import { type EvacuationAction, planEvacuation, type Vmim } from "./plan.js";

export interface EvacuationDeps {
  client: Client;
  nodes: Informer<Node>;
  vmis: Informer<VirtualMachineInstance>;
  /** Pods, indexed by owner uid (OWNER_INDEX). */
  pods: Informer<Pod>;
  migrations: Informer<Vmim>;
  config: () => KubeVirtConfiguration;
  /** Keyed by node name: migrations created and not yet seen in the cache. */
  expectations: Expectations;
  recorder: Recorder;
  log: Logger;
}

/** While a node has VMIs waiting for a limit, look again this often (migrations finishing wake it up too). */
const WAITING_REQUEUE_MS = 5_000;

export async function reconcileEvacuation(d: EvacuationDeps, nodeName: string): Promise<ReconcileResult | undefined> {
  const node = d.nodes.getByName(undefined, nodeName);
  if (!node) {
    d.expectations.delete(nodeName);
    return undefined;
  }
  if (!d.expectations.satisfied(nodeName)) return undefined;
  const vmis = d.vmis.list().filter((v) => v.status?.nodeName === nodeName);
  const pods = vmis.flatMap((v) => d.pods.byIndex(OWNER_INDEX, v.metadata.uid ?? ""));
  const plan = planEvacuation({
    node,
    vmis,
    migrations: d.migrations.list(),
    pods,
    config: d.config(),
    nowMs: Date.now(),
  });
  if (plan.notMigratable.length)
    d.log.info("VMIs to evacuate are not live-migratable", { kind: "Node", name: nodeName, vmis: plan.notMigratable });
  if (plan.backingOff.length)
    d.log.info("evacuation backing off after failed migrations", {
      kind: "Node",
      name: nodeName,
      vmis: plan.backingOff,
    });
  const creations = plan.actions.filter((a) => a.kind === "createMigration").length;
  if (creations) d.expectations.expectCreations(nodeName, creations);
  let failed: unknown;
  for (const a of plan.actions) {
    try {
      await apply(d, nodeName, a);
    } catch (e) {
      if (a.kind === "createMigration") d.expectations.creationObserved(nodeName);
      failed ??= e;
    }
  }
  if (failed) throw failed;
  // Back again when a limit may have freed up, or when the first back-off runs out.
  const waits = [...(plan.waiting > 0 ? [WAITING_REQUEUE_MS] : []), ...plan.backingOff.map((b) => b.remainingMs)];
  return waits.length ? { requeueAfterMs: Math.min(...waits) } : undefined;
}

async function apply(d: EvacuationDeps, nodeName: string, a: EvacuationAction): Promise<void> {
  switch (a.kind) {
    case "createMigration": {
      const vmi = d.vmis.getByName(a.vmi.namespace, a.vmi.name);
      try {
        const m = await d.client.create<Vmim>(resources.vmims, a.vmi.namespace, a.migration);
        d.log.info("evacuation migration created", {
          kind: "VirtualMachineInstance",
          ns: a.vmi.namespace,
          name: a.vmi.name,
          uid: vmi?.metadata.uid,
          migration: m.metadata.name,
          node: nodeName,
        });
        if (vmi) d.recorder.event(vmi, "Normal", Reasons.SuccessfulCreate, `Created Migration ${m.metadata.name}`);
      } catch (e) {
        if (vmi) d.recorder.event(vmi, "Warning", Reasons.FailedCreate, `Error creating a Migration: ${String(e)}`);
        throw e;
      }
      return;
    }
    case "clearEvacuation": {
      // a JSON patch with a test: only the mark this plan saw is removed (the VMI has no status subresource)
      try {
        const vmi = d.vmis.getByName(a.namespace, a.name);
        const mark = vmi?.status?.evacuationNodeName;
        if (!mark) return;
        await d.client.patch(resources.vmis, a.namespace, a.name, "json", [
          { op: "test", path: "/metadata/uid", value: a.uid },
          { op: "test", path: "/status/evacuationNodeName", value: mark },
          { op: "remove", path: "/status/evacuationNodeName" },
        ]);
        d.log.info("evacuation mark cleared: the VMI left the node", {
          kind: "VirtualMachineInstance",
          ns: a.namespace,
          name: a.name,
          uid: a.uid,
          from: mark,
        });
      } catch (e) {
        // gone, or changed since: the next event brings the VMI back here
        if (!isNotFound(e) && !isConflict(e) && !isTestFailure(e)) throw e;
      }
      return;
    }
  }
}

function isTestFailure(e: unknown): boolean {
  return (e as { code?: number } | undefined)?.code === 422;
}
