// The embedded pod runner (kubelet's job in embedded mode): runs the pods bound to this node whose shape tsvirt
// renders itself (pod-shapes.ts) as local processes, reports their status, and removes them when they are deleted.
// It talks to no launcher beyond its readiness probe: VMI sync dials the launchers itself. Level-triggered: every
// trigger re-reads the pod from the cache and converges; a restarted runner re-attaches to processes still running.
import { readFile, rm } from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import { nowRfc3339 } from "../api/index.js";
import { isStatusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { KeyedRunner } from "./keyed.js";
import { computePodStatus, type PodRuntime } from "./launcher-pod.js";
import { type PodNetwork, podNetns } from "./network/index.js";
import { type PodCommand, type PodShape, shapeOf, terminationMessage } from "./pod-shapes.js";
import { type ApiClient, type Pod, refs } from "./ports.js";
import {
  isLauncherAlive,
  killNetns,
  type PodRecord,
  podDirOf,
  readExitRecord,
  readPodRecord,
  spawnLauncher,
  stopLauncher,
  unwatchedExit,
} from "./processes.js";

export interface PodRunnerOptions {
  node: string;
  hostIP: string;
  dataDir: string;
  api: ApiClient;
  /** Returns the node's pod network once the node has a podCIDR (undefined: not yet). */
  network: () => PodNetwork | undefined;
  /** Reads the latest cached pod by uid. */
  getPod: (uid: string) => Pod | undefined;
  /** The pod shapes it runs (pod-shapes.ts podShapes): anything else is refused. */
  shapes: readonly PodShape[];
  /** Asks a pod to stop gracefully (default: SIGTERM to its first process). */
  terminate?: (pid: number) => void;
  /** Readiness probe interval while a started pod has not been ready yet (start-up: fast, it is on the creation path). */
  probeIntervalMs?: number;
  /** Readiness probe period once the pod was ready (kubelet's periodSeconds, default 10 s). */
  readinessPeriodMs?: number;
  /** Failed probes in a row that make a ready pod NotReady (kubelet's failureThreshold, default 3). */
  readinessFailureThreshold?: number;
  log?: Logger;
  now?: () => string;
}

/** Tries (2 s apart) to have the owner's end recorded before a deleted pod is removed anyway. */
const MAX_REMOVE_ATTEMPTS = 10;

interface Entry {
  record: PodRecord;
  podDir: string;
  /**
   * Readiness, as kubelet's readiness probe: probed every probeIntervalMs until it first succeeds, then every
   * readinessPeriodMs; NotReady after readinessFailureThreshold failures in a row, ready again at the next success.
   */
  ready: boolean;
  /** Was ready once: the periodic probe runs. */
  started?: boolean;
  /** Periodic probes failed in a row. */
  failures?: number;
  /** Process gone or pod cleaned up: no more probes. */
  done?: boolean;
  probeTimer?: NodeJS.Timeout;
  exit?: { exitCode: number; finishedAt: string; reason: string };
  /** Deleted pod: removals held back so far, waiting for the owner's end to be recorded. */
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

  /** Stop without stopping any pod (handler shutdown: launchers keep running). */
  close(): void {
    this.stopped = true;
    for (const e of this.entries.values()) if (e.probeTimer) clearTimeout(e.probeTimer);
  }

  private async sync(uid: string): Promise<void> {
    const pod = this.o.getPod(uid);
    const podDir = podDirOf(this.o.dataDir, uid);
    if (!pod) {
      // Gone from the API (deleted with grace 0, by us or anyone): make sure nothing of it is left on the node.
      await this.cleanup(uid, podDir, 0);
      return;
    }
    if (pod.spec?.nodeName !== this.o.node) return;
    const cls = shapeOf(this.o.shapes, pod);
    if (pod.metadata?.deletionTimestamp) {
      const grace = (pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000;
      const entry = await this.stopGracefully(uid, podDir, grace);
      if (entry && cls.shape) {
        // As kubelet: the terminated status (with the termination message) goes to the API before the pod goes.
        const rt = await this.exited(entry, cls.shape);
        await this.report(pod, rt);
        if (cls.shape.beforeRemove && !(await cls.shape.beforeRemove(pod, cls.ownerUid, rt.message))) {
          entry.removeAttempts = (entry.removeAttempts ?? 0) + 1;
          if (entry.removeAttempts < MAX_REMOVE_ATTEMPTS) throw new Error("the owner's end is not recorded yet");
          this.log.warn("removing the pod without its owner's end recorded", { podUid: uid, owner: cls.ownerUid });
        }
      }
      await this.o.api
        .delete(refs.pods, pod.metadata?.namespace, pod.metadata?.name ?? "", {
          gracePeriodSeconds: 0,
          preconditions: { uid },
        })
        .catch((e: unknown) => {
          if (!(isStatusError(e) && (e.code === 404 || e.code === 409))) throw e;
        });
      await this.cleanup(uid, podDir, 0);
      this.log.info("pod deleted", { namespace: pod.metadata?.namespace, name: pod.metadata?.name, podUid: uid });
      return;
    }
    if (!cls.shape) {
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
        entry = { record, podDir, ready: false };
        this.entries.set(uid, entry);
        if (!(await isLauncherAlive(record, podDir))) {
          const exit = await readExitRecord(podDir);
          const words = exit ? "" : await readFile(cls.shape.terminationMessagePath(podDir), "utf8").catch(() => "");
          entry.exit = exit
            ? { ...exit, reason: exit.exitCode === 0 ? "Completed" : "Error" }
            : unwatchedExit(words, this.now());
        } else {
          this.log.info("re-attaching to running launcher", { podUid: uid, pid: record.pid });
          this.watchLiveness(uid, entry);
        }
      } else if (phase === "Running") {
        // The API says it ran here, but nothing of it is left on this node: it is gone, not to be restarted.
        await this.report(pod, { state: "exited", finishedAt: this.now(), exitCode: 137, reason: "Error" });
        return;
      } else {
        entry = await this.start(pod, cls.shape, cls.ownerUid, podDir);
        if (!entry) return;
      }
    }
    if (entry.exit) {
      await this.report(pod, await this.exited(entry, cls.shape));
      await this.cleanup(uid, podDir, 0, true);
      return;
    }
    if (!entry.network) {
      // Re-attached: an agent killed while the links were being made left them half done; finishing them is
      // idempotent. The node's network comes first (its readiness triggers every pod again).
      const net = this.o.network();
      if (!net) return;
      entry.network = net.setupPodLinks(uid, entry.record.ip, linkOptions(pod, cls.shape, entry.record.isolated));
    }
    try {
      // Running (and so VMI sync's dial and Sync) only once the links exist: QEMU opens the tap.
      await entry.network;
    } catch (e) {
      await this.report(pod, { state: "start-failed", message: `pod network: ${(e as Error).message}` });
      throw e;
    }
    if (!entry.started) {
      entry.ready = await cls.shape.ready(cls.ownerUid, entry.podDir).catch(() => false);
      if (entry.ready) {
        entry.started = true;
        this.probePeriodically(uid, entry, cls.shape, cls.ownerUid);
      } else if (!entry.probeTimer && !this.stopped) {
        entry.probeTimer = setTimeout(() => {
          entry.probeTimer = undefined;
          void this.trigger(uid);
        }, this.o.probeIntervalMs ?? 20);
        entry.probeTimer.unref();
      }
    }
    // The unpaused readiness gate is virt-controller's; a first report seeds it True (a pod starts unpaused).
    await this.report(pod, {
      state: "running",
      ip: entry.record.ip,
      startedAt: entry.record.startedAt,
      answering: entry.ready,
      unpaused: true,
    });
  }

  /** kubelet's periodic readiness probe of a pod that was ready once; a change of readiness syncs the pod. */
  private probePeriodically(uid: string, entry: Entry, shape: PodShape, ownerUid: string): void {
    if (entry.probeTimer || entry.done || this.stopped) return;
    entry.probeTimer = setTimeout(async () => {
      entry.probeTimer = undefined;
      if (entry.done || entry.exit || this.stopped) return;
      const ok = await shape.ready(ownerUid, entry.podDir).catch(() => false);
      if (entry.done || entry.exit || this.stopped) return;
      entry.failures = ok ? 0 : (entry.failures ?? 0) + 1;
      const ready = ok || (entry.ready && entry.failures < (this.o.readinessFailureThreshold ?? 3));
      if (ready !== entry.ready) {
        entry.ready = ready;
        this.log.info(ready ? "pod ready again" : "pod not ready: readiness probe failed", {
          podUid: uid,
          failures: entry.failures,
        });
        void this.trigger(uid);
      }
      this.probePeriodically(uid, entry, shape, ownerUid);
    }, this.o.readinessPeriodMs ?? 10_000);
    entry.probeTimer.unref();
  }

  /** The terminated state of a pod whose process ended, with its termination message. */
  private async exited(entry: Entry, shape: PodShape): Promise<PodRuntime & { state: "exited" }> {
    const exit = entry.exit ??
      (await readExitRecord(entry.podDir).then((x) =>
        x ? { ...x, reason: x.exitCode === 0 ? "Completed" : "Error" } : undefined,
      )) ?? { exitCode: 0, finishedAt: this.now(), reason: "Completed" };
    const rt: PodRuntime & { state: "exited" } = {
      state: "exited",
      exitCode: exit.exitCode,
      finishedAt: exit.finishedAt,
      reason: exit.reason,
      startedAt: entry.record.startedAt,
    };
    if (entry.record.ip) rt.ip = entry.record.ip;
    const message = await terminationMessage(shape, entry.podDir, exit.exitCode);
    if (message) rt.message = message;
    return rt;
  }

  private async start(pod: Pod, shape: PodShape, vmiUid: string, podDir: string): Promise<Entry | undefined> {
    const uid = pod.metadata?.uid ?? "";
    const net = this.o.network();
    if (net === undefined) {
      this.log.info("waiting for the node's podCIDR before starting pods", { podUid: uid });
      return undefined;
    }
    // The namespace first, the launcher in it at once, the links meanwhile: the launcher needs them only once QEMU
    // starts (its libvirtd takes longer to come up than the links take to make), so they are off the creation path.
    // The command (a worker's job from the API) is resolved while the namespace is made: neither needs the other.
    const command = (async () => shape.command(vmiUid, podDir, pod))();
    command.catch(() => {}); // (awaited below once the namespace is there)
    let att: { netns: string; ip: string };
    try {
      att = await net.setupPodNamespace(uid);
    } catch (e) {
      await command.catch(() => {});
      await this.report(pod, { state: "start-failed", message: `pod network: ${(e as Error).message}` });
      throw e;
    }
    let cmd: PodCommand;
    try {
      cmd = await command;
    } catch (e) {
      // Failed for good (StartError, as kubelet's): its owner decides whether to make another.
      await net.teardownPod(uid).catch(() => {});
      await this.report(pod, { state: "start-failed", message: (e as Error).message });
      return undefined;
    }
    // A start a killed agent began may have left its process here (spawned, pod.json not yet written): the namespace
    // is this pod's alone, so whatever runs in it now is that leftover, which nobody owns; gone before the pod's
    // process starts, or the pod would run twice (two workers writing one volume).
    await killNetns(att.netns);
    const spawned = await spawnLauncher(
      podDir,
      {
        podUid: uid,
        vmiUid,
        namespace: pod.metadata?.namespace ?? "",
        name: pod.metadata?.name ?? "",
        netns: att.netns,
        ip: att.ip,
        ...(cmd.isolatedNetwork ? { isolated: true } : {}),
      },
      cmd.argv,
      cmd.env,
      cmd.channel,
    );
    this.log.info("pod started", {
      podUid: uid,
      shape: shape.name,
      owner: vmiUid,
      pid: spawned.record.pid,
      ip: att.ip,
    });
    const entry: Entry = { record: spawned.record, podDir, ready: false };
    entry.network = net.setupPodLinks(uid, att.ip, linkOptions(pod, shape, cmd.isolatedNetwork));
    entry.network.catch(() => {}); // sync awaits it and reports a failure
    this.entries.set(uid, entry);
    void spawned.exited?.then((x) => {
      entry.exit = { exitCode: x.exitCode, finishedAt: x.finishedAt, reason: x.exitCode === 0 ? "Completed" : "Error" };
      entry.ready = false;
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
          entry.ready = false;
          void this.trigger(uid);
        },
        () => {},
      );
    }, 1_000);
    timer.unref();
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
   * SIGTERM to the pod's process (a launcher shuts its guest down and exits once the domain is off or its grace period
   * ran out); SIGKILL after `graceMs`. What it left in its termination message is reported afterwards (also for a
   * process that ended while this agent was down).
   */
  private async stopGracefully(uid: string, podDir: string, graceMs: number): Promise<Entry | undefined> {
    let entry = this.entries.get(uid);
    if (!entry) {
      const record = await readPodRecord(podDir);
      if (!record || record.podUid !== uid) return undefined;
      entry = { record, podDir, ready: false };
      this.entries.set(uid, entry);
    }
    await stopLauncher(entry.record, podDir, graceMs, this.o.terminate);
    return entry;
  }

  /** Stops the launcher (if any), kills what is left in the pod's namespace, tears down its network. Idempotent. */
  private async cleanup(uid: string, podDir: string, graceMs: number, keepRecord = false): Promise<void> {
    const entry = this.entries.get(uid);
    await entry?.network?.catch(() => {}); // links still being made: tear down after, not under, them
    if (entry?.probeTimer) clearTimeout(entry.probeTimer);
    if (entry) {
      entry.ready = false;
      entry.done = true;
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

/** The links a pod gets (pure): none when isolated, its IP alone when plain, else the VM binding too. */
export function linkOptions(
  pod: Pod,
  shape: PodShape,
  isolated?: boolean,
): { hostname?: string; plain?: boolean; isolated?: boolean } {
  if (isolated || shape.isolatedNetwork) return { isolated: true };
  if (shape.plainNetwork) return { plain: true };
  const hostname = vmiName(pod);
  return hostname ? { hostname } : {};
}

function vmiName(pod: Pod): string | undefined {
  const n = pod.metadata?.ownerReferences?.find((o) => o.kind === "VirtualMachineInstance")?.name;
  return n && /^[a-z0-9.-]{1,63}$/.test(n) ? n : undefined;
}
