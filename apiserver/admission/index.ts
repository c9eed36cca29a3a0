export { decodePatch, encodePatch, type PatchOp } from "./json-patch.js";
export {
  admissionPlugins,
  defaultVmiSpec,
  type KubevirtAdmissionOptions,
  MIGRATION_FINALIZER,
  MIGRATION_VMI_LABEL,
  validateVmiSpec,
  validateVmSpec,
} from "./kubevirt.js";
export { type AdmissionResult, type RunAdmissionOptions, runAdmission } from "./run.js";
export type * from "./types.js";
