// Small builders over TypeBox that keep hand-written API schemas short and Kubernetes-shaped: objects are closed
// (additionalProperties false) and fields optional unless named as required; maps, quantities, int-or-string and
// preserved blobs carry the x-kubernetes-* markers the API server's validation and the generated CRDs understand.
import { type Static, type TObject, type TOptional, type TProperties, type TSchema, Type } from "@sinclair/typebox";

export type AllOptional<T extends TProperties, R extends keyof T> = {
  [K in keyof T]: K extends R ? T[K] : TOptional<T[K]>;
};

/** A closed object whose fields are all optional except those named in `required`. */
export function Struct<T extends TProperties, R extends keyof T & string = never>(
  props: T,
  required: readonly R[] = [],
  options: { description?: string; [k: string]: unknown } = {},
): TObject<AllOptional<T, R>> {
  const out: TProperties = {};
  for (const [k, v] of Object.entries(props)) {
    out[k] = (required as readonly string[]).includes(k) ? v : Type.Optional(v);
  }
  return Type.Object(out, { additionalProperties: false, ...options }) as unknown as TObject<AllOptional<T, R>>;
}

/** `{}`-valued marker objects such as `masquerade: {}` or `pod: {}`: closed, no fields. */
export function Empty(description?: string) {
  return Struct({}, [], description ? { description } : {});
}

/** A string-keyed map (`labels`, `nodeSelector`, `requests`) rendered as `additionalProperties`. */
export function MapOf<T extends TSchema>(value: T) {
  return Type.Unsafe<Record<string, Static<T>>>({ type: "object", additionalProperties: value });
}

export const Str = Type.String();
export const Bool = Type.Boolean();
export const Int = Type.Integer();
export const Int32 = Type.Integer({ format: "int32" });
export const Int64 = Type.Integer({ format: "int64" });
export const Num = Type.Number();
export const StrMap = MapOf(Type.String());
export function ListOf<T extends TSchema>(item: T) {
  return Type.Array(item);
}
export function Enum<const T extends readonly string[]>(values: T) {
  return Type.Unsafe<T[number]>({ type: "string", enum: [...values] });
}

/** Kubernetes' resource.Quantity regular expression (apimachinery `quantity.go`, as CRDs publish it). */
export const QUANTITY_PATTERN =
  "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";

/** resource.Quantity: an integer or a string in quantity syntax ("128Mi", "1.5", "100m"). */
export const Quantity = Type.Unsafe<string | number>({
  anyOf: [{ type: "integer" }, { type: "string" }],
  pattern: QUANTITY_PATTERN,
  "x-kubernetes-int-or-string": true,
});
export const QuantityMap = MapOf(Quantity);

/** intstr.IntOrString (ports, maxUnavailable). */
export const IntOrString = Type.Unsafe<string | number>({
  anyOf: [{ type: "integer" }, { type: "string" }],
  "x-kubernetes-int-or-string": true,
});

/** metav1.Time / MicroTime: RFC 3339 in JSON. */
export const Time = Type.Unsafe<string>({ type: "string", format: "date-time" });

/** Free-form JSON kept as sent (runtime.RawExtension, FieldsV1, JSONSchemaProps, ...). */
export function Preserve(description?: string) {
  return Type.Unsafe<Record<string, unknown>>({
    type: "object",
    "x-kubernetes-preserve-unknown-fields": true,
    ...(description ? { description } : {}),
  });
}

/** Any JSON value (CRD `x-kubernetes-preserve-unknown-fields` without a type). */
export const AnyJson = Type.Unsafe<unknown>({ "x-kubernetes-preserve-unknown-fields": true });

/** An embedded Kubernetes object (apiVersion/kind/metadata implied), e.g. dataVolumeTemplates or RawExtension. */
export function Embedded<T extends TSchema>(schema: T): T {
  return { ...schema, "x-kubernetes-embedded-resource": true } as T;
}

/** A copy of `schema` carrying a description (shown by `kubectl explain`); shared schema constants stay untouched. */
export function Describe<T extends TSchema>(schema: T, description: string): T {
  return { ...schema, description } as T;
}
