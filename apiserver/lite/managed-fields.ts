// Server-side apply and managedFields bookkeeping, simplified (until apiserver/patch/ lands on main):
// lists are atomic, maps and objects are granular; Apply owns what it applied, Update owns what it changed.

import type { StatusCause } from "../../lib/errors.js";
import { statusError } from "../../lib/errors.js";
import { deepClone, deepEqual, isPlainObject } from "./patch.js";

export interface ManagedFieldsEntry {
  manager: string;
  operation: "Apply" | "Update";
  apiVersion?: string;
  time?: string;
  fieldsType?: "FieldsV1";
  fieldsV1?: Record<string, unknown>;
  subresource?: string;
}

type Obj = Record<string, unknown>;
const SEP = "\u0000";
const skipMeta = new Set([
  "name",
  "namespace",
  "uid",
  "resourceVersion",
  "creationTimestamp",
  "generation",
  "managedFields",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "selfLink",
]);

/** Leaf paths of an object (maps recurse, lists and scalars are leaves). */
export function leafPaths(obj: unknown, prefix: string[] = [], out = new Map<string, unknown>()): Map<string, unknown> {
  if (!isPlainObject(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    if (prefix.length === 0 && (k === "apiVersion" || k === "kind")) continue;
    if (prefix.length === 1 && prefix[0] === "metadata" && skipMeta.has(k)) continue;
    const p = [...prefix, k];
    if (isPlainObject(v) && Object.keys(v).length > 0) leafPaths(v, p, out);
    else if (v !== undefined) out.set(p.join(SEP), v);
  }
  return out;
}

function valueAt(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const seg of path.split(SEP)) {
    if (!isPlainObject(cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

function deleteAt(obj: Obj, path: string): void {
  const segs = path.split(SEP);
  const stack: Obj[] = [];
  let cur: unknown = obj;
  for (const seg of segs.slice(0, -1)) {
    if (!isPlainObject(cur)) return;
    stack.push(cur);
    cur = cur[seg];
  }
  if (!isPlainObject(cur)) return;
  delete cur[segs[segs.length - 1] as string];
  // prune emptied parents (never the root or metadata)
  for (let i = segs.length - 2; i >= 1; i--) {
    const parent = stack[i] as Obj;
    const child = parent[segs[i] as string];
    if (isPlainObject(child) && Object.keys(child).length === 0 && !(i === 1 && segs[0] === "metadata")) {
      delete parent[segs[i] as string];
    } else break;
  }
}

export function toFieldsV1(paths: Iterable<string>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const p of paths) {
    let cur = root;
    for (const seg of p.split(SEP)) {
      const k = `f:${seg}`;
      cur[k] ??= {};
      cur = cur[k] as Record<string, unknown>;
    }
  }
  return root;
}

export function fromFieldsV1(f: unknown, prefix: string[] = [], out = new Set<string>()): Set<string> {
  if (!isPlainObject(f)) return out;
  let leaf = true;
  for (const [k, v] of Object.entries(f)) {
    if (k === ".") continue;
    if (k.startsWith("f:")) {
      leaf = false;
      fromFieldsV1(v, [...prefix, k.slice(2)], out);
    } else if (k.startsWith("k:") || k.startsWith("v:") || k.startsWith("i:")) {
      // an element of a list: we treat lists as atomic
      if (prefix.length) out.add(prefix.join(SEP));
      return out;
    }
  }
  if (leaf && prefix.length) out.add(prefix.join(SEP));
  return out;
}

function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(b + SEP) || b.startsWith(a + SEP);
}

function displayPath(p: string): string {
  return `.${p.split(SEP).join(".")}`;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

function entries(obj: Obj): ManagedFieldsEntry[] {
  const mf = (obj.metadata as Obj | undefined)?.managedFields;
  return Array.isArray(mf) ? (deepClone(mf) as ManagedFieldsEntry[]) : [];
}

function finish(list: { e: ManagedFieldsEntry; set: Set<string> }[]): ManagedFieldsEntry[] {
  return list
    .filter((x) => x.set.size > 0)
    .map((x) => ({ ...x.e, fieldsType: "FieldsV1" as const, fieldsV1: toFieldsV1([...x.set].sort()) }));
}

export interface ApplyOptions {
  manager: string;
  force: boolean;
  apiVersion: string;
  subresource?: string;
}

/**
 * Server-side apply of `config` onto `live` (undefined when creating). Returns the new object with its
 * managedFields, or throws 409 with one FieldManagerConflict cause per conflicting field.
 */
export function serverSideApply(live: Obj | undefined, config: Obj, opts: ApplyOptions): Obj {
  const base: Obj = live ? deepClone(live) : {};
  const applied = leafPaths(config);
  const owners = entries(base).map((e) => ({ e, set: fromFieldsV1(e.fieldsV1) }));
  const mine = owners.find((o) => o.e.manager === opts.manager && o.e.operation === "Apply");
  const previously = mine ? new Set(mine.set) : new Set<string>();
  const conflicts: StatusCause[] = [];
  for (const o of owners) {
    if (o === mine) continue;
    for (const owned of [...o.set]) {
      for (const [p, v] of applied) {
        if (!overlaps(owned, p)) continue;
        const cur = valueAt(base, p);
        if (cur === undefined || deepEqual(cur, v)) continue;
        if (opts.force) o.set.delete(owned);
        else {
          conflicts.push({
            type: "FieldManagerConflict",
            field: displayPath(p),
            message: `conflict with "${o.e.manager}"${o.e.operation === "Update" ? " using " + (o.e.apiVersion ?? "v1") : ""}`,
          });
        }
      }
    }
  }
  if (conflicts.length) {
    const uniq = conflicts.filter(
      (c, i) => conflicts.findIndex((d) => d.field === c.field && d.message === c.message) === i,
    );
    const detail = uniq.map((c) => `${c.message}: ${c.field}`).join("\n- ");
    throw statusError(
      409,
      "Conflict",
      `Apply failed with ${uniq.length} conflict${uniq.length > 1 ? "s" : ""}: ${uniq.length > 1 ? "\n- " : ""}${detail}`,
      { causes: uniq },
    );
  }
  // merge the config into the live object (maps recurse, lists and scalars replace)
  const result = mergeInto(base, config) as Obj;
  // fields this manager applied before and no longer applies go away, unless someone else owns them
  for (const p of previously) {
    if (applied.has(p) || [...applied.keys()].some((a) => overlaps(a, p))) continue;
    if (owners.some((o) => o !== mine && [...o.set].some((s) => overlaps(s, p)))) continue;
    deleteAt(result, p);
  }
  const entry: ManagedFieldsEntry = {
    manager: opts.manager,
    operation: "Apply",
    apiVersion: opts.apiVersion,
    time: now(),
  };
  if (opts.subresource) entry.subresource = opts.subresource;
  const list = owners.filter((o) => o !== mine);
  list.push({ e: entry, set: new Set(applied.keys()) });
  if (!isPlainObject(result.metadata)) result.metadata = {};
  const md = result.metadata as Obj;
  md.managedFields = finish(list);
  return result;
}

function mergeInto(base: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch) || !isPlainObject(base)) return deepClone(patch);
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (k === "__proto__") continue;
    if (v === null) delete out[k];
    else out[k] = mergeInto(out[k], v);
  }
  return out;
}

/**
 * managedFields for a non-apply write: the manager takes the fields it changed (from every other manager).
 * A write that sets managedFields itself (different from the stored ones) keeps them verbatim.
 */
export function updateManagedFields(
  old: Obj | undefined,
  next: Obj,
  opts: { manager: string; apiVersion: string; subresource?: string },
): void {
  if (!isPlainObject(next.metadata)) next.metadata = {};
  const md = next.metadata as Obj;
  const oldMf = (old?.metadata as Obj | undefined)?.managedFields;
  if (md.managedFields !== undefined && !deepEqual(md.managedFields, oldMf)) {
    if (Array.isArray(md.managedFields) && md.managedFields.length === 0) delete md.managedFields;
    return;
  }
  const before = leafPaths(old ?? {});
  const after = leafPaths(next);
  const changed = new Set<string>();
  for (const [p, v] of after) if (!deepEqual(before.get(p), v)) changed.add(p);
  for (const p of before.keys()) if (!after.has(p)) changed.add(p);
  const owners = (Array.isArray(oldMf) ? (deepClone(oldMf) as ManagedFieldsEntry[]) : []).map((e) => ({
    e,
    set: fromFieldsV1(e.fieldsV1),
  }));
  if (changed.size === 0) {
    if (owners.length) md.managedFields = finish(owners);
    return;
  }
  for (const o of owners) for (const s of [...o.set]) if ([...changed].some((c) => overlaps(c, s))) o.set.delete(s);
  let mine = owners.find(
    (o) =>
      o.e.manager === opts.manager &&
      o.e.operation === "Update" &&
      (o.e.subresource ?? "") === (opts.subresource ?? ""),
  );
  if (!mine) {
    const e: ManagedFieldsEntry = { manager: opts.manager, operation: "Update", apiVersion: opts.apiVersion };
    if (opts.subresource) e.subresource = opts.subresource;
    mine = { e, set: new Set() };
    owners.push(mine);
  }
  mine.e.time = now();
  for (const c of changed) if (after.has(c)) mine.set.add(c);
  md.managedFields = finish(owners);
  if ((md.managedFields as unknown[]).length === 0) delete md.managedFields;
}
