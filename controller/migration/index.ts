// The live migration controller (issue 12): VMIM phases, target pod, handoff, cancel, GC; MigrationPolicy;
// LiveMigratable/migrationMethod.
export { type MigrationDeps, reconcileMigration } from "./controller.js";
export { LIVE_MIGRATABLE, type Migratability, type MigrationMethod, migratability } from "./migratable.js";
export { isCold, isFinal, type MigrationInput, type MigrationPlan, planMigration } from "./plan.js";
export { effectiveMigrationConfiguration, matchPolicy } from "./policy.js";
export { isTargetPodOf, renderTargetPod } from "./target-pod.js";
