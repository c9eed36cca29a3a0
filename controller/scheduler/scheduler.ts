// The built-in scheduler (embedded mode; on a cluster kube-scheduler does this): binds each pending pod through
// pods/binding to the best node that fits, or marks it PodScheduled=False/Unschedulable with kube's message.
// Pods it has just bound are "assumed" on their node until the cache shows the binding, so a burst of pods never
// overcommits a node because of cache lag. Several workers bind at once (kube-scheduler's asynchronous binding cycle):
// the decision (pure `schedule`) and the reservation in `assumed` happen in one synchronous step before the binding
// request is sent, so concurrent workers always see each other's reservations.

import { StorageAnnotations } from "../../api/index.js";
import {
  type Client,
  type Informer,
  type KObject,
  type Node,
  type PersistentVolumeClaim,
  type Pod,
  resources,
} from "../../client/index.js";
import { isConflict, isNotFound } from "../../lib/errors.js";
import { forObject, type Logger } from "../../lib/log.js";
import type { ReconcileResult } from "../../lib/workqueue/index.js";
import { type ClaimLookup, podClaimNames, podVolumes, volumesFitNode } from "../../storage/index.js";
import { setCondition, timestamp } from "../conditions.js";
import { Reasons, type Recorder } from "../events/index.js";
import {
  type ClusterPods,
  defaultPredicates,
  hasPodAffinity,
  type NodeUsage,
  type PlacedPod,
  type Predicate,
  podRequests,
  schedule,
  usageOf,
} from "./predicates.js";

export const NODE_INDEX = "nodeName";
/** Index of bound pods that carry pod (anti-)affinity terms (value "true"), for the symmetric rules. */
export const POD_AFFINITY_INDEX = "podAffinity";
export const DEFAULT_SCHEDULER = "default-scheduler";
/** Retry interval for unschedulable pods, besides the retries node and pod changes trigger. */
export const UNSCHEDULABLE_RETRY_MS = 15_000;

export interface SchedulerDeps {
  client: Client;
  /** All pods, indexed by spec.nodeName under NODE_INDEX. */
  pods: Informer<Pod>;
  nodes: Informer<Node>;
  recorder: Recorder;
  log: Logger;
  now: () => Date;
  /** pod uid → node, for bindings the cache has not shown yet. */
  assumed: Map<string, { node: string; pod: Pod }>;
  predicates?: readonly Predicate[];
  /** Namespaces, for pod affinity terms with a namespaceSelector (absent: namespaces have no labels). */
  namespaces?: Informer<KObject>;
  /** Claims, volumes and local free space (absent: pods with claims are not checked against storage). */
  storage?: SchedulerStorage;
}

/** The storage controller's view the volume binding check reads (storage/'s StorageController has this shape). */
export interface SchedulerStorage {
  lookup: ClaimLookup;
  freeBytes(extra: readonly { node: string; claim: PersistentVolumeClaim }[]): Map<string, number>;
}

/** Unbound claims of pods assumed on a node: their space is taken there before the claims say so. */
function assumedClaims(deps: SchedulerDeps, storage: SchedulerStorage) {
  const out: { node: string; claim: PersistentVolumeClaim }[] = [];
  for (const a of deps.assumed.values()) {
    for (const name of podClaimNames(a.pod)) {
      const claim = storage.lookup.claim(a.pod.metadata.namespace ?? "", name);
      if (claim && !claim.spec.volumeName) out.push({ node: a.node, claim });
    }
  }
  return out;
}

export function nodeNameIndex(pod: Pod): string[] {
  return pod.spec.nodeName ? [pod.spec.nodeName] : [];
}

export { hasPodAffinity };

export function podAffinityIndex(pod: Pod): string[] {
  return pod.spec.nodeName && hasPodAffinity(pod) ? ["true"] : [];
}

const holdsPlace = (p: Pod): boolean => p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed";

/** The placed pods as the inter-pod rules see them: bound pods from the cache plus assumed bindings. */
export function clusterPods(deps: SchedulerDeps): ClusterPods {
  const placed = (pods: Iterable<Pod>, onlyAffinity: boolean): PlacedPod[] => {
    const out: PlacedPod[] = [];
    const seen = new Set<string>();
    for (const p of pods) {
      if (!p.spec.nodeName || !holdsPlace(p)) continue;
      seen.add(p.metadata.uid ?? "");
      out.push({ pod: p, node: p.spec.nodeName });
    }
    for (const a of deps.assumed.values()) {
      if (seen.has(a.pod.metadata.uid ?? "") || (onlyAffinity && !hasPodAffinity(a.pod))) continue;
      out.push({ pod: a.pod, node: a.node });
    }
    return out;
  };
  return {
    placed: () => placed(deps.pods.list(), false),
    placedWithAffinity: () => placed(deps.pods.byIndex(POD_AFFINITY_INDEX, "true"), true),
    namespaceLabels: (ns) => deps.namespaces?.get(ns)?.metadata.labels,
  };
}

export function needsScheduling(pod: Pod): boolean {
  return (
    !pod.spec.nodeName &&
    !pod.metadata.deletionTimestamp &&
    pod.status?.phase !== "Succeeded" &&
    pod.status?.phase !== "Failed" &&
    (pod.spec.schedulerName === undefined || pod.spec.schedulerName === DEFAULT_SCHEDULER)
  );
}

/** A pod's requests, parsed once per cached object (informer objects are replaced, never changed, on update). */
const requestsMemo = new WeakMap<Pod, ReturnType<typeof podRequests>>();
function requestsOf(pod: Pod): ReturnType<typeof podRequests> {
  let r = requestsMemo.get(pod);
  if (!r) {
    r = podRequests(pod);
    requestsMemo.set(pod, r);
  }
  return r;
}

/** The usage of every node: pods the cache shows bound there, plus pods assumed there that it does not show yet. */
function usageByNode(deps: SchedulerDeps): (node: string) => NodeUsage {
  const assumedOn = new Map<string, Pod[]>();
  for (const a of deps.assumed.values()) {
    const l = assumedOn.get(a.node);
    if (l) l.push(a.pod);
    else assumedOn.set(a.node, [a.pod]);
  }
  return (node) => {
    const bound = deps.pods.byIndex(NODE_INDEX, node);
    const extra = assumedOn.get(node);
    if (!extra) return usageOf(bound, requestsOf);
    const uids = new Set(bound.map((p) => p.metadata.uid));
    return usageOf([...bound, ...extra.filter((p) => !uids.has(p.metadata.uid))], requestsOf);
  };
}

export async function reconcilePodScheduling(deps: SchedulerDeps, key: string): Promise<ReconcileResult> {
  const pod = deps.pods.get(key);
  if (!pod || !needsScheduling(pod)) return {};
  if (deps.assumed.has(pod.metadata.uid ?? "")) return {};
  const log = forObject(deps.log, pod);
  let predicates = deps.predicates ?? defaultPredicates;
  let toSelect: PersistentVolumeClaim[] = [];
  const storage = deps.storage;
  if (storage && podClaimNames(pod).length > 0) {
    const vols = podVolumes(pod, storage.lookup);
    if ("error" in vols) {
      return unschedulable(deps, pod, `0/${deps.nodes.list().length} nodes are available: ${vols.error}.`);
    }
    const free = storage.freeBytes(assumedClaims(deps, storage));
    predicates = [
      ...predicates,
      (_p, node) => {
        const why = volumesFitNode(vols, node, storage.lookup, free);
        return why ? [why] : undefined;
      },
    ];
    toSelect = vols.unbound;
  }
  const result = schedule(pod, deps.nodes.list(), usageByNode(deps), predicates, {
    cluster: clusterPods(deps),
  });
  if (result.fit) {
    deps.assumed.set(pod.metadata.uid!, { node: result.node, pod });
    try {
      // kube-scheduler's volume binding PreBind: the claims learn their node before the pod is bound, so the
      // provisioner makes the volume where the pod runs.
      for (const claim of toSelect) {
        if (claim.metadata.annotations?.[StorageAnnotations.selectedNode] === result.node) continue;
        await deps.client.patch(resources.pvcs, claim.metadata.namespace, claim.metadata.name ?? "", "merge", {
          metadata: { annotations: { [StorageAnnotations.selectedNode]: result.node } },
        });
      }
      await deps.client.createSubresource(resources.pods, pod.metadata.namespace, pod.metadata.name!, "binding", {
        apiVersion: "v1",
        kind: "Binding",
        metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, uid: pod.metadata.uid },
        target: { apiVersion: "v1", kind: "Node", name: result.node },
      });
    } catch (err) {
      deps.assumed.delete(pod.metadata.uid!);
      if (isNotFound(err) || isConflict(err)) return {};
      throw err;
    }
    log.info("Bound pod", { node: result.node });
    deps.recorder.event(
      pod,
      "Normal",
      Reasons.Scheduled,
      `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${result.node}`,
    );
    return {};
  }
  return unschedulable(deps, pod, result.message);
}

async function unschedulable(deps: SchedulerDeps, pod: Pod, message: string): Promise<ReconcileResult> {
  const log = forObject(deps.log, pod);
  const result = { message };
  const cur = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (cur?.status !== "False" || cur.reason !== "Unschedulable" || cur.message !== result.message) {
    const conditions = setCondition(
      pod.status?.conditions,
      { type: "PodScheduled", status: "False", reason: "Unschedulable", message: result.message },
      timestamp(deps.now()),
    );
    try {
      await deps.client.updateStatus(resources.pods, {
        ...pod,
        status: { ...pod.status, phase: pod.status?.phase ?? "Pending", conditions },
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
    deps.recorder.event(pod, "Warning", Reasons.FailedScheduling, result.message);
    log.info("Pod unschedulable", { message: result.message });
  }
  return { requeueAfterMs: UNSCHEDULABLE_RETRY_MS };
}
