export {
  type Decision,
  decide,
  type ElectorHooks,
  LEADER_DEFAULTS,
  type LeaderConfig,
  LeaderElector,
  loadIdentity,
  microTime,
  type Observation,
} from "./election.js";
