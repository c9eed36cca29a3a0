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
export type LabelSelectorRequirement = Static<typeof LabelSelectorRequirement>;
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

/** The fields the condition helpers read; Pod, Node and KubeVirt conditions all have them. */
interface ConditionLike {
  type: string;
  status: string;
  lastTransitionTime?: string | null;
  lastProbeTime?: string | null;
}

export function getCondition<C extends ConditionLike>(conds: readonly C[] | undefined, type: string): C | undefined {
  return conds?.find((c) => c.type === type);
}

/**
 * metav1's SetStatusCondition: a new list with `next` set in place (or appended); lastTransitionTime moves only when
 * the status changes, and a lastProbeTime `next` does not carry is kept. Never mutates.
 */
export function setCondition<C extends ConditionLike>(conds: readonly C[] | undefined, next: C, now: string): C[] {
  const list = conds ?? [];
  const old = list.find((c) => c.type === next.type);
  const lastTransitionTime = old && old.status === next.status && old.lastTransitionTime ? old.lastTransitionTime : now;
  const c: C = { ...next, lastTransitionTime };
  if (old && old.lastProbeTime !== undefined && c.lastProbeTime === undefined) c.lastProbeTime = old.lastProbeTime;
  const i = list.findIndex((x) => x.type === next.type);
  if (i < 0) return [...list, c];
  return list.map((x, j) => (j === i ? c : x));
}

export function removeCondition<C extends ConditionLike>(conds: readonly C[] | undefined, type: string): C[] {
  return (conds ?? []).filter((c) => c.type !== type);
}

/** metav1.Time as Kubernetes serializes it: RFC 3339 with second precision. */
export function nowRfc3339(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
}

/** Any object as stored and served: TypeMeta plus ObjectMeta, which every object read from the API server has. */
export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/** metav1.NewControllerRef: the owner reference a controller puts on what it creates or adopts. */
export function controllerRef(owner: KObject, apiVersion: string, kind: string): OwnerReference {
  const { name = "", uid = "" } = owner.metadata;
  return { apiVersion, kind, name, uid, controller: true, blockOwnerDeletion: true };
}

/** A stored object of any kind as generic code handles it: the envelope is known, the body is the kind's. */
export type UnstructuredObject = KObject & { [k: string]: unknown };

/** A list of objects (`PodList`, ...). */
export interface KList<T = KObject> {
  apiVersion?: string;
  kind?: string;
  metadata: ListMeta;
  items: T[];
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** One event of a watch stream (metav1.WatchEvent). */
export interface WatchEvent<T = KObject> {
  type: WatchEventType;
  object: T;
}

/** The fields every top-level object has (apiVersion and kind are filled in by the server when absent). */
export const TypeMeta = { apiVersion: Str, kind: Str, metadata: ObjectMeta };

/** A list kind (`VirtualMachineList`) for an item schema. */
export function listOf<T extends TSchema>(item: T) {
  return Struct({ apiVersion: Str, kind: Str, metadata: ListMeta, items: ListOf(item) }, ["items"]);
}
