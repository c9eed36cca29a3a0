// meta/v1 types shared by every kind: ObjectMeta, ListMeta, OwnerReference, LabelSelector, Condition.
import type { Static, TSchema } from "@sinclair/typebox";
import { Bool, Enum, Int64, ListOf, Preserve, Str, StrMap, Struct, Time } from "./schema.js";

export const OwnerReference = Struct(
  { apiVersion: Str, kind: Str, name: Str, uid: Str, controller: Bool, blockOwnerDeletion: Bool },
  ["apiVersion", "kind", "name", "uid"],
);
export type OwnerReference = Static<typeof OwnerReference>;

export const ManagedFieldsEntry = Struct({
  manager: Str,
  operation: Str,
  apiVersion: Str,
  time: Time,
  fieldsType: Str,
  fieldsV1: Preserve(),
  subresource: Str,
});
export type ManagedFieldsEntry = Static<typeof ManagedFieldsEntry>;

export const ObjectMeta = Struct({
  name: Str,
  generateName: Str,
  namespace: Str,
  selfLink: Str,
  uid: Str,
  resourceVersion: Str,
  generation: Int64,
  creationTimestamp: Time,
  deletionTimestamp: Time,
  deletionGracePeriodSeconds: Int64,
  labels: StrMap,
  annotations: StrMap,
  ownerReferences: ListOf(OwnerReference),
  finalizers: ListOf(Str),
  managedFields: ListOf(ManagedFieldsEntry),
});
export type ObjectMeta = Static<typeof ObjectMeta>;

export const ListMeta = Struct({ selfLink: Str, resourceVersion: Str, continue: Str, remainingItemCount: Int64 });
export type ListMeta = Static<typeof ListMeta>;

export const LabelSelectorRequirement = Struct({ key: Str, operator: Str, values: ListOf(Str) }, ["key", "operator"]);
export const LabelSelector = Struct({ matchLabels: StrMap, matchExpressions: ListOf(LabelSelectorRequirement) });
export type LabelSelector = Static<typeof LabelSelector>;

export const ConditionStatus = Enum(["True", "False", "Unknown"] as const);
export type ConditionStatus = Static<typeof ConditionStatus>;

/** metav1.Condition plus lastProbeTime, which KubeVirt's conditions carry. */
export const Condition = Struct(
  {
    type: Str,
    status: ConditionStatus,
    observedGeneration: Int64,
    lastProbeTime: Time,
    lastTransitionTime: Time,
    reason: Str,
    message: Str,
  },
  ["type", "status"],
);
export interface Condition<T extends string = string> {
  type: T;
  status: ConditionStatus;
  observedGeneration?: number;
  lastProbeTime?: string;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
}

/** Returns a new condition list with `next` set; lastTransitionTime moves only when the status changes. */
export function setCondition<T extends string>(
  conds: readonly Condition<T>[],
  next: Condition<T>,
  now: string,
): Condition<T>[] {
  const old = conds.find((c) => c.type === next.type);
  const lastTransitionTime = old && old.status === next.status ? (old.lastTransitionTime ?? now) : now;
  return [...conds.filter((c) => c.type !== next.type), { ...next, lastTransitionTime }];
}

/** metav1.Time as Kubernetes serializes it: RFC 3339 with second precision. */
export function nowRfc3339(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
}

/** The fields every top-level object has (apiVersion and kind are filled in by the server when absent). */
export const TypeMeta = { apiVersion: Str, kind: Str, metadata: ObjectMeta };

/** A list kind (`VirtualMachineList`) for an item schema. */
export function listOf<T extends TSchema>(item: T) {
  return Struct({ apiVersion: Str, kind: Str, metadata: ListMeta, items: ListOf(item) }, ["items"]);
}
