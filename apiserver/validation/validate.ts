// Schema validation as kube-apiserver does it for custom resources: prune unknown fields (reporting their paths for
// fieldValidation=Strict|Warn), drop nulls where the schema is not nullable, then check types, required fields,
// enums, patterns and formats, turning each problem into a StatusCause with a dotted field path.
// Understands x-kubernetes-preserve-unknown-fields, -int-or-string and -embedded-resource.
//
// Two engines, one result: schemas that use only the structural subset our API schemas use (type, properties,
// additionalProperties, items, required, enum, pattern, format, nullable, int-or-string) are checked in the same
// single walk that prunes them; that needs no compilation, which matters because ajv takes 1-3 s to compile one
// of the large KubeVirt schemas on this machine. A schema using anything else (minimum, maxLength, oneOf, ... as
// user-created CRDs may) is compiled once with ajv and cached.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { ObjectMeta, QUANTITY_PATTERN } from "../../api/index.js";
import { badRequest, pointerToField, type StatusCause, type StatusError } from "../../lib/errors.js";

export type FieldValidation = "Strict" | "Warn" | "Ignore";
type Schema = Record<string, unknown>;

export interface ValidateOptions {
  /** @default "Strict" — only changes what the caller does with unknownFields; the object is always pruned. */
  fieldValidation?: FieldValidation;
}

export interface ValidationResult<T = Record<string, unknown>> {
  /** A pruned copy: unknown fields and non-nullable nulls removed. */
  object: T;
  /** Dotted paths of the fields the schema does not know, e.g. `spec.template.spec.x[0].y`. */
  unknownFields: string[];
  /** Schema violations with dotted field paths; empty when valid. */
  causes: StatusCause[];
}

// ---------------------------------------------------------------------------------------------------------------
// ajv, for schemas beyond the structural subset

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false, code: { optimize: false } });
addFormats(ajv);
for (const kw of [
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-validations",
]) {
  ajv.addKeyword({ keyword: kw });
}

const SUBSET = new Set([
  "type",
  "properties",
  "additionalProperties",
  "items",
  "required",
  "enum",
  "pattern",
  "format",
  "nullable",
  "description",
  "default",
  "title",
  "example",
  "anyOf", // only in the int-or-string shape, checked below
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-int-or-string",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-validations", // CEL: not evaluated (by either engine)
]);

function inSubset(s: unknown): boolean {
  if (!s || typeof s !== "object") return true;
  const o = s as Schema;
  for (const k of Object.keys(o)) if (!SUBSET.has(k)) return false;
  if (o.anyOf && o["x-kubernetes-int-or-string"] !== true) return false;
  for (const sub of Object.values((o.properties ?? {}) as Record<string, unknown>)) if (!inSubset(sub)) return false;
  if (typeof o.additionalProperties === "object" && !inSubset(o.additionalProperties)) return false;
  return inSubset(o.items);
}

interface Engine {
  ajv?: ValidateFunction;
}
const engines = new WeakMap<object, Engine>();
function engineFor(schema: Schema): Engine {
  let e = engines.get(schema);
  if (!e) {
    e = {};
    if (!inSubset(schema)) {
      try {
        e = { ajv: ajv.compile(schema) };
      } catch {
        // A schema ajv cannot compile (a user CRD with an odd keyword): the structural walk still applies.
        e = {};
      }
    }
    engines.set(schema, e);
  }
  return e;
}

// ---------------------------------------------------------------------------------------------------------------
// the walk: prune + (subset) validate

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}
function show(v: unknown): string {
  return JSON.stringify(v ?? null);
}

const EMBEDDED_KEYS = new Set(["apiVersion", "kind", "metadata"]);
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const patterns = new Map<string, RegExp>();
function regex(p: string): RegExp | undefined {
  let r = patterns.get(p);
  if (!r) {
    try {
      r = new RegExp(p, "u");
    } catch {
      try {
        r = new RegExp(p);
      } catch {
        return undefined; // a pattern JavaScript cannot compile constrains nothing here
      }
    }
    patterns.set(p, r);
  }
  return r;
}

interface Walk {
  unknown: string[];
  causes: StatusCause[] | undefined; // undefined: ajv validates afterwards
}

function typeOk(type: unknown, v: unknown): boolean {
  switch (type) {
    case "object":
      return isPlainObject(v);
    case "array":
      return Array.isArray(v);
    case "string":
      return typeof v === "string";
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "boolean":
      return typeof v === "boolean";
    default:
      return true;
  }
}

function check(schema: Schema, value: unknown, path: string, w: Walk): boolean {
  const causes = w.causes;
  if (!causes) return true;
  const intOrString = schema["x-kubernetes-int-or-string"] === true;
  if (intOrString) {
    if (!(typeof value === "string" || (typeof value === "number" && Number.isInteger(value)))) {
      causes.push({
        type: "FieldValueTypeInvalid",
        field: path,
        message: `Invalid value: ${show(value)}: ${path} in body must be of type integer or string: ${show(value)}`,
      });
      return false;
    }
  } else if (schema.type && !typeOk(schema.type, value)) {
    const got = Array.isArray(value) ? "array" : typeof value === "number" ? "number" : typeof value;
    causes.push({
      type: "FieldValueTypeInvalid",
      field: path,
      message: `Invalid value: ${show(got === "object" || got === "array" ? got : value)}: ${path} in body must be of type ${String(schema.type)}: ${show(got)}`,
    });
    return false;
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => e === value)) {
    causes.push({
      type: "FieldValueNotSupported",
      field: path,
      message: `Unsupported value: ${show(value)}: supported values: ${schema.enum.map(show).join(", ")}`,
    });
  }
  if (typeof value === "string" && typeof schema.pattern === "string" && regex(schema.pattern)?.test(value) === false) {
    causes.push({
      type: "FieldValueInvalid",
      field: path,
      message:
        schema.pattern === QUANTITY_PATTERN
          ? `Invalid value: ${show(value)}: quantities must match the regular expression '${QUANTITY_PATTERN}'`
          : `Invalid value: ${show(value)}: ${path} in body should match '${schema.pattern}'`,
    });
  }
  if (
    schema.format === "date-time" &&
    typeof value === "string" &&
    !(RFC3339.test(value) && !Number.isNaN(Date.parse(value)))
  ) {
    causes.push({
      type: "FieldValueInvalid",
      field: path,
      message: `Invalid value: ${show(value)}: ${path} in body must be of type date-time: ${show(value)}`,
    });
  }
  if (schema.format === "int32" && typeof value === "number" && (value > 2147483647 || value < -2147483648)) {
    causes.push({ type: "FieldValueInvalid", field: path, message: `Invalid value: ${value}: must fit in int32` });
  }
  return true;
}

/** Returns the pruned value, or undefined when the value is to be dropped (a null the schema does not allow). */
function walk(schema: Schema, value: unknown, path: string, w: Walk): unknown {
  if (value === null) return schema.nullable === true ? null : undefined;
  if (!check(schema, value, path, w)) return value;
  if (schema.anyOf || schema["x-kubernetes-int-or-string"]) return value;
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  if (Array.isArray(value)) {
    const items = schema.items as Schema | undefined;
    if (!items) return value;
    return value.map((v, i) => {
      const out = walk(items, v, `${path}[${i}]`, w);
      return out === undefined ? null : out;
    });
  }
  if (!isPlainObject(value)) return value;
  const props = schema.properties as Record<string, Schema> | undefined;
  const additional = schema.additionalProperties as Schema | boolean | undefined;
  // Structural-schema semantics: an object schema knows only its properties unless it preserves unknown fields
  // or has additionalProperties; a schema with no type and no properties (preserve-unknown-fields only) takes
  // anything.
  if (!props && additional === undefined && schema.type !== "object") return value;
  const embedded = schema["x-kubernetes-embedded-resource"] === true;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    // own properties only: "constructor" or "__proto__" in a body are unknown fields, not Object.prototype's
    const sub = props && Object.hasOwn(props, key) && key !== "__proto__" ? props[key] : undefined;
    const p = join(path, key);
    let next: unknown;
    if (sub) next = walk(sub, v, p, w);
    else if (key === "__proto__") {
      w.unknown.push(p);
      continue;
    } else if (isPlainObject(additional)) next = walk(additional, v, p, w);
    else if (additional === true || preserve || (embedded && EMBEDDED_KEYS.has(key))) next = v;
    else {
      w.unknown.push(p);
      continue;
    }
    if (next !== undefined) out[key] = next;
  }
  if (w.causes && Array.isArray(schema.required)) {
    for (const r of schema.required as string[]) {
      if (!Object.hasOwn(out, r))
        w.causes.push({ type: "FieldValueRequired", field: join(path, r), message: "Required value" });
    }
  }
  return out;
}

// A CRD's schema leaves root metadata as `{type: object}`; kube-apiserver still decodes it as ObjectMeta, so
// unknown metadata fields are reported and types checked. Same here.
const withMeta = new WeakMap<object, Schema>();
function withObjectMeta(schema: Schema): Schema {
  const props = schema.properties as Record<string, Schema> | undefined;
  const meta = props?.metadata;
  if (!props || !meta || meta.properties) return schema;
  let out = withMeta.get(schema);
  if (!out) {
    out = { ...schema, properties: { ...props, metadata: ObjectMeta as unknown as Schema } };
    withMeta.set(schema, out);
  }
  return out;
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur: unknown = root;
  for (const raw of pointer.split("/").slice(1)) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

function ajvCauses(errors: readonly ErrorObject[], root: unknown): StatusCause[] {
  const causes: StatusCause[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword === "anyOf" || e.keyword === "oneOf") continue;
    const pointer = e.keyword === "required" ? `${e.instancePath}/${String(e.params.missingProperty)}` : e.instancePath;
    const field = pointerToField(pointer);
    const key = `${field}\u0000${e.keyword}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const value = valueAt(root, pointer);
    if (e.keyword === "required") causes.push({ type: "FieldValueRequired", field, message: "Required value" });
    else if (e.keyword === "enum")
      causes.push({
        type: "FieldValueNotSupported",
        field,
        message: `Unsupported value: ${show(value)}: supported values: ${(e.params.allowedValues as unknown[]).map(show).join(", ")}`,
      });
    else if (e.keyword === "type")
      causes.push({
        type: "FieldValueTypeInvalid",
        field,
        message: `Invalid value: ${show(value)}: ${field} in body must be of type ${String(e.params.type)}`,
      });
    else
      causes.push({
        type: "FieldValueInvalid",
        field,
        message: `Invalid value: ${show(value)}: ${field} in body ${e.message ?? ""}`,
      });
  }
  return causes;
}

/**
 * Validates `obj` against an OpenAPI v3 / TypeBox schema the way kube-apiserver treats custom resources.
 * The caller decides what unknownFields mean (see strictDecodingError and unknownFieldWarnings).
 */
export function validateObject<T = Record<string, unknown>>(
  schema: object,
  obj: unknown,
  options: ValidateOptions = {},
): ValidationResult<T> {
  void options;
  const root = withObjectMeta(schema as Schema);
  const engine = engineFor(root);
  const w: Walk = { unknown: [], causes: engine.ajv ? undefined : [] };
  const pruned = walk(root, obj, "", w);
  const object = (pruned === undefined ? {} : pruned) as T;
  let causes = w.causes ?? [];
  if (engine.ajv && !engine.ajv(object)) causes = ajvCauses(engine.ajv.errors ?? [], object);
  return { object, unknownFields: w.unknown, causes };
}

/** kube-apiserver's 400 for fieldValidation=Strict: `strict decoding error: unknown field "spec.foo", ...`. */
export function strictDecodingError(unknownFields: readonly string[]): StatusError {
  return badRequest(`strict decoding error: ${unknownFields.map((f) => `unknown field "${f}"`).join(", ")}`);
}

/** The Warning header texts kube-apiserver sends for fieldValidation=Warn. */
export function unknownFieldWarnings(unknownFields: readonly string[]): string[] {
  return unknownFields.map((f) => `unknown field "${f}"`);
}
