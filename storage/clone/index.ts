// Clone (DataVolume source.pvc), the data path: same node by sparse copy, other node by a stream from the
// clone-source pod. Worker-process code: no API access, only the paths and addresses its job names.

export * from "./copy.js";
export {
  CLONE_SOURCE_READY,
  type CloneSourceJob,
  cloneSourceReadyPath,
  readCloneSourceJob,
} from "./source-main.js";
export * from "./sparse.js";
export * from "./stream.js";
