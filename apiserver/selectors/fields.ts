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

/**
 * The field selectors core kinds accept on a real cluster (k8s.io/kubernetes pkg/apis/core/v1 conversion), keyed by
 * resource (plural). Kinds not listed accept only `metaFieldGetters` with `defaultUnknownFieldMessage`.
 */
export const coreFieldSelectors: Readonly<Record<string, KindFieldSelectors>> = Object.freeze({
  pods: {
    fields: {
      ...fieldGetters([
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
      ]),
      "spec.hostNetwork": (obj) => (obj as { spec?: { hostNetwork?: boolean } })?.spec?.hostNetwork === true,
      "status.podIPs": podIPs,
    },
    unknownFieldMessage: coreUnknownFieldMessage,
  },
  events: {
    fields: {
      ...fieldGetters([
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
      ]),
      source: eventSource,
    },
    unknownFieldMessage: coreUnknownFieldMessage,
  },
  nodes: {
    fields: {
      ...metaFieldGetters,
      "spec.unschedulable": (obj) => (obj as { spec?: { unschedulable?: boolean } })?.spec?.unschedulable === true,
    },
    unknownFieldMessage: coreUnknownFieldMessage,
  },
  namespaces: { fields: fieldGetters(["status.phase"]), unknownFieldMessage: coreUnknownFieldMessage },
  secrets: { fields: fieldGetters(["type"]), unknownFieldMessage: coreUnknownFieldMessage },
  replicationcontrollers: { fields: fieldGetters(["status.replicas"]), unknownFieldMessage: coreUnknownFieldMessage },
});

const specialGetters: Record<string, FieldGetter> = (() => {
  const out: Record<string, FieldGetter> = {};
  for (const kind of Object.values(coreFieldSelectors)) {
    for (const [k, g] of Object.entries(kind.fields)) if (!(k in out)) out[k] = g;
  }
  return out;
})();

const coreKindsWithOwnConversion = new Set(Object.keys(coreFieldSelectors));

/**
 * The message kube-apiserver gives for a field it does not select on: core kinds with their own conversion (pods,
 * nodes, events, namespaces, secrets, replicationcontrollers) say `field label not supported: <f>`, everything else
 * (other core kinds, every custom resource) the default conversion's `"<f>" is not a known field selector: ...`.
 */
export function unknownFieldMessageFor(group: string, resource: string): (field: string) => string {
  return group === "" && coreKindsWithOwnConversion.has(resource)
    ? coreUnknownFieldMessage
    : defaultUnknownFieldMessage;
}
