// virt-handler, the node agent: pod runner (embedded mode), pod network, VMI sync (owns the launcher clients, at
// <data dir>/sockets/<vmi uid>_sock), node registration, and the endpoint the API server proxies pods/log and
// console to.
export {
  launcherCommand,
  launcherDialer,
  migrationDialer,
  probeLauncher,
  terminatePodProcess,
} from "./adapters.js";
export {
  type CacheLike,
  type HandlerOptions,
  NODE_NAME_LABEL,
  type RunningHandler,
  runHandler,
  selectorsFor,
} from "./agent.js";
export { classifyPod, computePodStatus, UNPAUSED_GATE } from "./launcher-pod.js";
export {
  MIGRATION_DOMAIN_XML_ANNOTATION,
  MIGRATION_JOB_UID_LABEL,
  MIGRATION_TARGET_NODE_LABEL,
} from "./migration/index.js";
export * as network from "./network/index.js";
export { HEARTBEAT_ANNOTATION, nodeStorageBytes, SCHEDULABLE_LABEL } from "./node-status.js";
export { isPaused, vmiPhaseFor as mapPhase } from "./phase.js";
export { launcherShape, type PodShape, podShapes } from "./pod-shapes.js";
export type {
  ApiClient,
  EventRecorder,
  ImagePuller,
  LauncherConnection,
  LauncherDialer,
  PreparedVmi,
} from "./ports.js";
export { killNetns, pidsInNetns, podDirOf, readPodRecord } from "./processes.js";
export { REGISTRIES_CONFIGMAP, RegistriesSource, registriesFrom } from "./registries.js";
export { computeVmiStatus } from "./vmi-status.js";
export { type PhaseMapper, SYNC_FAILED } from "./vmi-sync.js";
export { VolumeSync } from "./volumes.js";
