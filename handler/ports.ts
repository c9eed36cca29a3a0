// What the node agent needs from the rest of the system, as narrow interfaces: the API (a subset of client/'s
// Client, so client/'s RestClient and FakeClient fit), an event recorder, the launcher's socket API, and the image
// puller.
import { type KObject, type ResourceRef, resources, type VirtualMachineInstance } from "../client/index.js";
import type { Credentials, PullPolicy } from "../images/index.js";
import type {
  DomainStatus,
  MigrateStartParams,
  MigrateStatusResult,
  NodePrepared,
  PrepareMigrationTargetParams,
  PrepareMigrationTargetResult,
} from "../launcher/index.js";

/** Objects as the API serves them (metadata always there): client/'s shapes of api/'s types. */
export type {
  DataVolume,
  KObject,
  Lease,
  Node,
  PersistentVolume,
  PersistentVolumeClaim,
  Pod,
  ResourceRef,
  VirtualMachineInstance,
} from "../client/index.js";

/** The resources the node agent reads and writes (client/'s one list). */
export const refs = {
  pods: resources.pods,
  nodes: resources.nodes,
  leases: resources.leases,
  configMaps: resources.configMaps,
  secrets: resources.secrets,
  pvcs: resources.pvcs,
  pvs: resources.pvs,
  datavolumes: resources.datavolumes,
  vmis: resources.vmis,
} as const;

/** The VMI label naming the node that owns it (virt-handler's informer selects by it). */
export const NODE_NAME_LABEL = "kubevirt.io/nodeName";

export interface ApiClient {
  get<T extends KObject>(ref: ResourceRef, namespace: string | undefined, name: string): Promise<T>;
  create<T extends KObject>(ref: ResourceRef, namespace: string | undefined, obj: T): Promise<T>;
  update<T extends KObject>(ref: ResourceRef, obj: T): Promise<T>;
  updateStatus<T extends KObject>(ref: ResourceRef, obj: T): Promise<T>;
  delete(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    opts?: { gracePeriodSeconds?: number; preconditions?: { uid?: string } },
  ): Promise<void>;
}

/** What the node prepared for the VMI, sent with Sync (launcher/protocol.ts NodePrepared). */
export type PreparedVmi = NodePrepared;

export interface LauncherConnection {
  ping(): Promise<void>;
  sync(vmi: VirtualMachineInstance, prepared: PreparedVmi): Promise<void>;
  /** Streams the domain state; the first call carries the current one (undefined: no domain). */
  watch(onStatus: (d: DomainStatus | undefined) => void): { stop(): void; done: Promise<void> };
  shutdown(gracePeriodSeconds: number): Promise<void>;
  /** Running-VM verbs forwarded from virt-api's subresources. */
  command(verb: LauncherVerb): Promise<void>;
  /** Grows the running guest's disks whose volume is larger than the guest sees (online expansion); returns the
   * paths grown. */
  resizeDisks(disks: { path: string; bytes: number }[]): Promise<string[]>;
  close(): void;
}

export type LauncherVerb = "Pause" | "Unpause" | "Reset" | "SoftReboot";

/** Dials a launcher's command socket (launcher/'s commandSocketPath). */
export type LauncherDialer = (socketPath: string) => Promise<LauncherConnection>;

/** A launcher's live-migration calls (launcher/protocol.ts, contract §3), on a connection of their own. */
export interface MigrationLauncher {
  ping(): Promise<void>;
  /** The domain's state now (undefined: the launcher has none). */
  domain(): Promise<DomainStatus | undefined>;
  prepareMigrationTarget(p: PrepareMigrationTargetParams): Promise<PrepareMigrationTargetResult>;
  migrateStart(p: MigrateStartParams): Promise<MigrateStatusResult>;
  migrateStatus(): Promise<MigrateStatusResult>;
  migrateAbort(): Promise<{ aborted: boolean }>;
  close(): void;
}

export type MigrationDialer = (socketPath: string) => Promise<MigrationLauncher>;

/** Records core/v1 Events about an object (controller/'s EventRecorder fits). */
export interface EventRecorder {
  event(obj: KObject, type: "Normal" | "Warning", reason: string, message: string): void;
}

export interface PulledImage {
  /** Path of the base disk image on the node. */
  path: string;
  digest: string;
}

export interface ImagePuller {
  /**
   * Pulls (or finds cached) and pins the image for the VMI, with the volume's pull policy and credentials; rejects
   * with ErrImagePull naming every registry tried.
   */
  pull(
    image: string,
    vmiUid: string,
    opts?: { pullPolicy?: PullPolicy; credentials?: Credentials; signal?: AbortSignal },
  ): Promise<PulledImage>;
  /** Unpins all images pinned for the VMI. */
  release(vmiUid: string): Promise<void>;
  /** Unpins the images of every VMI not in `keep` (after a restart: VMIs deleted meanwhile); returns their uids. */
  releaseExcept?(keep: ReadonlySet<string>): Promise<string[]>;
}
