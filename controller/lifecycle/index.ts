export {
  dataVolumeError,
  dataVolumeProvisioning,
  dataVolumeStartable,
  describeDataVolume,
} from "./datavolume.js";
export {
  isFinal,
  type LifecyclePatch,
  type LifecyclePlan,
  planRestart,
  planStart,
  planStop,
  runStrategyOf,
  type StartOptions,
  type StopOptions,
} from "./runstrategy.js";
