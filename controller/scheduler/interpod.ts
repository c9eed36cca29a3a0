// Inter-pod affinity and anti-affinity, as kube-scheduler's InterPodAffinity plugin decides them, pure. A term
// selects pods by labelSelector in a set of namespaces (`namespaces` ∪ namespaceSelector; neither given: the term
// owner's namespace) and names a topology key (kubernetes.io/hostname, a zone, any node label). A node's topology
// domain is the value of that label on it. The state is computed once per pod to schedule, then read per node:
// - required affinity: every term must have a matching pod in the node's domain (a pod matching its own terms may
//   go first when no pod in the cluster matches them yet);
// - required anti-affinity: no term may have a matching pod in the node's domain;
// - symmetry: an existing pod's required anti-affinity term that matches the incoming pod repels it from that
//   pod's domain;
// - preferred terms (and existing pods' terms that match the incoming pod) add or subtract their weight to every
//   node in the matched domain; scores are normalised to [0, 100] over the feasible nodes.

import type { Node, Pod, PodAffinity, PodAffinityTerm } from "../../client/index.js";
import { type LabelSelector, labelSelectorFromObject, nothing } from "../../lib/selectors.js";

/** A pod that holds its place on a node (bound, or bound a moment ago and not yet in the cache). */
export interface PlacedPod {
  pod: Pod;
  node: string;
}

/** What the inter-pod rules need to know about the cluster. */
export interface ClusterPods {
  /** Every pod placed on a node that still runs there (not Succeeded/Failed); terminating pods included. */
  placed(): Iterable<PlacedPod>;
  /** The placed pods that carry pod affinity or anti-affinity terms of their own (default: filter placed()). */
  placedWithAffinity?(): Iterable<PlacedPod>;
  /** A namespace's labels, for namespaceSelector (undefined: unknown namespace, no labels). */
  namespaceLabels?(namespace: string): Readonly<Record<string, string>> | undefined;
}

export const EMPTY_CLUSTER: ClusterPods = { placed: () => [] };

/** kube-scheduler's InterPodAffinityArgs.hardPodAffinityWeight default. */
export const HARD_POD_AFFINITY_WEIGHT = 1;

export const REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules";
export const REASON_AFFINITY = "node(s) didn't match pod affinity rules";
export const REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules";

export interface InterPodState {
  readonly requiredAffinity: readonly PodAffinityTerm[];
  readonly requiredAntiAffinity: readonly PodAffinityTerm[];
  /** topology pair → placed pods matching all required affinity terms there. */
  readonly affinityCounts: ReadonlyMap<string, number>;
  /** topology pair → placed pods matching a required anti-affinity term there. */
  readonly antiAffinityCounts: ReadonlyMap<string, number>;
  /** topology pair → placed pods whose own required anti-affinity terms match the incoming pod. */
  readonly existingAntiAffinityCounts: ReadonlyMap<string, number>;
  /** The incoming pod matches all of its own required affinity terms. */
  readonly matchesOwnAffinity: boolean;
  /** topology pair → summed preferred weights (positive: attract, negative: repel). */
  readonly preferred: ReadonlyMap<string, number>;
}

const pairKey = (key: string, value: string): string => `${key}\u0000${value}`;

function compile(sel: PodAffinityTerm["labelSelector"]): LabelSelector {
  try {
    return labelSelectorFromObject(sel ?? undefined);
  } catch {
    return nothing; // an invalid selector selects nothing
  }
}

/** A term bound to its owner's namespace, with its selectors compiled once. */
class Term {
  readonly topologyKey: string;
  readonly #labels: LabelSelector;
  readonly #namespaces: ReadonlySet<string>;
  readonly #nsSelector: LabelSelector;

  constructor(term: PodAffinityTerm, ownerNamespace: string) {
    this.topologyKey = term.topologyKey;
    this.#labels = compile(term.labelSelector);
    const explicit = (term.namespaces ?? []).length > 0 || term.namespaceSelector != null;
    this.#namespaces = new Set(explicit ? (term.namespaces ?? []) : [ownerNamespace]);
    this.#nsSelector = term.namespaceSelector != null ? compile(term.namespaceSelector) : nothing;
  }

  matches(pod: Pod, cluster: ClusterPods): boolean {
    const ns = pod.metadata.namespace ?? "default";
    const nsOk = this.#namespaces.has(ns) || this.#nsSelector.matches(cluster.namespaceLabels?.(ns) ?? {});
    return nsOk && this.#labels.matches(pod.metadata.labels);
  }
}

function terms(list: readonly PodAffinityTerm[] | undefined, ns: string): Term[] {
  return (list ?? []).map((t) => new Term(t, ns));
}

function weighted(aff: PodAffinity | undefined, ns: string): { term: Term; weight: number }[] {
  return (aff?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((w) => ({
    term: new Term(w.podAffinityTerm, ns),
    weight: w.weight,
  }));
}

/** Whether a pod carries any pod affinity or anti-affinity term (the symmetric rules only look at such pods). */
export function hasPodAffinity(pod: Pod): boolean {
  const a = pod.spec.affinity;
  const n = (x: PodAffinity | undefined) =>
    (x?.requiredDuringSchedulingIgnoredDuringExecution?.length ?? 0) +
    (x?.preferredDuringSchedulingIgnoredDuringExecution?.length ?? 0);
  return n(a?.podAffinity) + n(a?.podAntiAffinity) > 0;
}

function bump(m: Map<string, number>, key: string, by: number): void {
  m.set(key, (m.get(key) ?? 0) + by);
}

/** Pre-computes, for one pod to schedule, the topology counts its rules are checked against. */
export function interPodState(pod: Pod, nodes: ReadonlyMap<string, Node>, cluster: ClusterPods): InterPodState {
  const ns = pod.metadata.namespace ?? "default";
  const aff = pod.spec.affinity;
  const reqAff = aff?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  const reqAnti = aff?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  const affTerms = terms(reqAff, ns);
  const antiTerms = terms(reqAnti, ns);
  const prefAff = weighted(aff?.podAffinity, ns);
  const prefAnti = weighted(aff?.podAntiAffinity, ns);
  const affinityCounts = new Map<string, number>();
  const antiAffinityCounts = new Map<string, number>();
  const existingAntiAffinityCounts = new Map<string, number>();
  const preferred = new Map<string, number>();
  const own = affTerms.length + antiTerms.length + prefAff.length + prefAnti.length > 0;
  const source = own
    ? cluster.placed()
    : (cluster.placedWithAffinity?.() ?? [...cluster.placed()].filter((p) => hasPodAffinity(p.pod)));
  const uid = pod.metadata.uid;

  for (const { pod: other, node: nodeName } of source) {
    if (uid !== undefined && other.metadata.uid === uid) continue;
    const labels = nodes.get(nodeName)?.metadata.labels;
    if (!labels) continue;
    const at = (key: string): string | undefined => (Object.hasOwn(labels, key) ? labels[key] : undefined);
    const add = (m: Map<string, number>, key: string, by: number) => {
      const v = at(key);
      if (v !== undefined) bump(m, pairKey(key, v), by);
    };
    // The incoming pod's own terms against this pod.
    if (affTerms.length > 0 && affTerms.every((t) => t.matches(other, cluster))) {
      for (const t of affTerms) add(affinityCounts, t.topologyKey, 1);
    }
    for (const t of antiTerms) if (t.matches(other, cluster)) add(antiAffinityCounts, t.topologyKey, 1);
    for (const { term, weight } of prefAff) if (term.matches(other, cluster)) add(preferred, term.topologyKey, weight);
    for (const { term, weight } of prefAnti)
      if (term.matches(other, cluster)) add(preferred, term.topologyKey, -weight);
    // This pod's terms against the incoming pod (the symmetric rules).
    if (!hasPodAffinity(other)) continue;
    const oa = other.spec.affinity;
    const ons = other.metadata.namespace ?? "default";
    for (const t of terms(oa?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution, ons)) {
      if (t.matches(pod, cluster)) add(existingAntiAffinityCounts, t.topologyKey, 1);
    }
    for (const t of terms(oa?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution, ons)) {
      if (t.matches(pod, cluster)) add(preferred, t.topologyKey, HARD_POD_AFFINITY_WEIGHT);
    }
    for (const { term, weight } of weighted(oa?.podAffinity, ons))
      if (term.matches(pod, cluster)) add(preferred, term.topologyKey, weight);
    for (const { term, weight } of weighted(oa?.podAntiAffinity, ons))
      if (term.matches(pod, cluster)) add(preferred, term.topologyKey, -weight);
  }
  return {
    requiredAffinity: reqAff,
    requiredAntiAffinity: reqAnti,
    affinityCounts,
    antiAffinityCounts,
    existingAntiAffinityCounts,
    matchesOwnAffinity: affTerms.length > 0 && affTerms.every((t) => t.matches(pod, cluster)),
    preferred,
  };
}

/** The filter: the reason this node fails the inter-pod rules, or undefined. */
export function interPodFit(node: Node, s: InterPodState): string | undefined {
  const labels = node.metadata.labels ?? {};
  if (s.existingAntiAffinityCounts.size > 0) {
    for (const [k, v] of Object.entries(labels)) {
      if ((s.existingAntiAffinityCounts.get(pairKey(k, v)) ?? 0) > 0) return REASON_EXISTING_ANTI_AFFINITY;
    }
  }
  let podsExist = true;
  for (const t of s.requiredAffinity) {
    if (!Object.hasOwn(labels, t.topologyKey)) return REASON_AFFINITY; // every topology label must exist
    if ((s.affinityCounts.get(pairKey(t.topologyKey, labels[t.topologyKey]!)) ?? 0) <= 0) podsExist = false;
  }
  // The first pod of a group with affinity to itself may go anywhere its topology labels exist.
  if (!podsExist && !(s.affinityCounts.size === 0 && s.matchesOwnAffinity)) return REASON_AFFINITY;
  for (const t of s.requiredAntiAffinity) {
    if (!Object.hasOwn(labels, t.topologyKey)) continue;
    if ((s.antiAffinityCounts.get(pairKey(t.topologyKey, labels[t.topologyKey]!)) ?? 0) > 0)
      return REASON_ANTI_AFFINITY;
  }
  return undefined;
}

/** The raw preferred score of a node: the summed weights of every topology domain it belongs to. */
export function interPodRawScore(node: Node, s: InterPodState): number {
  if (s.preferred.size === 0) return 0;
  let sum = 0;
  for (const [k, v] of Object.entries(node.metadata.labels ?? {})) sum += s.preferred.get(pairKey(k, v)) ?? 0;
  return sum;
}

/** kube's NormalizeScore: (score − min) / (max − min) × 100 over the feasible nodes; all equal → 0. */
export function normalizeScores(raw: readonly number[]): number[] {
  if (raw.length === 0) return [];
  const min = Math.min(...raw);
  const max = Math.max(...raw);
  return raw.map((r) => (max > min ? (100 * (r - min)) / (max - min) : 0));
}
