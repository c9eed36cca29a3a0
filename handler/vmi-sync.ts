// VMI sync (KubeVirt's virt-handler VM controller): for each VMI scheduled to this node it owns the client of the
// VMI's launcher, dialled at the node's well-known socket (<node dir>/sockets/<vmi uid>_sock), one per VMI and
// re-dialled when the connection drops (a launcher or an agent restart); it pulls the containerDisks, sends the VMI
// (Sync), follows the domain, and writes the VMI's status from Running on, only when it changes. It needs only the
// launcher pod from the API and the socket, so a launcher started by the embedded pod runner and one started by a
// kubelet are driven alike. On VMI deletion the launcher shuts the guest down within terminationGracePeriodSeconds.
// Level-triggered on lib/workqueue (key namespace/name); errors requeue with back-off; a failure reaches the VMI's
// Synchronized condition (SyncFailed) and a SyncFailed event.
import { readFile, rm, stat } from "node:fs/promises";
import { basename } from "node:path";
import { formatBytes, nowRfc3339, type VmiPhase } from "../api/index.js";
import { type DomainStatus, parseTerminationLog } from "../launcher/index.js";
import { isStatusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { processNextItem, WorkQueue } from "../lib/workqueue/index.js";
import { MASQ_TAP } from "./network/index.js";
import { isFinal } from "./phase.js";
import type {
  ApiClient,
  EventRecorder,
  ImagePuller,
  LauncherConnection,
  LauncherDialer,
  Pod,
  PreparedVmi,
  VirtualMachineInstance,
} from "./ports.js";
import { refs } from "./ports.js";
import { type NodePreparation, prepareNode, volumeBytes } from "./prepare.js";
import { computeVmiStatus, type PullTrouble, podInterfaceName, type VmiObservation } from "./vmi-status.js";

/** Domain state → VMI phase (handler/phase.ts's vmiPhaseFor; injectable for tests). */
export type PhaseMapper = (domain: DomainStatus | undefined, vmi: VirtualMachineInstance) => VmiPhase | undefined;

export const SYNC_FAILED = "SyncFailed";

export interface VmiSyncOptions {
  node: string;
  api: ApiClient;
  dial: LauncherDialer;
  /** The launcher's command socket of a VMI uid (launcher/'s commandSocketPath on this node's data dir). */
  socketPath: (vmiUid: string) => string;
  puller: ImagePuller;
  /** hostDisk is allowed only below this directory (tsvirt handler --host-disk-root); absent: refused. */
  hostDiskRoot?: string;
  /** The node's data dir: claims' volumes are found below it (absent: claims are refused). */
  dataDir?: string;
  /** The VMI of a namespace/name key, from this node's cache. */
  getVmi: (key: string) => VirtualMachineInstance | undefined;
  /** The VMI's launcher pods bound to this node, from the cache. */
  podsOf: (vmiUid: string) => Pod[];
  mapPhase: PhaseMapper;
  recorder?: EventRecorder;
  /** Image pull back-off: first delay and cap (kubelet: 10 s, 300 s). */
  backoffMs?: { initial: number; max: number };
  /** Back-off of a Sync the launcher refused (first delay, cap). */
  syncBackoffMs?: { initial: number; max: number };
  /** How long a running launcher pod may leave its socket unanswered before that is a failure. */
  dialTimeoutMs?: number;
  /** A prepared volume's size as the node has it (tests fake it; default: the file's size, or the block device's). */
  volumeBytes?: (path: string, block: boolean) => Promise<number>;
  /** The same event (reason and message) is not posted again within this long. */
  eventIntervalMs?: number;
  workers?: number;
  log?: Logger;
  now?: () => string;
}

interface PullState {
  failures: number;
  message: string;
  retryAt: number;
  inBackoff: boolean;
}

interface Attached {
  conn: LauncherConnection;
  stop(): void;
}

interface VmiState {
  uid: string;
  launcher?: Attached;
  /** Since when a running launcher pod's socket has not answered. */
  dialFailingSince?: number;
  synced?: boolean;
  shutdownSent?: boolean;
  /** The domain as the launcher last reported it (or left it in its termination message). */
  domain?: DomainStatus;
  pull?: PullState;
  prepared?: NodePreparation;
  /** The launcher, preparation or Sync failure the VMI shows (Synchronized=False, SyncFailed). */
  failure?: string;
  syncFailures?: number;
  lastEvent?: { key: string; at: number };
  /** Claim disk path → the size the launcher last confirmed the guest sees (memory only: a restart compares anew). */
  diskBytes?: Map<string, number>;
}

type Result = { requeueAfterMs?: number } | undefined;

/** What the launcher gets from the node's preparation (with the pod network's tap): a start's and a migration's. */
export function launcherPrepared(vmi: VirtualMachineInstance, prep: NodePreparation): PreparedVmi {
  return { ...prep.prepared, taps: { [podInterfaceName(vmi)]: MASQ_TAP } };
}

/** The launcher pod that speaks for the VMI: the newest live one, else the newest. */
export function launcherPodOf(pods: readonly Pod[]): Pod | undefined {
  const sorted = [...pods].sort((a, b) =>
    (b.metadata.creationTimestamp ?? "").localeCompare(a.metadata.creationTimestamp ?? ""),
  );
  return sorted.find((p) => !p.metadata.deletionTimestamp) ?? sorted[0];
}

/** The compute container's termination, as the pod's status reports it. */
export function terminated(pod: Pod | undefined) {
  const cs = pod?.status?.containerStatuses ?? [];
  return (cs.find((c) => c.name === "compute") ?? cs[0])?.state?.terminated;
}

/** Why a launcher pod failed, in one line (undefined: it did not fail). */
export function launcherFailure(pod: Pod | undefined): string | undefined {
  if (pod?.status?.phase !== "Failed") return undefined;
  const t = terminated(pod);
  const why = (t?.message && !parseTerminationLog(t.message) ? t.message : pod.status.message)?.trim();
  const code = t ? `exit code ${t.exitCode}` : (pod.status.reason ?? "failed");
  return `virt-launcher pod ${pod.metadata.name} failed (${code})${why ? `: ${lastLines(why, 6)}` : ""}`;
}

function lastLines(text: string, n: number): string {
  return text.split("\n").filter(Boolean).slice(-n).join("\n");
}

export class VmiSync {
  private readonly o: VmiSyncOptions;
  readonly queue = new WorkQueue<string>();
  private readonly state = new Map<string, VmiState>();
  private readonly log: Logger;
  private closed = false;

  constructor(o: VmiSyncOptions) {
    this.o = o;
    this.log = (o.log ?? nullLogger).child({ component: "vmi-sync", node: o.node });
  }

  /** Runs the workers until close(). */
  start(): void {
    for (let i = 0; i < (this.o.workers ?? 2); i++) void this.worker();
  }

  private async worker(): Promise<void> {
    while (
      await processNextItem(
        this.queue,
        (key) => this.reconcile(key),
        (key, err) => this.log.warn("VMI sync failed; requeued with back-off", { key, err }),
      )
    ) {
      /* next */
    }
  }

  enqueue(key: string): void {
    if (!this.closed) this.queue.add(key);
  }

  /** Detach from every launcher (handler shutdown: launchers keep running). */
  close(): void {
    this.closed = true;
    this.queue.shutdown();
    for (const s of this.state.values()) s.launcher?.stop();
  }

  /** The answering launcher of a VMI (for virt-api's subresources forwarded to the agent). */
  connection(key: string): LauncherConnection | undefined {
    return this.state.get(key)?.launcher?.conn;
  }

  private now(): string {
    return this.o.now ? this.o.now() : nowRfc3339();
  }

  /** One level-triggered round for a namespace/name key. Public so tests can step it. */
  async reconcile(key: string): Promise<Result> {
    const vmi = this.o.getVmi(key);
    let s = this.state.get(key);
    if (s && vmi && s.uid !== vmi.metadata.uid) {
      // A new VMI of the same name: the old one's launcher is its pod's business now.
      await this.forget(key, s, false);
      s = undefined;
    }
    if (!vmi) {
      if (!s) return undefined;
      const where = await this.vmiWhere(key, s.uid);
      // Not in this node's cache, yet in the API (its cache lags, or it is no longer this node's): nothing to do.
      if (where === "here" && s.launcher) return undefined;
      // Migrated away: the domain is on the target now; nothing to shut down, nobody dials this launcher again.
      if (where === "gone" && s.launcher && !s.shutdownSent) await this.shutdown(s, 30);
      await this.forget(key, s, where !== "here");
      return undefined;
    }
    const uid = vmi.metadata.uid ?? "";
    if (!s) {
      s = { uid };
      this.state.set(key, s);
    }
    if (vmi.status?.nodeName && vmi.status.nodeName !== this.o.node) return undefined;
    // Migrated away (handler/migration/): the domain left by migration, not by failing; the target writes the status
    // from the handover on, so nothing this node sees now (its domain Shutoff/Migrated, its pod ending) is written.
    const mig = vmi.status?.migrationState;
    if (mig?.completed && mig.sourceNode === this.o.node && mig.targetNode !== this.o.node) return undefined;
    const pod = launcherPodOf(this.o.podsOf(uid));
    const phase = vmi.status?.phase ?? "";
    const podFailure = launcherFailure(pod);
    if (podFailure) this.fail(s, vmi, podFailure);
    if (isFinal(phase)) {
      s.launcher?.stop();
      delete s.launcher;
      await this.o.puller.release(uid).catch(() => {});
      return this.recordFailureOnFinal(vmi, s);
    }
    if (phase !== "Scheduled" && phase !== "Running") return undefined;

    let requeueAfterMs: number | undefined;
    const dial = await this.attach(key, s, pod);
    if (dial.retryMs !== undefined) requeueAfterMs = dial.retryMs;
    // A launcher that ended while this agent was away left the domain's end in its termination message.
    const ended = !s.launcher ? parseTerminationLog(terminated(pod)?.message ?? "") : undefined;
    if (ended) s.domain = ended;

    if (vmi.metadata.deletionTimestamp && s.launcher && !s.shutdownSent) {
      await this.shutdown(s, vmi.spec.terminationGracePeriodSeconds ?? 30);
    }
    let pull: PullTrouble | undefined;
    if (s.launcher && !vmi.metadata.deletionTimestamp && !s.synced) {
      const images = await this.prepareVolumes(key, vmi, s);
      if (images.ok) {
        const prepared = launcherPrepared(vmi, images.prep);
        try {
          await s.launcher.conn.sync(vmi, prepared);
          s.synced = true;
          delete s.syncFailures;
          if (!podFailure) delete s.failure;
          this.log.info("sent to launcher", { vmiUid: uid });
        } catch (e) {
          s.syncFailures = (s.syncFailures ?? 0) + 1;
          this.fail(s, vmi, `the launcher refused the VMI: ${(e as Error).message}`);
          const b = this.o.syncBackoffMs ?? { initial: 1_000, max: 60_000 };
          requeueAfterMs = Math.min(b.max, b.initial * 2 ** (s.syncFailures - 1));
        }
      } else {
        if (images.trouble) pull = images.trouble;
        requeueAfterMs = images.retryMs;
      }
    }
    if (s.launcher && s.synced && s.prepared && !vmi.metadata.deletionTimestamp) {
      const retry = await this.growDisks(vmi, s);
      if (retry !== undefined) requeueAfterMs = Math.min(requeueAfterMs ?? retry, retry);
    }
    await this.writeStatus(vmi, s, pod, pull);
    return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
  }

  /**
   * Online expansion (level-triggered): the claims' volumes as the node has them now, against what the guest was
   * last seen with; any difference sends them all to the launcher, which compares with the domain's own block sizes
   * and grows what is smaller. After an agent restart nothing is remembered, so the first round always asks.
   * Returns a retry delay when the launcher could not do it.
   */
  private async growDisks(vmi: VirtualMachineInstance, s: VmiState): Promise<number | undefined> {
    if (s.domain?.state !== "Running" && s.domain?.state !== "Paused") return undefined;
    const prepared = s.prepared?.prepared;
    const block = new Set(prepared?.blockVolumes ?? []);
    const sizeOf = this.o.volumeBytes ?? volumeBytes;
    const disks: { path: string; bytes: number }[] = [];
    const volumeOf = new Map<string, string>();
    for (const v of vmi.spec.volumes ?? []) {
      const path = prepared?.volumePaths?.[v.name];
      if (!path || !(v.persistentVolumeClaim || v.dataVolume)) continue;
      const bytes = await sizeOf(path, block.has(v.name)).catch(() => undefined);
      if (bytes === undefined) continue;
      disks.push({ path, bytes });
      volumeOf.set(path, v.name);
    }
    if (disks.length === 0 || disks.every((d) => s.diskBytes?.get(d.path) === d.bytes)) return undefined;
    try {
      const grown = await s.launcher?.conn.resizeDisks(disks);
      s.diskBytes = new Map(disks.map((d) => [d.path, d.bytes]));
      if (grown?.length) {
        this.log.info("guest disks grown", { vmiUid: s.uid, paths: grown });
        this.o.recorder?.event(
          { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", metadata: vmi.metadata },
          "Normal",
          "VolumeResized",
          // the user's words (volume names and sizes), not the node's paths (those are in the log line)
          `grew the guest's disks to their volumes' new sizes: ${grown
            .map(
              (p) => `${volumeOf.get(p) ?? basename(p)} to ${formatBytes(disks.find((d) => d.path === p)?.bytes ?? 0)}`,
            )
            .join(", ")}`,
        );
      }
      return undefined;
    } catch (e) {
      this.log.warn("growing the guest's disks failed; retrying", { vmiUid: s.uid, err: (e as Error).message });
      return 5_000;
    }
  }

  private async writeStatus(
    vmi: VirtualMachineInstance,
    s: VmiState,
    pod: Pod | undefined,
    pull: PullTrouble | undefined,
  ): Promise<void> {
    const domain = s.domain;
    // A Running VMI this agent has not heard from its launcher about yet (the agent just restarted and is
    // re-attaching): nothing new is known, so nothing is written — Ready must not flip. A launcher that is really
    // gone ends its pod, and the VMI controller fails the VMI.
    if (!domain && vmi.status?.phase === "Running" && !vmi.metadata.deletionTimestamp) return;
    const podReady = pod?.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
    const obs: VmiObservation = { nodeName: this.o.node, podReady, now: this.now() };
    if (pod?.status?.podIP) obs.podIP = pod.status.podIP;
    if (domain) obs.domain = domain;
    const mapped = this.o.mapPhase(domain, vmi);
    if (mapped) obs.phase = mapped;
    if (pull) obs.pull = pull;
    if (s.failure) obs.syncError = s.failure;
    if (s.prepared) obs.containerDiskDigests = s.prepared.digests;
    const status = computeVmiStatus(vmi, obs);
    if (!status) return;
    const final = isFinal(status.phase ?? "");
    try {
      await this.o.api.update(refs.vmis, { ...vmi, status });
    } catch (e) {
      if (!isStatusError(e) || (e.code !== 409 && e.code !== 404)) throw e;
      // A newer VMI is on its way through the informer and its event triggers the next round; but a final phase
      // must be recorded before the pod goes (its removal waits for it), so that one is retried on the latest VMI.
      if (final && e.code === 409) await this.writeFinal(vmi, obs, s.uid);
    }
  }

  private async writeFinal(vmi: VirtualMachineInstance, obs: VmiObservation, uid: string): Promise<void> {
    try {
      const cur = await this.o.api.get<VirtualMachineInstance>(
        refs.vmis,
        vmi.metadata.namespace,
        vmi.metadata.name ?? "",
      );
      if (cur.metadata.uid !== uid) return;
      const status = computeVmiStatus(cur, obs);
      if (status) await this.o.api.update(refs.vmis, { ...cur, status });
    } catch (e) {
      if (!isStatusError(e) || (e.code !== 409 && e.code !== 404)) throw e;
    }
  }

  /** A VMI that went final (its launcher pod failed): its Synchronized condition still says why, once. */
  private async recordFailureOnFinal(vmi: VirtualMachineInstance, s: VmiState): Promise<Result> {
    if (!s.failure) return undefined;
    const has = vmi.status?.conditions?.some((c) => c.type === "Synchronized" && c.message === s.failure);
    if (has) return undefined;
    const status = computeVmiStatus(vmi, {
      nodeName: this.o.node,
      podReady: false,
      now: this.now(),
      syncError: s.failure,
    });
    if (!status) return undefined;
    try {
      await this.o.api.update(refs.vmis, { ...vmi, status });
    } catch (e) {
      if (!isStatusError(e) || (e.code !== 409 && e.code !== 404)) throw e;
    }
    return undefined;
  }

  /**
   * Makes sure the VMI's launcher is dialled (pod Running: its process started). While the socket does not answer
   * yet (the launcher is starting its libvirtd), retries shortly; past dialTimeoutMs, that is a failure.
   */
  private async attach(key: string, s: VmiState, pod: Pod | undefined): Promise<{ retryMs?: number }> {
    if (s.launcher) return {};
    if (pod?.status?.phase !== "Running") {
      delete s.dialFailingSince;
      return {};
    }
    const socket = this.o.socketPath(s.uid);
    try {
      const conn = await this.o.dial(socket);
      try {
        await conn.ping();
      } catch (e) {
        conn.close();
        throw e;
      }
      const w = conn.watch((d) => {
        s.domain = d;
        this.enqueue(key);
      });
      const attached: Attached = {
        conn,
        stop: () => {
          w.stop();
          conn.close();
        },
      };
      s.launcher = attached;
      delete s.dialFailingSince;
      void w.done.finally(() => {
        // The launcher closed the connection (it exited or is exiting): re-dial on the next round if its pod runs.
        if (s.launcher !== attached) return;
        delete s.launcher;
        conn.close();
        this.enqueue(key);
      });
      this.log.info("attached to launcher", { vmiUid: s.uid, socket });
      return {};
    } catch (e) {
      const now = Date.now();
      s.dialFailingSince ??= now;
      if (now - s.dialFailingSince > (this.o.dialTimeoutMs ?? 120_000)) {
        const vmi = this.o.getVmi(key);
        if (vmi) this.fail(s, vmi, `virt-launcher does not answer on ${socket}: ${(e as Error).message}`);
        return { retryMs: 5_000 };
      }
      return { retryMs: 20 };
    }
  }

  private async shutdown(s: VmiState, grace: number): Promise<void> {
    s.shutdownSent = true;
    this.log.info("shutting down", { vmiUid: s.uid, gracePeriodSeconds: grace });
    try {
      await s.launcher?.conn.shutdown(grace);
    } catch (e) {
      // No domain yet (nothing to stop) or the launcher is going away: the pod's end finishes the job.
      this.log.info("shutdown not needed or not possible", { vmiUid: s.uid, err: (e as Error).message });
    }
  }

  private async forget(key: string, s: VmiState, gone: boolean): Promise<void> {
    s.launcher?.stop();
    this.state.delete(key);
    await this.o.puller.release(s.uid).catch(() => {});
    // The VMI is gone from the API: nobody dials its launcher again.
    if (gone) await rm(this.o.socketPath(s.uid), { force: true }).catch(() => {});
  }

  /** Records a failure: the VMI's Synchronized condition carries it, and a SyncFailed event (rate-limited). */
  private fail(s: VmiState, vmi: VirtualMachineInstance, message: string): void {
    if (s.failure !== message) this.log.warn("VMI sync failure", { vmiUid: s.uid, err: message });
    s.failure = message;
    this.event(s, vmi, SYNC_FAILED, message);
  }

  private event(s: VmiState, vmi: VirtualMachineInstance, reason: string, message: string): void {
    if (!this.o.recorder) return;
    const key = `${reason}\u0000${message}`;
    const now = Date.now();
    if (s.lastEvent?.key === key && now - s.lastEvent.at < (this.o.eventIntervalMs ?? 60_000)) return;
    s.lastEvent = { key, at: now };
    this.o.recorder.event(
      { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", metadata: vmi.metadata },
      "Warning",
      reason,
      message,
    );
  }

  /**
   * Where the API has the VMI: "gone" (404, or a new VMI of the same name), "moved" (migrated: another node owns it
   * now), or "here".
   */
  private async vmiWhere(key: string, uid: string): Promise<"gone" | "moved" | "here"> {
    const [ns, name] = key.split("/") as [string, string];
    try {
      const cur = await this.o.api.get<VirtualMachineInstance>(refs.vmis, ns, name);
      if (cur.metadata.uid !== uid) return "gone";
      const owner = cur.status?.nodeName;
      return owner && owner !== this.o.node ? "moved" : "here";
    } catch (e) {
      if (isStatusError(e) && e.code === 404) return "gone";
      throw e;
    }
  }

  /** The node's half of volume preparation (handler/prepare.ts): image pulls back off as kubelet's do. */
  private async prepareVolumes(
    key: string,
    vmi: VirtualMachineInstance,
    s: VmiState,
  ): Promise<{ ok: true; prep: NodePreparation } | { ok: false; trouble?: PullTrouble; retryMs: number }> {
    if (s.prepared) return { ok: true, prep: s.prepared };
    const uid = vmi.metadata.uid ?? "";
    if (s.pull && Date.now() < s.pull.retryAt) {
      // Waiting out the back-off: report it as kubelet does.
      if (!s.pull.inBackoff) s.pull.inBackoff = true;
      return {
        ok: false,
        trouble: { reason: "ImagePullBackOff", message: `Back-off pulling image: ${s.pull.message}` },
        retryMs: s.pull.retryAt - Date.now(),
      };
    }
    let prep: NodePreparation;
    try {
      prep = await prepareNode(vmi as Parameters<typeof prepareNode>[0], {
        api: this.o.api,
        puller: this.o.puller,
        hostDiskRoot: this.o.hostDiskRoot,
        node: this.o.node,
        ...(this.o.dataDir ? { dataDir: this.o.dataDir } : {}),
      });
    } catch (e) {
      if (!isStatusError(e) || e.reason !== "ErrImagePull") {
        // Not an image: a missing ConfigMap/Secret, a refused hostDisk. Synchronized=False names it; retried.
        const message = (e as Error).message;
        this.log.warn("volume preparation failed", { vmiUid: uid, err: message });
        this.fail(s, vmi, message);
        return { ok: false, retryMs: 5_000 };
      }
      const failures = (s.pull?.failures ?? 0) + 1;
      const b = this.o.backoffMs ?? { initial: 10_000, max: 300_000 };
      const delay = Math.min(b.max, b.initial * 2 ** (failures - 1));
      const message = (e as Error).message;
      s.pull = { failures, message, retryAt: Date.now() + delay, inBackoff: false };
      this.log.warn("image pull failed", { vmiUid: uid, failures, retryInMs: delay, err: message });
      this.event(s, vmi, SYNC_FAILED, `pulling the VMI's images failed: ${message}`);
      // Show ErrImagePull now; switch to ImagePullBackOff shortly (kubelet's next sync), retry when the delay ends.
      this.queue.addAfter(key, delay);
      return { ok: false, trouble: { reason: "ErrImagePull", message }, retryMs: Math.min(delay, 1_000) };
    }
    delete s.pull;
    s.prepared = prep;
    return { ok: true, prep };
  }
}
