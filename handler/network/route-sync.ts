// The node agent's fabric routes, level-triggered on lib/workqueue: one key, queued by any Node change that can
// move a route (a node added or deleted, a podCIDR set) and requeued every resyncMs, so a route deleted by hand, a
// re-created fabric namespace or a restarted agent converge on the Node objects alone.
import type { Logger } from "../../lib/log.js";
import { runWorkers, WorkQueue } from "../../lib/workqueue/index.js";
import type { NodeCidr } from "./fabric.js";
import type { PodNetwork } from "./pod-network.js";

export interface FabricRouteSyncOptions {
  /** This node's pod network once it exists (undefined until the node has a podCIDR). */
  network: () => PodNetwork | undefined;
  /** Every Node the agent's cache holds. */
  nodes: () => NodeCidr[];
  log: Logger;
  resyncMs?: number;
}

const KEY = "routes";

export class FabricRouteSync {
  private readonly queue = new WorkQueue<string>();
  private readonly o: FabricRouteSyncOptions;
  private problems = "";

  constructor(o: FabricRouteSyncOptions) {
    this.o = o;
    void runWorkers(
      this.queue,
      1,
      () => this.reconcile(),
      (_k, err) => o.log.error("fabric route sync failed", { err }),
    );
  }

  trigger(): void {
    this.queue.add(KEY);
  }

  close(): void {
    this.queue.shutdown();
  }

  private async reconcile(): Promise<{ requeueAfterMs?: number }> {
    const net = this.o.network();
    if (!net?.fabric) return {};
    const r = await net.syncRoutes(this.o.nodes());
    if (r.add.length > 0 || r.del.length > 0) {
      this.o.log.info("fabric routes changed", { added: r.add.map((a) => a.dst), removed: r.del, fabric: net.fabric });
    }
    const problems = r.problems.join("; ");
    if (problems !== this.problems && problems !== "") this.o.log.warn("nodes left out of the fabric", { problems });
    this.problems = problems;
    return { requeueAfterMs: this.o.resyncMs ?? 30_000 };
  }
}
