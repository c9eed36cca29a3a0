// Pure patch and field-management libraries for the API server: merge patch, JSON patch, strategic merge patch,
// server-side apply and managedFields bookkeeping.
export { FieldSet, pathString } from "./fieldset.js";
export { clone, deepEqual, isObject, type Json, type JsonObject, resourceVersionPrecondition } from "./json.js";
export { applyJsonPatch, type JsonPatchOperation, maxJsonPatchOperations, parsePointer } from "./jsonpatch.js";
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
export { applyMergePatch } from "./merge.js";
export { applyStrategicMergePatch, builtinPatchMeta, type PatchMeta, type PatchMetaLookup } from "./strategic.js";
