// The thin shell over planNodeLifecycle: every monitor period, read Nodes, node Leases, pods and VMIs, plan, apply.
// It keeps no state of its own: every decision rests on timestamps stored in the API, so a restarted or newly elected
// controller continues where the last one stopped. Inside virt-controller it reads nodes, pods and VMIs from the
// shared informers' caches (as KubeVirt's node controller does): listing every pod and VMI every 5 s cost the API
// server and this process a full serialization of the cluster per period (at 1,000 VMIs, ~20 MB of garbage each).
import {
  type Client,
  type Informer,
  type Lease,
  type Node,
  type Pod,
  resources,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { isConflict, isNotFound } from "../../lib/errors.js";
import type { Logger } from "../../lib/log.js";
import type { Recorder } from "../events/index.js";
import {
  NODE_LEASE_NAMESPACE,
  NODE_LIFECYCLE_DEFAULTS,
  NODE_UNRESPONSIVE,
  type NodeAction,
  type NodeLifecycleConfig,
  planNodeLifecycle,
  SCHEDULABLE_LABEL,
} from "./plan.js";

export interface NodeLifecycleOptions {
  client: Client;
  log: Logger;
  recorder?: Recorder;
  now?: () => Date;
  config?: Partial<NodeLifecycleConfig>;
  /** How often to look. Default 5 s. */
  periodMs?: number;
  /** Synced informers to read nodes, pods and VMIs from instead of listing them each period. */
  cache?: { nodes: Informer<Node>; pods: Informer<Pod>; vmis: Informer<VirtualMachineInstance> };
}

async function retryOnConflict<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!isConflict(e) || i >= 4) throw e;
    }
  }
}

export class NodeLifecycleController {
  private readonly cfg: NodeLifecycleConfig;
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly o: NodeLifecycleOptions) {
    this.cfg = { ...NODE_LIFECYCLE_DEFAULTS, ...(o.config ?? {}) };
    this.now = o.now ?? (() => new Date());
  }

  /** One pass: read the world, plan, apply. Returns the actions taken. */
  async step(): Promise<NodeAction[]> {
    const c = this.o.client;
    const cache = this.o.cache;
    const [nodes, leases, pods, vmis] = await Promise.all([
      cache ? cache.nodes.list() : c.list<Node>(resources.nodes, undefined).then((l) => l.items),
      c.list<Lease>(resources.leases, NODE_LEASE_NAMESPACE).then((l) => l.items),
      cache ? cache.pods.list() : c.list<Pod>(resources.pods, undefined).then((l) => l.items),
      cache ? cache.vmis.list() : c.list<VirtualMachineInstance>(resources.vmis, undefined).then((l) => l.items),
    ]);
    const now = this.now();
    const actions = planNodeLifecycle({ nodes, leases, pods, vmis }, now, this.cfg);
    // VMIs fail before their pods go, so the VMI's reason is NodeUnresponsive rather than a vanished pod.
    const order = { markUnknown: 0, unschedulable: 1, failVmi: 2, deletePod: 3 } as const;
    actions.sort((a, b) => order[a.kind] - order[b.kind]);
    const unfailed = new Set<string>();
    for (const a of actions) {
      // A pod goes only once its node's VMIs are Failed, so their reason stays NodeUnresponsive.
      if (a.kind === "deletePod" && unfailed.has(a.node)) continue;
      try {
        await this.apply(a, now);
      } catch (e) {
        if (!isNotFound(e))
          this.o.log.warn("node lifecycle action failed", { action: a.kind, node: a.node, err: String(e) });
      }
    }
    return actions;
  }

  private async apply(a: NodeAction, now: Date): Promise<void> {
    const c = this.o.client;
    const log = this.o.log;
    switch (a.kind) {
      case "markUnknown": {
        await retryOnConflict(async () => {
          const n = await c.get<Node>(resources.nodes, undefined, a.node);
          await c.updateStatus<Node>(resources.nodes, {
            ...n,
            status: { ...(n.status ?? {}), conditions: a.conditions },
          });
        });
        log.warn("node stopped posting status: Ready=Unknown", { node: a.node });
        return;
      }
      case "unschedulable":
        await c.patch<Node>(resources.nodes, undefined, a.node, "merge", {
          metadata: { labels: { [SCHEDULABLE_LABEL]: "false" } },
        });
        return;
      case "failVmi": {
        await retryOnConflict(async () => {
          const v = await c.get<VirtualMachineInstance>(resources.vmis, a.namespace, a.name);
          const phase = v.status?.phase;
          if (phase === "Failed" || phase === "Succeeded") return;
          const ts = [
            ...(v.status?.phaseTransitionTimestamps ?? []),
            { phase: "Failed" as const, phaseTransitionTimestamp: now.toISOString() },
          ];
          // The VMI has no status subresource.
          await c.update<VirtualMachineInstance>(resources.vmis, {
            ...v,
            status: { ...(v.status ?? {}), phase: "Failed", reason: NODE_UNRESPONSIVE, phaseTransitionTimestamps: ts },
          });
        });
        log.warn("VMI failed: its node is unresponsive", { namespace: a.namespace, name: a.name, node: a.node });
        if (this.o.recorder) {
          const v = await c.get<VirtualMachineInstance>(resources.vmis, a.namespace, a.name).catch(() => undefined);
          if (v)
            this.o.recorder.event(v, "Warning", NODE_UNRESPONSIVE, `virt-handler on node ${a.node} is unresponsive`);
        }
        return;
      }
      case "deletePod":
        await c.delete(resources.pods, a.namespace, a.name, { gracePeriodSeconds: 0 });
        log.warn("deleted pod of an unresponsive node", { namespace: a.namespace, name: a.name, node: a.node });
        return;
    }
  }

  start(): void {
    const period = this.o.periodMs ?? 5_000;
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.step()
        .then(() => undefined)
        .catch((err: unknown) => this.o.log.warn("node lifecycle pass failed", { err: String(err) }))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, period);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
