// Pure patch and field-management libraries for the API server: merge patch, JSON patch, strategic merge patch,
// server-side apply and managedFields bookkeeping. How the REST layer uses them (as kube-apiserver does):
//
//   PATCH merge / json / strategic (built-in kinds only; custom kinds answer 415):
//     patched = applyMergePatch(cur, body) | applyJsonPatch(cur, body) | applyStrategicMergePatch(cur, body)
//     if (resourceVersionPrecondition(cur, patched)) → 409 Conflict (an RV inside the patch is a precondition)
//     { object, changed } = updateManagedFields({ before: cur, after: patched, manager: fieldManager ?? userAgent })
//     changed === false → answer 200 with the stored object, same resourceVersion, no watch event
//   PATCH apply-patch+yaml (fieldManager required, else 400):
//     { object, changed } = applyServerSide({ live: cur /* undefined → create, 201 */, applied, manager, force })
//   POST / PUT: updateManagedFields({ before: cur /* undefined on create */, after: body, manager })
//   status subresource writes: pass `subresource: "status"` to either function.
// Every function copies; none mutates its inputs. Errors are StatusErrors (400/409/413/422), never plain throws.

export { clone, deepEqual, isObject, type Json, type JsonObject, resourceVersionPrecondition } from "../../lib/json.js";
export { applyJsonPatch, type JsonPatchOperation, maxJsonPatchOperations, parsePointer } from "../../lib/jsonpatch.js";
export { applyMergePatch } from "../../lib/mergepatch.js";
export { FieldSet, pathString } from "./fieldset.js";
export {
  type ApplyOptions,
  applyServerSide,
  defaultListMapKeys,
  fieldsOf,
  isNoop,
  type ListMapKeys,
  lastAppliedAnnotation,
  type ManagedFieldsEntry,
  type ManagedResult,
  type UpdateOptions,
  updateManagedFields,
} from "./managed.js";
export { applyStrategicMergePatch, builtinPatchMeta, type PatchMeta, type PatchMetaLookup } from "./strategic.js";
