// RFC 6902 JSON patch: apply (for mutating admission responses) and the base64 envelope AdmissionReview uses.
import { badRequest } from "../../lib/errors.js";

export type PatchOp =
  | { op: "add" | "replace" | "test"; path: string; value: unknown }
  | { op: "remove"; path: string }
  | { op: "move" | "copy"; from: string; path: string };

function tokens(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw badRequest(`invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function parentOf(doc: unknown, toks: string[], pointer: string): { parent: unknown; key: string } {
  let cur = doc;
  for (const t of toks.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (cur && typeof cur === "object") cur = (cur as Record<string, unknown>)[t];
    else cur = undefined;
    if (cur === undefined) throw badRequest(`JSON patch path "${pointer}" does not exist`);
  }
  return { parent: cur, key: toks[toks.length - 1] as string };
}

function getAt(doc: unknown, pointer: string): unknown {
  let cur = doc;
  for (const t of tokens(pointer)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (cur && typeof cur === "object") cur = (cur as Record<string, unknown>)[t];
    else return undefined;
  }
  return cur;
}

function put(doc: unknown, pointer: string, value: unknown, mode: "add" | "replace"): unknown {
  const toks = tokens(pointer);
  if (toks.length === 0) return value;
  const { parent, key } = parentOf(doc, toks, pointer);
  if (Array.isArray(parent)) {
    const i = key === "-" ? parent.length : Number(key);
    if (!Number.isInteger(i) || i < 0 || i > parent.length)
      throw badRequest(`JSON patch index "${pointer}" is out of range`);
    if (mode === "add") parent.splice(i, 0, value);
    else parent[i] = value;
  } else if (parent && typeof parent === "object") {
    if (mode === "replace" && !(key in parent)) throw badRequest(`JSON patch path "${pointer}" does not exist`);
    (parent as Record<string, unknown>)[key] = value;
  } else {
    throw badRequest(`JSON patch path "${pointer}" does not exist`);
  }
  return doc;
}

function remove(doc: unknown, pointer: string): unknown {
  const toks = tokens(pointer);
  const { parent, key } = parentOf(doc, toks, pointer);
  if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else if (parent && typeof parent === "object" && key in parent) delete (parent as Record<string, unknown>)[key];
  else throw badRequest(`JSON patch path "${pointer}" does not exist`);
  return doc;
}

/** Applies a JSON patch to a deep copy of `doc` and returns the result. */
export function applyJsonPatch<T>(doc: T, patch: readonly PatchOp[]): T {
  return applyJsonPatchInPlace(structuredClone(doc), patch, true);
}

/**
 * Applies a JSON patch to `doc` itself and returns the result (the new root when a patch replaces it). The
 * values of add/replace operations are taken as they are unless `cloneValues`: the caller hands them over.
 */
export function applyJsonPatchInPlace<T>(doc: T, patch: readonly PatchOp[], cloneValues = false): T {
  let out: unknown = doc;
  for (const op of patch) {
    switch (op.op) {
      case "add":
      case "replace":
        out = put(out, op.path, cloneValues ? structuredClone(op.value) : op.value, op.op);
        break;
      case "remove":
        out = remove(out, op.path);
        break;
      case "test":
        if (JSON.stringify(getAt(out, op.path)) !== JSON.stringify(op.value))
          throw badRequest(`JSON patch test failed at "${op.path}"`);
        break;
      case "copy":
        out = put(out, op.path, structuredClone(getAt(out, op.from)), "add");
        break;
      case "move": {
        const v = getAt(out, op.from);
        out = remove(out, op.from);
        out = put(out, op.path, v, "add");
        break;
      }
    }
  }
  return out as T;
}

export function encodePatch(patch: readonly PatchOp[]): string {
  return Buffer.from(JSON.stringify(patch)).toString("base64");
}

export function decodePatch(b64: string): PatchOp[] {
  return JSON.parse(Buffer.from(b64, "base64").toString("utf8")) as PatchOp[];
}
