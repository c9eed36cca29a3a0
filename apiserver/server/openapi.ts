// OpenAPI v3: the index (/openapi/v3) and one document per group-version, with a PATCH operation per kind that
// declares `fieldValidation` and the accepted patch types (kubectl relies on both), and components.schemas with
// x-kubernetes-group-version-kind so `kubectl explain` works.
import { createHash } from "node:crypto";
import type { JSONSchemaProps } from "../../api/meta/v1/crd.js";
import { clone as deepClone, isObject as isPlainObject } from "../../lib/json.js";
import type { Registry, ServedResource } from "../registry/resources.js";
import { PATCH_TYPES } from "./rest.js";

const META = "io.k8s.apimachinery.pkg.apis.meta.v1";
const OBJECT_META = `${META}.ObjectMeta`;

function schemaName(r: ServedResource, version: string, kind = r.kind): string {
  if (r.group === "") return `io.k8s.api.core.${version}.${kind}`;
  if (r.builtin) return `io.k8s.api.${r.group.replace(/\.k8s\.io$/, "")}.${version}.${kind}`;
  return `${r.group.split(".").reverse().join(".")}.${version}.${kind}`;
}

function ref(name: string): JSONSchemaProps {
  return { $ref: `#/components/schemas/${name}` };
}

const objectMetaSchema: JSONSchemaProps = {
  description:
    "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
  type: "object",
  properties: {
    annotations: {
      type: "object",
      additionalProperties: { type: "string", default: "" },
      description:
        "Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata.",
    },
    creationTimestamp: {
      type: "string",
      format: "date-time",
      description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
    },
    deletionGracePeriodSeconds: {
      type: "integer",
      format: "int64",
      description:
        "Number of seconds allowed for this object to gracefully terminate before it will be removed from the system.",
    },
    deletionTimestamp: {
      type: "string",
      format: "date-time",
      description: "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.",
    },
    finalizers: {
      type: "array",
      items: { type: "string", default: "" },
      description: "Must be empty before the object is deleted from the registry.",
    },
    generateName: {
      type: "string",
      description:
        "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided.",
    },
    generation: {
      type: "integer",
      format: "int64",
      description: "A sequence number representing a specific generation of the desired state.",
    },
    labels: {
      type: "object",
      additionalProperties: { type: "string", default: "" },
      description:
        "Map of string keys and values that can be used to organize and categorize (scope and select) objects.",
    },
    managedFields: {
      type: "array",
      items: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
      description: "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.",
    },
    name: { type: "string", description: "Name must be unique within a namespace." },
    namespace: { type: "string", description: "Namespace defines the space within which each name must be unique." },
    ownerReferences: {
      type: "array",
      items: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
      description: "List of objects depended by this object.",
    },
    resourceVersion: {
      type: "string",
      description: "An opaque value that represents the internal version of this object.",
    },
    selfLink: {
      type: "string",
      description: "Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.",
    },
    uid: { type: "string", description: "UID is the unique in time and space value for this object." },
  },
};

const listMetaSchema: JSONSchemaProps = {
  type: "object",
  description:
    "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.",
  properties: {
    continue: { type: "string" },
    remainingItemCount: { type: "integer", format: "int64" },
    resourceVersion: { type: "string" },
    selfLink: { type: "string" },
  },
};

function kindSchema(r: ServedResource, version: string): JSONSchemaProps {
  const raw = r.schema(version);
  const s: JSONSchemaProps = raw ? deepClone(raw) : { type: "object", "x-kubernetes-preserve-unknown-fields": true };
  const props = isPlainObject(s.properties) ? (s.properties as Record<string, JSONSchemaProps>) : {};
  props.metadata = {
    allOf: [ref(OBJECT_META)],
    default: {},
    description:
      "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
  };
  props.apiVersion ??= {
    type: "string",
    description: "APIVersion defines the versioned schema of this representation of an object.",
  };
  props.kind ??= {
    type: "string",
    description: "Kind is a string value representing the REST resource this object represents.",
  };
  s.properties = props;
  s.type ??= "object";
  s["x-kubernetes-group-version-kind"] = [{ group: r.group, version, kind: r.kind }];
  return s;
}

function op(
  r: ServedResource,
  version: string,
  action: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    description: `${action} ${r.kind}`,
    operationId: `${action}${r.kind}`,
    tags: [r.group || "core_v1"],
    "x-kubernetes-action": action,
    "x-kubernetes-group-version-kind": { group: r.group, version, kind: r.kind },
    responses: {
      "200": { description: "OK", content: { "application/json": { schema: ref(schemaName(r, version)) } } },
    },
    ...extra,
  };
}

const q = (name: string, description: string): Record<string, unknown> => ({
  name,
  in: "query",
  description,
  schema: { type: "string", uniqueItems: true },
});

function writeParams(): Record<string, unknown>[] {
  return [
    q("dryRun", "When present, indicates that modifications should not be persisted."),
    q("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
    q(
      "fieldValidation",
      "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
    ),
  ];
}

export function groupVersionDocument(
  reg: Registry,
  group: string,
  version: string,
): Record<string, unknown> | undefined {
  const rs = reg.inGroupVersion(group, version);
  if (rs.length === 0) return undefined;
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const paths: Record<string, unknown> = {};
  const schemas: Record<string, JSONSchemaProps> = {
    [OBJECT_META]: objectMetaSchema,
    [`${META}.ListMeta`]: listMetaSchema,
  };
  for (const r of rs) {
    const name = schemaName(r, version);
    schemas[name] = kindSchema(r, version);
    schemas[schemaName(r, version, r.listKind)] = {
      type: "object",
      description: `${r.listKind} is a list of ${r.kind}`,
      required: ["items"],
      properties: {
        apiVersion: { type: "string" },
        items: { type: "array", items: ref(name) },
        kind: { type: "string" },
        metadata: { allOf: [ref(`${META}.ListMeta`)], default: {} },
      },
      "x-kubernetes-group-version-kind": [{ group: r.group, version, kind: r.listKind }],
    };
    if (r.virtual) {
      paths[`${base}/${r.plural}`] = {
        post: op(r, version, "post", {
          parameters: writeParams(),
          requestBody: { content: { "application/json": { schema: ref(name) } } },
        }),
      };
      continue;
    }
    const patchTypes = r.builtin
      ? [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.strategic, PATCH_TYPES.apply]
      : [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.apply];
    const patchBody = {
      content: Object.fromEntries(patchTypes.map((t) => [t, { schema: { type: "object" } }])),
      required: true,
    };
    const pathParams: Record<string, unknown>[] = [
      { name: "name", in: "path", required: true, schema: { type: "string", uniqueItems: true } },
    ];
    if (r.namespaced)
      pathParams.push({ name: "namespace", in: "path", required: true, schema: { type: "string", uniqueItems: true } });
    const coll = r.namespaced ? `${base}/namespaces/{namespace}/${r.plural}` : `${base}/${r.plural}`;
    const collParams = r.namespaced ? [pathParams[1]] : [];
    paths[coll] = {
      get: op(r, version, "list"),
      post: op(r, version, "post", {
        parameters: writeParams(),
        requestBody: { content: { "application/json": { schema: ref(name) } }, required: true },
      }),
      delete: op(r, version, "deletecollection"),
      parameters: collParams,
    };
    if (r.namespaced) paths[`${base}/${r.plural}`] = { get: op(r, version, "list"), parameters: [] };
    paths[`${coll}/{name}`] = {
      get: op(r, version, "get"),
      put: op(r, version, "put", {
        parameters: writeParams(),
        requestBody: { content: { "application/json": { schema: ref(name) } }, required: true },
      }),
      patch: op(r, version, "patch", {
        parameters: [...writeParams(), q("force", "Force is going to force Apply requests.")],
        requestBody: patchBody,
      }),
      delete: op(r, version, "delete"),
      parameters: pathParams,
    };
    if (r.status) {
      paths[`${coll}/{name}/status`] = {
        get: op(r, version, "get"),
        put: op(r, version, "put", {
          parameters: writeParams(),
          requestBody: { content: { "application/json": { schema: ref(name) } }, required: true },
        }),
        patch: op(r, version, "patch", {
          parameters: [...writeParams(), q("force", "Force is going to force Apply requests.")],
          requestBody: patchBody,
        }),
        parameters: pathParams,
      };
    }
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: "v1.32.0" },
    paths,
    components: { schemas },
  };
}

export class OpenApiCache {
  #gen = -1;
  #docs = new Map<string, { body: string; hash: string }>();
  readonly #reg: Registry;
  constructor(reg: Registry) {
    this.#reg = reg;
  }

  #refresh(): void {
    if (this.#gen === this.#reg.generation) return;
    this.#docs.clear();
    for (const [g, versions] of this.#reg.groups()) {
      for (const v of versions) {
        const doc = groupVersionDocument(this.#reg, g, v);
        if (!doc) continue;
        const body = JSON.stringify(doc);
        const hash = createHash("sha512").update(body).digest("hex").toUpperCase();
        this.#docs.set(g ? `apis/${g}/${v}` : `api/${v}`, { body, hash });
      }
    }
    this.#gen = this.#reg.generation;
  }

  index(): Record<string, unknown> {
    this.#refresh();
    const paths: Record<string, unknown> = {};
    for (const [k, d] of this.#docs) paths[k] = { serverRelativeURL: `/openapi/v3/${k}?hash=${d.hash}` };
    return { paths };
  }

  doc(key: string): { body: string; hash: string } | undefined {
    this.#refresh();
    return this.#docs.get(key);
  }
}
