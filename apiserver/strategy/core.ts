// Strategies of the core/v1 kinds with rules of their own: namespaces, pods, events, configmaps and secrets.

import { type UnstructuredObject as KObj, nowRfc3339 } from "../../api/index.js";
import { forbidden, invalid } from "../../lib/errors.js";
import { clone as deepClone, deepEqual, field, isObject as isPlainObject, type Rec, rec } from "../../lib/json.js";
import type { Strategy } from "./types.js";

/** The namespaces that exist from the first start. */
export const SYSTEM_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease", "kubevirt"];
const UNDELETABLE_NAMESPACES = new Set(["default", "kube-system", "kube-public"]);

export const namespaceStrategy: Strategy = {
  nameIsLabel: true,
  prepareForCreate(o) {
    o.spec = { ...rec(o.spec), finalizers: ["kubernetes"] };
    o.status = { phase: "Active" };
  },
  checkDelete(cur) {
    const name = cur.metadata.name ?? "";
    if (UNDELETABLE_NAMESPACES.has(name))
      throw forbidden(`namespaces "${name}" is forbidden: this namespace may not be deleted`);
  },
  // Terminating first; the namespace controller empties it and then removes it
  prepareForDelete(cur, next) {
    if (cur.metadata.deletionTimestamp) return "keep";
    next.metadata.deletionTimestamp = nowRfc3339();
    next.metadata.deletionGracePeriodSeconds = 0;
    next.status = { ...rec(next.status), phase: "Terminating" };
    return "update";
  },
  keepsFinalizedObject: true,
  noDeleteCollection: true,
};

function podTerminating(o: KObj): boolean {
  return o.metadata.deletionGracePeriodSeconds !== undefined && o.metadata.deletionGracePeriodSeconds > 0;
}

export const podStrategy: Strategy = {
  prepareForCreate(o) {
    const st = rec(o.status);
    if (!st.phase) o.status = { ...st, phase: "Pending" };
  },
  validateUpdate(cur, next, sub) {
    if (sub) return;
    const strip = (s: unknown): Rec => {
      const spec = deepClone(rec(s));
      delete spec.activeDeadlineSeconds;
      delete spec.tolerations;
      for (const k of ["containers", "initContainers"]) {
        const cs = spec[k];
        if (Array.isArray(cs)) for (const c of cs) if (isPlainObject(c)) delete c.image;
      }
      return spec;
    };
    if (deepEqual(strip(cur.spec), strip(next.spec))) return;
    const nodeChanged = field(cur, "spec.nodeName") !== field(next, "spec.nodeName");
    throw invalid({ group: "", kind: "Pod" }, cur.metadata.name ?? "", [
      {
        type: "FieldValueForbidden",
        field: nodeChanged ? "spec.nodeName" : "spec",
        message: nodeChanged
          ? "Forbidden: spec.nodeName is set through the pods/binding subresource only"
          : "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations)",
      },
    ]);
  },
  // pods bound to a node and not terminal: graceful deletion, finished by the node agent with grace 0
  prepareForDelete(cur, next, o) {
    const phase = field(cur, "status.phase");
    const bound = !!field(cur, "spec.nodeName");
    const terminal = phase === "Succeeded" || phase === "Failed";
    const specGrace = field(cur, "spec.terminationGracePeriodSeconds");
    const grace = o.gracePeriodSeconds ?? (typeof specGrace === "number" ? specGrace : 30);
    const md = next.metadata;
    if (bound && !terminal && grace > 0) {
      const prevGrace = cur.metadata.deletionGracePeriodSeconds;
      if (prevGrace !== undefined && prevGrace <= grace) return "keep";
      md.deletionTimestamp = nowRfc3339(Date.now() + grace * 1000);
      md.deletionGracePeriodSeconds = grace;
      return "update";
    }
    if (grace === 0 && md.deletionGracePeriodSeconds !== undefined) md.deletionGracePeriodSeconds = 0;
    return undefined;
  },
  terminating: podTerminating,
};

export const eventStrategy: Strategy = {
  // kube-apiserver keeps events for one hour (--event-ttl); our sweeper reads this timestamp
  prepareForCreate(o) {
    if (!o.lastTimestamp && !o.eventTime) o.lastTimestamp = o.metadata.creationTimestamp;
  },
};

/** ConfigMaps and Secrets: `immutable: true` freezes data, binaryData and the flag itself. */
export const immutableDataStrategy: Strategy = {
  validateUpdate(cur, next, sub) {
    if (sub || cur.immutable !== true) return;
    if (deepEqual(cur.data, next.data) && deepEqual(cur.binaryData, next.binaryData) && next.immutable === true) return;
    throw invalid({ group: "", kind: String(cur.kind ?? "") }, cur.metadata.name ?? "", [
      { type: "FieldValueForbidden", field: "data", message: "Forbidden: field is immutable when `immutable` is set" },
    ]);
  },
};
