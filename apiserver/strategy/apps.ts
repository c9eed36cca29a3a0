// apps/v1 ControllerRevision: an immutable snapshot of state (kube-apiserver's controllerrevision strategy: data
// and revision may not change once written).
import { invalid } from "../../lib/errors.js";
import { deepEqual } from "../../lib/json.js";
import type { Strategy } from "./types.js";

export const controllerRevisionStrategy: Strategy = {
  validateUpdate(cur, next) {
    for (const f of ["data", "revision"] as const) {
      if (deepEqual(cur[f], next[f])) continue;
      throw invalid({ group: "apps", kind: "ControllerRevision" }, cur.metadata.name ?? "", [
        { type: "FieldValueInvalid", field: f, message: "Invalid value: field is immutable" },
      ]);
    }
  },
};
