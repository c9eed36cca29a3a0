// Field selectors (`?fieldSelector=metadata.name=x,status.phase!=Running`) as kube-apiserver parses them: terms split on
// unescaped commas, operators `!=`, `==`, `=`, values unescaped (`\,` `\=` `\\`). Only the fields the caller allows
// are accepted; any other is a 400 with the message a real cluster gives, so nothing comes to depend on a field
// selector that a cluster would refuse.

import { badRequest } from "../../lib/errors.js";
import { type FieldTerm, fieldTermsToString, parseFieldSelectorTerms } from "../../lib/selectors.js";

/** Reads one selectable field from an object; `undefined` counts as "" (as a missing key in apimachinery's fields.Set). */
export type FieldGetter = (obj: unknown) => string | number | boolean | undefined | null;

export interface FieldSelector {
  readonly terms: readonly FieldTerm[];
  readonly empty: boolean;
  matches(obj: unknown): boolean;
  /** The value this selector pins `field` to with `=`, if any (e.g. `metadata.name` for a single-object watch). */
  requiresExact(field: string): string | undefined;
  toString(): string;
}

export interface FieldSelectorOptions {
  /** The message for a field that is not selectable. Defaults to the one CRDs and most kinds give. */
  unknownFieldMessage?: (field: string) => string;
}

/** `"<field>" is not a known field selector: only "metadata.name", "metadata.namespace"` (runtime.DefaultMetaV1FieldSelectorConversion). */
export function defaultUnknownFieldMessage(field: string): string {
  return `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`;
}

/** `field label not supported: <field>` — what core kinds with their own conversion (pods, nodes, events, ...) say. */
export function coreUnknownFieldMessage(field: string): string {
  return `field label not supported: ${field}`;
}

function stringify(v: string | number | boolean | undefined | null): string {
  return v == null ? "" : String(v);
}

function isIterable(v: unknown): v is Iterable<string> {
  return (
    v !== null && typeof v === "object" && typeof (v as { [Symbol.iterator]?: unknown })[Symbol.iterator] === "function"
  );
}

/** Getters for field names: the metadata pair, the core kinds' special fields (`source`, booleans), else by path. */
function gettersForNames(names: Iterable<string>): Record<string, FieldGetter> {
  const out: Record<string, FieldGetter> = { ...metaFieldGetters };
  for (const n of names) {
    const field = n.replace(/^\./, "");
    out[field] = specialGetters[field] ?? pathGetter(field);
  }
  return out;
}

/**
 * Parses a field selector against the fields a kind allows: either getters by field name, or just the names
 * (`metadata.name`/`metadata.namespace` are always allowed; CRD `selectableFields` jsonPaths may keep their dot). `fields` maps each selectable field to its getter
 * (see `metaFieldGetters`, `pathGetter`). An unknown field is a 400 BadRequest.
 */
export function parseFieldSelector(
  s: string | undefined | null,
  fields: Readonly<Record<string, FieldGetter>> | Iterable<string>,
  opts: FieldSelectorOptions = {},
): FieldSelector {
  if (isIterable(fields)) fields = gettersForNames(fields);
  const terms = parseFieldSelectorTerms(s);
  const unknown = opts.unknownFieldMessage ?? defaultUnknownFieldMessage;
  for (const t of terms) {
    if (!Object.hasOwn(fields, t.field)) throw badRequest(unknown(t.field));
  }
  const compiled = terms.map((t) => ({ t, get: fields[t.field]! }));
  return {
    terms,
    empty: terms.length === 0,
    matches: (obj) => compiled.every(({ t, get }) => (stringify(get(obj)) === t.value) === (t.operator === "=")),
    requiresExact: (field) => terms.find((t) => t.field === field && t.operator === "=")?.value,
    toString: () => fieldTermsToString(terms),
  };
}

/** Reads a dotted path (`spec.nodeName`, or a CRD selectableFields jsonPath such as `.spec.color`). */
export function pathGetter(path: string): FieldGetter {
  const segs = path.replace(/^\./, "").split(".");
  return (obj) => {
    let cur: unknown = obj;
    for (const s of segs) {
      if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return undefined;
      cur = (cur as Record<string, unknown>)[s];
    }
    if (typeof cur === "string" || typeof cur === "number" || typeof cur === "boolean") return cur;
    return undefined;
  };
}

/** The two fields every kind allows. */
export const metaFieldGetters: Readonly<Record<string, FieldGetter>> = Object.freeze({
  "metadata.name": pathGetter("metadata.name"),
  "metadata.namespace": pathGetter("metadata.namespace"),
});

/** Getters for a list of dotted paths plus the metadata pair (e.g. a CRD's `selectableFields[].jsonPath`). */
export function fieldGetters(paths: readonly string[]): Record<string, FieldGetter> {
  const out: Record<string, FieldGetter> = { ...metaFieldGetters };
  for (const p of paths) out[p.replace(/^\./, "")] = pathGetter(p);
  return out;
}

export interface KindFieldSelectors {
  fields: Readonly<Record<string, FieldGetter>>;
  unknownFieldMessage: (field: string) => string;
}

const podIPs: FieldGetter = (obj) => {
  // Selecting on status.podIPs compares against the pod's primary IP.
  const ips = (obj as { status?: { podIPs?: { ip?: string }[] } })?.status?.podIPs;
  return ips?.[0]?.ip;
};

const eventSource: FieldGetter = (obj) => {
  const e = obj as { source?: { component?: string }; reportingController?: string };
  return e?.source?.component || e?.reportingController;
};

const bool =
  (path: string): FieldGetter =>
  (obj) =>
    pathGetter(path)(obj) === true;

/** Core fields whose value is not a plain string at their path (kube-apiserver's *ToSelectableFields). */
const specialGetters: Readonly<Record<string, FieldGetter>> = Object.freeze({
  "spec.hostNetwork": bool("spec.hostNetwork"),
  "spec.unschedulable": bool("spec.unschedulable"),
  "status.podIPs": podIPs,
  source: eventSource,
});

/** What a resource declares about its field selectors: api/builtin.ts's list for core kinds, selectableFields for CRDs. */
export interface SelectableResource {
  group: string;
  namespaced: boolean;
  /** Selectable fields beyond metadata.name/metadata.namespace. */
  fieldSelectors: Iterable<string>;
}

const kindCache = new WeakMap<SelectableResource, KindFieldSelectors>();

/**
 * The field selectors a resource accepts, as kube-apiserver does. A core kind that declares fields of its own
 * (api/builtin.ts, the one list: k8s.io/kubernetes pkg/apis/core/v1 conversion.go) has its own conversion: its
 * unknown fields say `field label not supported: <f>`, and a cluster-scoped one (nodes, namespaces) selects on
 * metadata.name only. Every other kind (other core kinds, every CRD) gets the default conversion: metadata.name,
 * metadata.namespace, its selectableFields, and the default message.
 */
export function kindFieldSelectors(r: SelectableResource): KindFieldSelectors {
  const hit = kindCache.get(r);
  if (hit) return hit;
  const names = [...r.fieldSelectors];
  const own = r.group === "" && names.length > 0;
  const fields: Record<string, FieldGetter> = { "metadata.name": metaFieldGetters["metadata.name"]! };
  if (!own || r.namespaced) fields["metadata.namespace"] = metaFieldGetters["metadata.namespace"]!;
  for (const n of names) {
    const f = n.replace(/^\./, "");
    fields[f] = (own ? specialGetters[f] : undefined) ?? pathGetter(f);
  }
  const out = { fields, unknownFieldMessage: own ? coreUnknownFieldMessage : defaultUnknownFieldMessage };
  kindCache.set(r, out);
  return out;
}
