// Live migration's node side (the I/O shell around plan.ts), level-triggered on lib/workqueue by VMI key
// (namespace/name). The agent enqueues a VMI when it changes in either of its caches (kubevirt.io/nodeName=<node>:
// this node is the source; kubevirt.io/migrationTargetNodeName=<node>: the target) and when one of its pods changes.
// Each round gathers what the planner needs (the target pod, the launcher's answers), plans one action and runs it.
// The launcher is dialled on a connection of its own for the round (VMI sync keeps its own for the domain's watch).
import { nowRfc3339 } from "../../api/index.js";
import { parseTerminationLog } from "../../launcher/index.js";
import { isStatusError } from "../../lib/errors.js";
import { type Logger, nullLogger } from "../../lib/log.js";
import { runWorkers, WorkQueue } from "../../lib/workqueue/index.js";
import type {
  ApiClient,
  EventRecorder,
  MigrationDialer,
  MigrationLauncher,
  Pod,
  PreparedVmi,
  VirtualMachineInstance,
} from "../ports.js";
import { NODE_NAME_LABEL, refs } from "../ports.js";
import { computeVmiStatus, podInterfaceName } from "../vmi-status.js";
import { launcherPodOf, terminated } from "../vmi-sync.js";
import {
  MIGRATION_DOMAIN_XML_ANNOTATION,
  type MigrationJob,
  type MigrationState,
  migrateStartParams,
  planSource,
  planTarget,
  portsMap,
  roleOf,
  type TargetEndpoint,
  targetPodOf,
} from "./plan.js";

export interface MigrationSyncOptions {
  node: string;
  api: ApiClient;
  dial: MigrationDialer;
  /** The launcher's command socket of a VMI uid on this node. */
  socketPath: (vmiUid: string) => string;
  /** The VMI of a key from this node's caches (the one of kubevirt.io/nodeName and the migration target's). */
  getVmi: (key: string) => VirtualMachineInstance | undefined;
  /** The VMI's pods bound to this node, from the cache. */
  podsOf: (vmiUid: string) => Pod[];
  /** The node's half of a start (the same prepareNode as a normal start): what the launcher gets. */
  prepare: (vmi: VirtualMachineInstance) => Promise<PreparedVmi>;
  /** Unpins what prepare pinned for the VMI (a failed migration's target). */
  release: (vmiUid: string) => Promise<void>;
  /**
   * The target pod's netns: the migration ports accept only the source pod's IP (and skip the masquerade DNAT).
   * Undefined: this agent runs no pod network (a kubelet does); skipped with a warning.
   */
  firewall?: (podUid: string, sourceIp: string, ports: number[]) => Promise<void>;
  workers?: number;
  log?: Logger;
  now?: () => string;
  /** The source's Migrated / MigrationFailed events on the VMI (QEMU's downtime and the data moved in the message). */
  recorder?: EventRecorder;
}

interface State {
  vmiUid: string;
  migrationUid: string;
  /** Target: what PrepareMigrationTarget answered in this process. */
  prepared?: TargetEndpoint;
  /** Target: this process released the VMI's pins after the migration failed. */
  released?: boolean;
  /** Target: this process prepared (pinned) something for the VMI. */
  target?: boolean;
  /** Source: MigrateAbort sent. */
  abortSent?: boolean;
  lastProgressAt?: number;
}

type Result = { requeueAfterMs?: number } | undefined;

export class MigrationSync {
  readonly queue = new WorkQueue<string>();
  private readonly state = new Map<string, State>();
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly o: MigrationSyncOptions) {
    this.log = (o.log ?? nullLogger).child({ component: "migration", node: o.node });
  }

  start(): void {
    void runWorkers(
      this.queue,
      this.o.workers ?? 2,
      (key) => this.reconcile(key),
      (key, err) => this.log.warn("migration sync failed; requeued with back-off", { key, err }),
    );
  }

  enqueue(key: string): void {
    if (!this.closed) this.queue.add(key);
  }

  close(): void {
    this.closed = true;
    this.queue.shutdown();
  }

  private now(): string {
    return this.o.now ? this.o.now() : nowRfc3339();
  }

  /** One level-triggered round for a namespace/name key. Public so tests can step it. */
  async reconcile(key: string): Promise<Result> {
    const vmi = this.o.getVmi(key);
    const old = this.state.get(key);
    if (!vmi) {
      // Gone from both caches: a target that was never handed the VMI lets go of what it pinned.
      if (old?.target && !old.released) await this.o.release(old.vmiUid);
      this.state.delete(key);
      return undefined;
    }
    const role = roleOf(vmi, this.o.node);
    const ms = vmi.status?.migrationState as MigrationState | undefined;
    if (!role || !ms?.migrationUid) {
      if (old?.target && !old.released && vmi.status?.nodeName !== this.o.node) await this.o.release(old.vmiUid);
      this.state.delete(key);
      return undefined;
    }
    let s = old;
    if (!s || s.vmiUid !== vmi.metadata.uid || s.migrationUid !== ms.migrationUid) {
      s = { vmiUid: vmi.metadata.uid ?? "", migrationUid: ms.migrationUid };
      this.state.set(key, s);
    }
    return role === "target" ? this.target(vmi, ms, s) : this.source(vmi, ms, s);
  }

  private async withLauncher<T>(vmiUid: string, fn: (l: MigrationLauncher) => Promise<T>): Promise<T | undefined> {
    let l: MigrationLauncher;
    try {
      l = await this.o.dial(this.o.socketPath(vmiUid));
    } catch {
      return undefined;
    }
    try {
      return await fn(l);
    } finally {
      l.close();
    }
  }

  // ---- target ---------------------------------------------------------------------------------------------------

  private async target(vmi: VirtualMachineInstance, ms: MigrationState, s: State): Promise<Result> {
    const uid = vmi.metadata.uid ?? "";
    const pod = targetPodOf(this.o.podsOf(uid), ms.migrationUid ?? "");
    let ready = false;
    let domain: Awaited<ReturnType<MigrationLauncher["domain"]>>;
    if (pod?.status?.phase === "Running") {
      const seen = await this.withLauncher(uid, async (l) => {
        await l.ping();
        return { domain: await l.domain().catch(() => undefined) };
      }).catch(() => undefined);
      ready = seen !== undefined;
      domain = seen?.domain;
    }
    const action = planTarget(vmi, this.o.node, {
      ...(pod ? { pod } : {}),
      launcherReady: ready,
      ...(s.prepared ? { prepared: s.prepared } : {}),
      ...(domain ? { domain } : {}),
      holding: s.target === true && !s.released,
    });
    const ctx = { vmiUid: uid, migrationUid: ms.migrationUid, action: action.kind };
    switch (action.kind) {
      case "none":
        return undefined;
      case "wait":
        return { requeueAfterMs: action.afterMs };
      case "release":
        await this.o.release(uid);
        s.released = true;
        this.log.info("migration failed: released the target's preparation", ctx);
        return undefined;
      case "detected":
        await this.writeMigrationState(vmi, { targetNodeDomainDetected: true });
        return undefined;
      case "prepare": {
        if (!pod) return undefined;
        try {
          await this.prepareTarget(vmi, ms, pod, s);
        } catch (e) {
          // not ready yet (a moved disk still being made, a claim still binding): look again soon, no back-off
          if (!isStatusError(e) || e.code !== 422) throw e;
          this.log.info("migration target not ready yet", { ...ctx, why: e.message });
          return { requeueAfterMs: 1_000 };
        }
        this.log.info("migration target ready", { ...ctx, address: s.prepared?.address, ports: s.prepared?.ports });
        return undefined;
      }
      case "handover":
        if (!pod) return undefined;
        await this.handover(vmi, pod);
        this.log.info("migration handed over: the VMI runs on this node", ctx);
        return undefined;
    }
  }

  /** prepareNode, PrepareMigrationTarget, the firewall, the destination XML on the pod, the address and ports. */
  private async prepareTarget(vmi: VirtualMachineInstance, ms: MigrationState, pod: Pod, s: State): Promise<void> {
    const uid = vmi.metadata.uid ?? "";
    s.target = true;
    const prepared = await this.o.prepare(vmi);
    const sourceIp = await this.sourcePodIp(vmi, ms);
    const ep = await this.withLauncher(uid, (l) =>
      l.prepareMigrationTarget({
        vmi: vmi as unknown as Record<string, unknown>,
        prepared,
        ...(sourceIp ? { sourceNodeAddress: sourceIp } : {}),
      }),
    );
    if (!ep) throw new Error("the target launcher does not answer");
    const ports = [ep.ports.libvirt, ep.ports.qemu, ep.ports.nbd];
    if (!this.o.firewall) {
      this.log.warn("no pod network here: the migration ports are not firewalled", { vmiUid: uid });
    } else if (!sourceIp) {
      throw new Error(`the source pod ${ms.sourcePod ?? "(unnamed)"} has no IP to accept the migration from`);
    } else {
      // Needed, not only hardening: it also exempts the ports from the masquerade DNAT to the guest.
      await this.o.firewall(pod.metadata.uid ?? "", sourceIp, ports);
    }
    await this.annotatePod(pod, ep.domainXml);
    const map = portsMap(ep.ports);
    if (
      ms.targetNodeAddress !== ep.address ||
      JSON.stringify(ms.targetDirectMigrationNodePorts) !== JSON.stringify(map)
    )
      await this.writeMigrationState(vmi, { targetNodeAddress: ep.address, targetDirectMigrationNodePorts: map });
    s.prepared = ep;
  }

  /** The source pod's IP; without sourcePod, the VMI's pod-network address (masquerade: the source pod's IP). */
  private async sourcePodIp(vmi: VirtualMachineInstance, ms: MigrationState): Promise<string | undefined> {
    if (!ms.sourcePod) return vmi.status?.interfaces?.find((i) => i.name === podInterfaceName(vmi))?.ipAddress;
    try {
      const p = await this.o.api.get<Pod>(refs.pods, vmi.metadata.namespace, ms.sourcePod);
      return p.status?.podIP;
    } catch (e) {
      if (isStatusError(e) && e.code === 404) return undefined;
      throw e;
    }
  }

  /** The target pod carries the destination XML for the source agent (contract §4). */
  private async annotatePod(pod: Pod, xml: string): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur =
        attempt === 0 ? pod : await this.o.api.get<Pod>(refs.pods, pod.metadata.namespace, pod.metadata.name ?? "");
      if (cur.metadata.uid !== pod.metadata.uid) throw new Error(`target pod ${pod.metadata.name} was replaced`);
      if (cur.metadata.annotations?.[MIGRATION_DOMAIN_XML_ANNOTATION] === xml) return;
      const next: Pod = {
        ...cur,
        metadata: {
          ...cur.metadata,
          annotations: { ...cur.metadata.annotations, [MIGRATION_DOMAIN_XML_ANNOTATION]: xml },
        },
      };
      try {
        await this.o.api.update(refs.pods, next);
        return;
      } catch (e) {
        if (!isStatusError(e) || e.code !== 409) throw e;
      }
    }
    throw new Error(`annotating target pod ${pod.metadata.name}: conflicts`);
  }

  /**
   * After `completed`: ONE update moves the VMI here (status.nodeName, the kubevirt.io/nodeName label, the pod's IP
   * on the interfaces, targetNodeDomainReadyTimestamp); from then on this node's VMI sync owns it.
   */
  private async handover(vmi: VirtualMachineInstance, pod: Pod): Promise<void> {
    const podReady = pod.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
    await this.updateVmi(vmi, (cur) => {
      const ms = cur.status?.migrationState;
      if (!ms?.completed || ms.failed || cur.status?.nodeName === this.o.node) return undefined;
      const now = this.now();
      const status =
        computeVmiStatus(cur, {
          nodeName: this.o.node,
          ...(pod.status?.podIP ? { podIP: pod.status.podIP } : {}),
          domain: { state: "Running", reason: "Migrated" },
          phase: "Running",
          podReady,
          now,
        }) ?? structuredClone(cur.status ?? {});
      status.nodeName = this.o.node;
      status.migrationState = { ...ms, targetNodeDomainDetected: true, targetNodeDomainReadyTimestamp: now };
      return {
        ...cur,
        metadata: { ...cur.metadata, labels: { ...cur.metadata.labels, [NODE_NAME_LABEL]: this.o.node } },
        status,
      };
    });
  }

  // ---- source ---------------------------------------------------------------------------------------------------

  private async source(vmi: VirtualMachineInstance, ms: MigrationState, s: State): Promise<Result> {
    const uid = vmi.metadata.uid ?? "";
    if (ms.completed || ms.failed) return undefined;
    const seen = await this.withLauncher(uid, async (l) => {
      const job = await l.migrateStatus();
      // The domain matters only when a started migration's job is unknown to the launcher (it restarted).
      const domain = job.state === "none" && ms.startTimestamp ? await l.domain().catch(() => undefined) : undefined;
      return { job, domain };
    }).catch((e: unknown) => {
      this.log.warn("the source launcher did not answer", { vmiUid: uid, err: (e as Error).message });
      return undefined;
    });
    // No launcher to ask: its pod's termination message keeps where the domain went.
    const ended =
      !seen && ms.startTimestamp ? parseTerminationLog(terminated(this.sourcePod(uid, ms))?.message ?? "") : undefined;
    let destXml: string | undefined;
    if (!ms.startTimestamp && ms.targetNodeAddress && ms.targetPod && seen?.job.state !== "running") {
      destXml = await this.destinationXml(vmi, ms.targetPod);
    }
    const action = planSource(vmi, this.o.node, {
      ...(seen ? { job: seen.job } : {}),
      ...(seen?.domain ? { domain: seen.domain } : {}),
      ...(destXml ? { destXml } : {}),
      ...(ended ? { ended } : {}),
      abortSent: s.abortSent === true,
    });
    const ctx = { vmiUid: uid, migrationUid: ms.migrationUid, action: action.kind };
    switch (action.kind) {
      case "none":
        return undefined;
      case "wait":
        return { requeueAfterMs: action.afterMs };
      case "start": {
        const params = migrateStartParams(vmi, ms.targetNodeAddress ?? "", action.ports, action.destXml);
        const job = await this.withLauncher(uid, (l) => l.migrateStart(params));
        if (!job) throw new Error("the source launcher does not answer");
        this.log.info("migration started", {
          ...ctx,
          destination: params.destinationUri,
          copyStorage: params.copyStorage,
          state: job.state,
        });
        await this.writeMigrationState(vmi, { startTimestamp: this.now() });
        return { requeueAfterMs: 500 };
      }
      case "markStarted":
        await this.writeMigrationState(vmi, { startTimestamp: this.now() });
        return { requeueAfterMs: 500 };
      case "follow":
        this.progress(s, uid, action.job);
        return { requeueAfterMs: 500 };
      case "mode":
        await this.writeMigrationState(vmi, { mode: action.mode });
        this.log.info(
          action.mode === "PostCopy" ? "migration switched to post-copy" : "guest paused to finish the migration",
          ctx,
        );
        return { requeueAfterMs: 500 };
      case "abort": {
        const r = await this.withLauncher(uid, (l) => l.migrateAbort()).catch((e: unknown) => {
          this.log.warn("aborting the migration failed", { ...ctx, err: (e as Error).message });
          return undefined;
        });
        s.abortSent = r !== undefined;
        if (!r) await this.writeMigrationState(vmi, { abortStatus: "Failed" });
        this.log.info("migration abort sent", { ...ctx, aborted: r?.aborted });
        return { requeueAfterMs: 200 };
      }
      case "finish": {
        const end = action.end;
        const fields: Partial<MigrationState> = {
          completed: end.completed,
          failed: end.failed,
          endTimestamp: this.now(),
          ...(end.failureReason ? { failureReason: end.failureReason } : {}),
          ...(end.abortStatus ? { abortStatus: end.abortStatus } : {}),
          ...(end.mode ? { mode: end.mode } : {}),
        };
        await this.writeMigrationState(vmi, fields);
        if (end.completed) this.log.info("migration completed", { ...ctx, downtimeMs: seen?.job.downtimeMs });
        else this.log.warn("migration failed", { ...ctx, reason: end.failureReason, abortStatus: end.abortStatus });
        this.o.recorder?.event(
          { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", metadata: vmi.metadata },
          end.completed ? "Normal" : "Warning",
          end.completed ? "Migrated" : "MigrationFailed",
          end.completed
            ? migratedMessage(ms.targetNode, seen?.job)
            : `The VirtualMachineInstance failed to migrate to node ${ms.targetNode ?? "?"}: ${end.failureReason ?? end.abortStatus ?? "unknown"}`,
        );
        return undefined;
      }
    }
  }

  /** The source launcher pod on this node: by the name the controller recorded, else the VMI's launcher pod here. */
  private sourcePod(vmiUid: string, ms: MigrationState): Pod | undefined {
    const pods = this.o.podsOf(vmiUid);
    return pods.find((p) => p.metadata.name === ms.sourcePod) ?? launcherPodOf(pods);
  }

  private progress(s: State, vmiUid: string, job: MigrationJob): void {
    const now = Date.now();
    if (s.lastProgressAt !== undefined && now - s.lastProgressAt < 5_000) return;
    s.lastProgressAt = now;
    this.log.info("migration progress", {
      vmiUid,
      dataTotal: job.dataTotal,
      dataRemaining: job.dataRemaining,
      dataProcessed: job.dataProcessed,
      elapsedMs: job.elapsedMs,
    });
  }

  private async destinationXml(vmi: VirtualMachineInstance, podName: string): Promise<string | undefined> {
    try {
      const p = await this.o.api.get<Pod>(refs.pods, vmi.metadata.namespace, podName);
      return p.metadata.annotations?.[MIGRATION_DOMAIN_XML_ANNOTATION];
    } catch (e) {
      if (isStatusError(e) && e.code === 404) return undefined;
      throw e;
    }
  }

  // ---- writes ---------------------------------------------------------------------------------------------------

  /** Merges fields into status.migrationState of the same migration (retried on conflict on the latest VMI). */
  private writeMigrationState(vmi: VirtualMachineInstance, fields: Partial<MigrationState>): Promise<void> {
    const migrationUid = vmi.status?.migrationState?.migrationUid;
    return this.updateVmi(vmi, (cur) => {
      const ms = cur.status?.migrationState;
      if (!ms || ms.migrationUid !== migrationUid) return undefined; // another migration now: not ours to write
      const next = { ...ms, ...fields };
      if (JSON.stringify(next) === JSON.stringify(ms)) return undefined;
      return { ...cur, status: { ...cur.status, migrationState: next } };
    });
  }

  /** Read-modify-write with the resourceVersion: the first try on the cached VMI, then on the API's latest. */
  private async updateVmi(
    vmi: VirtualMachineInstance,
    change: (cur: VirtualMachineInstance) => VirtualMachineInstance | undefined,
  ): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur =
        attempt === 0
          ? vmi
          : await this.o.api.get<VirtualMachineInstance>(refs.vmis, vmi.metadata.namespace, vmi.metadata.name ?? "");
      if (cur.metadata.uid !== vmi.metadata.uid) return;
      const next = change(cur);
      if (!next) return;
      try {
        await this.o.api.update(refs.vmis, next);
        return;
      } catch (e) {
        if (!isStatusError(e) || e.code !== 409) throw e;
      }
    }
    throw new Error(`updating VMI ${vmi.metadata.name}: conflicts`);
  }
}

/** KubeVirt's "migrated to node X." plus what QEMU measured (the figures users ask for after a migration). Pure. */
export function migratedMessage(node: string | undefined, job: MigrationJob | undefined): string {
  const facts: string[] = [];
  if (job?.downtimeMs !== undefined) facts.push(`downtime ${Math.round(job.downtimeMs)} ms`);
  if (job?.elapsedMs !== undefined) facts.push(`took ${Math.round(job.elapsedMs)} ms`);
  if (job?.dataProcessed !== undefined) facts.push(`${Math.round(job.dataProcessed / 2 ** 20)} MiB sent`);
  return `The VirtualMachineInstance migrated to node ${node ?? "?"}.${facts.length ? ` (${facts.join(", ")})` : ""}`;
}
