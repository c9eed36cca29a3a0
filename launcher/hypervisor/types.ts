// The hypervisor layer's contract (KubeVirt's virtwrap/cli Connection, reduced to what the launcher drives).
// One real implementation speaks libvirt's remote protocol (libvirt.ts); virsh.ts is the execFile baseline; the
// FakeHypervisor (fake.ts) serves unit tests.
import { type StatusError, statusError } from "../../lib/errors.js";

/** libvirt's virDomainState values in libvirt's order (index = the number), named as KubeVirt's api.LifeCycle does. */
export const LIFECYCLES = [
  "NoState",
  "Running",
  "Blocked",
  "Paused",
  "ShuttingDown",
  "Shutoff",
  "Crashed",
  "PMSuspended",
] as const;
export type LifeCycle = (typeof LIFECYCLES)[number];

/** libvirt's state and its reason (KubeVirt's api.StateChangeReason names: "Booted", "User", "Shutdown", ...). */
export interface DomainStatus {
  state: LifeCycle;
  reason: string;
}

export interface DomainStats {
  state: LifeCycle;
  maxMemoryKiB: number;
  memoryKiB: number;
  vcpus: number;
  cpuTimeNs: number;
}

/** A lifecycle event as libvirt pushes it, with the state read right after it. */
export interface DomainEvent {
  domain: string;
  event: string;
  detail: number;
  status: DomainStatus;
}

export type Unsubscribe = () => void;

/** A peer-to-peer live migration as libvirt's virDomainMigrateToURI3 takes it (VIR_MIGRATE_PARAM_* and flags). */
export interface MigrateOptions {
  /** The destination libvirtd, e.g. qemu+tcp://10.244.1.5:49152/system (the source daemon dials it: PEER2PEER). */
  destinationUri: string;
  /** QEMU's stream (VIR_MIGRATE_PARAM_URI), e.g. tcp://10.244.1.5:49153. */
  migrateUri: string;
  /** The destination QEMU/NBD server bind here (VIR_MIGRATE_PARAM_LISTEN_ADDRESS). */
  listenAddress?: string;
  /** The destination's domain XML (VIR_MIGRATE_PARAM_DEST_XML and PERSIST_XML). */
  destinationXml: string;
  /** Disk targets to copy (VIR_MIGRATE_PARAM_MIGRATE_DISKS + VIR_MIGRATE_NON_SHARED_INC); empty: none. */
  copyDisks: readonly string[];
  /** The destination's NBD server, tcp://IP:PORT (VIR_MIGRATE_PARAM_DISKS_URI). */
  disksUri?: string;
  bandwidthMiBps?: number;
  autoConverge?: boolean;
  postCopy?: boolean;
  /** multifd channels (VIR_MIGRATE_PARALLEL + VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS). */
  parallelConnections?: number;
}

/** libvirt's virDomainJobType, lower-cased. */
export type JobType = "none" | "bounded" | "unbounded" | "completed" | "failed" | "cancelled";

/** virDomainGetJobStats, the fields migration follows (bytes, milliseconds). */
export interface JobStats {
  type: JobType;
  operation?: number;
  timeElapsedMs?: number;
  dataTotal?: number;
  dataProcessed?: number;
  dataRemaining?: number;
  downtimeMs?: number;
  memoryIteration?: number;
  errorMessage?: string;
}

export interface Hypervisor {
  /** Define (or redefine) a persistent domain; returns its name. */
  define(xml: string): Promise<string>;
  start(name: string): Promise<void>;
  /** ACPI power button (the grace period and the destroy after it are the launcher's: launcher/shutdown.ts). */
  shutdown(name: string): Promise<void>;
  destroy(name: string): Promise<void>;
  pause(name: string): Promise<void>;
  resume(name: string): Promise<void>;
  reset(name: string): Promise<void>;
  /** Guest-cooperative reboot (ACPI). */
  reboot(name: string): Promise<void>;
  undefine(name: string): Promise<void>;
  /** undefined when no such domain is defined. */
  state(name: string): Promise<DomainStatus | undefined>;
  xml(name: string): Promise<string>;
  stats(name: string): Promise<DomainStats>;
  events(listener: (e: DomainEvent) => void): Unsubscribe;
  /** A disk's size as the running guest sees it (virDomainGetBlockInfo's capacity); `disk`: target or source path. */
  blockCapacity(name: string, disk: string): Promise<number>;
  /** Grows a disk of the running domain to `bytes` (virDomainBlockResize, VIR_DOMAIN_BLOCK_RESIZE_BYTES). */
  blockResize(name: string, disk: string, bytes: number): Promise<void>;
  attachDevice(name: string, xml: string): Promise<void>;
  detachDevice(name: string, xml: string): Promise<void>;
  /** Runs a live migration to completion (peer to peer: libvirtd drives it); rejects with libvirt's error. */
  migrate(name: string, opts: MigrateOptions): Promise<void>;
  /** The domain's current job; `completed`: the last finished one (virDomainGetJobStats). */
  jobStats(name: string, completed?: boolean): Promise<JobStats>;
  /** Cancels the domain's running job (virDomainAbortJob). */
  abortJob(name: string): Promise<void>;
  /** The guest's longest acceptable pause at the switch-over (virDomainMigrateSetMaxDowntime). */
  setMaxDowntime(name: string, ms: number): Promise<void>;
  /** Switches the running migration (started with postCopy) to post-copy (virDomainMigrateStartPostCopy). */
  startPostCopy(name: string): Promise<void>;
  snapshot(name: string, snapshotName: string): Promise<void>;
  close(): Promise<void>;
}

export function notSupported(what: string): StatusError {
  return statusError(501, "NotSupported", `${what} is not supported yet by the launcher`);
}

// Reason tables, indexed by libvirt's enum values (include/libvirt/libvirt-domain.h), named as KubeVirt names them.
const reasons: Record<LifeCycle, readonly string[]> = {
  NoState: ["Unknown"],
  Running: [
    "Unknown",
    "Booted",
    "Migrated",
    "Restored",
    "FromSnapshot",
    "Unpaused",
    "MigrationCanceled",
    "SaveCanceled",
    "Wakeup",
    "Crashed",
    "Postcopy",
    "PostcopyFailed",
  ],
  Blocked: ["Unknown"],
  Paused: [
    "Unknown",
    "User",
    "Migration",
    "Save",
    "Dump",
    "IOError",
    "Watchdog",
    "FromSnapshot",
    "ShuttingDown",
    "Snapshot",
    "Crashed",
    "StartingUp",
    "Postcopy",
    "PostcopyFailed",
    "APIError",
  ],
  ShuttingDown: ["Unknown", "User"],
  Shutoff: ["Unknown", "Shutdown", "Destroyed", "Crashed", "Migrated", "Saved", "Failed", "FromSnapshot", "Daemon"],
  Crashed: ["Unknown", "Panicked"],
  PMSuspended: ["Unknown"],
};

/** Decode libvirt's numeric (state, reason) pair. */
export function decodeState(state: number, reason: number): DomainStatus {
  const s = LIFECYCLES[state] ?? "NoState";
  return { state: s, reason: reasons[s][reason] ?? "Unknown" };
}

/** Encode a DomainStatus back to libvirt's numbers (the fake and tests use it). */
export function encodeState(st: DomainStatus): [number, number] {
  const s = LIFECYCLES.indexOf(st.state);
  const r = reasons[st.state].indexOf(st.reason);
  return [Math.max(s, 0), Math.max(r, 0)];
}

const eventNames = [
  "Defined",
  "Undefined",
  "Started",
  "Suspended",
  "Resumed",
  "Stopped",
  "Shutdown",
  "PMSuspended",
  "Crashed",
];

export function lifecycleEventName(n: number): string {
  return eventNames[n] ?? `Event${n}`;
}

export function isActive(st: DomainStatus | undefined): boolean {
  return st !== undefined && st.state !== "Shutoff" && st.state !== "Crashed" && st.state !== "NoState";
}
