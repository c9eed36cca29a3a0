// The storage component: volume binding (PV binder), the tsvirt-local node-local provisioner's control-plane half,
// the scheduler's volume-binding checks, and (storage/node) the node-side volume library the agent calls.
export * from "./controller.js";
export * from "./plan.js";
