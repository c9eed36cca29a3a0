// Field management as kube-apiserver does it (structured-merge-diff semantics, on plain JSON objects):
// - `updateManagedFields` for ordinary writes (create, update, merge/JSON/strategic patch): the writer owns what it
//   changed, taking those fields away from every other manager;
// - `applyServerSide` for `application/apply-patch+yaml`: the applier owns exactly what it applied, conflicts with
//   other managers whose values it would change (409, unless forced), and prunes what it applied before and no
//   longer applies when nobody else owns it.
// managedFields are FieldsV1 entries; lists are atomic unless `listMapKeys` names their keys.

import { badRequest, type StatusCause, statusError } from "../../lib/errors.js";
import { clone, deepEqual, isObject, type Json, type JsonObject } from "../../lib/json.js";
import { FieldSet, pathString } from "./fieldset.js";

export interface ManagedFieldsEntry {
  manager: string;
  operation: "Apply" | "Update";
  apiVersion: string;
  time?: string;
  fieldsType: "FieldsV1";
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

/**
 * List semantics by field-name path (list items skipped, e.g. `["spec","template","spec","domain","devices","disks"]`):
 * a non-empty array = an associative list keyed by those fields (`x-kubernetes-list-map-keys`), `[]` = a set of
 * scalars (`x-kubernetes-list-type: set`), `undefined` = atomic.
 */
export type ListMapKeys = (path: readonly string[]) => readonly string[] | undefined;

const byName = ["name"] as const;
const namedLists = new Set([
  "containers",
  "initContainers",
  "ephemeralContainers",
  "volumes",
  "disks",
  "interfaces",
  "networks",
  "imagePullSecrets",
  "gpus",
  "hostDevices",
  "filesystems",
]);

/** Associative lists of the built-in kinds plus KubeVirt's named device lists. */
export function defaultListMapKeys(path: readonly string[]): readonly string[] | undefined {
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (path.length === 2 && parent === "metadata") {
    if (last === "ownerReferences") return ["uid"];
    if (last === "finalizers") return [];
    return undefined;
  }
  if (last === undefined) return undefined;
  if (namedLists.has(last)) return byName;
  if (last === "conditions") return ["type"];
  if (parent === "containers" || parent === "initContainers" || parent === "ephemeralContainers") {
    if (last === "env") return byName;
    if (last === "ports") return ["containerPort"];
    if (last === "volumeMounts") return ["mountPath"];
  }
  return undefined;
}

/** Fields the field manager never tracks (kube's stripMeta), as field-name paths. */
const stripped: readonly (readonly string[])[] = [
  ["apiVersion"],
  ["kind"],
  ["metadata", "name"],
  ["metadata", "namespace"],
  ["metadata", "creationTimestamp"],
  ["metadata", "selfLink"],
  ["metadata", "uid"],
  ["metadata", "clusterName"],
  ["metadata", "generation"],
  ["metadata", "managedFields"],
  ["metadata", "resourceVersion"],
];

interface Ctx {
  keys: ListMapKeys;
  ignored: readonly (readonly string[])[];
}

const STRIPPED_DEPTH = Math.max(...stripped.map((p) => p.length));

function isIgnored(ctx: Ctx, names: readonly string[]): boolean {
  // called for every field of every write: paths deeper than any ignored one are answered without a search
  if (names.length > STRIPPED_DEPTH && ctx.ignored.every((p) => p.length < names.length)) return false;
  const match = (p: readonly string[]) => p.length === names.length && p.every((s, i) => s === names[i]);
  return stripped.some(match) || ctx.ignored.some(match);
}

type ListKind = { kind: "atomic" } | { kind: "set" } | { kind: "map"; keys: readonly string[] };

function keyPE(item: JsonObject, keys: readonly string[]): string {
  const o: Record<string, Json> = {};
  for (const k of [...keys].sort()) o[k] = item[k]!;
  return `k:${JSON.stringify(o)}`;
}

function valuePE(v: Json): string {
  return `v:${JSON.stringify(v)}`;
}

/** The semantics of a list here; falls back to atomic when the items do not fit (missing or duplicate keys). */
function listKind(ctx: Ctx, names: readonly string[], ...lists: (Json | undefined)[]): ListKind {
  const keys = ctx.keys(names);
  if (keys === undefined) return { kind: "atomic" };
  const arrays = lists.filter((l): l is Json[] => Array.isArray(l));
  if (keys.length === 0) {
    for (const l of arrays) {
      if (l.some((x) => x !== null && typeof x === "object")) return { kind: "atomic" };
      if (new Set(l.map((x) => JSON.stringify(x))).size !== l.length) return { kind: "atomic" };
    }
    return { kind: "set" };
  }
  for (const l of arrays) {
    const seen = new Set<string>();
    for (const x of l) {
      if (!isObject(x) || keys.some((k) => x[k] === undefined || x[k] === null)) return { kind: "atomic" };
      const pe = keyPE(x, keys);
      if (seen.has(pe)) return { kind: "atomic" };
      seen.add(pe);
    }
  }
  return { kind: "map", keys };
}

function itemsByPE(list: Json | undefined, lk: ListKind): Map<string, Json> {
  const m = new Map<string, Json>();
  if (!Array.isArray(list)) return m;
  for (const x of list) m.set(lk.kind === "map" ? keyPE(x as JsonObject, lk.keys) : valuePE(x), x);
  return m;
}

/** The set of fields an applied configuration sets (structured-merge-diff's ToFieldSet). */
function toSet(ctx: Ctx, value: JsonObject, names: string[], pes: string[], set: FieldSet): void {
  for (const [k, v] of Object.entries(value)) {
    const n = [...names, k];
    if (isIgnored(ctx, n)) continue;
    const p = [...pes, `f:${k}`];
    if (isObject(v)) {
      toSet(ctx, v, n, p, set);
    } else if (Array.isArray(v)) {
      const lk = listKind(ctx, n, v);
      if (lk.kind === "atomic") set.insert(p);
      else
        for (const [pe, item] of itemsByPE(v, lk)) {
          set.insert([...p, pe]);
          if (isObject(item)) toSet(ctx, item, n, [...p, pe], set);
        }
    } else {
      set.insert(p);
    }
  }
}

interface Comparison {
  added: FieldSet;
  modified: FieldSet;
  removed: FieldSet;
}

function kindOf(v: Json | undefined): "map" | "list" | "scalar" | "none" {
  if (v === undefined) return "none";
  if (isObject(v)) return "map";
  if (Array.isArray(v)) return "list";
  return "scalar";
}

/**
 * Which fields differ between two versions of an object (structured-merge-diff's Compare). `names` and `pes` are
 * the path so far, extended and restored in place (this runs over every field of every write).
 */
function compare(
  ctx: Ctx,
  l: Json | undefined,
  r: Json | undefined,
  names: string[],
  pes: string[],
  c: Comparison,
): void {
  const lk = kindOf(l);
  const rk = kindOf(r);
  if (lk === "none" && rk === "none") return;
  const shape = lk === "none" ? rk : rk === "none" ? lk : lk === rk ? lk : "mixed";
  if (shape === "map") {
    markSelf(lk, rk, pes, c);
    const lo = (l ?? {}) as JsonObject;
    const ro = (r ?? {}) as JsonObject;
    for (const k of Object.keys(lo)) compareField(ctx, lo, ro, k, names, pes, c, true);
    for (const k of Object.keys(ro)) if (!Object.hasOwn(lo, k)) compareField(ctx, lo, ro, k, names, pes, c, true);
    return;
  }
  if (shape === "list") {
    const kind = listKind(ctx, names, l, r);
    if (kind.kind === "atomic") {
      leaf(l, r, lk, rk, pes, c);
      return;
    }
    markSelf(lk, rk, pes, c);
    const li = itemsByPE(l, kind);
    const ri = itemsByPE(r, kind);
    const item = (pe: string): void => {
      const a = li.get(pe);
      const b = ri.get(pe);
      pes.push(pe);
      if (a === undefined) c.added.insert(pes);
      else if (b === undefined) c.removed.insert(pes);
      if (kind.kind === "map") {
        const ao = (a ?? {}) as JsonObject;
        const bo = (b ?? {}) as JsonObject;
        for (const k of Object.keys(ao)) compareField(ctx, ao, bo, k, names, pes, c, false);
        for (const k of Object.keys(bo)) if (!Object.hasOwn(ao, k)) compareField(ctx, ao, bo, k, names, pes, c, false);
      }
      pes.pop();
    };
    for (const pe of li.keys()) item(pe);
    for (const pe of ri.keys()) if (!li.has(pe)) item(pe);
    return;
  }
  leaf(l, r, lk, rk, pes, c);
}

function compareField(
  ctx: Ctx,
  lo: JsonObject,
  ro: JsonObject,
  k: string,
  names: string[],
  pes: string[],
  c: Comparison,
  checkIgnored: boolean,
): void {
  names.push(k);
  if (!checkIgnored || !isIgnored(ctx, names)) {
    pes.push(`f:${k}`);
    compare(ctx, lo[k], ro[k], names, pes, c);
    pes.pop();
  }
  names.pop();
}

function leaf(l: Json | undefined, r: Json | undefined, lk: string, rk: string, pes: string[], c: Comparison): void {
  if (lk === "none") c.added.insert(pes);
  else if (rk === "none") c.removed.insert(pes);
  else if (!deepEqual(l, r)) c.modified.insert(pes);
}

/** The object root and metadata always exist; every other map or list is a member when it appears or disappears. */
function markSelf(lk: string, rk: string, pes: string[], c: Comparison): void {
  if (pes.length === 0 || (pes.length === 1 && pes[0] === "f:metadata")) return;
  if (lk === "none") c.added.insert(pes);
  else if (rk === "none") c.removed.insert(pes);
}

/** Merges an applied configuration into the live object (structured-merge-diff's Merge). */
function merge(ctx: Ctx, live: Json | undefined, config: Json, names: string[]): Json {
  if (isObject(config)) {
    const out: JsonObject = isObject(live) ? { ...live } : {};
    for (const [k, v] of Object.entries(config)) {
      if (v === null) delete out[k];
      else out[k] = merge(ctx, out[k], v, [...names, k]);
    }
    return out;
  }
  if (Array.isArray(config)) {
    const lk = listKind(ctx, names, live, config);
    if (lk.kind === "atomic" || !Array.isArray(live)) return clone(config);
    const out = [...live];
    const index = new Map<string, number>();
    out.forEach((x, i) => {
      index.set(lk.kind === "map" ? keyPE(x as JsonObject, lk.keys) : valuePE(x), i);
    });
    for (const item of config) {
      const pe = lk.kind === "map" ? keyPE(item as JsonObject, lk.keys) : valuePE(item);
      const i = index.get(pe);
      if (i === undefined) out.push(clone(item));
      else if (lk.kind === "map") out[i] = merge(ctx, out[i], item, names);
    }
    return out;
  }
  return clone(config);
}

function findChild(container: Json | undefined, pe: string): { found: boolean; value?: Json } {
  if (pe.startsWith("f:") && isObject(container)) {
    const k = pe.slice(2);
    return Object.hasOwn(container, k) ? { found: true, value: container[k]! } : { found: false };
  }
  if (Array.isArray(container)) {
    const i = container.findIndex((x) => itemMatches(x, pe));
    return i >= 0 ? { found: true, value: container[i]! } : { found: false };
  }
  return { found: false };
}

function itemMatches(x: Json, pe: string): boolean {
  if (pe.startsWith("k:")) {
    if (!isObject(x)) return false;
    const keys = JSON.parse(pe.slice(2)) as JsonObject;
    return Object.entries(keys).every(([k, v]) => deepEqual(x[k], v));
  }
  if (pe.startsWith("v:")) return deepEqual(x, JSON.parse(pe.slice(2)));
  if (pe.startsWith("i:")) return false;
  return false;
}

function removeChild(container: Json, pe: string): void {
  if (pe.startsWith("f:") && isObject(container)) delete container[pe.slice(2)];
  else if (Array.isArray(container)) {
    const i = container.findIndex((x) => itemMatches(x, pe));
    if (i >= 0) container.splice(i, 1);
  }
}

function namesOf(pes: readonly string[]): string[] {
  return pes.filter((pe) => pe.startsWith("f:")).map((pe) => pe.slice(2));
}

/**
 * Can a whole map, list or list item go? Only when every field inside it is one its list-map keys name or was
 * applied last time and is unowned now (structured-merge-diff removes it, then adds back what is still owned).
 */
function containerRemovable(ctx: Ctx, value: Json, path: string[], orphans: FieldSet): boolean {
  const last = path[path.length - 1]!;
  const keys = last.startsWith("k:") ? Object.keys(JSON.parse(last.slice(2)) as object) : [];
  const names = namesOf(path);
  const inside = new FieldSet();
  if (isObject(value)) {
    toSet(ctx, value, names, [], inside);
  } else if (Array.isArray(value)) {
    const lk = listKind(ctx, names, value);
    if (lk.kind === "atomic") return true;
    for (const [pe, item] of itemsByPE(value, lk)) {
      inside.insert([pe]);
      if (isObject(item)) toSet(ctx, item, names, [pe], inside);
    }
  } else {
    return true;
  }
  return inside.paths().every((m) => (m.length === 1 && keys.includes(m[0]!.slice(2))) || orphans.has([...path, ...m]));
}

/** Removes what the applier applied last time and nobody owns now (structured-merge-diff's prune). */
function prune(ctx: Ctx, obj: JsonObject, orphans: FieldSet): void {
  for (const path of orphans.paths().reverse()) {
    if (path.length === 0) continue;
    let parent: Json | undefined = obj;
    for (const pe of path.slice(0, -1)) {
      const c = findChild(parent, pe);
      if (!c.found) {
        parent = undefined;
        break;
      }
      parent = c.value;
    }
    if (parent === undefined) continue;
    const last = path[path.length - 1]!;
    const child = findChild(parent, last);
    if (!child.found) continue;
    const parentPE = path[path.length - 2];
    // A list item's key fields go with the item, never on their own.
    if (parentPE?.startsWith("k:") && last.startsWith("f:")) {
      const keys = Object.keys(JSON.parse(parentPE.slice(2)) as object);
      if (keys.includes(last.slice(2))) continue;
    }
    if (!containerRemovable(ctx, child.value!, path, orphans)) continue;
    removeChild(parent, last);
  }
  const meta = obj.metadata;
  if (isObject(meta)) {
    for (const k of ["labels", "annotations"]) {
      const m = meta[k];
      if (isObject(m) && Object.keys(m).length === 0) delete meta[k];
    }
  }
}

// ---- managedFields encoding ----

interface Manager {
  manager: string;
  operation: "Apply" | "Update";
  apiVersion: string;
  subresource?: string;
  time?: string;
  set: FieldSet;
}

function identity(m: { manager: string; operation: string; apiVersion: string; subresource?: string }): string {
  const id: Record<string, string> = { manager: m.manager, operation: m.operation };
  if (m.operation !== "Apply") id.apiVersion = m.apiVersion;
  if (m.subresource) id.subresource = m.subresource;
  return JSON.stringify(id);
}

function decode(entries: unknown): Manager[] | undefined {
  if (!Array.isArray(entries)) return undefined;
  const out: Manager[] = [];
  for (const e of entries) {
    if (!isObject(e)) return undefined;
    if (typeof e.manager !== "string" || (e.operation !== "Apply" && e.operation !== "Update")) return undefined;
    if (e.fieldsType !== undefined && e.fieldsType !== "FieldsV1") return undefined;
    const m: Manager = {
      manager: e.manager,
      operation: e.operation,
      apiVersion: typeof e.apiVersion === "string" ? e.apiVersion : "",
      set: FieldSet.fromFieldsV1(e.fieldsV1),
    };
    if (typeof e.subresource === "string" && e.subresource) m.subresource = e.subresource;
    if (typeof e.time === "string") m.time = e.time;
    out.push(m);
  }
  return out;
}

function encode(managers: Manager[]): ManagedFieldsEntry[] {
  const live = managers.filter((m) => !m.set.empty);
  const seconds = (t?: string) => (t ? Math.floor(Date.parse(t) / 1000) : 0);
  live.sort(
    (p, q) =>
      (p.operation < q.operation ? -1 : p.operation > q.operation ? 1 : 0) ||
      seconds(p.time) - seconds(q.time) ||
      (p.manager < q.manager ? -1 : p.manager > q.manager ? 1 : 0) ||
      (p.apiVersion < q.apiVersion ? -1 : p.apiVersion > q.apiVersion ? 1 : 0) ||
      ((p.subresource ?? "") < (q.subresource ?? "") ? -1 : (p.subresource ?? "") > (q.subresource ?? "") ? 1 : 0),
  );
  return live.map((m) => {
    const e: ManagedFieldsEntry = {
      manager: m.manager,
      operation: m.operation,
      apiVersion: m.apiVersion,
    } as ManagedFieldsEntry;
    if (m.time) e.time = m.time;
    e.fieldsType = "FieldsV1";
    e.fieldsV1 = m.set.toFieldsV1();
    if (m.subresource) e.subresource = m.subresource;
    return e;
  });
}

function formatTime(now: Date | string | undefined): string {
  const d = now === undefined ? new Date() : typeof now === "string" ? new Date(now) : now;
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function managedFieldsOf(obj: unknown): unknown {
  return isObject(obj) && isObject(obj.metadata) ? obj.metadata.managedFields : undefined;
}

function setManagedFields(obj: JsonObject, entries: ManagedFieldsEntry[]): void {
  const meta: JsonObject = isObject(obj.metadata) ? obj.metadata : {};
  obj.metadata = meta;
  if (entries.length) meta.managedFields = entries as unknown as Json;
  else delete meta.managedFields;
}

function withoutManagedFields(obj: unknown): JsonObject {
  const o = (isObject(obj) ? clone(obj) : {}) as JsonObject;
  if (isObject(o.metadata)) delete o.metadata.managedFields;
  return o;
}

function printManager(m: Manager): string {
  let s = JSON.stringify(m.manager);
  if (m.subresource) s += ` with subresource ${JSON.stringify(m.subresource)}`;
  if (m.operation === "Update") s += ` using ${m.apiVersion}`;
  return s;
}

function conflictError(conflicts: { manager: Manager; paths: string[][] }[]): Error {
  const all = conflicts.flatMap((c) => c.paths.map((p) => ({ manager: c.manager, path: pathString(p) })));
  const causes: StatusCause[] = all.map((c) => ({
    type: "FieldManagerConflict",
    message: `conflict with ${printManager(c.manager)}`,
    field: c.path,
  }));
  let message: string;
  if (all.length === 1) {
    message = `Apply failed with 1 conflict: conflict with ${printManager(all[0]!.manager)}: ${all[0]!.path}`;
  } else {
    const sorted = [...conflicts].sort((a, b) => (identity(a.manager) < identity(b.manager) ? -1 : 1));
    const lines: string[] = [];
    for (const c of sorted) {
      lines.push(`conflicts with ${printManager(c.manager)}:`);
      for (const p of c.paths) lines.push(`- ${pathString(p)}`);
    }
    message = `Apply failed with ${all.length} conflicts: ${lines.join("\n")}`;
  }
  return statusError(409, "Conflict", message, { causes });
}

export const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration";

function lastAppliedOf(obj: JsonObject): string | undefined {
  const a = isObject(obj.metadata) ? obj.metadata.annotations : undefined;
  const v = isObject(a) ? a[lastAppliedAnnotation] : undefined;
  return typeof v === "string" && v !== "" ? v : undefined;
}

/**
 * kube-apiserver's upgrade path from client-side to server-side apply (lastAppliedManager): for the manager
 * "kubectl", a conflict is forgiven on a field the live object's last-applied annotation sets to its live value.
 */
function withoutLastAppliedConflicts(
  ctx: Ctx,
  live: JsonObject,
  conflicts: { manager: Manager; paths: string[][] }[],
): { manager: Manager; paths: string[][] }[] {
  const raw = lastAppliedOf(live);
  if (!raw) return conflicts;
  let lastApplied: unknown;
  try {
    lastApplied = JSON.parse(raw);
  } catch {
    return conflicts;
  }
  if (!isObject(lastApplied) || lastApplied.apiVersion !== live.apiVersion) return conflicts;
  const allowed = new FieldSet();
  toSet(ctx, lastApplied, [], [], allowed);
  const c: Comparison = { added: new FieldSet(), modified: new FieldSet(), removed: new FieldSet() };
  compare(ctx, lastApplied, live, [], [], c);
  const ok = allowed.difference(c.modified).difference(c.added).difference(c.removed);
  return conflicts
    .map((x) => ({ manager: x.manager, paths: x.paths.filter((p) => !ok.has(p)) }))
    .filter((x) => x.paths.length > 0);
}

/** JSON as Go's encoding/json writes a map: keys sorted, HTML characters escaped. */
function goJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(goJson).join(",")}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${goJson(v[k])}`)
      .join(",")}}`;
  }
  if (typeof v === "string") {
    return JSON.stringify(v)
      .replace(/</g, "\\u003c")
      .replace(/>/g, "\\u003e")
      .replace(/&/g, "\\u0026")
      .replace(/\u2028/g, "\\u2028")
      .replace(/\u2029/g, "\\u2029");
  }
  return JSON.stringify(v);
}

/** kube-apiserver's lastAppliedUpdater: an apply by "kubectl" keeps an existing last-applied annotation in sync. */
function syncLastApplied(obj: JsonObject, applied: JsonObject): void {
  if (!lastAppliedOf(obj)) return;
  const copy = clone(applied);
  if (isObject(copy.metadata) && isObject(copy.metadata.annotations)) {
    delete copy.metadata.annotations[lastAppliedAnnotation];
    if (Object.keys(copy.metadata.annotations).length === 0) delete copy.metadata.annotations;
  }
  const annotations = (obj.metadata as JsonObject).annotations as JsonObject;
  // runtime.Encode ends the document with a newline, as kubectl's own client-side annotation does.
  annotations[lastAppliedAnnotation] = `${goJson(copy)}\n`;
  let size = 0;
  for (const [k, v] of Object.entries(annotations)) size += Buffer.byteLength(k) + Buffer.byteLength(String(v));
  if (size > 256 * 1024) delete annotations[lastAppliedAnnotation];
}

export interface ApplyOptions {
  /** The stored object, or undefined when the apply creates it. */
  live: unknown;
  /** The applied configuration (the body of an apply patch, parsed). */
  applied: unknown;
  /** `?fieldManager=` (required for apply; the REST layer answers 400 without it). */
  manager: string;
  /** `?force=true`: take conflicting fields from their managers instead of failing. */
  force?: boolean;
  now?: Date | string;
  listMapKeys?: ListMapKeys;
  /** Set for applies to a subresource (e.g. "status"). */
  subresource?: string;
  /** Field-name paths this endpoint does not manage (e.g. `[["status"]]` on a main resource with a status subresource). */
  ignoredFields?: readonly (readonly string[])[];
  /** The entry's apiVersion; defaults to the applied object's, then the live object's. */
  apiVersion?: string;
}

export interface ManagedResult<T = JsonObject> {
  /** The new object, `metadata.managedFields` included. */
  object: T;
  managedFields: ManagedFieldsEntry[];
  /** False when nothing but managedFields timestamps would change (see `isNoop`). */
  changed: boolean;
}

/**
 * Server-side apply. Throws a 409 Conflict StatusError (kube-apiserver's message and FieldManagerConflict causes)
 * when the apply would change fields another manager owns and `force` is not set; a 400 when the applied
 * configuration sets managedFields.
 */
export function applyServerSide(opts: ApplyOptions): ManagedResult {
  const ctx: Ctx = { keys: opts.listMapKeys ?? defaultListMapKeys, ignored: opts.ignoredFields ?? [] };
  if (!isObject(opts.applied)) throw badRequest("error decoding YAML: the applied configuration must be an object");
  const applied = opts.applied;
  if (managedFieldsOf(applied) != null) throw badRequest("metadata.managedFields must be nil");
  const now = formatTime(opts.now);
  const liveObj = withoutManagedFields(opts.live);
  const apiVersion =
    typeof applied.apiVersion === "string"
      ? applied.apiVersion
      : typeof liveObj.apiVersion === "string"
        ? liveObj.apiVersion
        : "";
  const managers = decode(managedFieldsOf(opts.live)) ?? [];
  const myId = identity({ manager: opts.manager, operation: "Apply", apiVersion, subresource: opts.subresource });
  const mine = managers.find((m) => identity(m) === myId);
  const lastSet = mine?.set ?? new FieldSet();
  const appliedSet = new FieldSet();
  toSet(ctx, applied, [], [], appliedSet);

  const merged = merge(ctx, liveObj, applied, []) as JsonObject;
  const others = managers.filter((m) => m !== mine);
  let owned = appliedSet;
  for (const m of others) owned = owned.union(m.set);
  prune(ctx, merged, lastSet.difference(owned));

  const c: Comparison = { added: new FieldSet(), modified: new FieldSet(), removed: new FieldSet() };
  compare(ctx, liveObj, merged, [], [], c);
  const changedSet = c.modified.union(c.added);
  const conflicts: { manager: Manager; paths: string[][] }[] = [];
  for (const m of others) {
    const overlap = m.set.intersection(changedSet);
    if (!overlap.empty) conflicts.push({ manager: m, paths: overlap.paths() });
  }
  if (conflicts.length && !opts.force) {
    const remaining = opts.manager === "kubectl" ? withoutLastAppliedConflicts(ctx, liveObj, conflicts) : conflicts;
    if (remaining.length) throw conflictError(remaining);
  }
  for (const m of others) m.set = m.set.difference(changedSet).difference(c.removed);

  const changed = !deepEqual(liveObj, merged);
  const entry: Manager = {
    manager: opts.manager,
    operation: "Apply",
    apiVersion,
    set: appliedSet,
    time: changed || !mine ? now : (mine.time ?? now),
  };
  if (opts.subresource) entry.subresource = opts.subresource;
  if (opts.manager === "kubectl") syncLastApplied(merged, applied);
  const entries = encode([...others, entry]);
  setManagedFields(merged, entries);
  return { object: merged, managedFields: entries, changed: !isNoop(opts.live, merged) };
}

export interface UpdateOptions {
  /** The stored object, or undefined on create. */
  before: unknown;
  /** The object about to be stored (after the update, patch or create body was applied). */
  after: unknown;
  /** `?fieldManager=`, or the client's user agent as kube-apiserver falls back to. */
  manager: string;
  operation?: "Update";
  now?: Date | string;
  subresource?: string;
  listMapKeys?: ListMapKeys;
  ignoredFields?: readonly (readonly string[])[];
  /** The entry's apiVersion; defaults to the new object's, then the old object's. */
  apiVersion?: string;
}

function isResetManagedFields(v: unknown): boolean {
  return Array.isArray(v) && v.length === 1 && isObject(v[0]) && Object.keys(v[0]).length === 0;
}

/**
 * managedFields for an ordinary write: the manager comes to own every field it added or changed, and those fields
 * (and every removed one) leave the other managers. A write whose body carries non-empty managedFields starts from
 * those verbatim (kubectl's client-side → server-side apply migration depends on it); `[{}]` resets them. Writes to a
 * subresource cannot set managedFields.
 */
export function updateManagedFields(opts: UpdateOptions): ManagedResult {
  const ctx: Ctx = { keys: opts.listMapKeys ?? defaultListMapKeys, ignored: opts.ignoredFields ?? [] };
  // managedFields are never compared (they are in the stripped list), so no copies are needed to leave them out.
  const beforeObj: JsonObject = isObject(opts.before) ? opts.before : {};
  const afterRaw = isObject(opts.after) ? opts.after : {};
  const requested = managedFieldsOf(afterRaw);
  let managers: Manager[];
  if (opts.subresource) managers = decode(managedFieldsOf(opts.before)) ?? [];
  else if (isResetManagedFields(requested)) managers = [];
  else {
    const fromBody = decode(requested);
    managers = fromBody?.some((m) => !m.set.empty) ? fromBody : (decode(managedFieldsOf(opts.before)) ?? []);
  }
  const afterObj: JsonObject = { ...afterRaw, metadata: isObject(afterRaw.metadata) ? { ...afterRaw.metadata } : {} };
  const apiVersion =
    typeof afterObj.apiVersion === "string"
      ? afterObj.apiVersion
      : typeof beforeObj.apiVersion === "string"
        ? beforeObj.apiVersion
        : "";
  const c: Comparison = { added: new FieldSet(), modified: new FieldSet(), removed: new FieldSet() };
  compare(ctx, beforeObj, afterObj, [], [], c);
  const changedSet = c.modified.union(c.added);
  for (const m of managers) m.set = m.set.difference(changedSet).difference(c.removed);
  if (!changedSet.empty) {
    const id = identity({ manager: opts.manager, operation: "Update", apiVersion, subresource: opts.subresource });
    const prev = managers.find((m) => identity(m) === id);
    if (prev) {
      prev.set = prev.set.union(changedSet);
      prev.time = formatTime(opts.now);
    } else {
      const m: Manager = {
        manager: opts.manager,
        operation: "Update",
        apiVersion,
        set: changedSet,
        time: formatTime(opts.now),
      };
      if (opts.subresource) m.subresource = opts.subresource;
      managers.push(m);
    }
  }
  const entries = encode(managers);
  setManagedFields(afterObj, entries);
  return { object: afterObj, managedFields: entries, changed: !isNoop(opts.before, afterObj) };
}

function entriesEqualIgnoringTime(a: unknown, b: unknown): boolean {
  if (!Array.isArray(a) || !Array.isArray(b)) return deepEqual(a, b);
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (!isObject(x) || !isObject(y)) {
      if (!deepEqual(x, y)) return false;
      continue;
    }
    for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
      if (k !== "time" && !deepEqual(x[k], y[k])) return false;
    }
  }
  return true;
}

/** True when two versions differ at most in resourceVersion and managedFields timestamps: the write is a no-op. */
export function isNoop(before: unknown, after: unknown): boolean {
  if (!isObject(before) || !isObject(after)) return deepEqual(before, after);
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (k !== "metadata") {
      if (!deepEqual(before[k], after[k])) return false;
      continue;
    }
    const bm = before.metadata;
    const am = after.metadata;
    if (!isObject(bm) || !isObject(am)) {
      if (!deepEqual(bm, am)) return false;
      continue;
    }
    for (const mk of new Set([...Object.keys(bm), ...Object.keys(am)])) {
      if (mk === "resourceVersion") continue;
      if (mk === "managedFields") {
        if (!entriesEqualIgnoringTime(bm[mk], am[mk])) return false;
      } else if (!deepEqual(bm[mk], am[mk])) return false;
    }
  }
  return true;
}

/** The FieldsV1 set of one manager entry, for callers and tests (`{"f:metadata":{"f:labels":{"f:app":{}}}}`). */
export function fieldsOf(
  entries: readonly ManagedFieldsEntry[] | undefined,
  manager: string,
  operation?: string,
): FieldSet {
  let s = new FieldSet();
  for (const e of entries ?? []) {
    if (e.manager === manager && (!operation || e.operation === operation))
      s = s.union(FieldSet.fromFieldsV1(e.fieldsV1));
  }
  return s;
}
