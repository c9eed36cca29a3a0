// JSON value helpers shared by the patch libraries (JSON patch, merge patch) and the API server's field management.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export type Rec = Record<string, unknown>;

/** `v` when it is a plain object, else `{}`: a safe start for reading untrusted JSON. */
export function rec(v: unknown): Rec {
  return isObject(v) ? v : {};
}

/** `a.b.c` lookup through plain objects. */
export function field(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const seg of path.split(".")) {
    if (!isObject(cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

/** A deep copy of a JSON value (much faster than structuredClone for API objects). */
export function clone<T>(v: T): T {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = clone(v[i]);
    return out as T;
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = clone((v as Record<string, unknown>)[k]);
  return out as T;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  if (ak.length !== bk.length) return false;
  for (const k of ak) if (!Object.hasOwn(bo, k) || !deepEqual(ao[k], bo[k])) return false;
  return true;
}

/**
 * The resourceVersion a patched object demands, when it differs from the current one: a `metadata.resourceVersion`
 * inside a patch is a precondition (kubectl diff and kubectl's client-side → server-side apply migration rely on it).
 * The caller answers 409 Conflict when this returns a value.
 */
export function resourceVersionPrecondition(current: unknown, patched: unknown): string | undefined {
  const want = isObject(patched) && isObject(patched.metadata) ? patched.metadata.resourceVersion : undefined;
  if (typeof want !== "string" || want === "") return undefined;
  const have = isObject(current) && isObject(current.metadata) ? current.metadata.resourceVersion : undefined;
  return want === have ? undefined : want;
}
