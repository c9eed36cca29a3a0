// The built-in scheduler's filters and scores, pure: each predicate says why a node does not fit a pod (a reason in
// kube-scheduler's wording) or undefined when it fits. Node selector, required node affinity, taints/tolerations,
// cordoned and not-ready nodes, and resources counted from every pod bound to the node (terminating ones included);
// inter-pod affinity and anti-affinity (interpod.ts).

import type { Condition, Node, NodeSelectorTerm, Pod, Taint, Toleration } from "../../client/index.js";
import { requirementMatches as labelMatches, nodeSelectorTermMatches } from "../../lib/selectors.js";
import { bytes, millicores } from "../quantity.js";
import {
  type ClusterPods,
  EMPTY_CLUSTER,
  type InterPodState,
  interPodFit,
  interPodRawScore,
  interPodState,
  normalizeScores,
} from "./interpod.js";

export type { ClusterPods, PlacedPod } from "./interpod.js";
export { hasPodAffinity } from "./interpod.js";

export interface NodeUsage {
  cpuMillis: number;
  memoryBytes: number;
  pods: number;
}

export interface FitContext {
  usage: NodeUsage;
  /** The inter-pod rules' counts for this pod (schedule() computes them once; absent: an empty cluster). */
  interPod?: InterPodState;
}

export type Predicate = (pod: Pod, node: Node, ctx: FitContext) => string[] | undefined;

export function podRequests(pod: Pod): { cpuMillis: number; memoryBytes: number } {
  let cpuMillis = 0;
  let memoryBytes = 0;
  for (const c of pod.spec.containers) {
    cpuMillis += millicores(c.resources?.requests?.cpu);
    memoryBytes += bytes(c.resources?.requests?.memory);
  }
  return { cpuMillis, memoryBytes };
}

/** Sums requests of the pods bound to the node that still hold resources (not Succeeded/Failed). */
export function usageOf(pods: Iterable<Pod>, requests: typeof podRequests = podRequests): NodeUsage {
  const u: NodeUsage = { cpuMillis: 0, memoryBytes: 0, pods: 0 };
  for (const p of pods) {
    if (p.status?.phase === "Succeeded" || p.status?.phase === "Failed") continue;
    const r = requests(p);
    u.cpuMillis += r.cpuMillis;
    u.memoryBytes += r.memoryBytes;
    u.pods++;
  }
  return u;
}

function condition(node: Node, type: string): Condition | undefined {
  return node.status?.conditions?.find((c) => c.type === type);
}

export const nodeReady: Predicate = (_pod, node) =>
  condition(node, "Ready")?.status === "True"
    ? undefined
    : ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"];

export const nodeUnschedulable: Predicate = (pod, node) => {
  if (!node.spec?.unschedulable) return undefined;
  const tolerated = (pod.spec.tolerations ?? []).some(
    (t) => t.key === "node.kubernetes.io/unschedulable" && (t.operator === "Exists" || t.operator === undefined),
  );
  return tolerated ? undefined : ["node(s) were unschedulable"];
};

export function termMatches(term: NodeSelectorTerm, node: Node): boolean {
  return nodeSelectorTermMatches(term, node.metadata.labels, node.metadata.name ?? "");
}

export const nodeAffinity: Predicate = (pod, node) => {
  const sel = pod.spec.nodeSelector ?? {};
  const selOk = Object.entries(sel).every(([key, v]) =>
    labelMatches({ key, operator: "=", values: [v] }, node.metadata.labels),
  );
  const terms = pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  const affOk = !terms || terms.length === 0 || terms.some((t) => termMatches(t, node));
  return selOk && affOk ? undefined : ["node(s) didn't match Pod's node affinity/selector"];
};

export function tolerates(tols: readonly Toleration[], taint: Taint): boolean {
  return tols.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.key === undefined || t.key === "") return t.operator === "Exists";
    if (t.key !== taint.key) return false;
    return t.operator === "Exists" || (t.value ?? "") === (taint.value ?? "");
  });
}

export const taintToleration: Predicate = (pod, node) => {
  const tols = pod.spec.tolerations ?? [];
  const bad = (node.spec?.taints ?? []).find(
    (t) => (t.effect === "NoSchedule" || t.effect === "NoExecute") && !tolerates(tols, t),
  );
  return bad ? [`node(s) had untolerated taint {${bad.key}: ${bad.value ?? ""}}`] : undefined;
};

export const resourcesFit: Predicate = (pod, node, ctx) => {
  const alloc = node.status?.allocatable ?? node.status?.capacity ?? {};
  const req = podRequests(pod);
  const out: string[] = [];
  if (alloc.pods !== undefined && ctx.usage.pods + 1 > Number(alloc.pods)) out.push("Too many pods");
  if (req.cpuMillis > 0 && ctx.usage.cpuMillis + req.cpuMillis > millicores(alloc.cpu)) out.push("Insufficient cpu");
  if (req.memoryBytes > 0 && ctx.usage.memoryBytes + req.memoryBytes > bytes(alloc.memory))
    out.push("Insufficient memory");
  return out.length > 0 ? out : undefined;
};

/** Required pod affinity and anti-affinity, and existing pods' required anti-affinity against this pod. */
export const interPodAffinity: Predicate = (pod, node, ctx) => {
  const state = ctx.interPod ?? interPodState(pod, new Map(), EMPTY_CLUSTER);
  const reason = interPodFit(node, state);
  return reason ? [reason] : undefined;
};

/** Filters in kube-scheduler's order; the first failing predicate's reasons are reported for a node. */
export const defaultPredicates: readonly Predicate[] = [
  nodeUnschedulable,
  nodeReady,
  nodeAffinity,
  taintToleration,
  resourcesFit,
  interPodAffinity,
];

/** kube-scheduler's default weight of the InterPodAffinity score plugin. */
export const INTER_POD_SCORE_WEIGHT = 2;

export interface ScheduleOptions {
  /** The pods already placed, for pod (anti-)affinity; absent: no pod is placed anywhere. */
  cluster?: ClusterPods;
}

/** Least-allocated score in [0, 100] plus preferred node-affinity weights. */
export function score(pod: Pod, node: Node, ctx: FitContext): number {
  const alloc = node.status?.allocatable ?? node.status?.capacity ?? {};
  const req = podRequests(pod);
  const cpu = millicores(alloc.cpu);
  const mem = bytes(alloc.memory);
  const free = (cap: number, used: number) => (cap > 0 ? Math.max(0, (cap - used) / cap) : 0);
  let s = 50 * (free(cpu, ctx.usage.cpuMillis + req.cpuMillis) + free(mem, ctx.usage.memoryBytes + req.memoryBytes));
  for (const p of pod.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []) {
    if (termMatches(p.preference, node)) s += p.weight;
  }
  return s;
}

export type ScheduleResult = { fit: true; node: string } | { fit: false; message: string };

/**
 * Picks the best node for the pod, or explains why none fits in kube-scheduler's words:
 * "0/3 nodes are available: 1 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector."
 */
export function schedule(
  pod: Pod,
  nodes: readonly Node[],
  usage: (node: string) => NodeUsage,
  predicates: readonly Predicate[] = defaultPredicates,
  options: ScheduleOptions = {},
): ScheduleResult {
  if (nodes.length === 0) return { fit: false, message: "no nodes available to schedule pods" };
  const reasons = new Map<string, number>();
  const interPod = interPodState(
    pod,
    new Map(nodes.map((n) => [n.metadata.name ?? "", n])),
    options.cluster ?? EMPTY_CLUSTER,
  );
  const feasible: { name: string; score: number; raw: number }[] = [];
  for (const node of nodes) {
    const ctx: FitContext = { usage: usage(node.metadata.name ?? ""), interPod };
    let failed: string[] | undefined;
    for (const p of predicates) {
      failed = p(pod, node, ctx);
      if (failed) break;
    }
    if (failed) {
      for (const r of failed) reasons.set(r, (reasons.get(r) ?? 0) + 1);
      continue;
    }
    feasible.push({
      name: node.metadata.name ?? "",
      score: score(pod, node, ctx),
      raw: interPodRawScore(node, interPod),
    });
  }
  // Preferred inter-pod terms rank the feasible nodes (normalised among them, as kube does).
  const inter = normalizeScores(feasible.map((f) => f.raw));
  let best: { name: string; score: number } | undefined;
  for (const [i, f] of feasible.entries()) {
    const s = f.score + INTER_POD_SCORE_WEIGHT * (inter[i] ?? 0);
    if (!best || s > best.score || (s === best.score && f.name < best.name)) best = { name: f.name, score: s };
  }
  if (best) return { fit: true, node: best.name };
  const parts = [...reasons.entries()]
    .map(([r, n]) => `${n} ${r}`)
    .sort((a, b) => a.split(" ").slice(1).join(" ").localeCompare(b.split(" ").slice(1).join(" ")));
  return { fit: false, message: `0/${nodes.length} nodes are available: ${parts.join(", ")}.` };
}
