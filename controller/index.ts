// virt-controller's public surface. Other components (virt-api's subresources) use the lifecycle helpers.
export { type ControllerOptions, VirtController } from "./app.js";
export { getCondition, removeCondition, setCondition, timestamp } from "./conditions.js";
export { isFinishedMigration } from "./evacuation/plan.js";
export { EventRecorder, type EventType, nullRecorder, Reasons, type Recorder } from "./events/index.js";
export { Expectations } from "./expectations.js";
export { type ElectorHooks, LEADER_DEFAULTS, type LeaderConfig, LeaderElector, loadIdentity } from "./leader/index.js";
export * from "./lifecycle/index.js";
export { cidrIndex, nextFree } from "./node/podcidr.js";
export {
  NODE_LIFECYCLE_DEFAULTS,
  type NodeLifecycleConfig,
  NodeLifecycleController,
  planNodeLifecycle,
} from "./nodelifecycle/index.js";
export { bytes, formatBytes, millicores, parseQuantity } from "./quantity.js";
export { claimVmis, computeRsStatus, planReplicaSet, selectorMatches, selectorString } from "./replicaset/plan.js";
export { defaultPredicates, type Predicate, type ScheduleResult, schedule } from "./scheduler/predicates.js";
export {
  computeVmStatus,
  crashLoopDelaySeconds,
  planVm,
  printableStatus,
  setToStart,
  vmiFromTemplate,
} from "./vm/plan.js";
export { planVmi, podIsRunning } from "./vmi/plan.js";
export {
  guestMemory,
  LABEL_CREATED_BY,
  LABEL_NODE_NAME,
  LABEL_SCHEDULABLE,
  launcherResources,
  memoryOverhead,
  READINESS_GATE,
  renderLauncherPod,
  vcpus,
} from "./vmi/pod.js";
