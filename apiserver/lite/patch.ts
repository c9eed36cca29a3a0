// Minimal patch implementations used until apiserver/patch/ (the library engineer's) lands on main:
// RFC 7386 merge patch, RFC 6902 JSON patch (with test), and an approximate strategic merge patch.
import { badRequest, statusError } from "../../lib/errors.js";

type J = unknown;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function deepClone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
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
  for (const k of ak) if (!deepEqual(ao[k], bo[k])) return false;
  return true;
}

/** RFC 7386. */
export function applyMergePatch(target: J, patch: J): J {
  if (!isPlainObject(patch)) return deepClone(patch);
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === "__proto__") continue;
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, "/").replace(/~0/g, "~");
}

function parsePointer(p: unknown): string[] {
  if (typeof p !== "string") throw badRequest("json patch: path must be a string");
  if (p === "") return [];
  if (!p.startsWith("/")) throw badRequest(`json patch: invalid path ${JSON.stringify(p)}`);
  return p.slice(1).split("/").map(unescapePointer);
}

function patchFail(msg: string): Error {
  return statusError(422, "Invalid", msg);
}

function getAt(doc: J, path: string[]): J {
  let cur: J = doc;
  for (const seg of path) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9]\d*)$/.test(seg)) throw patchFail(`json patch: invalid index ${seg}`);
      cur = cur[Number(seg)];
    } else if (isPlainObject(cur)) {
      cur = Object.hasOwn(cur, seg) ? cur[seg] : undefined;
    } else return undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

function container(doc: J, path: string[], op: string): { parent: J; key: string } {
  if (path.length === 0) throw patchFail(`json patch: ${op} on the document root is not supported`);
  const parent = getAt(doc, path.slice(0, -1));
  if (parent === undefined || parent === null || typeof parent !== "object") {
    throw patchFail(`json patch: ${op} operation does not apply: doc is missing path: /${path.join("/")}`);
  }
  return { parent, key: path[path.length - 1] as string };
}

/** RFC 6902 with add, remove, replace, move, copy, test. */
export function applyJsonPatch(doc: J, ops: J): J {
  if (!Array.isArray(ops)) throw badRequest("json patch: the patch must be a JSON array of operations");
  let root: J = deepClone(doc);
  const addAt = (path: string[], value: J, op: string): void => {
    if (path.length === 0) {
      root = deepClone(value);
      return;
    }
    const { parent, key } = container(root, path, op);
    if (Array.isArray(parent)) {
      const idx = key === "-" ? parent.length : Number(key);
      if (!/^(-|0|[1-9]\d*)$/.test(key) || idx > parent.length)
        throw patchFail(`json patch: index out of range: ${key}`);
      parent.splice(idx, 0, deepClone(value));
    } else if (key !== "__proto__") (parent as Record<string, unknown>)[key] = deepClone(value);
  };
  const removeAt = (path: string[], op: string): J => {
    const { parent, key } = container(root, path, op);
    if (Array.isArray(parent)) {
      const idx = Number(key);
      if (!/^(0|[1-9]\d*)$/.test(key) || idx >= parent.length)
        throw patchFail(`json patch: index out of range: ${key}`);
      return parent.splice(idx, 1)[0];
    }
    const o = parent as Record<string, unknown>;
    if (!Object.hasOwn(o, key)) {
      throw patchFail(`json patch: ${op} operation does not apply: doc is missing key: /${path.join("/")}`);
    }
    const v = o[key];
    delete o[key];
    return v;
  };
  for (const raw of ops) {
    if (!isPlainObject(raw)) throw badRequest("json patch: every operation must be an object");
    const op = raw.op;
    const path = parsePointer(raw.path);
    switch (op) {
      case "add":
        if (!("value" in raw)) throw badRequest("json patch: add needs a value");
        addAt(path, raw.value, op);
        break;
      case "remove":
        removeAt(path, op);
        break;
      case "replace":
        if (!("value" in raw)) throw badRequest("json patch: replace needs a value");
        if (path.length === 0) root = deepClone(raw.value);
        else {
          removeAt(path, op);
          addAt(path, raw.value, op);
        }
        break;
      case "move": {
        const from = parsePointer(raw.from);
        const v = removeAt(from, op);
        addAt(path, v, op);
        break;
      }
      case "copy": {
        const from = parsePointer(raw.from);
        const v = getAt(root, from);
        if (v === undefined) throw patchFail(`json patch: copy from a missing path: ${String(raw.from)}`);
        addAt(path, v, op);
        break;
      }
      case "test": {
        const v = getAt(root, path);
        if (!deepEqual(v, raw.value)) {
          throw patchFail(`json patch: testing value /${path.join("/")} failed: test operation does not apply`);
        }
        break;
      }
      default:
        throw badRequest(`json patch: unknown operation ${JSON.stringify(op)}`);
    }
  }
  return root;
}

const mergeKeys: Record<string, string> = {
  ports: "containerPort",
  conditions: "type",
  addresses: "type",
  ownerReferences: "uid",
  taints: "key",
  podIPs: "ip",
};

/** Approximate strategic merge patch: lists of objects merge by their merge key; $patch and friends honoured. */
export function applyStrategicMergePatch(target: J, patch: J): J {
  return smp(target, patch, "");
}

function smp(target: J, patch: J, field: string): J {
  if (Array.isArray(patch)) return smpList(Array.isArray(target) ? target : [], patch, field);
  if (!isPlainObject(patch)) return deepClone(patch);
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return stripDirectives(rest);
  }
  if (patch.$patch === "delete") return undefined;
  const out: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === "__proto__" || k === "$patch" || k === "$retainKeys" || k.startsWith("$setElementOrder/")) continue;
    if (k.startsWith("$deleteFromPrimitiveList/")) {
      const f = k.slice("$deleteFromPrimitiveList/".length);
      const cur = out[f];
      if (Array.isArray(cur) && Array.isArray(v)) out[f] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    if (v === null) delete out[k];
    else {
      const r = smp(out[k], v, k);
      if (r === undefined) delete out[k];
      else out[k] = r;
    }
  }
  return out;
}

function smpList(target: J[], patch: J[], field: string): J[] {
  const objs = patch.filter(isPlainObject);
  const key = mergeKeys[field] ?? "name";
  if (objs.length !== patch.length || objs.length === 0 || !objs.every((o) => o[key] !== undefined || o.$patch)) {
    if (field === "finalizers") return [...target, ...patch.filter((p) => !target.some((t) => deepEqual(t, p)))];
    return patch.map((p) => stripDirectives(p));
  }
  const out = target.map((t) => deepClone(t));
  for (const p of objs) {
    if (p.$patch === "replace") return patch.map((x) => stripDirectives(x));
    const idx = out.findIndex((t) => isPlainObject(t) && deepEqual(t[key], p[key]));
    if (p.$patch === "delete") {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = smp(out[idx], p, "");
    else out.push(stripDirectives(p));
  }
  return out;
}

function stripDirectives(v: J): J {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith("$")) out[k] = stripDirectives(x);
  return out;
}
