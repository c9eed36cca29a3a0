// The VMI ReplicaSet's thinking, pure: which VMIs it owns (adopting matching orphans, releasing owned ones that no
// longer match), how many to create or which to delete (not-ready first, then the newest), and the status.

import { controllerRef } from "../../api/index.js";
import type { Condition, VirtualMachineInstance, VirtualMachineInstanceReplicaSet } from "../../client/index.js";
import { labelSelectorMatches } from "../../lib/selectors.js";
import { getCondition, setCondition } from "../conditions.js";
import { isFinal } from "../lifecycle/index.js";

export type LabelSelector = VirtualMachineInstanceReplicaSet["spec"]["selector"];

/** metav1.LabelSelector semantics; an empty selector matches nothing (as for ReplicaSets, to be safe). */
export function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (Object.keys(sel?.matchLabels ?? {}).length === 0 && (sel?.matchExpressions ?? []).length === 0) return false;
  try {
    return labelSelectorMatches(sel, labels ?? {});
  } catch {
    return false; // an invalid selector selects nothing rather than failing the reconcile
  }
}

/** The selector as a string, for status.labelSelector (the /scale subresource reports it). */
export function selectorString(sel: LabelSelector | undefined): string {
  const parts = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const r of sel?.matchExpressions ?? []) {
    const vals = (r.values ?? []).join(",");
    if (r.operator === "In") parts.push(`${r.key} in (${vals})`);
    else if (r.operator === "NotIn") parts.push(`${r.key} notin (${vals})`);
    else if (r.operator === "Exists") parts.push(r.key);
    else if (r.operator === "DoesNotExist") parts.push(`!${r.key}`);
  }
  return parts.join(",");
}

export interface Claim {
  owned: VirtualMachineInstance[];
  adopt: VirtualMachineInstance[];
  release: VirtualMachineInstance[];
}

export function claimVmis(rs: VirtualMachineInstanceReplicaSet, vmis: readonly VirtualMachineInstance[]): Claim {
  const c: Claim = { owned: [], adopt: [], release: [] };
  if (rs.metadata.deletionTimestamp) return c;
  for (const v of vmis) {
    const ctrl = v.metadata.ownerReferences?.find((r) => r.controller);
    const matches = selectorMatches(rs.spec.selector, v.metadata.labels);
    if (ctrl?.uid === rs.metadata.uid) {
      if (matches) c.owned.push(v);
      else if (!v.metadata.deletionTimestamp) c.release.push(v);
    } else if (!ctrl && matches && !v.metadata.deletionTimestamp) c.adopt.push(v);
  }
  return c;
}

function isReady(v: VirtualMachineInstance): boolean {
  return getCondition(v.status?.conditions, "Ready")?.status === "True";
}

export interface RsPlan {
  create: number;
  delete: VirtualMachineInstance[];
}

/** Finished VMIs are removed and replaced; then the count is brought to spec.replicas (unless paused). */
export function planReplicaSet(rs: VirtualMachineInstanceReplicaSet, owned: readonly VirtualMachineInstance[]): RsPlan {
  const finished = owned.filter((v) => isFinal(v) && !v.metadata.deletionTimestamp);
  const active = owned.filter((v) => !isFinal(v) && !v.metadata.deletionTimestamp);
  if (rs.spec.paused) return { create: 0, delete: [] };
  const want = rs.spec.replicas ?? 1;
  const diff = want - active.length;
  if (diff >= 0) return { create: diff, delete: finished };
  const victims = [...active].sort((a, b) => {
    const ra = isReady(a) ? 1 : 0;
    const rb = isReady(b) ? 1 : 0;
    if (ra !== rb) return ra - rb; // not ready first
    return (b.metadata.creationTimestamp ?? "").localeCompare(a.metadata.creationTimestamp ?? ""); // newest first
  });
  return { create: 0, delete: [...finished, ...victims.slice(0, -diff)] };
}

export function vmiFromRsTemplate(rs: VirtualMachineInstanceReplicaSet): VirtualMachineInstance {
  const t = rs.spec.template;
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: {
      generateName: rs.metadata.name!,
      namespace: rs.metadata.namespace!,
      labels: { ...(t.metadata?.labels ?? {}) },
      annotations: { ...(t.metadata?.annotations ?? {}) },
      ownerReferences: [controllerRef(rs, "kubevirt.io/v1", "VirtualMachineInstanceReplicaSet")],
    },
    spec: structuredClone(t.spec!), // admission refuses a replica set without template.spec
  };
}

export function computeRsStatus(
  rs: VirtualMachineInstanceReplicaSet,
  owned: readonly VirtualMachineInstance[],
  failure: string | undefined,
  now: string,
): NonNullable<VirtualMachineInstanceReplicaSet["status"]> {
  const active = owned.filter((v) => !isFinal(v) && !v.metadata.deletionTimestamp);
  let conditions: Condition[] = [...(rs.status?.conditions ?? [])];
  if (failure) {
    conditions = setCondition(
      conditions,
      { type: "ReplicaFailure", status: "True", reason: "FailedCreate", message: failure },
      now,
    );
  } else conditions = conditions.filter((c) => c.type !== "ReplicaFailure");
  if (rs.spec.paused) {
    conditions = setCondition(
      conditions,
      { type: "ReplicaPaused", status: "True", reason: "Paused", message: "Replica set is paused" },
      now,
    );
  } else conditions = conditions.filter((c) => c.type !== "ReplicaPaused");
  const status: NonNullable<VirtualMachineInstanceReplicaSet["status"]> = {
    ...(rs.status ?? {}),
    replicas: active.length,
    readyReplicas: active.filter(isReady).length,
    labelSelector: selectorString(rs.spec.selector),
  };
  if (conditions.length > 0) status.conditions = conditions;
  else delete status.conditions;
  return status;
}
