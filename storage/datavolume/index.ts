// The DataVolume controller (CDI's, cut to tsvirt's sources): the DV's claim, its worker pods and its status.

export {
  answers,
  CloneAnnotations,
  type CloneRequest,
  type CloneResult,
  cloneRequestOf,
  cloneResultOf,
  formatCloneAnnotation,
} from "./clone.js";
export * from "./controller.js";
export * from "./plan.js";
export * from "./pods.js";
