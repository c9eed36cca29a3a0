// Condition helpers with metav1's semantics: lastTransitionTime changes only when the status changes; never mutates.

import type { Condition } from "../client/index.js";

export function getCondition(conds: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conds?.find((c) => c.type === type);
}

export function setCondition(conds: readonly Condition[] | undefined, next: Condition, now: string): Condition[] {
  const list = conds ?? [];
  const old = list.find((c) => c.type === next.type);
  const lastTransitionTime = old && old.status === next.status && old.lastTransitionTime ? old.lastTransitionTime : now;
  const c: Condition = { ...next, lastTransitionTime };
  if (old && old.lastProbeTime !== undefined && c.lastProbeTime === undefined) c.lastProbeTime = old.lastProbeTime;
  const i = list.findIndex((x) => x.type === next.type);
  if (i < 0) return [...list, c];
  return list.map((x, j) => (j === i ? c : x));
}

export function removeCondition(conds: readonly Condition[] | undefined, type: string): Condition[] {
  return (conds ?? []).filter((c) => c.type !== type);
}

/** RFC 3339 with second precision, as Kubernetes timestamps are serialized. */
export function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}
