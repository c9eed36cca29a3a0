// Registers this node, keeps its Lease in kube-node-lease renewed, and its Ready condition and KubeVirt's heartbeat
// annotation fresh. spec.podCIDR belongs to the controller: the agent reads it, never writes it.
import { readFileSync } from "node:fs";
import { arch, cpus, hostname, release, totalmem } from "node:os";
import { nowRfc3339 } from "../api/index.js";
import { isStatusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import {
  type MachineInfo,
  NODE_LEASE_NAMESPACE,
  newNode,
  nodeLease,
  nodeStatus,
  type Reservation,
  withAgentMetadata,
} from "./node-status.js";
import { type ApiClient, type Lease, type Node, refs } from "./ports.js";

export function machineInfo(address: string, port: number, version: string): MachineInfo {
  let osImage = "Linux";
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync("/etc/os-release", "utf8"));
    if (m?.[1]) osImage = m[1];
  } catch {
    // keep the default
  }
  return {
    cpus: cpus().length,
    memoryBytes: totalmem(),
    address,
    hostname: hostname(),
    port,
    kernelVersion: release(),
    osImage,
    arch: arch(),
    version,
  };
}

export interface NodeAgentOptions {
  node: string;
  api: ApiClient;
  machine: MachineInfo;
  reservation?: Reservation;
  leaseRenewMs?: number;
  statusEveryMs?: number;
  log?: Logger;
}

/** Re-reads and retries on 409 Conflict (someone else wrote the object meanwhile), like client-go's RetryOnConflict. */
export async function retryOnConflict<T>(fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!(isStatusError(e) && e.code === 409) || i >= attempts) throw e;
    }
  }
}

export class NodeAgent {
  private readonly o: NodeAgentOptions;
  private readonly log: Logger;
  private timers: NodeJS.Timeout[] = [];

  constructor(o: NodeAgentOptions) {
    this.o = o;
    this.log = (o.log ?? nullLogger).child({ component: "node-agent", node: o.node });
  }

  /** Creates the Node if missing, then publishes labels, heartbeat and status. Returns the Node as stored. */
  async register(): Promise<Node> {
    const now = nowRfc3339();
    try {
      await this.o.api.get<Node>(refs.nodes, undefined, this.o.node);
    } catch (e) {
      if (!(isStatusError(e) && e.code === 404)) throw e;
      try {
        await this.o.api.create<Node>(refs.nodes, undefined, newNode(this.o.node, this.o.machine, now));
        this.log.info("node registered");
      } catch (e2) {
        if (!(isStatusError(e2) && e2.code === 409)) throw e2;
      }
    }
    const fresh = await this.heartbeat();
    await this.renewLease();
    return fresh;
  }

  async renewLease(): Promise<void> {
    const now = nowRfc3339();
    try {
      await retryOnConflict(async () => {
        const cur = await this.o.api.get<Lease>(refs.leases, NODE_LEASE_NAMESPACE, this.o.node);
        await this.o.api.update<Lease>(refs.leases, nodeLease(this.o.node, now, cur));
      });
    } catch (e) {
      if (!(isStatusError(e) && e.code === 404)) throw e;
      await this.o.api.create<Lease>(refs.leases, NODE_LEASE_NAMESPACE, nodeLease(this.o.node, now));
    }
  }

  /** A fresh heartbeat: the annotation, then Ready's lastHeartbeatTime. */
  async heartbeat(): Promise<Node> {
    const now = nowRfc3339();
    const node = await retryOnConflict(async () => {
      const cur = await this.o.api.get<Node>(refs.nodes, undefined, this.o.node);
      return this.o.api.update<Node>(refs.nodes, withAgentMetadata(cur, this.o.node, this.o.machine, now));
    });
    let first = true;
    return retryOnConflict(async () => {
      const cur = first ? node : await this.o.api.get<Node>(refs.nodes, undefined, this.o.node);
      first = false;
      return this.o.api.updateStatus<Node>(refs.nodes, {
        ...cur,
        status: nodeStatus(cur, this.o.machine, now, this.o.reservation),
      });
    });
  }

  start(): void {
    const every = (ms: number, what: string, fn: () => Promise<unknown>): void => {
      const t = setInterval(() => {
        fn().catch((err: unknown) => this.log.warn(`${what} failed`, { err }));
      }, ms);
      this.timers.push(t);
    };
    every(this.o.leaseRenewMs ?? 10_000, "lease renewal", () => this.renewLease());
    every(this.o.statusEveryMs ?? 30_000, "node heartbeat", async () => {
      try {
        await this.heartbeat();
      } catch (e) {
        // The Node was deleted: register again.
        if (isStatusError(e) && e.code === 404) await this.register();
        else throw e;
      }
    });
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}
