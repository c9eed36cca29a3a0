// Strategic merge patch for built-in kinds: like a merge patch, except that lists declared with patchStrategy=merge
// merge element by element (by their patchMergeKey, or as a set for primitives), and the directives `$patch`
// (replace | delete | merge), `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` are
// honoured. Custom kinds never get here: the REST layer answers 415 for them, as kube-apiserver does.

import { badRequest } from "../../lib/errors.js";
import { clone, deepEqual, isObject, type Json, type JsonObject } from "../../lib/json.js";

export interface PatchMeta {
  /** kube's `patchStrategy` tag: "merge", "replace", "retainKeys" or "merge,retainKeys". Absent = replace. */
  strategy?: string;
  /** kube's `patchMergeKey` tag, for lists of objects. Absent on a merge list = a set of primitives. */
  mergeKey?: string;
}

/** Field names from the object root to a field; list items are skipped (`["spec","containers","env"]`). */
export type PatchMetaLookup = (path: readonly string[]) => PatchMeta | undefined;

const deleteDirective = "$deleteFromPrimitiveList/";
const orderDirective = "$setElementOrder/";
const DELETE = Symbol("delete");

function isDirectiveKey(k: string): boolean {
  return k === "$patch" || k === "$retainKeys" || k.startsWith(deleteDirective) || k.startsWith(orderDirective);
}

function strip(v: Json): Json {
  if (Array.isArray(v))
    return v.filter((x) => !(isObject(x) && x.$patch !== undefined && Object.keys(x).length === 1)).map(strip);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) if (!isDirectiveKey(k)) out[k] = strip(x);
  return out;
}

function hasStrategy(meta: PatchMeta | undefined, s: string): boolean {
  return (meta?.strategy ?? "").split(",").includes(s);
}

class Smp {
  constructor(private readonly lookup: PatchMetaLookup) {}

  mergeMap(original: Json | undefined, patch: JsonObject, path: string[]): Json | typeof DELETE {
    const directive = patch.$patch;
    if (directive !== undefined) {
      if (directive === "replace") return strip(patch);
      if (directive === "delete") return DELETE;
      if (directive !== "merge")
        throw badRequest(`Unknown patch type: ${String(directive)} in map: ${JSON.stringify(patch)}`);
    }
    let result: JsonObject = isObject(original) ? clone(original) : {};
    const retain = patch.$retainKeys;
    if (retain !== undefined) {
      if (!Array.isArray(retain) || !retain.every((x) => typeof x === "string")) {
        throw badRequest("invalid patch: the value of $retainKeys must be a list of strings");
      }
      for (const k of Object.keys(patch)) {
        if (!isDirectiveKey(k) && !retain.includes(k)) {
          throw badRequest(`The patch content doesn't match retainKeys list: ${JSON.stringify(retain)}`);
        }
      }
      const kept: JsonObject = {};
      for (const k of retain as string[]) if (Object.hasOwn(result, k)) kept[k] = result[k]!;
      result = kept;
    }
    const orders = new Map<string, Json[]>();
    for (const [k, v] of Object.entries(patch)) {
      if (k.startsWith(deleteDirective)) {
        const field = k.slice(deleteDirective.length);
        if (!Array.isArray(v)) throw badRequest(`invalid patch: ${k} must be a list`);
        const cur = result[field];
        if (Array.isArray(cur)) result[field] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      } else if (k.startsWith(orderDirective)) {
        if (!Array.isArray(v)) throw badRequest(`invalid patch: ${k} must be a list`);
        orders.set(k.slice(orderDirective.length), v);
      }
    }
    for (const [k, v] of Object.entries(patch)) {
      if (isDirectiveKey(k)) continue;
      const childPath = [...path, k];
      if (v === null) {
        delete result[k];
      } else if (isObject(v)) {
        const merged = this.mergeMap(result[k], v, childPath);
        if (merged === DELETE) delete result[k];
        else result[k] = merged;
      } else if (Array.isArray(v)) {
        const meta = this.lookup(childPath);
        if (hasStrategy(meta, "merge")) result[k] = this.mergeList(result[k], v, meta!, childPath, orders.get(k));
        else result[k] = strip(v);
      } else {
        result[k] = v;
      }
    }
    // A `$setElementOrder` without a patch list for its field only reorders the live list.
    for (const [field, order] of orders) {
      const cur = result[field];
      if (Object.hasOwn(patch, field) || !Array.isArray(cur)) continue;
      const meta = this.lookup([...path, field]);
      if (hasStrategy(meta, "merge")) result[field] = this.order(cur, cur, order, meta?.mergeKey);
    }
    return result;
  }

  mergeList(original: Json | undefined, patch: Json[], meta: PatchMeta, path: string[], setOrder?: Json[]): Json[] {
    const orig = Array.isArray(original) ? clone(original) : [];
    if (patch.some((x) => isObject(x) && x.$patch === "replace" && Object.keys(x).length === 1)) {
      return strip(patch) as Json[];
    }
    if (patch.length === 0 && !setOrder) return orig;
    const key = meta.mergeKey;
    if (!key || patch.every((x) => !isObject(x))) {
      if (patch.some((x) => isObject(x) || Array.isArray(x)))
        throw badRequest("invalid patch: a list of primitives holds an object");
      const out = [...orig];
      for (const x of patch) if (!out.some((y) => deepEqual(x, y))) out.push(x);
      return this.order(out, orig, setOrder ?? patch, undefined);
    }
    let out: Json[] = orig;
    for (const item of patch) {
      if (!isObject(item)) throw badRequest(`invalid patch: list ${path.join(".")} mixes objects and primitives`);
      if (!Object.hasOwn(item, key)) {
        throw badRequest(`map: ${JSON.stringify(item)} does not contain declared merge key: ${key}`);
      }
      const kv = item[key];
      const i = out.findIndex((x) => isObject(x) && deepEqual(x[key], kv));
      if (item.$patch === "delete") {
        out = out.filter((x) => !(isObject(x) && deepEqual(x[key], kv)));
        continue;
      }
      const merged = this.mergeMap(i >= 0 ? out[i] : undefined, item, path);
      if (merged === DELETE) continue;
      if (i >= 0) out[i] = merged;
      else out.push(merged);
    }
    return this.order(out, Array.isArray(original) ? original : [], setOrder ?? patch, key);
  }

  /**
   * kube's element order after a merge: the elements the patch (or its `$setElementOrder`) names come in that
   * order; the server-only elements keep their live order and are interleaved by their live positions.
   */
  order(merged: Json[], live: Json[], patchOrder: Json[], key: string | undefined): Json[] {
    const same = (a: Json, b: Json): boolean =>
      key ? isObject(a) && isObject(b) && deepEqual(a[key], b[key]) : deepEqual(a, b);
    const indexIn = (list: Json[], x: Json) => list.findIndex((y) => same(x, y));
    const named = patchOrder.filter((x) => !(isObject(x) && x.$patch === "delete"));
    const inPatch: Json[] = [];
    const serverOnly: Json[] = [];
    for (const x of merged) (indexIn(named, x) >= 0 ? inPatch : serverOnly).push(x);
    inPatch.sort((a, b) => indexIn(named, a) - indexIn(named, b));
    serverOnly.sort((a, b) => indexIn(live, a) - indexIn(live, b));
    const out: Json[] = [];
    let i = 0;
    let j = 0;
    while (i < serverOnly.length || j < inPatch.length) {
      if (j >= inPatch.length) out.push(serverOnly[i++]!);
      else if (i >= serverOnly.length) out.push(inPatch[j++]!);
      else {
        const li = indexIn(live, serverOnly[i]!);
        const ri = indexIn(live, inPatch[j]!);
        if (li >= 0 && ri >= 0 && li < ri) out.push(serverOnly[i++]!);
        else out.push(inPatch[j++]!);
      }
    }
    return out;
  }
}

/**
 * Applies a strategic merge patch to a copy of `target`. `schemaInfo` says which lists merge and by which key (see
 * `builtinPatchMeta`). Malformed directives are 400 BadRequest StatusErrors.
 */
export function applyStrategicMergePatch<T = unknown>(
  target: unknown,
  patch: unknown,
  schemaInfo: PatchMetaLookup = builtinPatchMeta,
): T {
  if (!isObject(patch)) throw badRequest("strategic merge patch must be a JSON object");
  const out = new Smp(schemaInfo).mergeMap(clone(target) as Json, patch, []);
  return (out === DELETE ? {} : out) as T;
}

const byName: PatchMeta = { strategy: "merge", mergeKey: "name" };
const containerLists = new Set(["containers", "initContainers", "ephemeralContainers"]);

/**
 * patchStrategy / patchMergeKey of the built-in (k8s.io/api) kinds tsvirt serves: Pod (and pod templates), Node,
 * ServiceAccount, Service, PersistentVolumeClaim, Namespace, ConfigMap, Secret, Event, and every object's metadata.
 */
export function builtinPatchMeta(path: readonly string[]): PatchMeta | undefined {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (last === undefined) return undefined;
  if (path.length === 2 && parent === "metadata") {
    if (last === "finalizers") return { strategy: "merge" };
    if (last === "ownerReferences") return { strategy: "merge", mergeKey: "uid" };
    return undefined;
  }
  if (parent === "metadata") return undefined;
  if (containerLists.has(last)) return byName;
  if (parent && containerLists.has(parent)) {
    switch (last) {
      case "env":
        return byName;
      case "ports":
        return { strategy: "merge", mergeKey: "containerPort" };
      case "volumeMounts":
        return { strategy: "merge", mergeKey: "mountPath" };
      case "volumeDevices":
        return { strategy: "merge", mergeKey: "devicePath" };
    }
    return undefined;
  }
  switch (last) {
    case "volumes":
      return parent === "spec" ? { strategy: "merge,retainKeys", mergeKey: "name" } : undefined;
    case "imagePullSecrets":
      return byName;
    case "hostAliases":
      return { strategy: "merge", mergeKey: "ip" };
    case "podIPs":
    case "hostIPs":
      return parent === "status" ? { strategy: "merge", mergeKey: "ip" } : undefined;
    case "resourceClaims":
      return parent === "spec" ? { strategy: "merge,retainKeys", mergeKey: "name" } : undefined;
    case "topologySpreadConstraints":
      return { strategy: "merge", mergeKey: "topologyKey" };
    case "conditions":
      return parent === "status" ? { strategy: "merge", mergeKey: "type" } : undefined;
    case "addresses":
      return parent === "status" ? { strategy: "merge", mergeKey: "type" } : undefined;
    case "secrets":
      return path.length === 1 ? byName : undefined;
    case "ports":
      return parent === "spec" ? { strategy: "merge", mergeKey: "port" } : undefined;
    case "finalizers":
      return undefined;
  }
  return undefined;
}
