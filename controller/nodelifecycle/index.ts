export { NodeLifecycleController, type NodeLifecycleOptions } from "./controller.js";
export {
  lastHeartbeat,
  NODE_LIFECYCLE_DEFAULTS,
  NODE_STATUS_UNKNOWN,
  NODE_UNRESPONSIVE,
  type NodeAction,
  type NodeLifecycleConfig,
  type NodeWorld,
  planNodeLifecycle,
} from "./plan.js";
