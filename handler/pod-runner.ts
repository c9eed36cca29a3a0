// The embedded pod runner (kubelet's job in embedded mode): runs the launcher pods bound to this node as local
// processes, reports their status, and removes them when they are deleted. Level-triggered: every trigger re-reads
// the pod from the cache and converges; a restarted runner re-attaches to launchers that are still running.
import { rm } from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import { isStatusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { KeyedRunner } from "./keyed.js";
import { classifyPod, computePodStatus, type PodRuntime } from "./launcher-pod.js";
import { type PodNetwork, podNetns } from "./network/index.js";
import { isPaused } from "./phase.js";
import { type ApiClient, type LauncherConnection, type LauncherDialer, refs } from "./ports.js";
import {
  isLauncherAlive,
  killNetns,
  type PodRecord,
  podDirOf,
  readExitRecord,
  readPodRecord,
  spawnLauncher,
  stopLauncher,
} from "./processes.js";
import { type DomainStatus, nowRfc3339, type Pod } from "./types.js";

export interface PodRunnerOptions {
  node: string;
  hostIP: string;
  dataDir: string;
  api: ApiClient;
  /** Returns the node's pod network once the node has a podCIDR (undefined: not yet). */
  network: () => PodNetwork | undefined;
  /** Reads the latest cached pod by uid. */
  getPod: (uid: string) => Pod | undefined;
  dial: LauncherDialer;
  /** The launcher's command line, built here from the VMI uid and pod dir only (never from the pod spec). */
  launcherCommand: (vmiUid: string, podDir: string) => { argv: string[]; env?: NodeJS.ProcessEnv };
  /** Asks a launcher pod to stop gracefully (default: SIGTERM to its first process). */
  terminate?: (pid: number) => void;
  /** How long a started launcher may take to answer Ping. */
  readyTimeoutMs?: number;
  log?: Logger;
  now?: () => string;
  /** Called with the domain state the launcher streams (for VMI sync). */
  onDomain?: (vmiUid: string, podUid: string, d: DomainStatus | undefined) => void;
  /** Called when a launcher connection is established (for VMI sync). */
  onLauncher?: (vmiUid: string, podUid: string) => void;
  /** Reads the domain's final state a launcher left in its pod directory (launcher/'s readTerminationLog). */
  terminationLog?: (podDir: string) => Promise<DomainStatus | undefined>;
  /**
   * Called once a deleted pod's launcher is gone, before the pod is deleted from the API: true once the VMI's final
   * phase is recorded (or none is due). While false, the removal is retried (bounded).
   */
  beforeRemove?: (vmiUid: string, podUid: string) => Promise<boolean>;
}

/** Tries (2 s apart) to have the VMI's final phase recorded before a deleted pod is removed anyway. */
const MAX_REMOVE_ATTEMPTS = 10;

interface Entry {
  record: PodRecord;
  podDir: string;
  conn?: LauncherConnection;
  watch?: { stop(): void };
  answering: boolean;
  domain?: DomainStatus;
  exit?: { exitCode: number; finishedAt: string; reason: string };
  connecting?: Promise<void>;
  /** Deleted pod: removals held back so far, waiting for the VMI's final phase. */
  removeAttempts?: number;
  /** The pod's network links, made while its launcher starts (PodNetwork.setupPodLinks); awaited before connecting. */
  network?: Promise<unknown>;
}

export class PodRunner {
  private readonly o: PodRunnerOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly keyed: KeyedRunner;
  private readonly log: Logger;
  private stopped = false;

  constructor(o: PodRunnerOptions) {
    this.o = o;
    this.log = (o.log ?? nullLogger).child({ component: "pod-runner", node: o.node });
    this.keyed = new KeyedRunner((key, err) => {
      this.log.warn("pod sync failed; retrying", { podUid: key, err });
      const t = setTimeout(() => void this.trigger(key), 2_000);
      t.unref();
    });
  }

  private now(): string {
    return this.o.now ? this.o.now() : nowRfc3339();
  }

  /** Schedule a sync of the pod with this uid (add/update/delete events, timers). */
  trigger(uid: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return this.keyed.trigger(uid, () => this.sync(uid));
  }

  idle(): Promise<void> {
    return this.keyed.idle();
  }

  connection(podUid: string): LauncherConnection | undefined {
    const e = this.entries.get(podUid);
    return e?.answering ? e.conn : undefined;
  }

  domainOf(podUid: string): DomainStatus | undefined {
    return this.entries.get(podUid)?.domain;
  }

  /** The running (or last) launcher pod of a VMI on this node. */
  podForVmi(vmiUid: string): string | undefined {
    let found: string | undefined;
    for (const [uid, e] of this.entries) {
      if (e.record.vmiUid !== vmiUid) continue;
      found = uid;
      if (!e.exit) return uid;
    }
    return found;
  }

  ipOf(podUid: string): string | undefined {
    return this.entries.get(podUid)?.record.ip;
  }

  /** Detach from every launcher without stopping it (handler shutdown: launchers keep running). */
  close(): void {
    this.stopped = true;
    for (const e of this.entries.values()) {
      e.watch?.stop();
      e.conn?.close();
    }
  }

  private async sync(uid: string): Promise<void> {
    const pod = this.o.getPod(uid);
    const podDir = podDirOf(this.o.dataDir, uid);
    if (!pod) {
      // Gone from the API (deleted with grace 0, by us or anyone): make sure nothing of it is left on the node.
      await this.cleanup(uid, podDir, 0);
      return;
    }
    if (pod.spec.nodeName !== this.o.node) return;
    const cls = classifyPod(pod);
    if (pod.metadata.deletionTimestamp) {
      const grace = (pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30) * 1000;
      const entry = await this.stopGracefully(uid, podDir, grace);
      // The VMI's final phase goes to the API before its pod does: with the pod gone and the VMI not final, the VMI
      // controller would take the stop for a pod loss (Failed).
      if (entry && this.o.beforeRemove && !(await this.o.beforeRemove(entry.record.vmiUid, uid))) {
        entry.removeAttempts = (entry.removeAttempts ?? 0) + 1;
        if (entry.removeAttempts < MAX_REMOVE_ATTEMPTS) throw new Error("the VMI's final phase is not recorded yet");
        this.log.warn("removing the pod without the VMI's final phase", { podUid: uid, vmiUid: entry.record.vmiUid });
      }
      await this.o.api
        .delete(refs.pods, pod.metadata.namespace, pod.metadata.name ?? "", {
          gracePeriodSeconds: 0,
          preconditions: { uid },
        })
        .catch((e: unknown) => {
          if (!(isStatusError(e) && (e.code === 404 || e.code === 409))) throw e;
        });
      await this.cleanup(uid, podDir, 0);
      this.log.info("pod deleted", { namespace: pod.metadata.namespace, name: pod.metadata.name, podUid: uid });
      return;
    }
    if (cls.kind === "unsupported") {
      await this.report(pod, { state: "unsupported", message: cls.message });
      return;
    }
    const phase = pod.status?.phase;
    if (phase === "Succeeded" || phase === "Failed") {
      // Terminal: a launcher pod is never restarted. Free its processes and network.
      await this.cleanup(uid, podDir, 0, true);
      return;
    }
    let entry = this.entries.get(uid);
    if (!entry) {
      const record = await readPodRecord(podDir);
      if (record && record.podUid === uid) {
        entry = { record, podDir, answering: false };
        this.entries.set(uid, entry);
        if (!(await isLauncherAlive(record, podDir))) {
          const exit = await readExitRecord(podDir);
          entry.exit = exit
            ? { ...exit, reason: exit.exitCode === 0 ? "Completed" : "Error" }
            : { exitCode: 137, finishedAt: this.now(), reason: "Error" };
        } else {
          this.log.info("re-attaching to running launcher", { podUid: uid, pid: record.pid });
          this.watchLiveness(uid, entry);
        }
      } else if (phase === "Running") {
        // The API says it ran here, but nothing of it is left on this node: it is gone, not to be restarted.
        await this.report(pod, { state: "exited", finishedAt: this.now(), exitCode: 137, reason: "Error" });
        return;
      } else {
        entry = await this.start(pod, cls.vmiUid, podDir);
        if (!entry) return;
      }
    }
    if (entry.exit) {
      const rt: PodRuntime = { state: "exited", ...entry.exit, startedAt: entry.record.startedAt };
      if (entry.record.ip) rt.ip = entry.record.ip;
      await this.report(pod, rt);
      await this.cleanup(uid, podDir, 0, true);
      return;
    }
    if (!entry.network) {
      // Re-attached: an agent killed while the links were being made left them half done; finishing them is
      // idempotent. The node's network comes first (its readiness triggers every pod again).
      const net = this.o.network();
      if (!net) return;
      entry.network = net.setupPodLinks(uid, entry.record.ip, { hostname: vmiName(pod) });
    }
    try {
      await entry.network;
    } catch (e) {
      await this.report(pod, { state: "start-failed", message: `pod network: ${(e as Error).message}` });
      throw e;
    }
    if (!entry.conn) await this.connect(uid, entry, cls.vmiUid);
    const paused = isPaused(entry.domain);
    await this.report(pod, {
      state: "running",
      ip: entry.record.ip,
      startedAt: entry.record.startedAt,
      answering: entry.answering,
      unpaused: !paused,
    });
  }

  private async start(pod: Pod, vmiUid: string, podDir: string): Promise<Entry | undefined> {
    const uid = pod.metadata.uid ?? "";
    const net = this.o.network();
    if (net === undefined) {
      this.log.info("waiting for the node's podCIDR before starting pods", { podUid: uid });
      return undefined;
    }
    // The namespace first, the launcher in it at once, the links meanwhile: the launcher needs them only once QEMU
    // starts (its libvirtd takes longer to come up than the links take to make), so they are off the creation path.
    let att: { netns: string; ip: string };
    try {
      att = await net.setupPodNamespace(uid);
    } catch (e) {
      await this.report(pod, { state: "start-failed", message: `pod network: ${(e as Error).message}` });
      throw e;
    }
    const cmd = this.o.launcherCommand(vmiUid, podDir);
    const spawned = await spawnLauncher(
      podDir,
      {
        podUid: uid,
        vmiUid,
        namespace: pod.metadata.namespace ?? "",
        name: pod.metadata.name ?? "",
        netns: att.netns,
        ip: att.ip,
      },
      cmd.argv,
      cmd.env,
    );
    this.log.info("launcher started", { podUid: uid, vmiUid, pid: spawned.record.pid, ip: att.ip });
    const entry: Entry = { record: spawned.record, podDir, answering: false };
    entry.network = net.setupPodLinks(uid, att.ip, { hostname: vmiName(pod) });
    entry.network.catch(() => {}); // sync awaits it and reports a failure
    this.entries.set(uid, entry);
    void spawned.exited?.then((x) => {
      entry.exit = { exitCode: x.exitCode, finishedAt: x.finishedAt, reason: x.exitCode === 0 ? "Completed" : "Error" };
      entry.answering = false;
      this.log.info("launcher exited", { podUid: uid, exitCode: x.exitCode, signal: x.signal });
      void this.trigger(uid);
    });
    return entry;
  }

  /** For a re-attached launcher (not our child): notice its exit. */
  private watchLiveness(uid: string, entry: Entry): void {
    const timer = setInterval(() => {
      if (this.stopped) return clearInterval(timer);
      isLauncherAlive(entry.record, entry.podDir).then(
        async (alive) => {
          if (alive || entry.exit) return;
          clearInterval(timer);
          const exit = await readExitRecord(entry.podDir);
          entry.exit = exit
            ? { ...exit, reason: exit.exitCode === 0 ? "Completed" : "Error" }
            : { exitCode: 0, finishedAt: this.now(), reason: "Completed" };
          entry.answering = false;
          void this.trigger(uid);
        },
        () => {},
      );
    }, 1_000);
    timer.unref();
  }

  private async connect(uid: string, entry: Entry, vmiUid: string): Promise<void> {
    if (entry.connecting) return entry.connecting;
    entry.connecting = (async () => {
      const deadline = Date.now() + (this.o.readyTimeoutMs ?? 120_000);
      let lastErr: unknown;
      while (!this.stopped && !entry.exit && Date.now() < deadline) {
        try {
          const conn = await this.o.dial(entry.podDir);
          await conn.ping();
          entry.conn = conn;
          entry.answering = true;
          let first = true;
          const w = conn.watch((d) => {
            const wasPaused = isPaused(entry.domain);
            entry.domain = d;
            this.o.onDomain?.(vmiUid, uid, d);
            if (!first && wasPaused !== isPaused(d)) void this.trigger(uid);
            first = false;
          });
          entry.watch = w;
          void w.done.finally(() => {
            // The launcher closed the connection (it exited, or is exiting): reconnect on the next sync if alive.
            if (entry.conn !== conn) return;
            entry.conn = undefined;
            entry.watch = undefined;
            entry.answering = false;
            conn.close();
            if (!this.stopped) void this.trigger(uid);
          });
          this.o.onLauncher?.(vmiUid, uid);
          return;
        } catch (e) {
          lastErr = e;
          // Short: the launcher's socket appears once its libvirtd answers, and Sync waits on this (a failed dial
          // before the socket exists costs one syscall).
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      if (!entry.exit && !this.stopped) throw new Error(`launcher did not answer Ping: ${(lastErr as Error)?.message}`);
    })().finally(() => {
      entry.connecting = undefined;
    });
    return entry.connecting;
  }

  private async report(pod: Pod, rt: PodRuntime): Promise<void> {
    const status = computePodStatus(pod, rt, this.o.hostIP, this.now());
    if (isDeepStrictEqual(status, pod.status)) return;
    try {
      await this.o.api.updateStatus(refs.pods, { ...pod, status });
    } catch (e) {
      // A newer pod is on its way through the cache; its event triggers the next sync.
      if (isStatusError(e) && (e.code === 409 || e.code === 404)) return;
      throw e;
    }
  }

  /**
   * SIGTERM to the launcher, which shuts its guest down (joining the node agent's Shutdown, if that came first) and
   * exits once the domain is off or its grace period ran out; SIGKILL after `graceMs`. The launcher connection stays
   * open meanwhile, so the domain's last events still reach VMI sync; afterwards the domain's final state is the one
   * the launcher left in its termination log (also for a launcher that ended while this agent was down).
   */
  private async stopGracefully(uid: string, podDir: string, graceMs: number): Promise<Entry | undefined> {
    let entry = this.entries.get(uid);
    if (!entry) {
      const record = await readPodRecord(podDir);
      if (!record || record.podUid !== uid) return undefined;
      entry = { record, podDir, answering: false };
      this.entries.set(uid, entry);
    }
    await stopLauncher(entry.record, podDir, graceMs, this.o.terminate);
    const final = await this.o.terminationLog?.(podDir);
    if (final && !isDeepStrictEqual(final, entry.domain)) {
      entry.domain = final;
      this.o.onDomain?.(entry.record.vmiUid, uid, final);
    }
    return entry;
  }

  /** Stops the launcher (if any), kills what is left in the pod's namespace, tears down its network. Idempotent. */
  private async cleanup(uid: string, podDir: string, graceMs: number, keepRecord = false): Promise<void> {
    const entry = this.entries.get(uid);
    await entry?.network?.catch(() => {}); // links still being made: tear down after, not under, them
    entry?.watch?.stop();
    entry?.conn?.close();
    if (entry) {
      entry.conn = undefined;
      entry.answering = false;
    }
    const record = entry?.record ?? (await readPodRecord(podDir));
    if (record) await stopLauncher(record, podDir, graceMs, this.o.terminate);
    const net = this.o.network();
    if (net) {
      await killNetns(podNetns(uid));
      await net.teardownPod(uid);
    }
    if (!keepRecord) {
      this.entries.delete(uid);
      await rm(podDir, { recursive: true, force: true });
    }
  }

  /** Pods with state on this node (for garbage collection of pods the API no longer has). */
  knownPods(): string[] {
    return [...this.entries.keys()];
  }
}

function vmiName(pod: Pod): string | undefined {
  const n = pod.metadata.ownerReferences?.find((o) => o.kind === "VirtualMachineInstance")?.name;
  return n && /^[a-z0-9.-]{1,63}$/.test(n) ? n : undefined;
}
