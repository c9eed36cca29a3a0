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
}
