// Live migration, node side: the target prepares and takes the VMI over, the source drives libvirt's migration.
export {
  MIGRATION_DOMAIN_XML_ANNOTATION,
  MIGRATION_JOB_UID_LABEL,
  MIGRATION_TARGET_NODE_LABEL,
  planSource,
  planTarget,
  roleOf,
} from "./plan.js";
export { MigrationSync, type MigrationSyncOptions } from "./sync.js";
