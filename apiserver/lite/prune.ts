// Unknown-field detection and pruning against a structural schema (until apiserver/validation/ lands on main).
import type { JSONSchemaProps } from "../../api/meta/v1/crd.js";
import { isPlainObject } from "./patch.js";

const objectMetaFields = new Set([
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
]);

/** Removes unknown ObjectMeta fields, returning their paths (`metadata.bar`). */
export function pruneUnknownMeta(obj: Record<string, unknown>): string[] {
  const unknown: string[] = [];
  if (isPlainObject(obj.metadata)) {
    for (const k of Object.keys(obj.metadata)) {
      if (!objectMetaFields.has(k)) {
        unknown.push(`metadata.${k}`);
        delete obj.metadata[k];
      }
    }
  }
  return unknown;
}

/** Removes fields the schema does not know, returning their paths (`spec.foo`, `metadata.bar`). */
export function pruneUnknown(obj: Record<string, unknown>, schema: JSONSchemaProps | undefined): string[] {
  const unknown: string[] = [];
  if (isPlainObject(obj.metadata)) {
    for (const k of Object.keys(obj.metadata)) {
      if (!objectMetaFields.has(k)) {
        unknown.push(`metadata.${k}`);
        delete obj.metadata[k];
      }
    }
  }
  if (schema) walk(obj, schema, "", unknown, true);
  return unknown;
}

function walk(v: unknown, s: JSONSchemaProps, path: string, out: string[], root: boolean): void {
  if (s["x-kubernetes-preserve-unknown-fields"] === true && !s.properties) return;
  if (Array.isArray(v)) {
    const items = s.items as JSONSchemaProps | undefined;
    if (items && typeof items === "object") {
      for (let i = 0; i < v.length; i++) walk(v[i], items, `${path}[${i}]`, out, false);
    }
    return;
  }
  if (!isPlainObject(v)) return;
  const props = s.properties as Record<string, JSONSchemaProps> | undefined;
  const addl = s.additionalProperties as JSONSchemaProps | boolean | undefined;
  for (const k of Object.keys(v)) {
    if (root && (k === "apiVersion" || k === "kind" || k === "metadata")) continue;
    const child = props?.[k];
    const p = path ? `${path}.${k}` : k;
    if (child) walk(v[k], child, p, out, false);
    else if (addl && typeof addl === "object") walk(v[k], addl, p, out, false);
    else if (addl === true || s["x-kubernetes-preserve-unknown-fields"] === true) continue;
    else if (props || s.type === "object") {
      out.push(p);
      delete v[k];
    }
  }
}
