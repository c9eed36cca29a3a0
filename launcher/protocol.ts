// The launcher's command API: newline-delimited JSON over <node dir>/sockets/<vmi uid>_sock (pod.ts commandSocketPath).
// Request {"id":1,"method":"Sync","params":{…}} → {"id":1,"result":…} | {"id":1,"error":{"reason","message"}}.
// Watch answers with a stream of {"id":N,"event":…} lines, the first being the current domain state.
// The node agent builds its client (LauncherClient, client.ts) from these schemas.
import { type Static, Type } from "@sinclair/typebox";

export const PROTOCOL_VERSION = 1;

export const LifeCycleSchema = Type.Union([
  Type.Literal("NoState"),
  Type.Literal("Running"),
  Type.Literal("Blocked"),
  Type.Literal("Paused"),
  Type.Literal("ShuttingDown"),
  Type.Literal("Shutoff"),
  Type.Literal("Crashed"),
  Type.Literal("PMSuspended"),
]);

/** libvirt's domain state and reason, named as KubeVirt names them (e.g. Shutoff/Crashed, Paused/User). */
export const DomainStatusSchema = Type.Object({ state: LifeCycleSchema, reason: Type.String() });
export type DomainStatusMsg = Static<typeof DomainStatusSchema>;

/** What the launcher knows about its domain. `status` is absent while no domain is defined. */
export const DomainInfoSchema = Type.Object({
  name: Type.String(),
  uid: Type.String(),
  status: Type.Optional(DomainStatusSchema),
  /** Whether the domain has ACPI (KubeVirt: a Destroyed domain with ACPI failed to shut down in its grace period). */
  acpi: Type.Boolean(),
  /** The last event libvirt pushed ("Started", "Stopped", ...). */
  lastEvent: Type.Optional(Type.String()),
});
export type DomainInfo = Static<typeof DomainInfoSchema>;

/** What the node prepared for this VMI, by volume / interface name. */
export const NodePreparedSchema = Type.Object({
  /** containerDisk volume name → read-only base image on the node (the launcher puts a qcow2 overlay over it). */
  baseImages: Type.Optional(Type.Record(Type.String(), Type.String())),
  /** kernelBoot: the kernel, initrd the node extracted from the kernelBoot container. */
  kernelBoot: Type.Optional(Type.Object({ kernel: Type.String(), initrd: Type.Optional(Type.String()) })),
  /** PVC / dataVolume / hostDisk volume name → file or block device path. */
  volumePaths: Type.Optional(Type.Record(Type.String(), Type.String())),
  /**
   * configMap / secret / serviceAccount / downwardAPI / sysprep volume name → its files (relative path → base64
   * content), read by the node through the API; the launcher writes them into an ISO (KubeVirt's config disks).
   */
  volumeFiles: Type.Optional(Type.Record(Type.String(), Type.Record(Type.String(), Type.String()))),
  /** cloud-init volume name → user/network data from the Secrets its secretRef / networkDataSecretRef name. */
  cloudInitSecrets: Type.Optional(
    Type.Record(
      Type.String(),
      Type.Object({ userData: Type.Optional(Type.String()), networkData: Type.Optional(Type.String()) }),
    ),
  ),
  /** Names of volumes whose path is a block device. */
  blockVolumes: Type.Optional(Type.Array(Type.String())),
  /** interface name → tap device the node created in the pod's network namespace. */
  taps: Type.Optional(Type.Record(Type.String(), Type.String())),
});
export type NodePrepared = Static<typeof NodePreparedSchema>;

export const SyncParamsSchema = Type.Object({
  /** The whole VirtualMachineInstance (kubevirt.io/v1), as the node agent read it. */
  vmi: Type.Record(Type.String(), Type.Unknown()),
  prepared: Type.Optional(NodePreparedSchema),
});
export type SyncParams = Static<typeof SyncParamsSchema>;

export const ShutdownParamsSchema = Type.Object({
  /** Default: the VMI's terminationGracePeriodSeconds (KubeVirt's default 30). */
  gracePeriodSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
});

/** Disks whose volume grew (an expanded claim): each source path (file or block device) and the volume's size. */
export const ResizeDisksParamsSchema = Type.Object({
  disks: Type.Array(Type.Object({ path: Type.String({ minLength: 1 }), bytes: Type.Integer({ minimum: 0 }) }), {
    maxItems: 256,
  }),
});
export type ResizeDisksParams = Static<typeof ResizeDisksParamsSchema>;

export const ResizeDisksResultSchema = Type.Object({
  /** The disks the running guest saw grow (virDomainBlockResize), from → to bytes. */
  resized: Type.Array(Type.Object({ path: Type.String(), fromBytes: Type.Number(), toBytes: Type.Number() })),
});

export const DomainStatsSchema = Type.Object({
  state: LifeCycleSchema,
  maxMemoryKiB: Type.Number(),
  memoryKiB: Type.Number(),
  vcpus: Type.Number(),
  cpuTimeNs: Type.Number(),
});

export const PingResultSchema = Type.Object({ version: Type.Integer(), uid: Type.String(), pid: Type.Integer() });

export const GetDomainResultSchema = Type.Object({
  domain: DomainInfoSchema,
  xml: Type.Optional(Type.String()),
});

/** A Watch event: the domain's current info (null when there is none yet). */
export const WatchEventSchema = Type.Object({
  type: Type.Literal("Domain"),
  domain: DomainInfoSchema,
});
export type WatchEvent = Static<typeof WatchEventSchema>;

// Live migration (issue 12; /work/brief/MIGRATION-CONTRACT.md §3-§4). The target launcher prepares and listens,
// the source launcher drives libvirt's peer-to-peer migration to it and follows the job.

export const PrepareMigrationTargetParamsSchema = Type.Object({
  /** The whole VirtualMachineInstance, as for Sync. */
  vmi: Type.Record(Type.String(), Type.Unknown()),
  /** What the TARGET node prepared (its base images, volume paths, taps). */
  prepared: NodePreparedSchema,
  /** The source pod's IP: the only peer the target's listeners accept (unset: any peer in the pod netns). */
  sourceNodeAddress: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
});
export type PrepareMigrationTargetParams = Static<typeof PrepareMigrationTargetParamsSchema>;

export const MigrationPortsSchema = Type.Object({
  /** libvirt's connection (the source daemon's peer-to-peer control connection). */
  libvirt: Type.Integer({ minimum: 1, maximum: 65535 }),
  /** QEMU's incoming migration stream. */
  qemu: Type.Integer({ minimum: 1, maximum: 65535 }),
  /** The NBD server that receives block-migrated disks. */
  nbd: Type.Integer({ minimum: 1, maximum: 65535 }),
});
export type MigrationPorts = Static<typeof MigrationPortsSchema>;

export const PrepareMigrationTargetResultSchema = Type.Object({
  /** The pod IP the target listens on. */
  address: Type.String(),
  ports: MigrationPortsSchema,
  /** The domain XML with the TARGET's paths: the source migrates with it (destination XML). */
  domainXml: Type.String(),
});
export type PrepareMigrationTargetResult = Static<typeof PrepareMigrationTargetResultSchema>;

export const MigrateStartParamsSchema = Type.Object({
  /** The target's libvirt, e.g. "qemu+tcp://10.244.1.5:49152/system". */
  destinationUri: Type.String({ pattern: "^qemu\\+tcp://[^/?#]+/system$", maxLength: 256 }),
  /** QEMU's migration stream, e.g. "tcp://10.244.1.5:49153". */
  migrateUri: Type.String({ pattern: "^tcp://[^/?#]+$", maxLength: 256 }),
  /** The NBD server for block migration, e.g. "tcp://10.244.1.5:49154". */
  disksUri: Type.Optional(Type.String({ pattern: "^tcp://[^/?#]+$", maxLength: 256 })),
  /** The destination domain XML (PrepareMigrationTarget's domainXml). */
  domainXml: Type.String({ minLength: 1 }),
  /** Disk targets (vda, …) whose content is copied (node-local disks: BlockMigration); empty: all shared. */
  copyStorage: Type.Array(Type.String({ pattern: "^[a-z]{1,8}$" }), { maxItems: 256 }),
  /** Bandwidth cap, MiB/s (0 or unset: unlimited). */
  bandwidthMiBps: Type.Optional(Type.Integer({ minimum: 0 })),
  autoConverge: Type.Optional(Type.Boolean()),
  /** Enables post-copy; the follower switches to it when the completion budget runs out (KubeVirt's monitor). */
  postCopy: Type.Optional(Type.Boolean()),
  /**
   * KubeVirt's allowWorkloadDisruption (unset: as postCopy): past the completion budget the job is switched to
   * post-copy (postCopy) or the guest is paused until it completes; false: the job is aborted at the budget.
   */
  allowWorkloadDisruption: Type.Optional(Type.Boolean()),
  maxDowntimeMs: Type.Optional(Type.Integer({ minimum: 1 })),
  /** multifd channels (VIR_MIGRATE_PARALLEL); unset or 0: one stream. */
  parallelConnections: Type.Optional(Type.Integer({ minimum: 0, maximum: 255 })),
  /** Seconds per GiB of guest memory + copied disks before the job is aborted (KubeVirt: 150). */
  completionTimeoutPerGiB: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Seconds without progress (remaining data not shrinking) before the job is aborted (KubeVirt: 150). */
  progressTimeout: Type.Optional(Type.Integer({ minimum: 1 })),
  /** The VMIM's uid (not in the contract, optional): a uid runs at most once per launcher (KubeVirt's rule). */
  migrationUid: Type.Optional(Type.String({ maxLength: 64 })),
});
export type MigrateStartParams = Static<typeof MigrateStartParamsSchema>;

export const MigrationJobStateSchema = Type.Union([
  Type.Literal("none"),
  Type.Literal("running"),
  Type.Literal("completed"),
  Type.Literal("failed"),
  Type.Literal("cancelled"),
]);
export type MigrationJobState = Static<typeof MigrationJobStateSchema>;

export const MigrateStatusResultSchema = Type.Object({
  state: MigrationJobStateSchema,
  /** Bytes, as libvirt's job stats report them (memory + disks). */
  dataTotal: Type.Optional(Type.Number()),
  dataRemaining: Type.Optional(Type.Number()),
  dataProcessed: Type.Optional(Type.Number()),
  /** The guest's pause at the switch-over, as QEMU measured it. */
  downtimeMs: Type.Optional(Type.Number()),
  elapsedMs: Type.Optional(Type.Number()),
  /** Why it failed or was cancelled (e.g. the timeout that fired). */
  message: Type.Optional(Type.String()),
  migrationUid: Type.Optional(Type.String()),
  /**
   * KubeVirt's migrationState.mode: PostCopy once the follower switched the job to post-copy, Paused once it paused
   * the guest so the job can finish (allowWorkloadDisruption without post-copy).
   */
  mode: Type.Optional(Type.Union([Type.Literal("PreCopy"), Type.Literal("PostCopy"), Type.Literal("Paused")])),
});
export type MigrateStatusResult = Static<typeof MigrateStatusResultSchema>;

export const MigrateAbortResultSchema = Type.Object({ aborted: Type.Boolean() });

export const MethodName = Type.Union([
  Type.Literal("Sync"),
  Type.Literal("Watch"),
  Type.Literal("Ping"),
  Type.Literal("Shutdown"),
  Type.Literal("Kill"),
  Type.Literal("Pause"),
  Type.Literal("Unpause"),
  Type.Literal("Reset"),
  Type.Literal("SoftReboot"),
  Type.Literal("GetDomain"),
  Type.Literal("GetDomainStats"),
  Type.Literal("ResizeDisks"),
  Type.Literal("PrepareMigrationTarget"),
  Type.Literal("MigrateStart"),
  Type.Literal("MigrateStatus"),
  Type.Literal("MigrateAbort"),
]);
export type MethodName = Static<typeof MethodName>;

export const RequestSchema = Type.Object({
  id: Type.Integer(),
  method: MethodName,
  params: Type.Optional(Type.Unknown()),
});
export type Request = Static<typeof RequestSchema>;

export const ErrorBodySchema = Type.Object({ reason: Type.String(), message: Type.String() });

export const ResponseSchema = Type.Union([
  Type.Object({ id: Type.Integer(), result: Type.Unknown() }),
  Type.Object({ id: Type.Integer(), error: ErrorBodySchema }),
  Type.Object({ id: Type.Integer(), event: WatchEventSchema }),
]);
export type Response = Static<typeof ResponseSchema>;

/** Result types per method, for the client. */
export interface MethodResults {
  Sync: DomainInfo;
  Watch: never;
  Ping: Static<typeof PingResultSchema>;
  Shutdown: DomainInfo;
  Kill: DomainInfo;
  Pause: DomainInfo;
  Unpause: DomainInfo;
  Reset: DomainInfo;
  SoftReboot: DomainInfo;
  GetDomain: Static<typeof GetDomainResultSchema>;
  GetDomainStats: Static<typeof DomainStatsSchema>;
  ResizeDisks: Static<typeof ResizeDisksResultSchema>;
  PrepareMigrationTarget: PrepareMigrationTargetResult;
  /** The job's state right after starting it (or the running job's, when called again). */
  MigrateStart: MigrateStatusResult;
  MigrateStatus: MigrateStatusResult;
  MigrateAbort: Static<typeof MigrateAbortResultSchema>;
}
