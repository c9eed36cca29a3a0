// JSON patch (RFC 6902), the one implementation (API server, admission, fake client), with kube-apiserver's error mapping: a body that is not a list of operations is a
// 400 BadRequest; an operation that does not apply (including a failed `test`) is 422 Invalid, "the server rejected
// our request due to an error in our request", with the reason as an UnexpectedServerResponse cause.

import { badRequest, type StatusError, statusError, tooLarge } from "./errors.js";
import { clone, deepEqual, isObject, type Json } from "./json.js";

export interface JsonPatchOperation {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  from?: string;
  value?: unknown;
}

/** kube-apiserver's limit on operations in one JSON patch. */
export const maxJsonPatchOperations = 10000;

class OpError extends Error {}

function rejected(message: string): StatusError {
  return statusError(422, "Invalid", "the server rejected our request due to an error in our request", {
    name: "",
    group: "",
    kind: "",
    causes: [{ type: "UnexpectedServerResponse", message }],
  });
}

/** Splits a JSON pointer into unescaped tokens (`~1` → `/`, `~0` → `~`). */
export function parsePointer(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new OpError(`JSON pointer must be empty or start with a "/": ${pointer}`);
  return pointer
    .slice(1)
    .split("/")
    .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function arrayIndex(tok: string, len: number, allowEnd: boolean, pointer: string): number {
  if (allowEnd && tok === "-") return len;
  if (!/^(0|[1-9][0-9]*)$/.test(tok)) throw new OpError(`invalid array index ${JSON.stringify(tok)} in ${pointer}`);
  const i = Number(tok);
  if (i > len || (!allowEnd && i === len))
    throw new OpError(`Unable to access invalid index: ${i}: invalid index referenced`);
  return i;
}

type Container = Json[] | { [k: string]: Json };

/** Finds the parent container of the last token; throws when the parent is missing. */
function parentOf(doc: Json, tokens: string[], pointer: string, what: string): [Container, string] {
  let cur: Json = doc;
  for (let i = 0; i < tokens.length - 1; i++) {
    const t = tokens[i]!;
    let next: Json | undefined;
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t)) next = undefined;
      else next = cur[Number(t)];
    } else if (isObject(cur)) {
      next = Object.hasOwn(cur, t) ? cur[t] : undefined;
    }
    if (next === undefined || next === null || typeof next !== "object") {
      throw new OpError(
        `${what} operation does not apply: doc is missing path: ${JSON.stringify(pointer)}: missing value`,
      );
    }
    cur = next;
  }
  if (cur === null || typeof cur !== "object") {
    throw new OpError(
      `${what} operation does not apply: doc is missing path: ${JSON.stringify(pointer)}: missing value`,
    );
  }
  return [cur as Container, tokens[tokens.length - 1]!];
}

function get(doc: Json, pointer: string): Json | undefined {
  return getTokens(doc, parsePointer(pointer));
}

function getTokens(doc: Json, tokens: readonly string[]): Json | undefined {
  let cur: Json | undefined = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t)) return undefined;
      cur = cur[Number(t)];
    } else if (isObject(cur)) {
      cur = Object.hasOwn(cur, t) ? cur[t] : undefined;
    } else {
      return undefined;
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

function add(doc: Json, pointer: string, value: Json): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const [parent, key] = parentOf(doc, tokens, pointer, "add");
  if (Array.isArray(parent)) parent.splice(arrayIndex(key, parent.length, true, pointer), 0, value);
  else parent[key] = value;
  return doc;
}

function remove(doc: Json, pointer: string, what = "remove"): [Json, Json] {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return [null, doc];
  const [parent, key] = parentOf(doc, tokens, pointer, what);
  if (Array.isArray(parent)) {
    const i = arrayIndex(key, parent.length, false, pointer);
    const [old] = parent.splice(i, 1);
    return [doc, old as Json];
  }
  if (!Object.hasOwn(parent, key)) {
    throw new OpError(
      `${what} operation does not apply: doc is missing path: ${JSON.stringify(pointer)}: missing value`,
    );
  }
  const old = parent[key]!;
  delete parent[key];
  return [doc, old];
}

function replace(doc: Json, pointer: string, value: Json): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const [parent, key] = parentOf(doc, tokens, pointer, "replace");
  if (Array.isArray(parent)) {
    parent[arrayIndex(key, parent.length, false, pointer)] = value;
  } else {
    if (!Object.hasOwn(parent, key)) {
      throw new OpError(`replace operation does not apply: doc is missing key: ${pointer}: missing value`);
    }
    parent[key] = value;
  }
  return doc;
}

function validate(ops: unknown): JsonPatchOperation[] {
  if (!Array.isArray(ops)) {
    throw badRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  }
  if (ops.length > maxJsonPatchOperations) {
    throw tooLarge(`The allowed maximum operations in a JSON patch is ${maxJsonPatchOperations}, got ${ops.length}`);
  }
  for (const op of ops) {
    if (!isObject(op)) throw badRequest("json: cannot unmarshal non-object into Go value of type jsonpatch.Operation");
  }
  return ops as JsonPatchOperation[];
}

export interface JsonPatchOptions {
  /** Patch `target` itself and take the operations' values as they are: the caller owns both (admission does). */
  inPlace?: boolean;
}

/**
 * Applies RFC 6902 operations to a copy of `target` (or to `target` itself with `inPlace`; the result is the new
 * root). A malformed body is a 400 BadRequest StatusError; an operation that does not apply is a 422 Invalid
 * StatusError, as kube-apiserver answers.
 */
export function applyJsonPatch<T = unknown>(target: unknown, ops: unknown, opts: JsonPatchOptions = {}): T {
  const list = validate(ops);
  const own = opts.inPlace ? <V>(v: V) => v : clone;
  let doc = own(target) as Json;
  for (const op of list) {
    try {
      if (typeof op.path !== "string") throw new OpError(`${String(op.op)} operation missing path`);
      switch (op.op) {
        case "add":
          if (!("value" in op)) throw new OpError("add operation missing value");
          doc = add(doc, op.path, own(op.value) as Json);
          break;
        case "remove":
          doc = remove(doc, op.path)[0];
          break;
        case "replace":
          if (!("value" in op)) throw new OpError("replace operation missing value");
          doc = replace(doc, op.path, own(op.value) as Json);
          break;
        case "move": {
          if (typeof op.from !== "string") throw new OpError("move operation missing from");
          if (op.path !== op.from && op.path.startsWith(`${op.from}/`)) {
            throw new OpError(`move operation does not apply: cannot move ${op.from} into its own child ${op.path}`);
          }
          if (get(doc, op.from) === undefined) {
            throw new OpError(`move operation does not apply: doc is missing from path: ${op.from}: missing value`);
          }
          const [rest, value] = remove(doc, op.from, "move");
          doc = add(rest, op.path, value);
          break;
        }
        case "copy": {
          if (typeof op.from !== "string") throw new OpError("copy operation missing from");
          const value = get(doc, op.from);
          if (value === undefined) {
            throw new OpError(`copy operation does not apply: doc is missing from path: ${op.from}: missing value`);
          }
          doc = add(doc, op.path, clone(value));
          break;
        }
        case "test": {
          const tokens = parsePointer(op.path);
          if (tokens.length > 0) {
            const parent = getTokens(doc, tokens.slice(0, -1));
            if (parent === undefined || parent === null || typeof parent !== "object") {
              throw new OpError(`test operation does not apply: is missing path: ${op.path}: missing value`);
            }
          }
          const have = get(doc, op.path);
          const want = op.value === undefined ? null : op.value;
          const ok = have === undefined ? want === null : deepEqual(have, want);
          if (!ok) throw new OpError(`testing value ${op.path} failed: test failed`);
          break;
        }
        default:
          throw new OpError(`Unexpected kind: ${String((op as { op?: unknown }).op)}`);
      }
    } catch (e) {
      if (e instanceof OpError) throw rejected(e.message);
      throw e;
    }
  }
  return doc as T;
}
