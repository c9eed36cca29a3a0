// Pod CIDR allocation, the way kube-controller-manager's range allocator does it: every Node without spec.podCIDR
// gets the lowest free /24 of the cluster CIDR (10.244.0.0/16 → 10.244.N.0/24).

import { type Client, type Informer, type Node, resources } from "../../client/index.js";
import { isNotFound } from "../../lib/errors.js";
import type { Logger } from "../../lib/log.js";
import type { ReconcileResult } from "../../lib/workqueue/index.js";
import { Reasons, type Recorder } from "../events/index.js";

export interface PodCidrDeps {
  client: Client;
  nodes: Informer<Node>;
  recorder: Recorder;
  log: Logger;
  /** The first two octets of the cluster CIDR (a /16), default "10.244". */
  prefix?: string;
  /** node name → index handed out but not yet seen in the cache. */
  pending: Map<string, number>;
}

export function cidrIndex(cidr: string | undefined, prefix: string): number | undefined {
  if (!cidr?.startsWith(`${prefix}.`)) return undefined;
  const m = /^\d+\.\d+\.(\d+)\.0\/24$/.exec(cidr);
  return m ? Number(m[1]) : undefined;
}

/** The lowest /24 index not in use; undefined when all 256 are taken. */
export function nextFree(used: ReadonlySet<number>): number | undefined {
  for (let i = 0; i < 256; i++) if (!used.has(i)) return i;
  return undefined;
}

export async function reconcileNodeCidr(deps: PodCidrDeps, key: string): Promise<ReconcileResult> {
  const prefix = deps.prefix ?? "10.244";
  const node = deps.nodes.get(key);
  if (!node) {
    deps.pending.delete(key);
    return {};
  }
  if (node.spec?.podCIDR) {
    deps.pending.delete(key);
    return {};
  }
  const used = new Set<number>();
  for (const n of deps.nodes.list()) {
    const i = cidrIndex(n.spec?.podCIDR, prefix);
    if (i !== undefined) used.add(i);
  }
  for (const [name, i] of deps.pending) if (name !== key) used.add(i);
  const idx = deps.pending.get(key) ?? nextFree(used);
  if (idx === undefined) {
    deps.recorder.event(
      node,
      "Warning",
      Reasons.FailedPodCIDRAllocation,
      `Node ${key} status is now: CIDRNotAvailable`,
    );
    return { requeueAfterMs: 60_000 };
  }
  deps.pending.set(key, idx);
  const cidr = `${prefix}.${idx}.0/24`;
  try {
    await deps.client.patch(resources.nodes, undefined, node.metadata.name!, "merge", {
      spec: { podCIDR: cidr, podCIDRs: [cidr] },
    });
    deps.log.info("Allocated pod CIDR", { node: key, podCIDR: cidr });
  } catch (err) {
    deps.pending.delete(key);
    if (isNotFound(err)) return {};
    throw err;
  }
  return {};
}
