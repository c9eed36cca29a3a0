// The node half of the tsvirt-local provisioner (the local volume manager of a CSI node plugin): for every PV
// provisioned by tsvirt.io/local and pinned to this node, its data exists (storage/node's ensureVolume: a sparse
// <data dir>/volumes/<pv>/disk.img, and a loop device for Block); once the PV is being deleted, the data goes and
// then the finalizer tsvirt.io/local-volume does (its space stays counted until then). A same-node clone of a
// Filesystem volume is done here too, as a CSI driver clones: the DV controller asks on the target PV, this node
// copies the source's file into the target's (storage/clone copyVolumeFile) and answers on the PV. Level-triggered on
// lib/workqueue, keyed by PV name; every step is idempotent, so a kill -9 anywhere converges on the next round.
import { isStatusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { processNextItem, WorkQueue } from "../lib/workqueue/index.js";
import { copyVolumeFile, killOrphanCopies } from "../storage/clone/index.js";
import {
  answers,
  CloneAnnotations,
  type CloneRequest,
  cloneRequestOf,
  cloneResultOf,
  DvAnnotations,
  formatCloneAnnotation,
  type WorkerOutcome,
} from "../storage/datavolume/index.js";
import { failedOutcome } from "../storage/importer/index.js";
import {
  isLocalVolume,
  LOCAL_VOLUME_FINALIZER,
  NODE_VOLUME_BYTES_ANNOTATION,
  volumeModeOf,
  volumeNode,
  volumeSize,
} from "../storage/index.js";
import { deleteVolume, type Exec, ensureVolume, reconcileLoopDevices, volumePaths } from "../storage/node/index.js";
import {
  type ApiClient,
  type KObject,
  type PersistentVolume,
  type PersistentVolumeClaim,
  type ResourceRef,
  refs,
} from "./ports.js";
import type { DvObject } from "./workers/index.js";

export interface VolumeSyncOptions {
  node: string;
  /** The node's data dir (absolute): volumes live below <data dir>/volumes. */
  dataDir: string;
  api: Pick<ApiClient, "get" | "update">;
  /** The PV as the cache has it (undefined: gone). */
  getVolume: (name: string) => PersistentVolume | undefined;
  /** QEMU's user: owner of the volumes. */
  owner?: { uid: number; gid: number };
  /** A volume's data reached a new size (an expansion): the VMIs using it compare their disks (online resize). */
  onGrown?: (pvName: string, bytes: number) => void;
  /** losetup runner (tests drive a fake). */
  exec?: Exec;
  log?: Logger;
}

/** What this node does for a PV (pure). */
export type VolumeWork = { kind: "none" } | { kind: "ensure" } | { kind: "delete" };

export function volumeWork(pv: PersistentVolume | undefined, node: string): VolumeWork {
  if (!pv || !isLocalVolume(pv) || volumeNode(pv) !== node) return { kind: "none" };
  if (pv.metadata.deletionTimestamp) {
    return pv.metadata.finalizers?.includes(LOCAL_VOLUME_FINALIZER) ? { kind: "delete" } : { kind: "none" };
  }
  return { kind: "ensure" };
}

/** The same-node clone this node still owes the PV (pure): its request, unless already answered. */
export function pendingClone(pv: PersistentVolume): CloneRequest | undefined {
  const req = cloneRequestOf(pv);
  return req && !answers(cloneResultOf(pv), req) ? req : undefined;
}

/** The request's identity: a clone is made once per DV and attempt. */
function answerKey(req: CloneRequest | undefined): string {
  return req ? `${req.uid}/${req.attempt}` : "";
}
/** requestProblem's word for a request answered already: nothing to do. */
const ANSWERED = Symbol("answered");

/** Why this node cannot copy the request's source into `target` (pure); undefined when it can. */
export function cloneProblem(
  target: PersistentVolume,
  source: PersistentVolume | undefined,
  node: string,
): string | undefined {
  const req = cloneRequestOf(target);
  if (volumeModeOf(target) === "Block") return `volume ${target.metadata.name} is a Block volume`;
  if (!source || source.metadata.deletionTimestamp) return `the source volume ${req?.source} is gone`;
  if (!isLocalVolume(source) || volumeNode(source) !== node) {
    return `the source volume ${req?.source} is not a tsvirt-local volume of node ${node}`;
  }
  if (volumeModeOf(source) === "Block") return `the source volume ${req?.source} is a Block volume`;
  return undefined;
}

/** The local PVs on `node` whose data must stay (not being deleted): the set reconcileLoopDevices keeps. */
export function liveVolumes(pvs: readonly PersistentVolume[], node: string): Set<string> {
  return new Set(pvs.filter((pv) => volumeWork(pv, node).kind === "ensure").map((pv) => pv.metadata.name ?? ""));
}

export class VolumeSync {
  private readonly o: VolumeSyncOptions;
  readonly queue = new WorkQueue<string>();
  private readonly log: Logger;
  private closed = false;
  /** PV name → the clone request this process answered last (the cache may not show the answer yet). */
  private readonly answered = new Map<string, string>();

  constructor(o: VolumeSyncOptions) {
    this.o = o;
    this.log = (o.log ?? nullLogger).child({ component: "volume-sync", node: o.node });
  }

  /**
   * Agent start, once the PV cache is complete: copies a killed agent left running are killed (their clones are
   * unanswered: copied again from the start, by one writer); loop devices over volume files whose PV is gone or being
   * deleted are detached (autoclear frees them once unused); then the workers run.
   */
  async start(pvs: readonly PersistentVolume[], workers = 1): Promise<void> {
    try {
      const killed = await killOrphanCopies(this.o.dataDir);
      if (killed.length) this.log.info("killed same-node copies a previous agent left running", { pids: killed });
    } catch (err) {
      this.log.warn("looking for copies a previous agent left running failed", { err });
    }
    try {
      const detached = await reconcileLoopDevices(this.o.dataDir, liveVolumes(pvs, this.o.node), this.o.exec);
      if (detached.length) this.log.info("detached loop devices of gone volumes", { devices: detached });
    } catch (err) {
      this.log.warn("reconciling loop devices failed", { err });
    }
    for (let i = 0; i < workers; i++) void this.worker();
  }

  private async worker(): Promise<void> {
    while (
      await processNextItem(
        this.queue,
        async (name) => {
          await this.reconcile(name);
          return undefined;
        },
        (name, err) =>
          this.log.warn("volume sync failed; requeued with back-off", { kind: "PersistentVolume", name, err }),
      )
    ) {
      /* next */
    }
  }

  enqueue(name: string): void {
    if (!this.closed) this.queue.add(name);
  }

  close(): void {
    this.closed = true;
    this.queue.shutdown();
  }

  /**
   * A same-node clone: the source's file copied into this volume's, fsynced, then the answer on the PV. A crash
   * before the answer leaves the request unanswered: the next round copies again from the start.
   */
  private async clone(
    pv: PersistentVolume,
    req: CloneRequest,
    checked: Promise<string | typeof ANSWERED | undefined>,
    log: Logger,
  ): Promise<void> {
    const name = pv.metadata.name ?? "";
    const t0 = performance.now();
    const check = await checked;
    if (check === ANSWERED) return;
    const problem = cloneProblem(pv, this.o.getVolume(req.source), this.o.node) ?? check;
    let outcome: WorkerOutcome;
    if (problem) {
      outcome = { outcome: "Failed", fatal: false, reason: "CloneSourceNotReady", message: problem };
    } else {
      try {
        const r = await copyVolumeFile(
          volumePaths(this.o.dataDir, req.source).image,
          volumePaths(this.o.dataDir, name).image,
          volumeSize(pv),
          {
            onProgress: (p) => {
              this.annotate(name, req, { [DvAnnotations.progress]: p }).catch(() => {});
            },
          },
        );
        outcome = { outcome: "Succeeded", message: "Clone Complete", bytes: r.bytes, sha256: "" };
        log.info("volume cloned", {
          source: req.source,
          bytes: r.bytes,
          allocated: r.allocated,
          ms: Math.round(performance.now() - t0),
          copyMs: r.copyMs,
          syncMs: r.syncMs,
        });
      } catch (e) {
        outcome = failedOutcome(e);
      }
    }
    if (outcome.outcome === "Failed") log.warn("clone failed", { source: req.source, ...outcome });
    await this.annotate(name, req, {
      [CloneAnnotations.result]: formatCloneAnnotation({ uid: req.uid, attempt: req.attempt, ...outcome }),
    });
    this.answered.set(name, answerKey(req));
  }

  /**
   * Whether the request is the DV's own: the PV's claim is controlled by the DV of the request's uid, and that DV's
   * source claim is bound to the request's source volume. Whoever wrote the annotation, no other volume is copied.
   */
  private async requestProblem(pv: PersistentVolume, req: CloneRequest): Promise<string | typeof ANSWERED | undefined> {
    const name = pv.metadata.name ?? "";
    // Copied already (this process answered it, or the PV read now says so while the cache lags): never again, the
    // target may be in use by now.
    if (this.answered.get(name) === answerKey(req)) return ANSWERED;
    const ref = pv.spec.claimRef;
    const get = <T extends KObject>(r: ResourceRef, ns: string | undefined, n: string) =>
      this.o.api.get<T>(r, ns, n).catch((e: unknown) => {
        if (isStatusError(e) && e.code === 404) return undefined;
        throw e;
      });
    const fresh = await get<PersistentVolume>(refs.pvs, undefined, name);
    if (!fresh || !pendingClone(fresh) || answerKey(cloneRequestOf(fresh)) !== answerKey(req)) return ANSWERED;
    // A DV's claim has the DV's name (storage contract §1): both read at once.
    const [pvc, dv] = ref?.name
      ? await Promise.all([
          get<PersistentVolumeClaim>(refs.pvcs, ref.namespace, ref.name),
          get<DvObject>(refs.datavolumes, ref.namespace, ref.name),
        ])
      : [];
    const owner = pvc?.metadata.ownerReferences?.find((o) => o.controller && o.kind === "DataVolume");
    if (!pvc || (ref?.uid && pvc.metadata.uid !== ref.uid) || owner?.uid !== req.uid || owner.name !== ref?.name) {
      return `the claim of volume ${pv.metadata.name} is not controlled by DataVolume ${req.uid}`;
    }
    const src = dv?.metadata.uid === req.uid ? dv.spec.source?.pvc : undefined;
    const srcPvc = src ? await get<PersistentVolumeClaim>(refs.pvcs, src.namespace, src.name) : undefined;
    if (!srcPvc || srcPvc.spec.volumeName !== req.source) {
      return `DataVolume ${req.uid} does not clone volume ${req.source}`;
    }
    return undefined;
  }

  /** Merges annotations into the PV while it still asks `req` (a fresh read each try: 409s are retried here). */
  private async annotate(name: string, req: CloneRequest, annotations: Record<string, string>): Promise<void> {
    for (let i = 0; ; i++) {
      let pv: PersistentVolume;
      try {
        pv = await this.o.api.get<PersistentVolume>(refs.pvs, undefined, name);
      } catch (e) {
        if (isStatusError(e) && e.code === 404) return;
        throw e;
      }
      const now = cloneRequestOf(pv);
      if (now?.uid !== req.uid || now.attempt !== req.attempt) return; // asked anew meanwhile
      try {
        await this.o.api.update<PersistentVolume>(refs.pvs, {
          ...pv,
          metadata: { ...pv.metadata, annotations: { ...pv.metadata.annotations, ...annotations } },
        });
        return;
      } catch (e) {
        if (isStatusError(e) && e.code === 404) return;
        if (!(isStatusError(e) && e.code === 409) || i >= 4) throw e;
      }
    }
  }

  /** One level-triggered round for a PV. Public so tests can step it. */
  async reconcile(name: string): Promise<void> {
    const pv = this.o.getVolume(name);
    const work = volumeWork(pv, this.o.node);
    if (!pv || work.kind === "none") return;
    const log = this.log.child({ kind: "PersistentVolume", name, uid: pv.metadata.uid });
    if (work.kind === "ensure") {
      // A volume born as a clone: its request is checked against the API while the volume is made.
      const req = pendingClone(pv);
      const checked = req ? this.requestProblem(pv, req) : undefined;
      checked?.catch(() => {}); // awaited in clone()
      const mode = volumeModeOf(pv) === "Block" ? "Block" : "Filesystem";
      const res = await ensureVolume(
        {
          dataDir: this.o.dataDir,
          name,
          sizeBytes: volumeSize(pv),
          mode,
          ...(this.o.owner ? { owner: this.o.owner } : {}),
        },
        this.o.exec,
      );
      log.debug("volume present", { image: res.image, device: res.device, bytes: res.bytes });
      // A volume born as a clone is copied before anything else is written to its PV (the DV waits on it); the
      // answer changes the PV, whose event brings the round that reports the size.
      if (req && checked) return this.clone(pv, req, checked, log);
      // Report the data's size on the PV (the storage controller finishes an expansion on it); the VMIs using the
      // volume are poked on every round where it is reported anew, and compare sizes again on their own syncs.
      const reported = pv.metadata.annotations?.[NODE_VOLUME_BYTES_ANNOTATION];
      if (reported !== String(res.bytes)) {
        try {
          await this.o.api.update<PersistentVolume>(refs.pvs, {
            ...pv,
            metadata: {
              ...pv.metadata,
              annotations: { ...pv.metadata.annotations, [NODE_VOLUME_BYTES_ANNOTATION]: String(res.bytes) },
            },
          });
        } catch (e) {
          if (isStatusError(e) && e.code === 404) return;
          throw e; // 409: the newer PV's event brings another round
        }
        if (reported !== undefined) log.info("volume grown", { bytes: res.bytes });
        this.o.onGrown?.(name, res.bytes);
      }
      return;
    }
    this.answered.delete(name);
    // Data first, finalizer last: a crash in between only repeats the (idempotent) delete.
    await deleteVolume(this.o.dataDir, name, this.o.exec);
    try {
      // Update with the cache's resourceVersion: a 409 (the PV changed meanwhile) retries from the newer object.
      await this.o.api.update<PersistentVolume>(refs.pvs, {
        ...pv,
        metadata: {
          ...pv.metadata,
          finalizers: (pv.metadata.finalizers ?? []).filter((f) => f !== LOCAL_VOLUME_FINALIZER),
        },
      });
    } catch (e) {
      if (isStatusError(e) && e.code === 404) return;
      throw e;
    }
    log.info("volume deleted; finalizer removed");
  }
}
