// PersistentVolumeClaim updates as kube-apiserver rules them: ValidatePersistentVolumeClaimUpdate (422) and then the
// PersistentVolumeClaimResize admission plugin (403), in that order, as the generic registry runs them.

import { type UnstructuredObject as KObj, parseQuantity, StorageAnnotations } from "../../api/index.js";
import { forbidden, invalid } from "../../lib/errors.js";
import { clone as deepClone, deepEqual, type Rec, rec } from "../../lib/json.js";
import type { Strategy, StrategyContext } from "./types.js";

const CLASSES = "storage.k8s.io/storageclasses";

function requestedStorage(o: KObj): number | undefined {
  const q = rec(rec(rec(o.spec).resources).requests).storage;
  return typeof q === "string" || typeof q === "number" ? parseQuantity(q) : undefined;
}

/** The claim's class name; unset means the default class (kube's DefaultStorageClass admission would have set it). */
function className(o: KObj, ctx: StrategyContext): string {
  const name = rec(o.spec).storageClassName;
  if (typeof name === "string") return name;
  for (const c of ctx.store.list(CLASSES) as KObj[]) {
    if (c.metadata.annotations?.[StorageAnnotations.isDefaultClass] === "true") return c.metadata.name ?? "";
  }
  return "";
}

export const pvcStrategy: Strategy = {
  validateUpdate(cur, next, sub, ctx) {
    if (sub) return;
    const name = cur.metadata.name ?? "";
    const bound = rec(cur.status).phase === "Bound";
    const strip = (o: KObj, other: KObj): Rec => {
      const spec = deepClone(rec(o.spec));
      // The binder sets volumeName once; a bound claim may change its requests.
      if (!rec(cur.spec).volumeName) spec.volumeName = rec(other.spec).volumeName;
      if (bound) {
        const res = { ...rec(spec.resources) };
        delete res.requests;
        spec.resources = res;
      }
      return spec;
    };
    if (!deepEqual(strip(cur, next), strip(next, next))) {
      throw invalid({ group: "", kind: "PersistentVolumeClaim" }, name, [
        {
          type: "FieldValueForbidden",
          field: "spec",
          message:
            "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        },
      ]);
    }
    const before = requestedStorage(cur) ?? 0;
    const after = requestedStorage(next) ?? 0;
    if (after < before) {
      throw invalid({ group: "", kind: "PersistentVolumeClaim" }, name, [
        {
          type: "FieldValueForbidden",
          field: "spec.resources.requests.storage",
          message: "Forbidden: field can not be less than previous value",
        },
      ]);
    }
    if (after === before || !ctx) return;
    // PersistentVolumeClaimResize: growing only where the claim's class explicitly allows it.
    const cls = className(next, ctx);
    const sc = cls && cls === className(cur, ctx) ? (ctx.store.get(CLASSES, "", cls) as KObj | undefined) : undefined;
    if (sc?.allowVolumeExpansion !== true) {
      throw forbidden(
        `persistentvolumeclaims "${name}" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize`,
      );
    }
  },
};
