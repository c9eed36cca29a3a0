// JSON merge patch (RFC 7386) and JSON patch (RFC 6902) applied to plain objects. The fake client uses them; the
// controllers use them to compute what they send.

import type { JsonPatchOp } from "./interface.js";

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, "/").replace(/~0/g, "~");
}

export class JsonPatchError extends Error {}

/** Applies RFC 6902 operations to a copy of `doc`; throws JsonPatchError on a failed `test` or a bad path. */
export function applyJsonPatch<T>(doc: T, ops: JsonPatchOp[]): T {
  let root: unknown = structuredClone(doc);
  const walk = (path: string): { parent: unknown; key: string } => {
    const segs = path.split("/").slice(1).map(unescapePointer);
    const key = segs.pop();
    if (key === undefined) throw new JsonPatchError(`invalid path "${path}"`);
    let cur: unknown = root;
    for (const s of segs) {
      if (Array.isArray(cur)) cur = cur[Number(s)];
      else if (isObj(cur)) cur = cur[s];
      else throw new JsonPatchError(`path "${path}" not found`);
      if (cur === undefined) throw new JsonPatchError(`path "${path}" not found`);
    }
    return { parent: cur, key };
  };
  const read = (path: string): unknown => {
    if (path === "") return root;
    const { parent, key } = walk(path);
    if (Array.isArray(parent)) return parent[Number(key)];
    if (isObj(parent)) return parent[key];
    return undefined;
  };
  const remove = (path: string): unknown => {
    const { parent, key } = walk(path);
    if (Array.isArray(parent)) {
      const i = Number(key);
      if (!(i >= 0 && i < parent.length)) throw new JsonPatchError(`path "${path}" not found`);
      return parent.splice(i, 1)[0];
    }
    if (isObj(parent) && Object.hasOwn(parent, key)) {
      const v = parent[key];
      delete parent[key];
      return v;
    }
    throw new JsonPatchError(`path "${path}" not found`);
  };
  const add = (path: string, value: unknown, replace: boolean): void => {
    if (path === "") {
      root = value;
      return;
    }
    const { parent, key } = walk(path);
    if (Array.isArray(parent)) {
      const i = key === "-" ? parent.length : Number(key);
      if (!(i >= 0 && i <= parent.length)) throw new JsonPatchError(`index out of range in "${path}"`);
      if (replace) {
        if (i >= parent.length) throw new JsonPatchError(`path "${path}" not found`);
        parent[i] = value;
      } else parent.splice(i, 0, value);
    } else if (isObj(parent)) {
      if (replace && !Object.hasOwn(parent, key)) throw new JsonPatchError(`path "${path}" not found`);
      parent[key] = value;
    } else throw new JsonPatchError(`path "${path}" not found`);
  };
  for (const op of ops) {
    switch (op.op) {
      case "add":
        add(op.path, structuredClone(op.value), false);
        break;
      case "replace":
        add(op.path, structuredClone(op.value), true);
        break;
      case "remove":
        remove(op.path);
        break;
      case "test":
        // a missing member tests equal to null, as the API server's (evanphx/json-patch) does
        if (JSON.stringify(read(op.path) ?? null) !== JSON.stringify(op.value ?? null)) {
          throw new JsonPatchError(`test operation failed at "${op.path}"`);
        }
        break;
      case "move":
        add(op.path, remove(op.from ?? ""), false);
        break;
      case "copy":
        add(op.path, structuredClone(read(op.from ?? "")), false);
        break;
    }
  }
  return root as T;
}
