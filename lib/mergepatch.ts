// JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, anything else replaces.

import { clone, isObject, type Json } from "./json.js";

export function applyMergePatch<T = unknown>(target: unknown, patch: unknown): T {
  return mergeValue(clone(target) as Json, patch as Json) as T;
}

function mergeValue(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, Json> = isObject(target) ? target : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergeValue(out[k], v);
  }
  return out;
}
