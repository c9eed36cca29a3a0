// An in-memory Hypervisor for unit tests: domains keyed by name, lifecycle events pushed synchronously-after-call.
import { XMLParser } from "fast-xml-parser";
import { notFound, statusError } from "../../lib/errors.js";
import {
  type DomainEvent,
  type DomainStats,
  type DomainStatus,
  type Hypervisor,
  isActive,
  type JobStats,
  type MigrateOptions,
  notSupported,
  type Unsubscribe,
} from "./types.js";

interface FakeDomain {
  xml: string;
  status: DomainStatus;
}

export interface FakeOptions {
  /** Whether the guest powers off on the ACPI button (default true). */
  honorsAcpi?: boolean;
}

export class FakeHypervisor implements Hypervisor {
  readonly domains = new Map<string, FakeDomain>();
  readonly calls: string[] = [];
  private readonly listeners = new Set<(e: DomainEvent) => void>();
  honorsAcpi: boolean;

  constructor(opts: FakeOptions = {}) {
    this.honorsAcpi = opts.honorsAcpi ?? true;
  }

  private get(name: string): FakeDomain {
    const d = this.domains.get(name);
    if (!d) throw notFound({ group: "", resource: "domains" }, name);
    return d;
  }

  /** Change a domain's state as libvirt would, and push the event (tests call it to simulate QEMU's fate). */
  setState(name: string, status: DomainStatus, event = "Changed"): void {
    const d = this.get(name);
    d.status = status;
    queueMicrotask(() => {
      for (const l of this.listeners) l({ domain: name, event, detail: 0, status });
    });
  }

  async define(xml: string): Promise<string> {
    this.calls.push("define");
    const doc = new XMLParser().parse(xml) as { domain?: { name?: string } };
    const name = doc.domain?.name;
    if (!name) throw statusError(400, "BadRequest", "domain XML has no name");
    const old = this.domains.get(name);
    this.domains.set(name, { xml, status: old?.status ?? { state: "Shutoff", reason: "Unknown" } });
    return name;
  }
  async start(name: string): Promise<void> {
    this.calls.push("start");
    const d = this.get(name);
    if (isActive(d.status)) throw statusError(409, "Conflict", "domain is already running");
    this.setState(name, { state: "Running", reason: "Booted" }, "Started");
  }
  async shutdown(name: string): Promise<void> {
    this.calls.push("shutdown");
    const d = this.get(name);
    if (!isActive(d.status)) throw statusError(409, "Conflict", "domain is not running");
    if (this.honorsAcpi) this.setState(name, { state: "Shutoff", reason: "Shutdown" }, "Stopped");
  }
  async destroy(name: string): Promise<void> {
    this.calls.push("destroy");
    this.get(name);
    this.setState(name, { state: "Shutoff", reason: "Destroyed" }, "Stopped");
  }
  async pause(name: string): Promise<void> {
    this.calls.push("pause");
    // as libvirt: a pause during a migration job is the migration's (DOMAIN_PAUSED_MIGRATION)
    this.setState(name, { state: "Paused", reason: this.migration ? "Migration" : "User" }, "Suspended");
  }
  async resume(name: string): Promise<void> {
    this.calls.push("resume");
    this.setState(name, { state: "Running", reason: "Unpaused" }, "Resumed");
  }
  async reset(name: string): Promise<void> {
    this.calls.push("reset");
    this.get(name);
  }
  async reboot(name: string): Promise<void> {
    this.calls.push("reboot");
    this.get(name);
  }
  async undefine(name: string): Promise<void> {
    this.calls.push("undefine");
    this.get(name);
    this.domains.delete(name);
  }
  async state(name: string): Promise<DomainStatus | undefined> {
    return this.domains.get(name)?.status;
  }
  async xml(name: string): Promise<string> {
    return this.get(name).xml;
  }
  async stats(name: string): Promise<DomainStats> {
    const d = this.get(name);
    return { state: d.status.state, maxMemoryKiB: 131072, memoryKiB: 131072, vcpus: 1, cpuTimeNs: 0 };
  }
  events(listener: (e: DomainEvent) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** disk (path) → the size the guest sees; tests set a disk's starting size. */
  readonly blockSizes = new Map<string, number>();
  async blockCapacity(name: string, disk: string): Promise<number> {
    this.get(name);
    const n = this.blockSizes.get(disk);
    if (n === undefined) throw statusError(400, "BadRequest", `invalid argument: disk '${disk}' not found in domain`);
    return n;
  }
  async blockResize(name: string, disk: string, bytes: number): Promise<void> {
    this.calls.push("blockResize");
    if (!isActive(this.get(name).status)) throw statusError(409, "Conflict", "domain is not running");
    if (bytes < (this.blockSizes.get(disk) ?? 0)) throw statusError(400, "BadRequest", "cannot shrink");
    this.blockSizes.set(disk, bytes);
  }
  attachDevice(): Promise<void> {
    return Promise.reject(notSupported("Device hotplug"));
  }
  detachDevice(): Promise<void> {
    return Promise.reject(notSupported("Device hotplug"));
  }
  /** The migration under way (tests end it with finishMigration or the launcher's abortJob). */
  migration: { name: string; opts: MigrateOptions; settle: (err?: Error) => void } | undefined;
  /** What jobStats answers for the running job. */
  job: JobStats = { type: "none" };
  maxDowntimeMs: number | undefined;
  migrate(name: string, opts: MigrateOptions): Promise<void> {
    this.calls.push("migrate");
    this.get(name);
    if (this.migration) return Promise.reject(statusError(409, "Conflict", "another migration job is active"));
    this.job = { type: "unbounded", dataTotal: 1000, dataRemaining: 1000, dataProcessed: 0 };
    return new Promise((resolve, reject) => {
      this.migration = {
        name,
        opts,
        settle: (err) => {
          this.migration = undefined;
          if (err) {
            this.job = { type: "none" };
            reject(err);
          } else {
            this.job = { type: "none" };
            this.setState(name, { state: "Shutoff", reason: "Migrated" }, "Stopped");
            resolve();
          }
        },
      };
    });
  }
  /** Ends the migration under way: success (the domain left) or libvirt's error. */
  finishMigration(err?: Error): void {
    this.migration?.settle(err);
  }
  async jobStats(name: string, completed = false): Promise<JobStats> {
    this.get(name);
    return completed ? { type: "completed", downtimeMs: 42, dataTotal: 1000 } : this.job;
  }
  async abortJob(name: string): Promise<void> {
    this.calls.push("abortJob");
    this.get(name);
    if (!this.migration) throw statusError(400, "BadRequest", "requested operation is not valid: no job is active");
    this.migration.settle(new Error("operation aborted: migration out: canceled by client"));
  }
  async setMaxDowntime(name: string, ms: number): Promise<void> {
    this.get(name);
    this.maxDowntimeMs = ms;
  }
  /** What startPostCopy throws (as QEMU refusing the switch), when set. */
  postCopyError: Error | undefined;
  /** As libvirt: only a running migration that was started with post-copy allowed switches. */
  async startPostCopy(name: string): Promise<void> {
    this.calls.push("startPostCopy");
    this.get(name);
    if (this.postCopyError) throw this.postCopyError;
    if (!this.migration) throw statusError(400, "BadRequest", "requested operation is not valid: no job is active");
    if (!this.migration.opts.postCopy)
      throw statusError(
        400,
        "BadRequest",
        "requested operation is not valid: switching to post-copy requires migration to be started with VIR_MIGRATE_POSTCOPY flag",
      );
    this.job = { ...this.job, type: "unbounded" };
  }
  snapshot(): Promise<void> {
    return Promise.reject(notSupported("Snapshots"));
  }
  async close(): Promise<void> {}
}
