// virt-launcher: one per VMI. Public surface for the node agent (client, protocol schemas, pod spawning) and for
// cmd/launcher.ts (runLauncher).
export { LauncherClient, launcherError } from "./client.js";
export { ConsoleProxy } from "./console.js";
export * from "./hypervisor/index.js";
export { runLauncher, useKvm } from "./launcher.js";
export { MIGRATION_PORT_RANGE } from "./migration.js";
export {
  childPids,
  commandSocketPath,
  commandSocketsDir,
  DEFAULT_NODE_DIR,
  descendants,
  EXIT_LOCKED,
  type PodOptions,
  type PodPaths,
  parseTerminationLog,
  podCommand,
  podPaths,
  readTerminationLog,
  type SpawnedPod,
  spawnLauncherPod,
  terminatePod,
  validUid,
} from "./pod.js";
export * from "./protocol.js";
export { acpiEnabled, type DomainBuilder, domainName, LauncherCore, serveCommands } from "./server.js";
export { planShutdown, type ShutdownInput, type ShutdownStep } from "./shutdown.js";
