// Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics: a candidate takes the Lease when it
// is free or expired (as observed on the local clock, never the holder's), the holder renews it every retry period,
// and a holder that cannot renew within the renew deadline stops leading. Writes carry the Lease's resourceVersion, so
// two candidates racing for an expired Lease cannot both win. A candidate whose identity already holds the Lease (a
// restarted controller with the same data dir) renews it at once instead of waiting for it to expire.
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import type { Client, Lease } from "../../client/index.js";
import { resources } from "../../client/index.js";
import { isAlreadyExists, isConflict, isNotFound } from "../../lib/errors.js";
import type { Logger } from "../../lib/log.js";

export interface LeaderConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const LEADER_DEFAULTS = {
  namespace: "kubevirt",
  name: "virt-controller",
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
} as const;

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** What the local clock saw of the Lease: its spec, and when that spec last changed. */
export interface Observation {
  spec: string;
  at: number;
}

export type Decision =
  | { kind: "create"; lease: Lease }
  | { kind: "update"; lease: Lease }
  /** Held by someone else whose Lease has not expired on our clock. */
  | { kind: "wait"; holder: string };

/**
 * The one step of client-go's tryAcquireOrRenew, pure: given the current Lease (undefined when absent), what we
 * observed of it, and now, decide to create, update (acquire or renew) or wait.
 */
export function decide(
  cfg: Pick<LeaderConfig, "namespace" | "name" | "identity" | "leaseDurationMs">,
  current: Lease | undefined,
  observed: Observation | undefined,
  now: Date,
): Decision {
  const durationSeconds = Math.max(1, Math.round(cfg.leaseDurationMs / 1000));
  const t = microTime(now);
  if (!current) {
    return {
      kind: "create",
      lease: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: cfg.name, namespace: cfg.namespace },
        spec: {
          holderIdentity: cfg.identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: t,
          renewTime: t,
          leaseTransitions: 0,
        },
      },
    };
  }
  const s = current.spec ?? {};
  const holder = s.holderIdentity ?? "";
  const mine = holder === cfg.identity;
  if (!mine && holder !== "") {
    const seenAt = observed && observed.spec === JSON.stringify(s) ? observed.at : now.getTime();
    const duration = (s.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (seenAt + duration > now.getTime()) return { kind: "wait", holder };
  }
  return {
    kind: "update",
    lease: {
      ...current,
      spec: {
        ...s,
        holderIdentity: cfg.identity,
        leaseDurationSeconds: durationSeconds,
        acquireTime: mine ? (s.acquireTime ?? t) : t,
        renewTime: t,
        leaseTransitions: mine ? (s.leaseTransitions ?? 0) : (s.leaseTransitions ?? 0) + 1,
      },
    },
  };
}

/**
 * The identity kept in a file: read it, or create a random one. A restarted process with the same file is the same
 * candidate and so retakes its own Lease without waiting for it to expire.
 */
export function loadIdentity(file: string): string {
  try {
    const id = readFileSync(file, "utf8").trim();
    if (id) return id;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const id = `${hostname()}_${randomBytes(8).toString("hex")}`;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}

export interface ElectorHooks {
  onStartedLeading: () => void | Promise<void>;
  /** Called once when a leader loses the Lease (or cannot renew it within the renew deadline). */
  onStoppedLeading: () => void | Promise<void>;
  onNewLeader?: (identity: string) => void;
}

/** The shell: polls the Lease every retry period and applies decide(). */
export class LeaderElector {
  private observed: Observation | undefined;
  private leading = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastHolder = "";

  constructor(
    private readonly client: Client,
    private readonly cfg: LeaderConfig,
    private readonly hooks: ElectorHooks,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** One attempt to acquire or renew; returns whether we hold the Lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    let current: Lease | undefined;
    try {
      current = await this.client.get<Lease>(resources.leases, this.cfg.namespace, this.cfg.name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (current) {
      const spec = JSON.stringify(current.spec ?? {});
      if (this.observed?.spec !== spec) this.observed = { spec, at: now.getTime() };
      const holder = current.spec?.holderIdentity ?? "";
      if (holder !== this.lastHolder) {
        this.lastHolder = holder;
        if (holder) this.hooks.onNewLeader?.(holder);
      }
    }
    const d = decide(this.cfg, current, this.observed, now);
    if (d.kind === "wait") return false;
    try {
      const written =
        d.kind === "create"
          ? await this.client.create<Lease>(resources.leases, this.cfg.namespace, d.lease)
          : await this.client.update<Lease>(resources.leases, d.lease);
      this.observed = { spec: JSON.stringify(written.spec ?? {}), at: now.getTime() };
      if (this.lastHolder !== this.cfg.identity) {
        this.lastHolder = this.cfg.identity;
        this.hooks.onNewLeader?.(this.cfg.identity);
      }
      return true;
    } catch (e) {
      // Someone else wrote first: the optimistic concurrency on resourceVersion decided.
      if (isConflict(e) || isAlreadyExists(e)) return false;
      throw e;
    }
  }

  /** Runs until stop(): acquire, lead, renew; on a missed renew deadline, report the loss and stop. */
  start(): void {
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        this.log.warn("leader election: lease request failed", { err: String(err) });
      }
      if (this.stopped) return;
      const t = this.now().getTime();
      if (ok) {
        this.lastRenew = t;
        if (!this.leading) {
          this.leading = true;
          this.log.info("leader election: became leader", { identity: this.cfg.identity, lease: this.cfg.name });
          await this.hooks.onStartedLeading();
        }
      } else if (
        this.leading &&
        (t - this.lastRenew >= this.cfg.renewDeadlineMs || this.lastHolder !== this.cfg.identity)
      ) {
        this.leading = false;
        this.stopped = true;
        this.log.warn("leader election: lost the lease", { identity: this.cfg.identity, holder: this.lastHolder });
        await this.hooks.onStoppedLeading();
        return;
      }
      if (!this.stopped) this.timer = setTimeout(() => void tick(), this.cfg.retryPeriodMs);
    };
    void tick();
  }

  /** Stops campaigning. A leader gives the Lease up (holderIdentity cleared) so a successor need not wait. */
  async stop(release = true): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!release || !this.leading) return;
    this.leading = false;
    try {
      const cur = await this.client.get<Lease>(resources.leases, this.cfg.namespace, this.cfg.name);
      if (cur.spec?.holderIdentity !== this.cfg.identity) return;
      await this.client.update<Lease>(resources.leases, {
        ...cur,
        spec: { ...cur.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(this.now()) },
      });
    } catch (err) {
      this.log.warn("leader election: release failed", { err: String(err) });
    }
  }
}
