// Cold migration of stopped VMs (issue 12 item 6): a pure planner and its thin shell.
export { type ColdDeps, coldKeysFor, reconcileColdMigration } from "./controller.js";
export * from "./plan.js";
