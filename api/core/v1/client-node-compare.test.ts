// Our hand-written built-in kinds against the Kubernetes models of @kubernetes/client-node (generated from
// Kubernetes' OpenAPI): every field a Kubernetes client may send must exist here, and ours must not invent names.
// Where we deliberately keep a subtree open (x-kubernetes-preserve-unknown-fields) the walk stops.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as k8s from "@kubernetes/client-node";
import {
  ConfigMap,
  CSIStorageCapacity,
  Event,
  HorizontalPodAutoscaler,
  Lease,
  Namespace,
  Node,
  PersistentVolume,
  PersistentVolumeClaim,
  Pod,
  Secret,
  SelfSubjectAccessReview,
  Service,
  ServiceAccount,
  StorageClass,
} from "../../index.js";

type Schema = Record<string, unknown>;
type Attr = { name: string; baseName: string; type: string };
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attr[] }>;

function open(s: Schema): boolean {
  return s["x-kubernetes-preserve-unknown-fields"] === true && !s.properties;
}

function compare(type: string, ours: Schema, path: string, problems: string[], seen: Set<string>): void {
  if (open(ours)) return;
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (ours.type !== "array") {
      problems.push(`${path}: Kubernetes has an array, ours is ${String(ours.type)}`);
      return;
    }
    compare(arr[1] as string, ours.items as Schema, `${path}[]`, problems, seen);
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof ours.additionalProperties !== "object") {
      problems.push(`${path}: Kubernetes has a map, ours is not`);
      return;
    }
    compare(map[1] as string, ours.additionalProperties as Schema, `${path}{}`, problems, seen);
    return;
  }
  if (type === "string" || type === "Date" || type === "V1MicroTime") {
    // strings, times and quantities (client-node types resource.Quantity as string)
    if (ours.type !== "string" && ours["x-kubernetes-int-or-string"] !== true)
      problems.push(`${path}: Kubernetes has a string, ours is ${String(ours.type)}`);
    return;
  }
  if (type === "number") {
    if (ours.type !== "integer" && ours.type !== "number") problems.push(`${path}: Kubernetes has a number`);
    return;
  }
  if (type === "boolean") {
    if (ours.type !== "boolean") problems.push(`${path}: Kubernetes has a boolean`);
    return;
  }
  if (type === "IntOrString") {
    if (ours["x-kubernetes-int-or-string"] !== true) problems.push(`${path}: Kubernetes has an IntOrString`);
    return;
  }
  if (type === "any" || type === "object") return;
  const model = models[type]?.getAttributeTypeMap?.();
  if (!model) {
    problems.push(`${path}: unknown client-node model ${type}`);
    return;
  }
  if (ours.type !== "object") {
    problems.push(`${path}: Kubernetes has ${type}, ours is ${String(ours.type)}`);
    return;
  }
  const key = `${type}@${path}`;
  if (seen.has(key)) return;
  seen.add(key);
  const props = (ours.properties ?? {}) as Record<string, Schema>;
  for (const a of model) {
    const p = path ? `${path}.${a.baseName}` : a.baseName;
    const sub = props[a.baseName];
    if (!sub) problems.push(`${p}: missing (${type}.${a.baseName})`);
    else compare(a.type, sub, p, problems, seen);
  }
  const known = new Set(model.map((a) => a.baseName));
  for (const name of Object.keys(props)) {
    if (!known.has(name)) problems.push(`${path ? `${path}.` : ""}${name}: not in Kubernetes' ${type}`);
  }
}

const kinds: [string, object][] = [
  ["V1Pod", Pod],
  ["V1Node", Node],
  ["V1Namespace", Namespace],
  ["V1PersistentVolumeClaim", PersistentVolumeClaim],
  ["V1PersistentVolume", PersistentVolume],
  ["V1ConfigMap", ConfigMap],
  ["V1Secret", Secret],
  ["V1ServiceAccount", ServiceAccount],
  ["V1Service", Service],
  ["CoreV1Event", Event],
  ["V1Lease", Lease],
  ["V2HorizontalPodAutoscaler", HorizontalPodAutoscaler],
  ["V1SelfSubjectAccessReview", SelfSubjectAccessReview],
  ["V1StorageClass", StorageClass],
  ["V1CSIStorageCapacity", CSIStorageCapacity],
];

for (const [model, schema] of kinds) {
  test(`${model}: every field of Kubernetes' model exists in our schema, and no other`, () => {
    const problems: string[] = [];
    compare(model, schema as Schema, "", problems, new Set());
    assert.deepEqual(problems, [], problems.join("\n"));
  });
}
