export {
  decideLauncherEviction,
  type EvictionAdmissionOptions,
  type LauncherEvictionDecision,
  launcherVmiName,
  podEvictionPlugin,
} from "./eviction.js";
export { INERT_KINDS, type InertKind, inertKindsPlugin, inertWarning } from "./inert.js";
export { decodePatch, encodePatch, type PatchOp } from "./json-patch.js";
export {
  admissionPlugins,
  defaultVmiSpec,
  type KubevirtAdmissionOptions,
  MIGRATION_VMI_LABEL,
  validateVmiSpec,
  validateVmSpec,
} from "./kubevirt.js";
export { type AdmissionResult, type RunAdmissionOptions, runAdmission } from "./run.js";
export type * from "./types.js";
