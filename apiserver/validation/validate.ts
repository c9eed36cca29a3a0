// Schema validation as kube-apiserver does it for custom resources: prune unknown fields (reporting their paths for
// fieldValidation=Strict|Warn), drop nulls where the schema is not nullable, then validate types, required fields,
// enums and patterns with ajv (compiled once per schema) and turn every error into a StatusCause with a dotted
// field path. Understands x-kubernetes-preserve-unknown-fields, -int-or-string and -embedded-resource.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { QUANTITY_PATTERN } from "../../api/index.js";
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

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: true });
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

const compiled = new WeakMap<object, ValidateFunction>();
function compile(schema: Schema): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = ajv.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

const EMBEDDED_KEYS = new Set(["apiVersion", "kind", "metadata"]);

/** Returns the pruned value, or undefined when the value is to be dropped (a null the schema does not allow). */
function prune(schema: Schema, value: unknown, path: string, unknown: string[]): unknown {
  if (value === null) return schema.nullable === true ? null : undefined;
  if (schema.anyOf || schema.oneOf || schema.allOf) return value;
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  if (Array.isArray(value)) {
    const items = schema.items as Schema | undefined;
    if (!items) return value;
    return value.map((v, i) => {
      const out = prune(items, v, `${path}[${i}]`, unknown);
      return out === undefined ? null : out;
    });
  }
  if (!isPlainObject(value)) return value;
  const props = schema.properties as Record<string, Schema> | undefined;
  const additional = schema.additionalProperties as Schema | boolean | undefined;
  if (!props && additional === undefined && schema.type !== "object") return value;
  const embedded = schema["x-kubernetes-embedded-resource"] === true;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const sub = props?.[key];
    const p = join(path, key);
    let next: unknown;
    if (sub) next = prune(sub, v, p, unknown);
    else if (isPlainObject(additional)) next = prune(additional, v, p, unknown);
    else if (additional === true || preserve || (embedded && EMBEDDED_KEYS.has(key))) next = v;
    else if (!props && additional === undefined) next = v;
    else {
      unknown.push(p);
      continue;
    }
    if (next !== undefined) out[key] = next;
  }
  return out;
}

function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v ?? null);
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

function toCauses(errors: readonly ErrorObject[], root: unknown): StatusCause[] {
  // Group by instance path: an int-or-string failure yields type, pattern and anyOf errors for one field.
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errors) {
    const key = e.keyword === "required" ? `${e.instancePath}/${String(e.params.missingProperty)}` : e.instancePath;
    const list = byPath.get(key) ?? [];
    list.push(e);
    byPath.set(key, list);
  }
  const causes: StatusCause[] = [];
  for (const [pointer, errs] of byPath) {
    const field = pointerToField(pointer);
    const value = valueAt(root, pointer);
    const pick =
      errs.find((e) => e.keyword === "required") ??
      errs.find((e) => e.keyword === "pattern") ??
      errs.find((e) => e.keyword === "enum") ??
      errs.find((e) => e.keyword === "anyOf") ??
      errs[0];
    if (!pick) continue;
    switch (pick.keyword) {
      case "required":
        causes.push({ type: "FieldValueRequired", field, message: "Required value" });
        break;
      case "pattern":
        causes.push({
          type: "FieldValueInvalid",
          field,
          message:
            pick.params.pattern === QUANTITY_PATTERN
              ? `Invalid value: ${show(value)}: quantities must match the regular expression '${QUANTITY_PATTERN}'`
              : `Invalid value: ${show(value)}: ${field} in body should match '${String(pick.params.pattern)}'`,
        });
        break;
      case "enum": {
        const allowed = (pick.params.allowedValues as unknown[]).map(show).join(", ");
        causes.push({
          type: "FieldValueNotSupported",
          field,
          message: `Unsupported value: ${show(value)}: supported values: ${allowed}`,
        });
        break;
      }
      case "anyOf":
        causes.push({
          type: "FieldValueTypeInvalid",
          field,
          message: `Invalid value: ${show(value)}: ${field} in body must be of type integer or string`,
        });
        break;
      case "type":
        causes.push({
          type: "FieldValueTypeInvalid",
          field,
          message: `Invalid value: ${show(value)}: ${field} in body must be of type ${String(pick.params.type)}: ${show(value)}`,
        });
        break;
      case "const":
        causes.push({
          type: "FieldValueNotSupported",
          field,
          message: `Unsupported value: ${show(value)}: supported values: ${show(pick.params.allowedValue)}`,
        });
        break;
      default:
        causes.push({
          type: "FieldValueInvalid",
          field,
          message: `Invalid value: ${show(value)}: ${pick.message ?? ""}`,
        });
    }
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
  const unknownFields: string[] = [];
  const pruned = prune(schema as Schema, obj, "", unknownFields);
  const object = (pruned === undefined ? {} : pruned) as T;
  const fn = compile(schema as Schema);
  const causes = fn(object) ? [] : toCauses(fn.errors ?? [], object);
  return { object, unknownFields, causes };
}

/** kube-apiserver's 400 for fieldValidation=Strict: `strict decoding error: unknown field "spec.foo", ...`. */
export function strictDecodingError(unknownFields: readonly string[]): StatusError {
  return badRequest(`strict decoding error: ${unknownFields.map((f) => `unknown field "${f}"`).join(", ")}`);
}

/** The Warning header texts kube-apiserver sends for fieldValidation=Warn. */
export function unknownFieldWarnings(unknownFields: readonly string[]): string[] {
  return unknownFields.map((f) => `unknown field "${f}"`);
}
