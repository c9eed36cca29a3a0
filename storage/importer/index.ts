// storage/importer: the `tsvirt importer` process (a DataVolume's data mover, no API access) and what the node
// agent and the other data movers share with it: the job file, the outcome line, the egress tunnel, the sink.
export * from "./egress.js";
export * from "./job.js";
export * from "./outcome.js";
export * from "./sink.js";
export { cleanTarget, openTarget } from "./target.js";
