// VMI sync: for each VMI scheduled to this node, pull its containerDisks, send it to its launcher (Sync), follow the
// launcher's domain state, and write the VMI's status from Running on — only when it changes. On VMI deletion the
// launcher shuts the guest down within terminationGracePeriodSeconds, then destroys it.
import { isStatusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { KeyedRunner } from "./keyed.js";
import { MASQ_TAP } from "./network/index.js";
import { isFinal } from "./phase.js";
import type { ApiClient, ImagePuller, LauncherConnection, PreparedVmi } from "./ports.js";
import { refs } from "./ports.js";
import { type NodePreparation, prepareNode } from "./prepare.js";
import { type DomainStatus, nowRfc3339, type Pod, type VirtualMachineInstance, type VmiPhase } from "./types.js";
import { computeVmiStatus, type PullTrouble, podInterfaceName } from "./vmi-status.js";

/** Domain state → VMI phase (handler/phase.ts's vmiPhaseFor; injectable for tests). */
export type PhaseMapper = (domain: DomainStatus | undefined, vmi: VirtualMachineInstance) => VmiPhase | undefined;

export interface LauncherView {
  podForVmi(vmiUid: string): string | undefined;
  connection(podUid: string): LauncherConnection | undefined;
  domainOf(podUid: string): DomainStatus | undefined;
  ipOf(podUid: string): string | undefined;
}

export interface VmiSyncOptions {
  node: string;
  api: ApiClient;
  launchers: LauncherView;
  puller: ImagePuller;
  /** hostDisk is allowed only below this directory (tsvirt handler --host-disk-root); absent: refused. */
  hostDiskRoot?: string;
  getVmi: (uid: string) => VirtualMachineInstance | undefined;
  getPod: (uid: string) => Pod | undefined;
  mapPhase: PhaseMapper;
  /** Image pull back-off: first delay and cap (kubelet: 10 s, 300 s). */
  backoffMs?: { initial: number; max: number };
  log?: Logger;
  now?: () => string;
}

interface PullState {
  failures: number;
  message: string;
  retryAt: number;
  inBackoff: boolean;
  timer?: NodeJS.Timeout;
}

interface VmiState {
  synced?: string;
  shutdownSent?: boolean;
  /** A final phase (Succeeded, Failed) was written. */
  finalWritten?: boolean;
  pull?: PullState;
  prepared?: NodePreparation;
  syncError?: string;
}

export class VmiSync {
  private readonly o: VmiSyncOptions;
  private readonly keyed: KeyedRunner;
  private readonly state = new Map<string, VmiState>();
  private readonly log: Logger;
  private closed = false;

  constructor(o: VmiSyncOptions) {
    this.o = o;
    this.log = (o.log ?? nullLogger).child({ component: "vmi-sync", node: o.node });
    this.keyed = new KeyedRunner((key, err) => {
      this.log.warn("VMI sync failed; retrying", { vmiUid: key, err });
      const t = setTimeout(() => void this.trigger(key), 2_000);
      t.unref();
    });
  }

  trigger(vmiUid: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.keyed.trigger(vmiUid, () => this.sync(vmiUid));
  }

  idle(): Promise<void> {
    return this.keyed.idle();
  }

  close(): void {
    this.closed = true;
    for (const s of this.state.values()) if (s.pull?.timer) clearTimeout(s.pull.timer);
  }

  private now(): string {
    return this.o.now ? this.o.now() : nowRfc3339();
  }

  private st(uid: string): VmiState {
    let s = this.state.get(uid);
    if (!s) {
      s = {};
      this.state.set(uid, s);
    }
    return s;
  }

  private async sync(vmiUid: string): Promise<void> {
    const vmi = this.o.getVmi(vmiUid);
    const podUid = this.o.launchers.podForVmi(vmiUid);
    const conn = podUid ? this.o.launchers.connection(podUid) : undefined;
    const s = this.st(vmiUid);
    if (!vmi && conn && podUid && !(await this.vmiGone(vmiUid, podUid))) {
      // Not (yet) in this node's cache — the controller labels it with the node only once it is Scheduled.
      return;
    }
    if (!vmi || vmi.metadata.deletionTimestamp) {
      if (conn && !s.shutdownSent) {
        s.shutdownSent = true;
        const grace = vmi?.spec.terminationGracePeriodSeconds ?? 30;
        this.log.info("shutting down", { vmiUid, gracePeriodSeconds: grace });
        try {
          await conn.shutdown(grace);
        } catch (e) {
          // No domain yet (nothing to stop) or the launcher is going away: the pod's end finishes the job.
          this.log.info("shutdown not needed or not possible", { vmiUid, err: (e as Error).message });
        }
      }
      if (!vmi) {
        if (s.pull?.timer) clearTimeout(s.pull.timer);
        this.state.delete(vmiUid);
        await this.o.puller.release(vmiUid).catch(() => {});
        return;
      }
    }
    const phase = vmi.status?.phase;
    if (phase === "Succeeded" || phase === "Failed") {
      await this.o.puller.release(vmiUid).catch(() => {});
      return;
    }
    if (phase !== "Scheduled" && phase !== "Running") return;
    if (vmi.status?.nodeName && vmi.status.nodeName !== this.o.node) return;
    const pod = podUid ? this.o.getPod(podUid) : undefined;
    let pull: PullTrouble | undefined;
    if (conn && !vmi.metadata.deletionTimestamp && s.synced !== vmi.metadata.uid) {
      const images = await this.prepareVolumes(vmi, s);
      if (images.ok) {
        const prepared: PreparedVmi = { ...images.prep.prepared, taps: { [podInterfaceName(vmi)]: MASQ_TAP } };
        try {
          await conn.sync(vmi, prepared);
          s.synced = vmi.metadata.uid;
          delete s.syncError;
          this.log.info("sent to launcher", { vmiUid });
        } catch (e) {
          s.syncError = (e as Error).message;
          this.log.warn("Sync failed", { vmiUid, err: s.syncError });
          const t = setTimeout(() => void this.trigger(vmiUid), 5_000);
          t.unref();
        }
      } else if (images.trouble) {
        pull = images.trouble;
      }
    }
    const domain = podUid ? this.o.launchers.domainOf(podUid) : undefined;
    // A Running VMI this agent has not heard from its launcher about yet (the agent just restarted and is
    // re-attaching): nothing new is known, so nothing is written — Ready must not flip. A launcher that is really
    // gone ends its pod, and the VMI controller fails the VMI.
    if (!domain && vmi.status?.phase === "Running" && !vmi.metadata.deletionTimestamp) return;
    const podIP = podUid ? this.o.launchers.ipOf(podUid) : undefined;
    const podReady = pod?.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
    const obs: Parameters<typeof computeVmiStatus>[1] = { nodeName: this.o.node, podReady, now: this.now() };
    if (podIP) obs.podIP = podIP;
    if (domain) obs.domain = domain;
    const mapped = this.o.mapPhase(domain, vmi);
    if (mapped) obs.phase = mapped;
    if (pull) obs.pull = pull;
    if (s.syncError) obs.syncError = s.syncError;
    if (s.prepared) obs.containerDiskDigests = s.prepared.digests;
    const status = computeVmiStatus(vmi, obs);
    if (!status) return;
    const final = isFinal(status.phase ?? "");
    try {
      await this.o.api.update(refs.vmis, { ...vmi, status });
      if (final) s.finalWritten = true;
    } catch (e) {
      if (!isStatusError(e) || (e.code !== 409 && e.code !== 404)) throw e;
      // A newer VMI is on its way through the informer and its event triggers the next sync; but a final phase must
      // be recorded before the pod goes (the pod runner waits for it), so that one is retried on the latest VMI.
      if (final && e.code === 409) await this.writeFinal(vmiUid, vmi, obs, s);
    }
  }

  private async writeFinal(
    vmiUid: string,
    vmi: VirtualMachineInstance,
    obs: Parameters<typeof computeVmiStatus>[1],
    s: VmiState,
  ): Promise<void> {
    try {
      const cur = await this.o.api.get<VirtualMachineInstance>(
        refs.vmis,
        vmi.metadata.namespace,
        vmi.metadata.name ?? "",
      );
      if (cur.metadata.uid !== vmiUid) return;
      const status = computeVmiStatus(cur, obs);
      if (status) await this.o.api.update(refs.vmis, { ...cur, status });
      s.finalWritten = true;
    } catch (e) {
      if (!isStatusError(e) || (e.code !== 409 && e.code !== 404)) throw e;
    }
  }

  /**
   * Whether the VMI's final phase is recorded, or none is due from this agent: then its launcher pod may go. Asked by
   * the pod runner before it removes a deleted pod whose launcher has ended.
   */
  settled(vmiUid: string): boolean {
    const vmi = this.o.getVmi(vmiUid);
    const phase = vmi?.status?.phase;
    if (!vmi || isFinal(phase ?? "") || this.state.get(vmiUid)?.finalWritten) return true;
    if (phase !== "Scheduled" && phase !== "Running") return true;
    if (vmi.status?.nodeName && vmi.status.nodeName !== this.o.node) return true;
    const podUid = this.o.launchers.podForVmi(vmiUid);
    return !isFinal(this.o.mapPhase(podUid ? this.o.launchers.domainOf(podUid) : undefined, vmi) ?? "");
  }

  /** True when the API confirms the VMI is gone (404, or a new VMI of the same name). */
  private async vmiGone(vmiUid: string, podUid: string): Promise<boolean> {
    const pod = this.o.getPod(podUid);
    const owner = pod?.metadata.ownerReferences?.find((r) => r.kind === "VirtualMachineInstance" && r.uid === vmiUid);
    if (!pod || !owner) return false;
    try {
      const cur = await this.o.api.get<VirtualMachineInstance>(refs.vmis, pod.metadata.namespace, owner.name);
      return cur.metadata.uid !== vmiUid;
    } catch (e) {
      if (isStatusError(e) && e.code === 404) return true;
      throw e;
    }
  }

  /** The node's half of volume preparation (handler/prepare.ts): image pulls back off as kubelet's do. */
  private async prepareVolumes(
    vmi: VirtualMachineInstance,
    s: VmiState,
  ): Promise<{ ok: true; prep: NodePreparation } | { ok: false; trouble?: PullTrouble }> {
    if (s.prepared) return { ok: true, prep: s.prepared };
    const uid = vmi.metadata.uid ?? "";
    if (s.pull && Date.now() < s.pull.retryAt) {
      // Waiting out the back-off: report it as kubelet does.
      if (!s.pull.inBackoff) s.pull.inBackoff = true;
      return {
        ok: false,
        trouble: { reason: "ImagePullBackOff", message: `Back-off pulling image: ${s.pull.message}` },
      };
    }
    let prep: NodePreparation;
    try {
      prep = await prepareNode(vmi as Parameters<typeof prepareNode>[0], {
        api: this.o.api,
        puller: this.o.puller,
        hostDiskRoot: this.o.hostDiskRoot,
      });
    } catch (e) {
      if (!isStatusError(e) || e.reason !== "ErrImagePull") {
        // Not an image: a missing ConfigMap/Secret, a refused hostDisk. Synchronized=False names it; retried.
        s.syncError = (e as Error).message;
        this.log.warn("volume preparation failed", { vmiUid: uid, err: s.syncError });
        const t = setTimeout(() => void this.trigger(uid), 5_000);
        t.unref();
        return { ok: false };
      }
      const failures = (s.pull?.failures ?? 0) + 1;
      const b = this.o.backoffMs ?? { initial: 10_000, max: 300_000 };
      const delay = Math.min(b.max, b.initial * 2 ** (failures - 1));
      if (s.pull?.timer) clearTimeout(s.pull.timer);
      const message = (e as Error).message;
      s.pull = { failures, message, retryAt: Date.now() + delay, inBackoff: false };
      // Show ErrImagePull now; switch to ImagePullBackOff shortly (kubelet's next sync), retry when the delay ends.
      const backoffTimer = setTimeout(() => void this.trigger(uid), Math.min(delay, 1_000));
      backoffTimer.unref();
      s.pull.timer = setTimeout(() => void this.trigger(uid), delay);
      s.pull.timer.unref();
      this.log.warn("image pull failed", { vmiUid: uid, failures, retryInMs: delay, err: message });
      return { ok: false, trouble: { reason: "ErrImagePull", message } };
    }
    if (s.pull?.timer) clearTimeout(s.pull.timer);
    delete s.pull;
    s.prepared = prep;
    return { ok: true, prep };
  }
}
