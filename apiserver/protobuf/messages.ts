// The k8s.io protobuf messages kubectl sends as request bodies, described by field number (from the generated.proto
// files of k8s.io/api core/v1 and authorization/v1 and k8s.io/apimachinery meta/v1 and runtime), decoded into the
// JSON shape the API serves: empty scalars omitted, bytes as base64, times as RFC 3339.

import { readMessage, WireError, type WireValue } from "./wire.js";

type Scalar = "string" | "bytes" | "bool" | "int32" | "int64";

export type FieldSpec =
  | { name: string; type: Scalar; repeated?: boolean }
  | { name: string; type: "time" }
  | { name: string; type: "intOrString" }
  | { name: string; type: "message"; message: MessageSpec; repeated?: boolean }
  | { name: string; type: "map"; value: "string" | "bytes" };

export type MessageSpec = Readonly<Record<number, FieldSpec>>;

const decoder = new TextDecoder("utf-8", { fatal: true });

function str(v: WireValue): string {
  if (v.wire !== 2) throw new WireError("expected a length-delimited string");
  try {
    return decoder.decode(v.value);
  } catch {
    throw new WireError("invalid UTF-8 in a string field");
  }
}

function varint(v: WireValue): bigint {
  if (v.wire !== 0) throw new WireError("expected a varint");
  return v.value;
}

function int64(v: WireValue): number {
  return Number(BigInt.asIntN(64, varint(v)));
}

function int32(v: WireValue): number {
  return Number(BigInt.asIntN(32, varint(v)));
}

function bytes(v: WireValue): Uint8Array {
  if (v.wire !== 2) throw new WireError("expected a length-delimited bytes field");
  return v.value;
}

function scalar(type: Scalar, v: WireValue): unknown {
  switch (type) {
    case "string":
      return str(v);
    case "bytes":
      return Buffer.from(bytes(v)).toString("base64");
    case "bool":
      return varint(v) !== 0n;
    case "int32":
      return int32(v);
    case "int64":
      return int64(v);
  }
}

/** meta/v1 Time: seconds (1) and nanos (2) since the epoch, rendered as RFC 3339 seconds like Kubernetes. */
function time(v: WireValue): string | undefined {
  const f = readMessage(bytes(v));
  const secs = f.get(1)?.at(-1);
  const seconds = secs ? int64(secs) : 0;
  if (seconds === 0) return undefined;
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function isEmpty(v: unknown): boolean {
  return v === undefined || v === "" || v === 0 || v === false;
}

export function decodeMessage(buf: Uint8Array, spec: MessageSpec): Record<string, unknown> {
  const fields = readMessage(buf);
  const out: Record<string, unknown> = {};
  for (const [num, values] of fields) {
    const f = spec[num];
    if (!f) continue; // unknown fields are skipped, as proto2 does
    switch (f.type) {
      case "map": {
        const m: Record<string, unknown> = {};
        for (const entry of values) {
          const e = readMessage(bytes(entry));
          const k = e.get(1)?.at(-1);
          const val = e.get(2)?.at(-1);
          const key = k ? str(k) : "";
          m[key] =
            f.value === "string"
              ? val
                ? str(val)
                : ""
              : Buffer.from(val ? bytes(val) : new Uint8Array()).toString("base64");
        }
        out[f.name] = m;
        break;
      }
      case "time": {
        const t = time(values.at(-1)!);
        if (t) out[f.name] = t;
        break;
      }
      case "intOrString": {
        // k8s.io/apimachinery/pkg/util/intstr: type 1 (0 = Int, 1 = String), intVal 2, strVal 3.
        const m = readMessage(bytes(values.at(-1)!));
        const t = m.get(1)?.at(-1);
        if (t && int64(t) === 1) out[f.name] = m.get(3) ? str(m.get(3)!.at(-1)!) : "";
        else out[f.name] = m.get(2) ? int32(m.get(2)!.at(-1)!) : 0;
        break;
      }
      case "message": {
        if (f.repeated) out[f.name] = values.map((v) => decodeMessage(bytes(v), f.message));
        else out[f.name] = decodeMessage(bytes(values.at(-1)!), f.message);
        break;
      }
      default: {
        if (f.repeated) {
          const list: unknown[] = [];
          for (const v of values) {
            // Packed repeated scalars arrive as one length-delimited field.
            if (v.wire === 2 && f.type !== "string" && f.type !== "bytes") {
              for (const [, inner] of readPacked(v.value)) list.push(scalar(f.type, inner));
            } else list.push(scalar(f.type, v));
          }
          out[f.name] = list;
        } else {
          const v = scalar(f.type, values.at(-1)!);
          // proto2 optional scalars: kubectl sends zero values explicitly; the JSON form omits them (omitempty),
          // except for pointer fields that the spec marks by keeping false (handled by the caller's spec names).
          if (!isEmpty(v) || keepZero.has(f.name)) out[f.name] = v;
        }
      }
    }
  }
  return out;
}

function* readPacked(buf: Uint8Array): Generator<[number, WireValue]> {
  let pos = 0;
  while (pos < buf.length) {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++];
      if (b === undefined) throw new WireError("unexpected end of packed varints");
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
    }
    yield [0, { wire: 0, value: result }];
  }
}

/** Pointer-typed booleans in the Go types: an explicit false is meaningful and kept. */
const keepZero = new Set([
  "immutable",
  "automountServiceAccountToken",
  "controller",
  "allocateLoadBalancerNodePorts",
  "blockOwnerDeletion",
  "allowed",
  "denied",
  "gracePeriodSeconds",
  "orphanDependents",
]);

// ---- k8s.io/apimachinery/pkg/apis/meta/v1 ----

const OwnerReference: MessageSpec = {
  1: { name: "kind", type: "string" },
  3: { name: "name", type: "string" },
  4: { name: "uid", type: "string" },
  5: { name: "apiVersion", type: "string" },
  6: { name: "controller", type: "bool" },
  7: { name: "blockOwnerDeletion", type: "bool" },
};

const FieldsV1: MessageSpec = { 1: { name: "Raw", type: "bytes" } };

const ManagedFieldsEntry: MessageSpec = {
  1: { name: "manager", type: "string" },
  2: { name: "operation", type: "string" },
  3: { name: "apiVersion", type: "string" },
  4: { name: "time", type: "time" },
  6: { name: "fieldsType", type: "string" },
  7: { name: "fieldsV1", type: "message", message: FieldsV1 },
  8: { name: "subresource", type: "string" },
};

export const ObjectMeta: MessageSpec = {
  1: { name: "name", type: "string" },
  2: { name: "generateName", type: "string" },
  3: { name: "namespace", type: "string" },
  4: { name: "selfLink", type: "string" },
  5: { name: "uid", type: "string" },
  6: { name: "resourceVersion", type: "string" },
  7: { name: "generation", type: "int64" },
  8: { name: "creationTimestamp", type: "time" },
  9: { name: "deletionTimestamp", type: "time" },
  10: { name: "deletionGracePeriodSeconds", type: "int64" },
  11: { name: "labels", type: "map", value: "string" },
  12: { name: "annotations", type: "map", value: "string" },
  13: { name: "ownerReferences", type: "message", message: OwnerReference, repeated: true },
  14: { name: "finalizers", type: "string", repeated: true },
  17: { name: "managedFields", type: "message", message: ManagedFieldsEntry, repeated: true },
};

const Preconditions: MessageSpec = {
  1: { name: "uid", type: "string" },
  2: { name: "resourceVersion", type: "string" },
};

const DeleteOptions: MessageSpec = {
  1: { name: "gracePeriodSeconds", type: "int64" },
  2: { name: "preconditions", type: "message", message: Preconditions },
  3: { name: "orphanDependents", type: "bool" },
  4: { name: "propagationPolicy", type: "string" },
  5: { name: "dryRun", type: "string", repeated: true },
  6: { name: "ignoreStoreReadErrorWithClusterBreakingPotential", type: "bool" },
};

// ---- k8s.io/api/core/v1 ----

const ObjectReference: MessageSpec = {
  1: { name: "kind", type: "string" },
  2: { name: "namespace", type: "string" },
  3: { name: "name", type: "string" },
  4: { name: "uid", type: "string" },
  5: { name: "apiVersion", type: "string" },
  6: { name: "resourceVersion", type: "string" },
  7: { name: "fieldPath", type: "string" },
};

const LocalObjectReference: MessageSpec = { 1: { name: "name", type: "string" } };

const NamespaceCondition: MessageSpec = {
  1: { name: "type", type: "string" },
  2: { name: "status", type: "string" },
  4: { name: "lastTransitionTime", type: "time" },
  5: { name: "reason", type: "string" },
  6: { name: "message", type: "string" },
};

const meta = { name: "metadata", type: "message", message: ObjectMeta } as const;

export const Namespace: MessageSpec = {
  1: meta,
  2: { name: "spec", type: "message", message: { 1: { name: "finalizers", type: "string", repeated: true } } },
  3: {
    name: "status",
    type: "message",
    message: {
      1: { name: "phase", type: "string" },
      2: { name: "conditions", type: "message", message: NamespaceCondition, repeated: true },
    },
  },
};

export const ConfigMap: MessageSpec = {
  1: meta,
  2: { name: "data", type: "map", value: "string" },
  3: { name: "binaryData", type: "map", value: "bytes" },
  4: { name: "immutable", type: "bool" },
};

export const Secret: MessageSpec = {
  1: meta,
  2: { name: "data", type: "map", value: "bytes" },
  3: { name: "type", type: "string" },
  4: { name: "stringData", type: "map", value: "string" },
  5: { name: "immutable", type: "bool" },
};

export const ServiceAccount: MessageSpec = {
  1: meta,
  2: { name: "secrets", type: "message", message: ObjectReference, repeated: true },
  3: { name: "imagePullSecrets", type: "message", message: LocalObjectReference, repeated: true },
  4: { name: "automountServiceAccountToken", type: "bool" },
};

const ServicePort: MessageSpec = {
  1: { name: "name", type: "string" },
  2: { name: "protocol", type: "string" },
  3: { name: "port", type: "int32" },
  4: { name: "targetPort", type: "intOrString" },
  5: { name: "nodePort", type: "int32" },
  6: { name: "appProtocol", type: "string" },
};

export const Service: MessageSpec = {
  1: meta,
  2: {
    name: "spec",
    type: "message",
    message: {
      1: { name: "ports", type: "message", message: ServicePort, repeated: true },
      2: { name: "selector", type: "map", value: "string" },
      3: { name: "clusterIP", type: "string" },
      4: { name: "type", type: "string" },
      5: { name: "externalIPs", type: "string", repeated: true },
      7: { name: "sessionAffinity", type: "string" },
      8: { name: "loadBalancerIP", type: "string" },
      9: { name: "loadBalancerSourceRanges", type: "string", repeated: true },
      10: { name: "externalName", type: "string" },
      11: { name: "externalTrafficPolicy", type: "string" },
      12: { name: "healthCheckNodePort", type: "int32" },
      13: { name: "publishNotReadyAddresses", type: "bool" },
      17: { name: "ipFamilyPolicy", type: "string" },
      18: { name: "clusterIPs", type: "string", repeated: true },
      19: { name: "ipFamilies", type: "string", repeated: true },
      20: { name: "allocateLoadBalancerNodePorts", type: "bool" },
      21: { name: "loadBalancerClass", type: "string" },
      22: { name: "internalTrafficPolicy", type: "string" },
    },
  },
  3: { name: "status", type: "message", message: { 1: { name: "loadBalancer", type: "message", message: {} } } },
};

// ---- k8s.io/api/authorization/v1 ----

const LabelSelectorRequirement: MessageSpec = {
  1: { name: "key", type: "string" },
  2: { name: "operator", type: "string" },
  3: { name: "values", type: "string", repeated: true },
};

const SelectorAttributes = (requirement: MessageSpec): MessageSpec => ({
  1: { name: "rawSelector", type: "string" },
  2: { name: "requirements", type: "message", message: requirement, repeated: true },
});

const ResourceAttributes: MessageSpec = {
  1: { name: "namespace", type: "string" },
  2: { name: "verb", type: "string" },
  3: { name: "group", type: "string" },
  4: { name: "version", type: "string" },
  5: { name: "resource", type: "string" },
  6: { name: "subresource", type: "string" },
  7: { name: "name", type: "string" },
  8: { name: "fieldSelector", type: "message", message: SelectorAttributes(LabelSelectorRequirement) },
  9: { name: "labelSelector", type: "message", message: SelectorAttributes(LabelSelectorRequirement) },
};

const NonResourceAttributes: MessageSpec = {
  1: { name: "path", type: "string" },
  2: { name: "verb", type: "string" },
};

export const SelfSubjectAccessReview: MessageSpec = {
  1: meta,
  2: {
    name: "spec",
    type: "message",
    message: {
      1: { name: "resourceAttributes", type: "message", message: ResourceAttributes },
      2: { name: "nonResourceAttributes", type: "message", message: NonResourceAttributes },
    },
  },
  3: {
    name: "status",
    type: "message",
    message: {
      1: { name: "allowed", type: "bool" },
      4: { name: "denied", type: "bool" },
      2: { name: "reason", type: "string" },
      3: { name: "evaluationError", type: "string" },
    },
  },
};

// ---- k8s.io/api/policy/v1 (v1beta1 has the same fields) ----

/** kubectl drain POSTs it to pods/NAME/eviction. */
export const Eviction: MessageSpec = {
  1: meta,
  2: { name: "deleteOptions", type: "message", message: DeleteOptions },
};

/** The kinds whose protobuf bodies are decoded, by `apiVersion/kind`. */
export const protobufMessages: Readonly<Record<string, MessageSpec>> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Service": Service,
  "authorization.k8s.io/v1/SelfSubjectAccessReview": SelfSubjectAccessReview,
  "policy/v1/Eviction": Eviction,
  "policy/v1beta1/Eviction": Eviction,
};
