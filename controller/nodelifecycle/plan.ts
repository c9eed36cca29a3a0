// Node lifecycle, pure: from Nodes, their Leases in kube-node-lease, pods, VMIs and now, the actions that
// Kubernetes' node lifecycle controller and KubeVirt's node controller take for a node whose agent went silent.
//   1. silent for monitorGracePeriod → Ready=Unknown (NodeStatusUnknown) and kubevirt.io/schedulable=false;
//   2. Ready=Unknown for podEvictionTimeout and still silent → its VMIs fail (NodeUnresponsive) and its pods are
//      deleted. A node whose heartbeats resume before then keeps its VMs (its agent sets Ready=True again).

import { HEARTBEAT_ANNOTATION, SCHEDULABLE_LABEL } from "../../api/index.js";
import type { Condition, Lease, Node, Pod, VirtualMachineInstance } from "../../client/index.js";

export { HEARTBEAT_ANNOTATION, SCHEDULABLE_LABEL };
export const NODE_LEASE_NAMESPACE = "kube-node-lease";
export const NODE_STATUS_UNKNOWN = "NodeStatusUnknown";
export const NODE_STATUS_UNKNOWN_MESSAGE = "Kubelet stopped posting node status.";
export const NODE_UNRESPONSIVE = "NodeUnresponsive";

export interface NodeLifecycleConfig {
  /** Silence after which a node is Ready=Unknown. Default 40 s. */
  monitorGracePeriodMs: number;
  /** Time Ready=Unknown after which its pods are deleted and its VMIs fail. Default 5 min. */
  podEvictionTimeoutMs: number;
}

export const NODE_LIFECYCLE_DEFAULTS: NodeLifecycleConfig = {
  monitorGracePeriodMs: 40_000,
  podEvictionTimeoutMs: 300_000,
};

export type NodeAction =
  | { kind: "markUnknown"; node: string; conditions: Condition[] }
  | { kind: "unschedulable"; node: string }
  | { kind: "failVmi"; namespace: string; name: string; node: string }
  | { kind: "deletePod"; namespace: string; name: string; node: string };

export interface NodeWorld {
  nodes: readonly Node[];
  leases: readonly Lease[];
  pods: readonly Pod[];
  vmis: readonly VirtualMachineInstance[];
}

function ms(t: string | null | undefined): number {
  if (!t) return Number.NaN;
  return Date.parse(t);
}

/** The newest sign of life: the node Lease's renewTime, Ready's lastHeartbeatTime, KubeVirt's heartbeat annotation. */
export function lastHeartbeat(node: Node, lease: Lease | undefined): number | undefined {
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  const times = [
    ms(lease?.spec?.renewTime),
    ms(ready?.lastHeartbeatTime),
    ms(node.metadata.annotations?.[HEARTBEAT_ANNOTATION]),
  ].filter((n) => !Number.isNaN(n));
  return times.length ? Math.max(...times) : undefined;
}

export function planNodeLifecycle(world: NodeWorld, now: Date, cfg: NodeLifecycleConfig): NodeAction[] {
  const out: NodeAction[] = [];
  const t = now.getTime();
  const iso = now.toISOString();
  const leases = new Map(world.leases.map((l) => [l.metadata.name ?? "", l]));
  for (const node of world.nodes) {
    const name = node.metadata.name ?? "";
    // A node without any heartbeat yet counts from its creation, as Kubernetes does.
    const beat = lastHeartbeat(node, leases.get(name)) ?? ms(node.metadata.creationTimestamp);
    if (Number.isNaN(beat) || t - beat < cfg.monitorGracePeriodMs) continue;
    const conditions = node.status?.conditions ?? [];
    const ready = conditions.find((c) => c.type === "Ready");
    if (ready?.status !== "Unknown") {
      const unknown: Condition = {
        type: "Ready",
        status: "Unknown",
        reason: NODE_STATUS_UNKNOWN,
        message: NODE_STATUS_UNKNOWN_MESSAGE,
        lastTransitionTime: iso,
        ...(ready?.lastHeartbeatTime ? { lastHeartbeatTime: ready.lastHeartbeatTime } : {}),
      };
      out.push({ kind: "markUnknown", node: name, conditions: [...conditions.filter((c) => c !== ready), unknown] });
    }
    if (node.metadata.labels?.[SCHEDULABLE_LABEL] !== "false") out.push({ kind: "unschedulable", node: name });
    const since = ready?.status === "Unknown" ? ms(ready.lastTransitionTime) : t;
    // Still silent after the transition (the check above) and the grace has run out: give the node's work up.
    if (Number.isNaN(since) || t - since < cfg.podEvictionTimeoutMs || beat > since) continue;
    // A VMI is on the node by its status.nodeName, or (still Scheduling) by its launcher pod bound there.
    const owners = new Set(
      world.pods
        .filter((p) => p.spec.nodeName === name)
        .flatMap((p) =>
          (p.metadata.ownerReferences ?? [])
            .filter((r) => r.kind === "VirtualMachineInstance")
            .map((r) => `${p.metadata.namespace}/${r.uid}`),
        ),
    );
    for (const vmi of world.vmis) {
      const phase = vmi.status?.phase;
      const here = vmi.status?.nodeName === name || owners.has(`${vmi.metadata.namespace}/${vmi.metadata.uid}`);
      if (!here || phase === "Failed" || phase === "Succeeded") continue;
      out.push({
        kind: "failVmi",
        namespace: vmi.metadata.namespace ?? "default",
        name: vmi.metadata.name ?? "",
        node: name,
      });
    }
    for (const pod of world.pods) {
      if (pod.spec.nodeName !== name || pod.metadata.deletionTimestamp) continue;
      out.push({
        kind: "deletePod",
        namespace: pod.metadata.namespace ?? "default",
        name: pod.metadata.name ?? "",
        node: name,
      });
    }
  }
  return out;
}
