// The node half of the tsvirt-local provisioner (the local volume manager of a CSI node plugin): for every PV
// provisioned by tsvirt.io/local and pinned to this node, its data exists (storage/node's ensureVolume: a sparse
// <data dir>/volumes/<pv>/disk.img, and a loop device for Block); once the PV is being deleted, the data goes and
// then the finalizer tsvirt.io/local-volume does (its space stays counted until then). Level-triggered on
// lib/workqueue, keyed by PV name; every step is idempotent, so a kill -9 anywhere converges on the next round.
import { isStatusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { processNextItem, WorkQueue } from "../lib/workqueue/index.js";
import {
  isLocalVolume,
  LOCAL_VOLUME_FINALIZER,
  NODE_VOLUME_BYTES_ANNOTATION,
  volumeModeOf,
  volumeNode,
  volumeSize,
} from "../storage/index.js";
import { deleteVolume, type Exec, ensureVolume, reconcileLoopDevices } from "../storage/node/index.js";
import { type ApiClient, type PersistentVolume, refs } from "./ports.js";

export interface VolumeSyncOptions {
  node: string;
  /** The node's data dir (absolute): volumes live below <data dir>/volumes. */
  dataDir: string;
  api: Pick<ApiClient, "update">;
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

/** The local PVs on `node` whose data must stay (not being deleted): the set reconcileLoopDevices keeps. */
export function liveVolumes(pvs: readonly PersistentVolume[], node: string): Set<string> {
  return new Set(pvs.filter((pv) => volumeWork(pv, node).kind === "ensure").map((pv) => pv.metadata.name ?? ""));
}

export class VolumeSync {
  private readonly o: VolumeSyncOptions;
  readonly queue = new WorkQueue<string>();
  private readonly log: Logger;
  private closed = false;

  constructor(o: VolumeSyncOptions) {
    this.o = o;
    this.log = (o.log ?? nullLogger).child({ component: "volume-sync", node: o.node });
  }

  /**
   * Agent start, once the PV cache is complete: loop devices over volume files whose PV is gone or being deleted
   * are detached (autoclear frees them once unused), then the workers run.
   */
  async start(pvs: readonly PersistentVolume[], workers = 1): Promise<void> {
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

  /** One level-triggered round for a PV. Public so tests can step it. */
  async reconcile(name: string): Promise<void> {
    const pv = this.o.getVolume(name);
    const work = volumeWork(pv, this.o.node);
    if (!pv || work.kind === "none") return;
    const log = this.log.child({ kind: "PersistentVolume", name, uid: pv.metadata.uid });
    if (work.kind === "ensure") {
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
