// The node-side library of the tsvirt-local provisioner (the node agent calls it; storage/'s controller never does).
export * from "./paths.js";
export * from "./testing.js";
export * from "./volumes.js";
