// Live migration, node side (KubeVirt's virt-handler migration source/target handling), as pure decisions: given the
// VMI (its status.migrationState, written by the migration controller and by the two node agents), what this node
// has (the target launcher pod, the launcher's answers) → the one next action. The shell (sync.ts) gathers the
// observations, runs the action and writes the result; every decision is made again from API + node state, never
// from what a previous round did (crash-only: the agent may restart at any step).
//
// Who writes what (MIGRATION-CONTRACT.md §1): the target agent writes targetNodeAddress,
// targetDirectMigrationNodePorts, targetNodeDomainDetected, and after `completed` the handover (nodeName, the
// kubevirt.io/nodeName label, interfaces, targetNodeDomainReadyTimestamp) in ONE update; the source agent writes
// startTimestamp, endTimestamp, completed, failed, failureReason, abortStatus.
import { Migration, movedByMigration, parseQuantity } from "../../api/index.js";
import type {
  DomainStatus,
  MigrateStartParams,
  MigrateStatusResult,
  PrepareMigrationTargetResult,
} from "../../launcher/index.js";
import type { Pod, VirtualMachineInstance } from "../ports.js";

/** The VMI label the controller sets while a migration is active: the target node. */
export const MIGRATION_TARGET_NODE_LABEL = Migration.targetNodeLabel;
/** The label on the target launcher pod: the VMIM's uid. */
export const MIGRATION_JOB_UID_LABEL = Migration.jobUidLabel;
/** The target launcher pod's annotation: the domain XML the target launcher rendered for its own paths (§4). */
export const MIGRATION_DOMAIN_XML_ANNOTATION = "tsvirt.io/migration-domain-xml";
/** KubeVirt's well-known pod ports; in targetDirectMigrationNodePorts a value names a channel (0 = libvirt). */
export const LIBVIRT_DIRECT_MIGRATION_PORT = 49152;
export const LIBVIRT_BLOCK_MIGRATION_PORT = 49153;

export type MigrationState = NonNullable<NonNullable<VirtualMachineInstance["status"]>["migrationState"]>;

/** PrepareMigrationTarget's answer and MigrateStatus's (launcher/protocol.ts, contract §3). */
export type TargetEndpoint = PrepareMigrationTargetResult;
export type MigrationJob = MigrateStatusResult;

export type Role = "source" | "target";

/** This node's part in the VMI's current migration, if any. */
export function roleOf(vmi: VirtualMachineInstance, node: string): Role | undefined {
  const ms = vmi.status?.migrationState;
  if (!ms?.migrationUid) return undefined;
  const owner = vmi.status?.nodeName;
  if (ms.targetNode === node && owner !== node) return "target";
  if (ms.sourceNode === node && owner === node) return "source";
  return undefined;
}

/**
 * targetDirectMigrationNodePorts in KubeVirt's shape: listening port → the channel it stands for, named by
 * KubeVirt's pod port (0: libvirt's connection, 49152: QEMU's migration stream, 49153: the block-migration NBD
 * server). The contract says every value is 0; then the source could not tell the channels apart, so the values
 * carry KubeVirt's meaning (as virt-handler's migration proxy map does).
 */
export function portsMap(p: TargetEndpoint["ports"]): Record<string, number> {
  return {
    [String(p.libvirt)]: 0,
    [String(p.qemu)]: LIBVIRT_DIRECT_MIGRATION_PORT,
    [String(p.nbd)]: LIBVIRT_BLOCK_MIGRATION_PORT,
  };
}

/** The inverse of portsMap; undefined unless all three channels are there. */
export function portsOf(m: Readonly<Record<string, number>> | undefined): TargetEndpoint["ports"] | undefined {
  if (!m) return undefined;
  const by = new Map(Object.entries(m).map(([k, v]) => [v, Number(k)]));
  const libvirt = by.get(0);
  const qemu = by.get(LIBVIRT_DIRECT_MIGRATION_PORT);
  const nbd = by.get(LIBVIRT_BLOCK_MIGRATION_PORT);
  if (!libvirt || !qemu || !nbd) return undefined;
  return { libvirt, qemu, nbd };
}

/** The target launcher pod: this node's pod of the VMI labelled with the migration's uid. */
export function targetPodOf(pods: readonly Pod[], migrationUid: string): Pod | undefined {
  return pods.find(
    (p) => p.metadata.labels?.[MIGRATION_JOB_UID_LABEL] === migrationUid && !p.metadata.deletionTimestamp,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Target

export interface TargetObservation {
  /** The target launcher pod on this node (undefined: not here yet, or gone). */
  pod?: Pod;
  /** The target launcher answers Ping. */
  launcherReady: boolean;
  /** What this process prepared for this migration (memory: after a restart it is prepared again, idempotently). */
  prepared?: TargetEndpoint;
  /** The target launcher's domain (undefined: none yet, or the launcher did not answer). */
  domain?: DomainStatus;
  /** Whether this node still holds preparation (image pins) for the VMI that a failed migration must release. */
  holding: boolean;
}

export type TargetAction =
  | { kind: "none" }
  | { kind: "wait"; afterMs: number; why: string }
  /** prepareNode + PrepareMigrationTarget + firewall + annotation + targetNodeAddress/ports (each idempotent). */
  | { kind: "prepare" }
  /** The domain appeared on the target (incoming): targetNodeDomainDetected. */
  | { kind: "detected" }
  /** After completed: nodeName, label, interfaces, targetNodeDomainReadyTimestamp, in one update. */
  | { kind: "handover" }
  /** A failed migration: release what this node prepared (the controller deletes the target pod). */
  | { kind: "release" };

const POLL_MS = 1_000;

export function planTarget(vmi: VirtualMachineInstance, node: string, o: TargetObservation): TargetAction {
  if (roleOf(vmi, node) !== "target") return { kind: "none" };
  const ms = vmi.status?.migrationState as MigrationState;
  if (ms.failed) return o.holding ? { kind: "release" } : { kind: "none" };
  if (ms.completed) {
    if (o.domain?.state === "Running") return { kind: "handover" };
    return { kind: "wait", afterMs: 200, why: "the migration completed; waiting for the domain to run here" };
  }
  if (o.pod?.status?.phase !== "Running") return { kind: "none" }; // the pod's events trigger again
  if (!o.launcherReady) return { kind: "wait", afterMs: POLL_MS, why: "the target launcher does not answer yet" };
  if (ms.startTimestamp) {
    // The stream runs: nothing to prepare again (the incoming domain is libvirt's now); note the domain once seen.
    if (o.domain && !ms.targetNodeDomainDetected) return { kind: "detected" };
    return { kind: "none" };
  }
  if (ms.abortRequested) return { kind: "none" };
  if (!o.prepared) return { kind: "prepare" };
  const published =
    ms.targetNodeAddress === o.prepared.address &&
    JSON.stringify(portsOf(ms.targetDirectMigrationNodePorts)) === JSON.stringify(o.prepared.ports) &&
    o.pod.metadata.annotations?.[MIGRATION_DOMAIN_XML_ANNOTATION] === o.prepared.domainXml;
  return published ? { kind: "none" } : { kind: "prepare" };
}

// ---------------------------------------------------------------------------------------------------------------
// Source

export interface SourceObservation {
  /** The source launcher's migration job (undefined: the launcher did not answer). */
  job?: MigrationJob;
  /** The source domain (to tell a job the launcher forgot from one that moved the domain away). */
  domain?: DomainStatus;
  /** The destination XML from the target pod's annotation (read only before the start). */
  destXml?: string;
  /**
   * The source launcher ended (its pod's termination message: the domain's last state). Read only when the launcher
   * does not answer: it waits for this agent to read "completed" for 10 s at most, then its pod ends.
   */
  ended?: DomainStatus;
  /** MigrateAbort was sent for this migration by this process. */
  abortSent: boolean;
}

export type MigrationEnd = {
  completed: boolean;
  failed: boolean;
  failureReason?: string;
  abortStatus?: "Succeeded" | "Failed";
  /** The job switched to post-copy or paused the guest and migrationState.mode does not say so yet. */
  mode?: AssistedMode;
};

export type SourceAction =
  | { kind: "none" }
  | { kind: "wait"; afterMs: number; why: string }
  /** MigrateStart with the target's address, ports, config and destination XML; then startTimestamp. */
  | { kind: "start"; destXml: string; ports: TargetEndpoint["ports"] }
  /** The job runs but startTimestamp is not written (a restart between the two): write it only. */
  | { kind: "markStarted" }
  | { kind: "follow"; job: MigrationJob }
  /** The launcher switched the job to post-copy or paused the guest: migrationState.mode = PostCopy | Paused. */
  | { kind: "mode"; mode: AssistedMode }
  | { kind: "abort" }
  | { kind: "finish"; end: MigrationEnd };

export const ABORTED_REASON = "Live migration aborted";

/** KubeVirt's migrationState.mode once the launcher helped the job past its completion budget. */
export type AssistedMode = "PostCopy" | "Paused";

export function planSource(vmi: VirtualMachineInstance, node: string, o: SourceObservation): SourceAction {
  if (roleOf(vmi, node) !== "source") return { kind: "none" };
  const ms = vmi.status?.migrationState as MigrationState;
  if (ms.completed || ms.failed) return { kind: "none" };
  if (!o.job) {
    // The launcher ended while this agent was away (killed, or slow to restart): where the domain went says how the
    // started migration ended; waiting for a launcher that is gone would leave the migration Running for ever.
    if (ms.startTimestamp && o.ended) {
      if (o.ended.state === "Shutoff" && o.ended.reason === "Migrated")
        return { kind: "finish", end: { completed: true, failed: false } };
      return {
        kind: "finish",
        end: {
          completed: false,
          failed: true,
          failureReason: `the source launcher ended during the migration (domain ${o.ended.state}/${o.ended.reason ?? "?"})`,
        },
      };
    }
    return { kind: "wait", afterMs: POLL_MS, why: "the source launcher does not answer" };
  }
  // A job of an earlier migration (the launcher names its uid) says nothing about this one.
  const job: MigrationJob =
    o.job.migrationUid && o.job.migrationUid !== ms.migrationUid && o.job.state !== "running"
      ? { state: "none" }
      : o.job;
  if (!ms.startTimestamp) {
    // A job running without startTimestamp: this agent started it and restarted before writing. Never a second one.
    if (job.state === "running") {
      if (job.migrationUid && job.migrationUid !== ms.migrationUid)
        return { kind: "wait", afterMs: POLL_MS, why: "an earlier migration job still runs" };
      return { kind: "markStarted" };
    }
    if (ms.abortRequested) return { kind: "none" }; // not started: the controller cleans the target up
    const ports = portsOf(ms.targetDirectMigrationNodePorts);
    if (!ms.targetNodeAddress || !ports) return { kind: "none" }; // the target's write triggers the next round
    if (!o.destXml) return { kind: "wait", afterMs: POLL_MS, why: "the target pod has no destination XML yet" };
    return { kind: "start", destXml: o.destXml, ports };
  }
  const aborted = ms.abortRequested === true;
  const assisted = job.mode === "PostCopy" || job.mode === "Paused" ? job.mode : undefined;
  const switched = assisted !== undefined && ms.mode !== assisted;
  const mode = switched ? { mode: assisted } : {};
  switch (job.state) {
    case "running":
      if (switched) return { kind: "mode", mode: assisted };
      if (aborted && !o.abortSent) return { kind: "abort" };
      return { kind: "follow", job };
    case "completed":
      // An abort that came too late (or in post-copy, which is never aborted): KubeVirt reports the abort as failed.
      return {
        kind: "finish",
        end: { completed: true, failed: false, ...(aborted ? { abortStatus: "Failed" } : {}), ...mode },
      };
    case "cancelled":
      return {
        kind: "finish",
        end: {
          completed: false,
          failed: true,
          failureReason: job.message ?? ABORTED_REASON,
          ...(aborted ? { abortStatus: "Succeeded" } : {}),
          ...mode,
        },
      };
    case "failed":
      return {
        kind: "finish",
        end: {
          completed: false,
          failed: true,
          failureReason: job.message ?? "live migration failed",
          ...(aborted ? { abortStatus: o.abortSent ? "Succeeded" : "Failed" } : {}),
          // a failed post-copy job: the mode tells the VMI's phase rules the guest is lost (KubeVirt's)
          ...mode,
        },
      };
    case "none":
      // Started, yet the launcher knows no job (it restarted): the domain tells where the guest is.
      if (o.domain?.state === "Shutoff" && o.domain.reason === "Migrated")
        return { kind: "finish", end: { completed: true, failed: false } };
      return {
        kind: "finish",
        end: { completed: false, failed: true, failureReason: "the source launcher lost the migration job" },
      };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// MigrateStart's parameters

/** Volumes that live on the node (copied by block migration): KubeVirt's BlockMigration volumes. */
const NODE_LOCAL = ["containerDisk", "emptyDisk", "ephemeral"] as const;

/**
 * Disk targets (vda…) to copy: node-local volumes' disks, found in the destination XML by their alias (ua-<volume>),
 * which the converter gives every disk: the target launcher rendered it, so its targets are the domain's. Node-local
 * claims that move with this migration (status.migratedVolumes of its uid) are copied whole into their new claims.
 */
export function copyStorageTargets(vmi: VirtualMachineInstance, domainXml: string): string[] {
  const moved = movedByMigration(vmi.status?.migratedVolumes, vmi.status?.migrationState?.migrationUid ?? "");
  const local = new Set([
    ...(vmi.spec.volumes ?? [])
      .filter((v) => NODE_LOCAL.some((k) => (v as Record<string, unknown>)[k] !== undefined))
      .map((v) => v.name),
    ...moved.map((m) => m.volumeName),
  ]);
  const out: string[] = [];
  for (const m of domainXml.matchAll(/<disk\b[\s\S]*?<\/disk>/g)) {
    const disk = m[0];
    const alias = /<alias\s+name=["']ua-([^"']+)["']/.exec(disk)?.[1];
    const dev = /<target\s+[^>]*dev=["']([^"']+)["']/.exec(disk)?.[1];
    if (alias && dev && local.has(alias) && !/readonly\s*\/>/.test(disk)) out.push(dev);
  }
  return out;
}

/** A bandwidth quantity in MiB/s; "0Mi" (KubeVirt's default) and nonsense mean unlimited. */
function bytesToMiB(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  const b = parseQuantity(q);
  return b === undefined || b <= 0 ? undefined : Math.max(1, Math.round(b / 2 ** 20));
}

/** The MigrateStart call: the target's endpoints, the disks to copy, and the effective settings. */
export function migrateStartParams(
  vmi: VirtualMachineInstance,
  address: string,
  ports: TargetEndpoint["ports"],
  domainXml: string,
): MigrateStartParams {
  const cfg = vmi.status?.migrationState?.migrationConfiguration ?? {};
  const copyStorage = copyStorageTargets(vmi, domainXml);
  const p: MigrateStartParams = {
    destinationUri: `qemu+tcp://${address}:${ports.libvirt}/system`,
    migrateUri: `tcp://${address}:${ports.qemu}`,
    domainXml,
    copyStorage,
  };
  if (vmi.status?.migrationState?.migrationUid) p.migrationUid = vmi.status.migrationState.migrationUid;
  if (copyStorage.length) p.disksUri = `tcp://${address}:${ports.nbd}`;
  const bw = bytesToMiB(cfg.bandwidthPerMigration);
  if (bw !== undefined) p.bandwidthMiBps = bw;
  if (cfg.allowAutoConverge !== undefined) p.autoConverge = cfg.allowAutoConverge;
  if (cfg.allowPostCopy !== undefined) p.postCopy = cfg.allowPostCopy;
  if (cfg.allowWorkloadDisruption !== undefined) p.allowWorkloadDisruption = cfg.allowWorkloadDisruption;
  if (cfg.maxDowntimeMs) p.maxDowntimeMs = cfg.maxDowntimeMs;
  if (cfg.completionTimeoutPerGiB) p.completionTimeoutPerGiB = cfg.completionTimeoutPerGiB;
  if (cfg.progressTimeout) p.progressTimeout = cfg.progressTimeout;
  return p;
}
