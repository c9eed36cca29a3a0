// The launcher's command server: one domain per launcher, driven through the Hypervisor interface, answering the
// node agent over a unix socket with newline-delimited JSON (protocol.ts). All libvirt work is serialized.
import { rm } from "node:fs/promises";
import net from "node:net";
import type { Static } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import type { VirtualMachineInstance } from "../api/index.js";
import { isStatusError, statusError } from "../lib/errors.js";
import type { Logger } from "../lib/log.js";
import { nullLogger } from "../lib/log.js";
import { domainName as convDomainName } from "./converter/index.js";
import { type DomainStatus, type Hypervisor, isActive, type JobStats } from "./hypervisor/index.js";
import { destinationXml, type FollowLimits, type FollowState, followStep, postCopyFailure } from "./migration.js";
import {
  type DomainInfo,
  type MethodName,
  type MigrateStartParams,
  MigrateStartParamsSchema,
  type MigrateStatusResult,
  type MigrationJobState,
  type MigrationPorts,
  PROTOCOL_VERSION,
  type PrepareMigrationTargetParams,
  PrepareMigrationTargetParamsSchema,
  type PrepareMigrationTargetResult,
  RequestSchema,
  type ResizeDisksParams,
  ResizeDisksParamsSchema,
  type ResizeDisksResultSchema,
  type Response,
  ShutdownParamsSchema,
  type SyncParams,
  SyncParamsSchema,
} from "./protocol.js";
import { planShutdown } from "./shutdown.js";

/** A VMI as the node agent sent it: checked as an object by SyncParamsSchema, its fields read defensively. */
type Vmi = VirtualMachineInstance;

/** Turns a VMI plus what the node prepared into domain XML (creating overlays etc. on the way): the I/O shell. */
export type DomainBuilder = (vmi: Vmi, prepared: SyncParams["prepared"]) => Promise<string>;

/** The launcher process's side of live migration (launcher.ts gives the real one; unit tests a fake). */
export interface MigrationHost {
  /** Target: listen for the source's libvirt connection on the pod IP; the ports for QEMU and NBD stay free. */
  listen(sourceAddress: string | undefined): Promise<{ address: string; ports: MigrationPorts }>;
  /** Target: the incoming domain runs here; take no new connection (the source's open one finishes the job). */
  arrived?: () => void;
  /** Source: the domain has migrated away (the launcher then ends its pod). */
  onMigratedAway?: () => void;
}

export interface LauncherCoreOptions {
  uid: string;
  hv: Hypervisor;
  build: DomainBuilder;
  /** Called after each start of the domain (e.g. to attach the serial console). */
  onStarted?: () => void;
  migration?: MigrationHost;
  /** How often the migration follower samples the job (default 500 ms). */
  followIntervalMs?: number;
  log?: Logger;
}

/** KubeVirt's defaults (virt-config): progressTimeout 150 s, completionTimeoutPerGiB 150 s. */
const DEFAULT_PROGRESS_TIMEOUT_S = 150;
const DEFAULT_COMPLETION_TIMEOUT_PER_GIB = 150;
/** Samples at which a refused switch to post-copy (or pause) is tried again before the job is aborted. */
const MAX_ASSIST_ATTEMPTS = 10;

/** The source's one migration job (libvirt runs it; the launcher follows it and keeps how it ended). */
interface MigrationJob {
  uid: string | undefined;
  state: MigrationJobState;
  startedAtMs: number;
  endedAtMs?: number;
  stats: JobStats | undefined;
  message?: string;
  /** Why the follower aborted it (a timeout), or that the node agent did (MigrateAbort). */
  abortReason?: string;
  userAbort: boolean;
  follow: FollowState;
  limits: FollowLimits;
  maxDowntimeMs: number | undefined;
  downtimeSet: boolean;
  timer?: NodeJS.Timeout;
  polling: boolean;
  /** Consecutive refusals of the switch to post-copy or of the pause. */
  assistFailures?: number;
}

const MAX_LINE = 16 * 1024 * 1024;

/** KubeVirt names a VMI's domain {namespace}_{name}. */
export function domainName(vmi: Vmi): string {
  return convDomainName(vmi?.metadata?.namespace, String(vmi?.metadata?.name ?? ""));
}

/** ACPI is on unless the VMI turns it off (spec.domain.features.acpi.enabled: false). */
export function acpiEnabled(vmi: Vmi): boolean {
  return vmi?.spec?.domain?.features?.acpi?.enabled !== false;
}
const DEFAULT_GRACE_SECONDS = 30; // KubeVirt's v1.DefaultGracePeriodSeconds

function assertNever(x: never): never {
  throw new Error(`unexpected shutdown step ${JSON.stringify(x)}`);
}

function badParams(method: string, params: unknown, schema: Parameters<typeof Value.Errors>[0]): never {
  const first = [...Value.Errors(schema, params)][0];
  throw statusError(
    400,
    "BadRequest",
    `Invalid params for ${method}: ${first ? `${first.path || "/"} ${first.message}` : "wrong shape"}`,
  );
}

export class LauncherCore {
  private name: string | undefined;
  private vmi: Vmi | undefined;
  private status: DomainStatus | undefined;
  private lastEvent: string | undefined;
  private started = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly watchers = new Set<(info: DomainInfo) => void>();
  private graceTimer: NodeJS.Timeout | undefined;
  /** When the graceful shutdown under way destroys the domain (epoch ms); undefined when none is. */
  private deadlineMs: number | undefined;
  private readonly log: Logger;
  private readonly offEvents: () => void;
  /** Prepared as a migration target: the domain arrives by migration, never by Sync. */
  private migrationTarget = false;
  private job: MigrationJob | undefined;
  /** A MigrateStatus answered "completed" (the source launcher may end then). */
  completionReported = false;

  constructor(private readonly opts: LauncherCoreOptions) {
    this.log = opts.log ?? nullLogger;
    this.offEvents = opts.hv.events((e) => {
      if (e.domain !== this.name) return;
      this.status = e.status;
      this.lastEvent = e.event;
      if (!isActive(e.status)) this.clearGrace();
      if (this.migrationTarget && !this.started && e.status.state === "Running") {
        // The incoming domain runs here now: attach what a started domain gets (the serial console). It is this
        // launcher's own domain from now on, and may migrate onwards (mighandler: the migration back was refused).
        this.started = true;
        this.migrationTarget = false;
        this.opts.migration?.arrived?.();
        this.opts.onStarted?.();
      }
      this.log.info("domain event", { event: e.event, state: e.status.state, reason: e.status.reason });
      this.publish();
    });
  }

  info(): DomainInfo {
    const i: DomainInfo = {
      name: this.name ?? "",
      uid: this.opts.uid,
      acpi: this.vmi ? acpiEnabled(this.vmi) : true,
    };
    if (this.status) i.status = this.status;
    if (this.lastEvent) i.lastEvent = this.lastEvent;
    return i;
  }

  watch(fn: (info: DomainInfo) => void): () => void {
    this.watchers.add(fn);
    fn(this.info());
    return () => this.watchers.delete(fn);
  }

  private publish(): void {
    const i = this.info();
    for (const w of this.watchers) w(i);
  }

  /** Run `fn` after every earlier libvirt operation (one domain, one writer). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => {});
    return p;
  }

  private requireDomain(): string {
    if (!this.name) throw statusError(404, "NotFound", "no domain has been synced to this launcher yet");
    return this.name;
  }

  private async refresh(): Promise<void> {
    if (!this.name) return;
    this.status = await this.opts.hv.state(this.name);
  }

  sync(params: unknown): Promise<DomainInfo> {
    if (!Value.Check(SyncParamsSchema, params)) badParams("Sync", params, SyncParamsSchema);
    const p = params as SyncParams;
    const vmi = p.vmi as unknown as Vmi;
    this.checkUid(vmi);
    this.log.info("sync received", { domain: domainName(vmi) });
    return this.serial(async () => {
      const name = domainName(vmi);
      if (this.name && this.name !== name) {
        throw statusError(409, "Conflict", `launcher already runs domain "${this.name}"`);
      }
      this.name = name;
      this.vmi = vmi;
      await this.refresh();
      if (isActive(this.status)) return this.info();
      if (this.migrationTarget) {
        throw statusError(409, "Conflict", `launcher is a migration target: domain "${name}" arrives by migration`);
      }
      if (this.started) {
        // A VMI never boots twice: once its domain has stopped, Sync only reports.
        return this.info();
      }
      const xml = await this.opts.build(vmi, p.prepared);
      await this.opts.hv.define(xml);
      this.log.info("domain defined", { domain: name });
      await this.opts.hv.start(name);
      this.started = true;
      this.opts.onStarted?.();
      await this.refresh();
      this.log.info("domain started", { domain: name });
      this.publish();
      return this.info();
    });
  }

  private gracePeriodMs(params: unknown): number {
    if (params !== undefined && !Value.Check(ShutdownParamsSchema, params)) {
      badParams("Shutdown", params, ShutdownParamsSchema);
    }
    const fromParams = (params as { gracePeriodSeconds?: number } | undefined)?.gracePeriodSeconds;
    const fromVmi = this.vmi?.spec?.terminationGracePeriodSeconds;
    const s = fromParams ?? (typeof fromVmi === "number" ? fromVmi : DEFAULT_GRACE_SECONDS);
    return s * 1000;
  }

  private clearGrace(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.deadlineMs = undefined;
  }

  /**
   * The one graceful shutdown (planShutdown): the first request presses the power button and arms the destroy
   * deadline; a later one (Shutdown from the node agent, SIGTERM from the pod runner, in either order) joins it.
   * Runs in the serial queue; answers at once, without waiting for the guest.
   */
  private beginShutdown(graceMs: number, requireDomain: boolean): Promise<DomainInfo | undefined> {
    return this.serial(async () => {
      const name = requireDomain ? this.requireDomain() : this.name;
      if (!name) return undefined;
      await this.refresh();
      const step = planShutdown({
        active: isActive(this.status),
        acpi: this.vmi ? acpiEnabled(this.vmi) : true,
        graceMs,
        nowMs: Date.now(),
        deadlineMs: this.deadlineMs,
      });
      switch (step.action) {
        case "none":
          break;
        case "destroy":
          this.clearGrace();
          await this.opts.hv.destroy(name);
          break;
        case "acpi":
          this.log.info("shutting the guest down (ACPI)", { domain: name, gracePeriodMs: graceMs });
          this.armGrace(name, step.deadlineMs);
          try {
            await this.opts.hv.shutdown(name);
          } catch (e) {
            // The guest may have stopped between the read and the call: that is success, anything else is not.
            await this.refresh();
            if (isActive(this.status)) throw e;
          }
          break;
        case "wait":
          if (step.deadlineMs !== this.deadlineMs) this.armGrace(name, step.deadlineMs);
          break;
        default:
          return assertNever(step);
      }
      await this.refresh();
      return this.info();
    });
  }

  private armGrace(name: string, deadlineMs: number): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.deadlineMs = deadlineMs;
    this.graceTimer = setTimeout(
      () => {
        this.graceTimer = undefined;
        this.serial(async () => {
          await this.refresh();
          if (isActive(this.status)) {
            this.log.info("grace period expired: destroying the domain", { domain: name });
            await this.opts.hv.destroy(name);
          }
        }).catch((e: unknown) => this.log.warn("destroy after grace period failed", { err: e }));
      },
      Math.max(0, deadlineMs - Date.now()),
    );
    this.graceTimer.unref();
  }

  /** ACPI shutdown now; destroy once the grace period has passed if the guest is still up. Answers at once. */
  async shutdown(params: unknown): Promise<DomainInfo> {
    return (await this.beginShutdown(this.gracePeriodMs(params), true)) ?? this.info();
  }

  /**
   * SIGTERM: the same graceful shutdown (joining one already under way), then wait until the domain is off: shut
   * down by the guest or destroyed at the deadline. Resolves with the final state (undefined: no domain).
   */
  async terminate(graceSeconds?: number): Promise<DomainStatus | undefined> {
    const graceMs = graceSeconds !== undefined ? graceSeconds * 1000 : this.gracePeriodMs(undefined);
    const info = await this.beginShutdown(graceMs, false);
    if (!info || !isActive(this.status)) return this.status;
    return new Promise((resolve) => {
      // Bounded: the deadline destroys the domain; should even that fail, the pod runner's SIGKILL ends the pod.
      const bound = setTimeout(() => finish(this.status), Math.max(0, (this.deadlineMs ?? 0) - Date.now()) + 10_000);
      const finish = (st: DomainStatus | undefined): void => {
        clearTimeout(bound);
        stop();
        resolve(st);
      };
      const stop = this.watch((i) => {
        if (!isActive(i.status)) queueMicrotask(() => finish(i.status));
      });
    });
  }

  private simple(op: (hv: Hypervisor, name: string) => Promise<void>, needActive = true): Promise<DomainInfo> {
    return this.serial(async () => {
      const name = this.requireDomain();
      await this.refresh();
      if (needActive && !isActive(this.status)) {
        throw statusError(409, "Conflict", `domain "${name}" is not running`);
      }
      await op(this.opts.hv, name);
      await this.refresh();
      return this.info();
    });
  }

  /**
   * Online expansion: each disk the running guest sees smaller than its volume now is grown to it (libvirt block
   * resize: QEMU tells the guest, virtio-blk's config-change interrupt). Compared on every call, never remembered,
   * so a call repeated after any crash is harmless. No domain running: nothing to do (a boot sees the new size).
   */
  private resizeDisks(params: unknown): Promise<Static<typeof ResizeDisksResultSchema>> {
    if (!Value.Check(ResizeDisksParamsSchema, params)) badParams("ResizeDisks", params, ResizeDisksParamsSchema);
    const { disks } = params as ResizeDisksParams;
    return this.serial(async () => {
      const resized: Static<typeof ResizeDisksResultSchema>["resized"] = [];
      const name = this.name;
      if (!name) return { resized };
      await this.refresh();
      if (!isActive(this.status)) return { resized };
      for (const d of disks) {
        const from = await this.opts.hv.blockCapacity(name, d.path);
        if (from >= d.bytes) continue;
        await this.opts.hv.blockResize(name, d.path, d.bytes);
        this.log.info("disk grown", { domain: name, path: d.path, fromBytes: from, toBytes: d.bytes });
        resized.push({ path: d.path, fromBytes: from, toBytes: d.bytes });
      }
      return { resized };
    });
  }

  /**
   * Target: take the VMI, create every file QEMU needs here and render the domain XML with this pod's paths (the
   * same builder as a boot, which defines and starts nothing), then listen for the source. Idempotent.
   */
  private prepareMigrationTarget(params: unknown): Promise<PrepareMigrationTargetResult> {
    if (!Value.Check(PrepareMigrationTargetParamsSchema, params)) {
      badParams("PrepareMigrationTarget", params, PrepareMigrationTargetParamsSchema);
    }
    const p = params as PrepareMigrationTargetParams;
    const vmi = p.vmi as unknown as Vmi;
    this.checkUid(vmi);
    const host = this.opts.migration;
    if (!host) throw statusError(501, "NotSupported", "this launcher cannot receive migrations");
    return this.serial(async () => {
      const name = domainName(vmi);
      if (this.name && this.name !== name) {
        throw statusError(409, "Conflict", `launcher already runs domain "${this.name}"`);
      }
      if (this.started && !this.migrationTarget) {
        throw statusError(409, "Conflict", `launcher booted domain "${name}" itself: it is no migration target`);
      }
      this.name = name;
      this.vmi = vmi;
      this.migrationTarget = true;
      await this.refresh();
      const domainXml = await this.opts.build(vmi, p.prepared);
      const { address, ports } = await host.listen(p.sourceNodeAddress);
      this.log.info("prepared as migration target", { domain: name, address, ...ports });
      return { address, ports, domainXml };
    });
  }

  private jobStatus(): MigrateStatusResult {
    const j = this.job;
    if (!j) return { state: "none" };
    const r: MigrateStatusResult = { state: j.state };
    if (j.uid) r.migrationUid = j.uid;
    const st = j.stats;
    if (st?.dataTotal !== undefined) r.dataTotal = st.dataTotal;
    if (st?.dataRemaining !== undefined) r.dataRemaining = st.dataRemaining;
    if (st?.dataProcessed !== undefined) r.dataProcessed = st.dataProcessed;
    if (st?.downtimeMs !== undefined && j.state === "completed") r.downtimeMs = st.downtimeMs;
    r.elapsedMs = st?.timeElapsedMs ?? (j.endedAtMs ?? Date.now()) - j.startedAtMs;
    if (j.message) r.message = j.message;
    r.mode = j.follow.mode ?? "PreCopy";
    return r;
  }

  private migrateStatus(): MigrateStatusResult {
    const r = this.jobStatus();
    if (r.state === "completed") this.completionReported = true;
    return r;
  }

  /**
   * Source: start libvirt's peer-to-peer migration to the target and follow it; answers at once. A job running, or
   * one of the same migration uid, or a completed one is answered, never started twice.
   */
  private migrateStart(params: unknown): Promise<MigrateStatusResult> {
    if (!Value.Check(MigrateStartParamsSchema, params)) badParams("MigrateStart", params, MigrateStartParamsSchema);
    const p = params as MigrateStartParams;
    return this.serial(async () => {
      const name = this.requireDomain();
      const old = this.job;
      if (
        old &&
        (old.state === "running" ||
          old.state === "completed" ||
          (p.migrationUid !== undefined && old.uid === p.migrationUid))
      ) {
        return this.jobStatus();
      }
      if (this.migrationTarget) throw statusError(409, "Conflict", "a migration target cannot migrate its domain");
      await this.refresh();
      if (!isActive(this.status)) throw statusError(409, "Conflict", `domain "${name}" is not running`);
      const hv = this.opts.hv;
      const sourceXml = await hv.xml(name);
      const stats = await hv.stats(name);
      let dataBytes = stats.maxMemoryKiB * 1024;
      for (const d of p.copyStorage) dataBytes += await hv.blockCapacity(name, d).catch(() => 0);
      const now = Date.now();
      const job: MigrationJob = {
        uid: p.migrationUid,
        state: "running",
        startedAtMs: now,
        stats: undefined,
        userAbort: false,
        follow: { startedAtMs: now, progressAtMs: now },
        limits: {
          progressTimeoutS: p.progressTimeout ?? DEFAULT_PROGRESS_TIMEOUT_S,
          completionTimeoutPerGiB: p.completionTimeoutPerGiB ?? DEFAULT_COMPLETION_TIMEOUT_PER_GIB,
          dataBytes,
          postCopy: p.postCopy === true,
          // KubeVirt's default: allowWorkloadDisruption follows allowPostCopy
          workloadDisruption: p.allowWorkloadDisruption ?? p.postCopy === true,
        },
        maxDowntimeMs: p.maxDowntimeMs,
        downtimeSet: false,
        polling: false,
      };
      this.job = job;
      const listenAddress = new URL(p.migrateUri).hostname.replace(/^\[|\]$/g, "");
      const opts = {
        destinationUri: p.destinationUri,
        migrateUri: p.migrateUri,
        listenAddress,
        destinationXml: destinationXml(p.domainXml, sourceXml),
        copyDisks: p.copyStorage,
        ...(p.disksUri !== undefined ? { disksUri: p.disksUri } : {}),
        ...(p.bandwidthMiBps !== undefined ? { bandwidthMiBps: p.bandwidthMiBps } : {}),
        ...(p.autoConverge !== undefined ? { autoConverge: p.autoConverge } : {}),
        ...(p.postCopy !== undefined ? { postCopy: p.postCopy } : {}),
        ...(p.parallelConnections !== undefined ? { parallelConnections: p.parallelConnections } : {}),
      };
      this.log.info("migration starting", {
        domain: name,
        destination: p.destinationUri,
        copyStorage: p.copyStorage,
        dataBytes,
        migrationUid: p.migrationUid,
      });
      // Not awaited: the call returns when the migration has ended; the follower samples it meanwhile.
      hv.migrate(name, opts).then(
        () => this.migrationEnded(job, name, undefined),
        (e: unknown) => this.migrationEnded(job, name, e),
      );
      job.timer = setInterval(() => void this.followJob(job, name), this.opts.followIntervalMs ?? 500);
      job.timer.unref();
      return this.jobStatus();
    });
  }

  private async followJob(job: MigrationJob, name: string): Promise<void> {
    if (job.state !== "running" || job.polling) return;
    job.polling = true;
    try {
      const st = await this.opts.hv.jobStats(name);
      if (job.state !== "running") return;
      if (st.type === "bounded" || st.type === "unbounded") job.stats = st;
      if (!job.downtimeSet && job.maxDowntimeMs !== undefined && st.type !== "none") {
        job.downtimeSet = true;
        await this.opts.hv
          .setMaxDowntime(name, job.maxDowntimeMs)
          .catch((e: unknown) => this.log.warn("setting the migration's max downtime failed", { err: e }));
      }
      const sample = { dataRemaining: job.stats?.dataRemaining, memoryIteration: job.stats?.memoryIteration };
      const step = followStep(job.follow, sample, Date.now(), job.limits);
      job.follow = step.state;
      if (step.postCopy || step.pause) {
        const what = step.postCopy ? "switching to post-copy" : "pausing the guest";
        this.log.info(`the migration exceeded its completion budget: ${what}`, {
          domain: name,
          dataRemaining: job.stats?.dataRemaining,
        });
        try {
          // virDomainSuspend during the job: libvirt resumes the guest on the target when the job completes
          if (step.postCopy) await this.opts.hv.startPostCopy(name);
          else await this.opts.hv.pause(name);
          job.assistFailures = 0;
        } catch (e) {
          // Still plain pre-copy: tried again at the next sample (KubeVirt's monitor), a bounded number of times.
          job.follow = { ...job.follow, mode: "PreCopy" };
          job.assistFailures = (job.assistFailures ?? 0) + 1;
          const msg = e instanceof Error ? e.message : String(e);
          this.log.warn(`${what} failed`, { domain: name, err: msg, attempt: job.assistFailures });
          if (job.assistFailures >= MAX_ASSIST_ATTEMPTS && !job.abortReason) {
            job.abortReason = `${what} failed ${job.assistFailures} times: ${msg}`;
            this.log.warn("aborting the migration", { domain: name, reason: job.abortReason });
            await this.opts.hv.abortJob(name).catch((err: unknown) => this.log.warn("abort failed", { err }));
          }
        }
      }
      // Post-copy that broke after the switch-over: libvirt may keep the job for a recovery that never comes.
      const lost = postCopyFailure(job.follow.mode, this.status);
      if (lost) {
        this.endJob(job, "failed", lost);
        return;
      }
      if (step.abort && !job.abortReason) {
        job.abortReason = step.abort;
        this.log.warn("aborting the migration", { domain: name, reason: step.abort });
        await this.opts.hv.abortJob(name).catch((e: unknown) => this.log.warn("abort failed", { err: e }));
      }
    } catch (e) {
      this.log.debug("migration job sample failed", { err: e });
    } finally {
      job.polling = false;
    }
  }

  private async migrationEnded(job: MigrationJob, name: string, err: unknown): Promise<void> {
    if (job.timer) clearInterval(job.timer);
    if (job.state !== "running") return; // the follower ended it (a failed post-copy)
    await this.refresh().catch(() => {});
    // A failed call whose domain left anyway (e.g. an error in the confirm phase) did migrate.
    const migrated = this.status?.state === "Shutoff" && this.status.reason === "Migrated";
    if (err === undefined || migrated) {
      job.endedAtMs = Date.now();
      const done = await this.opts.hv.jobStats(name, true).catch(() => undefined);
      if (done) job.stats = { ...job.stats, ...done };
      job.state = "completed";
      this.log.info("migration completed", {
        domain: name,
        elapsedMs: job.endedAtMs - job.startedAtMs,
        downtimeMs: job.stats?.downtimeMs,
        dataTotal: job.stats?.dataTotal,
      });
      this.publish();
      this.opts.migration?.onMigratedAway?.();
      return;
    }
    const msg = err instanceof Error ? err.message : String(err);
    const lost = postCopyFailure(job.follow.mode, this.status);
    if (lost || job.follow.mode === "PostCopy") {
      this.endJob(job, "failed", lost ?? `post-copy migration failed after the switch-over: ${msg}`);
      return;
    }
    if (job.follow.mode === "Paused" && this.status?.state === "Paused") {
      // The follower paused the guest for the job; the job failed, so the guest goes on here.
      await this.opts.hv
        .resume(name)
        .then(() => this.log.info("resumed the guest paused for the failed migration", { domain: name }))
        .catch((e: unknown) => this.log.warn("resuming the guest after the failed migration failed", { err: e }));
      await this.refresh().catch(() => {});
    }
    this.endJob(job, job.userAbort && !job.abortReason ? "cancelled" : "failed", job.abortReason ?? msg);
  }

  /** The job ended without success: its state and message, kept for MigrateStatus. */
  private endJob(job: MigrationJob, state: "failed" | "cancelled", message: string): void {
    if (job.timer) clearInterval(job.timer);
    job.endedAtMs = Date.now();
    job.state = state;
    job.message = message;
    this.log.warn("migration ended without success", { domain: this.name, state, message, mode: job.follow.mode });
    this.publish();
  }

  /** Cancel the running job (virDomainAbortJob); the guest keeps running here. */
  private async migrateAbort(): Promise<{ aborted: boolean }> {
    const job = this.job;
    const name = this.name;
    if (job?.state !== "running" || !name) return { aborted: false };
    if (job.follow.mode === "PostCopy") {
      // The guest runs on the target already: a post-copy migration is never aborted (KubeVirt's, libvirt's rule).
      this.log.warn("migration abort refused: the migration is in post-copy", { domain: name });
      return { aborted: false };
    }
    job.userAbort = true;
    try {
      await this.opts.hv.abortJob(name);
    } catch (e) {
      if (job.state !== "running") return { aborted: job.state === "cancelled" };
      throw e;
    }
    this.log.info("migration abort requested", { domain: name });
    return { aborted: true };
  }

  private checkUid(vmi: Vmi): void {
    const uid = vmi?.metadata?.uid;
    if (uid !== this.opts.uid) {
      throw statusError(
        409,
        "UIDMismatch",
        `VMI uid "${String(uid)}" does not belong to this launcher (uid "${this.opts.uid}")`,
      );
    }
  }

  async handle(method: MethodName, params: unknown): Promise<unknown> {
    switch (method) {
      case "Ping":
        return { version: PROTOCOL_VERSION, uid: this.opts.uid, pid: process.pid };
      case "Sync":
        return this.sync(params);
      case "Shutdown":
        return this.shutdown(params);
      case "Kill":
        return this.simple(async (hv, n) => hv.destroy(n));
      case "Pause":
        return this.simple(async (hv, n) => {
          if (this.status?.state !== "Paused") await hv.pause(n);
        });
      case "Unpause":
        return this.simple(async (hv, n) => {
          if (this.status?.state === "Paused") await hv.resume(n);
        });
      case "Reset":
        return this.simple((hv, n) => hv.reset(n));
      case "SoftReboot":
        return this.simple((hv, n) => hv.reboot(n));
      case "GetDomain": {
        const name = this.name;
        if (!name) return { domain: this.info() };
        return this.serial(async () => {
          await this.refresh();
          return { domain: this.info(), xml: await this.opts.hv.xml(name) };
        });
      }
      case "GetDomainStats":
        return this.serial(async () => this.opts.hv.stats(this.requireDomain()));
      case "ResizeDisks":
        return this.resizeDisks(params);
      case "PrepareMigrationTarget":
        return this.prepareMigrationTarget(params);
      case "MigrateStart":
        return this.migrateStart(params);
      case "MigrateStatus":
        return this.migrateStatus();
      case "MigrateAbort":
        return this.migrateAbort();
      case "Watch":
        throw statusError(400, "BadRequest", "Watch is a stream: use the socket server");
    }
  }

  close(): void {
    if (this.job?.timer) clearInterval(this.job.timer);
    this.clearGrace();
    this.offEvents();
    this.watchers.clear();
  }
}

function errorBody(e: unknown): { reason: string; message: string } {
  if (isStatusError(e)) return { reason: e.reason, message: e.message };
  return { reason: "InternalError", message: e instanceof Error ? e.message : String(e) };
}

/** Serve the core on a unix socket. Resolves once listening; the returned server is closed by the caller. */
export async function serveCommands(
  core: LauncherCore,
  socketPath: string,
  log: Logger = nullLogger,
): Promise<net.Server> {
  await rm(socketPath, { force: true });
  const server = net.createServer((sock) => {
    let buf = "";
    const unwatch: Array<() => void> = [];
    const send = (r: Response): void => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
    };
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) {
        sock.destroy();
        return;
      }
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
        if (!line) continue;
        let msg: unknown;
        try {
          msg = JSON.parse(line);
        } catch {
          send({ id: 0, error: { reason: "BadRequest", message: "request is not valid JSON" } });
          continue;
        }
        if (!Value.Check(RequestSchema, msg)) {
          const id = typeof (msg as { id?: unknown })?.id === "number" ? (msg as { id: number }).id : 0;
          send({
            id,
            error: { reason: "BadRequest", message: "request must be {id: integer, method: known name, params?}" },
          });
          continue;
        }
        const { id, method, params } = msg;
        if (method === "Watch") {
          unwatch.push(core.watch((domain) => send({ id, event: { type: "Domain", domain } })));
          continue;
        }
        core.handle(method, params).then(
          (result) => send({ id, result }),
          (e: unknown) => {
            if (!isStatusError(e)) log.warn("request failed", { method, err: e });
            send({ id, error: errorBody(e) });
          },
        );
      }
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      for (const u of unwatch) u();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}
