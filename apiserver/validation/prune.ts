// metadata is ObjectMeta for every kind (a CRD's schema cannot change it): its fields are api/'s ObjectMeta schema's.
import { ObjectMeta } from "../../api/index.js";
import { isObject } from "../../lib/json.js";

const objectMetaFields = new Set(Object.keys(ObjectMeta.properties));

/** Removes unknown ObjectMeta fields, returning their paths (`metadata.bar`). */
export function pruneUnknownMeta(obj: Record<string, unknown>): string[] {
  const unknown: string[] = [];
  if (isObject(obj.metadata)) {
    for (const k of Object.keys(obj.metadata)) {
      if (!objectMetaFields.has(k)) {
        unknown.push(`metadata.${k}`);
        delete obj.metadata[k];
      }
    }
  }
  return unknown;
}
