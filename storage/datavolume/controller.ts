// The DataVolume controller's shell (CDI's datavolume + import/upload/clone controllers, cut to tsvirt's sources):
// informers on DVs and the worker pods (label app=containerized-data-importer), the storage controller's claim,
// volume and class caches, one work queue of DV keys. plan.ts decides; this file reads caches and writes. It is the
// only writer of DV status, and keeps the CDIConfig singleton's status.

import { StorageAnnotations } from "../../api/index.js";
import {
  type CDIConfig,
  type Client,
  type DataVolume,
  Informer,
  type KObject,
  keyOf,
  type PersistentVolumeClaim,
  type Pod,
  resources,
} from "../../client/index.js";
import { isAlreadyExists, isConflict, isNotFound } from "../../lib/errors.js";
import { forObject, type Logger } from "../../lib/log.js";
import { processNextItem, type ReconcileResult, runWorkers, WorkQueue } from "../../lib/workqueue/index.js";
import type { EventSink, StorageController } from "../controller.js";
import { type DvAction, DvComponents, type Operation, operationOf, planDataVolume } from "./plan.js";
import {
  cloneSourcePodName,
  DvAnnotations,
  importerPodName,
  uploadPodName,
  WORKER_APP,
  WORKER_APP_LABEL,
  WorkerRoles,
} from "./pods.js";

export interface DataVolumeOptions {
  client: Client;
  /** The storage controller: its claim/volume/class caches and each node's free space. */
  storage: StorageController;
  recorder: EventSink;
  log: Logger;
  now?: () => Date;
  /** The API server's URL as this controller reaches it: uploads go there (CDIConfig status.uploadProxyURL). */
  apiServerURL?: string;
  /** The process's shared DataVolume and pod informers (one watch per resource); absent: its own (tests). */
  dvs?: Informer<DataVolume>;
  pods?: Informer<Pod>;
}

export const CDI_CONFIG_NAME = "config";
const CONFIG_KEY = "\u0000cdiconfig";
/** When the cache is behind the API: its watch brings the newer DV (and a new reconcile) in about this much. */
const STALE_RETRY_MS = 200;

/** CDI's default worker pod resources (CDIConfig status.defaultPodResourceRequirements). */
export const DEFAULT_POD_RESOURCES = {
  limits: { cpu: "750m", memory: "600M" },
  requests: { cpu: "100m", memory: "60M" },
};

/** The CDIConfig status tsvirt reports: no scratch space is ever used ("" = the target's class, as CDI says). */
export function cdiConfigStatus(cfg: CDIConfig | undefined, apiServerURL: string | undefined): CDIConfig["status"] {
  const url = cfg?.spec?.uploadProxyURLOverride || apiServerURL;
  return {
    ...(url ? { uploadProxyURL: url } : {}),
    scratchSpaceStorageClass: "",
    defaultPodResourceRequirements: structuredClone(DEFAULT_POD_RESOURCES),
    // disk.img is the size asked: no filesystem overhead anywhere
    filesystemOverhead: { global: "0", storageClass: {} },
    preallocation: false,
  };
}

export class DataVolumeController {
  readonly dvs: Informer<DataVolume>;
  readonly pods: Informer<Pod>;
  readonly configs: Informer<CDIConfig>;
  readonly queue = new WorkQueue<string>();
  private readonly client: Client;
  private readonly storage: StorageController;
  /** One sink per CDI controller (import, upload, clone): a DV's events come from the one of its operation. */
  private readonly recorders: Record<Operation, EventSink>;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly apiServerURL: string | undefined;
  private workers: Promise<unknown>[] = [];
  /** The informers it made itself (it starts and stops only those). */
  private readonly own: { start(): void; stop(): Promise<void> | void }[] = [];

  constructor(opts: DataVolumeOptions) {
    this.client = opts.client;
    this.storage = opts.storage;
    const r = opts.recorder;
    this.recorders = {
      Import: r.forComponent(DvComponents.Import),
      Upload: r.forComponent(DvComponents.Upload),
      Clone: r.forComponent(DvComponents.Clone),
    };
    this.log = opts.log.child({ controller: "datavolume" });
    this.now = opts.now ?? (() => new Date());
    this.apiServerURL = opts.apiServerURL;
    this.dvs = opts.dvs ?? this.mine(new Informer<DataVolume>(opts.client, resources.datavolumes, { log: this.log }));
    // A shared pod informer holds every pod: handlers and lookups go by owner, name and role label, never by "all".
    this.pods =
      opts.pods ??
      this.mine(
        new Informer<Pod>(opts.client, resources.pods, {
          log: this.log,
          labelSelector: `${WORKER_APP_LABEL}=${WORKER_APP}`,
        }),
      );
    this.configs = this.mine(new Informer<CDIConfig>(opts.client, resources.cdiconfigs, { log: this.log }));

    const dvChanged = (d: DataVolume) => this.queue.add(keyOf(d));
    this.dvs.addEventHandler({
      onAdd: dvChanged,
      onUpdate: (_o, d) => dvChanged(d),
      onDelete: dvChanged,
    });
    const podChanged = (p: Pod) => {
      const key = this.dvKeyOfPod(p);
      if (key) this.queue.add(key);
    };
    this.pods.addEventHandler({ onAdd: podChanged, onUpdate: (_o, p) => podChanged(p), onDelete: podChanged });
    const claimChanged = (c: PersistentVolumeClaim) => {
      const owner = c.metadata.ownerReferences?.find((r) => r.controller && r.kind === "DataVolume");
      if (owner) this.queue.add(`${c.metadata.namespace}/${owner.name}`);
      else if (this.dvs.get(keyOf(c))) this.queue.add(keyOf(c));
      // clones waiting for this claim as their source
      for (const d of this.dvs.list()) {
        const s = d.spec.source?.pvc;
        if (s && s.namespace === c.metadata.namespace && s.name === c.metadata.name) this.queue.add(keyOf(d));
      }
    };
    this.storage.claims.addEventHandler({
      onAdd: claimChanged,
      onUpdate: (_o, c) => claimChanged(c),
      onDelete: claimChanged,
    });
    this.storage.volumes.addEventHandler({
      onAdd: (v) => this.volumeChanged(v.spec.claimRef),
      onUpdate: (_o, v) => this.volumeChanged(v.spec.claimRef),
    });
    const configChanged = () => this.queue.add(CONFIG_KEY);
    this.configs.addEventHandler({ onAdd: configChanged, onUpdate: configChanged, onDelete: configChanged });
  }

  private volumeChanged(ref: { namespace?: string; name?: string } | undefined): void {
    if (!ref?.name) return;
    const c = this.storage.claims.get(`${ref.namespace}/${ref.name}`);
    if (c) {
      const owner = c.metadata.ownerReferences?.find((r) => r.controller && r.kind === "DataVolume");
      if (owner) this.queue.add(`${c.metadata.namespace}/${owner.name}`);
    }
    for (const d of this.dvs.list()) {
      const s = d.spec.source?.pvc;
      if (s && s.namespace === ref.namespace && s.name === ref.name) this.queue.add(keyOf(d));
    }
  }

  /** The DV a worker pod works for: its controller owner, or a clone source pod's target annotation. */
  private dvKeyOfPod(p: Pod): string | undefined {
    const owner = p.metadata.ownerReferences?.find((r) => r.controller && r.kind === "DataVolume");
    if (owner) return `${p.metadata.namespace}/${owner.name}`;
    return p.metadata.annotations?.[DvAnnotations.cloneTarget];
  }

  /** Clone source pods that work for the DV key (any namespace). */
  private sourcePodsFor(key: string): Pod[] {
    return this.pods
      .list()
      .filter(
        (p) =>
          p.metadata.labels?.["cdi.kubevirt.io"] === WorkerRoles.cloneSource &&
          p.metadata.annotations?.[DvAnnotations.cloneTarget] === key,
      );
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    if (key === CONFIG_KEY) return this.reconcileConfig();
    const dv = this.dvs.get(key);
    // A clone source pod has no owner (it may live in another namespace): it goes with its DV here.
    for (const p of this.sourcePodsFor(key)) {
      if (!dv || p.metadata.annotations?.[DvAnnotations.cloneTargetUid] !== dv.metadata.uid) await this.deletePod(p);
    }
    if (!dv) return {};
    const ns = dv.metadata.namespace ?? "";
    const name = dv.metadata.name ?? "";
    const pvc = this.storage.claims.get(key);
    const pv = pvc?.spec.volumeName ? this.storage.volumes.get(pvc.spec.volumeName) : undefined;
    const podName = dv.spec.source?.upload ? uploadPodName(dv) : importerPodName(dv);
    const pod = this.pods.get(`${ns}/${podName}`);
    const ownPod = pod?.metadata.ownerReferences?.some((r) => r.uid === dv.metadata.uid) ? pod : undefined;
    const srcRef = dv.spec.source?.pvc;
    const source = srcRef
      ? (() => {
          const spvc = this.storage.claims.get(`${srcRef.namespace}/${srcRef.name}`);
          const spv = spvc?.spec.volumeName ? this.storage.volumes.get(spvc.spec.volumeName) : undefined;
          const spod = this.pods.get(`${srcRef.namespace}/${cloneSourcePodName(dv)}`);
          return { ...(spvc ? { pvc: spvc } : {}), ...(spv ? { pv: spv } : {}), ...(spod ? { pod: spod } : {}) };
        })()
      : undefined;
    // A clone waits while a pod (a running VMI's launcher) uses its source: the pods of the source's namespace are
    // read live (this informer holds worker pods only), and only for a clone still under way.
    const phase = dv.status?.phase;
    if (source?.pv && srcRef && phase !== "Succeeded" && phase !== "Failed") {
      const pods = (await this.client.list<Pod>(resources.pods, srcRef.namespace)).items;
      Object.assign(source, { pods });
    }
    // A stale pod of the same name (an earlier DV's) goes first.
    if (pod && !ownPod) await this.deletePod(pod);
    const plan = planDataVolume({
      dv,
      ...(pvc ? { pvc } : {}),
      ...(pv ? { pv } : {}),
      classes: this.storage.classes.list(),
      ...(ownPod ? { pod: ownPod } : {}),
      ...(source ? { source } : {}),
      free: this.storage.freeBytes(),
      now: this.now(),
    });
    const log = forObject(this.log, dv);
    // A worker made from a DV older than the API's could redo finished work: after Succeeded deleted the importer,
    // a cache still at ImportInProgress saw no pod and made a new one, whose clean start wiped the imported disk.
    if (plan.actions.some((a) => a.kind === "createPod") && !(await this.isCurrent(dv))) {
      return { requeueAfterMs: STALE_RETRY_MS };
    }
    const changed = JSON.stringify(plan.status) !== JSON.stringify(dv.status ?? {});
    const writeStatus = async (): Promise<void> => {
      await this.client.updateStatus<DataVolume>(resources.datavolumes, { ...dv, status: plan.status });
      if (plan.status.phase !== dv.status?.phase) {
        log.info("DataVolume phase", { phase: plan.status.phase, progress: plan.status.progress, name });
      }
    };
    // Succeeded is written before its worker pods go: if the write fails, the finished pod is still there to say so.
    const done = changed && plan.status.phase === "Succeeded" && dv.status?.phase !== "Succeeded";
    if (done) await writeStatus();
    for (const a of plan.actions) await this.act(dv, pvc, a, log);
    if (changed && !done) await writeStatus();
    return plan.requeueAfterMs !== undefined ? { requeueAfterMs: plan.requeueAfterMs } : {};
  }

  /** Whether the API holds this very version of the DV (not a newer one the cache has yet to see). */
  private async isCurrent(dv: DataVolume): Promise<boolean> {
    try {
      const live = await this.client.get<DataVolume>(
        resources.datavolumes,
        dv.metadata.namespace,
        dv.metadata.name ?? "",
      );
      return live.metadata.resourceVersion === dv.metadata.resourceVersion;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  private eventsOf(dv: DataVolume): EventSink {
    return this.recorders[operationOf(dv)];
  }

  private async act(dv: DataVolume, pvc: PersistentVolumeClaim | undefined, a: DvAction, log: Logger): Promise<void> {
    switch (a.kind) {
      case "event":
        this.eventsOf(dv).event(dv as KObject, a.type, a.reason, a.message);
        return;
      case "createClaim":
        try {
          await this.client.create(resources.pvcs, a.claim.metadata.namespace, a.claim);
          log.info("Created the DataVolume's claim");
          const node = a.claim.metadata.annotations?.[StorageAnnotations.selectedNode];
          if (node && node !== dv.metadata.annotations?.[StorageAnnotations.selectedNode]) {
            // the planner chose the node of an immediate-bind claim as it made it
            this.eventsOf(dv).event(
              dv as KObject,
              "Normal",
              "BindImmediate",
              `PVC ${a.claim.metadata.name} placed on node ${node} (immediate binding)`,
            );
          }
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
        }
        return;
      case "selectNode":
        if (!pvc) return;
        await this.client.patch(resources.pvcs, pvc.metadata.namespace, pvc.metadata.name ?? "", "merge", {
          metadata: { annotations: { [StorageAnnotations.selectedNode]: a.node } },
        });
        this.eventsOf(dv).event(
          dv as KObject,
          "Normal",
          "BindImmediate",
          `PVC ${pvc.metadata.name} placed on node ${a.node} (immediate binding)`,
        );
        log.info("Immediate bind: selected a node for the claim", { node: a.node });
        return;
      case "annotateClaim":
        if (!pvc) return;
        // resourceVersion-guarded: a retry re-reads the claim, so a failure is never counted twice
        await this.client.update(resources.pvcs, {
          ...pvc,
          metadata: { ...pvc.metadata, annotations: { ...pvc.metadata.annotations, ...a.annotations } },
        });
        return;
      case "annotateVolume":
        await this.client.patch(resources.pvs, undefined, a.name, "merge", {
          metadata: { annotations: a.annotations },
        });
        log.info("Asked the node to clone the source volume", { volume: a.name });
        return;
      case "createPod":
        try {
          await this.client.create(resources.pods, a.pod.metadata.namespace, a.pod);
          log.info("Created worker pod", { pod: a.pod.metadata.name, node: a.pod.spec.nodeName });
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
        }
        return;
      case "deletePod":
        await this.deletePod({ metadata: { namespace: a.namespace, name: a.name, uid: a.uid } });
        return;
    }
  }

  private async deletePod(p: KObject): Promise<void> {
    try {
      await this.client.delete(resources.pods, p.metadata.namespace, p.metadata.name ?? "", {
        ...(p.metadata.uid ? { preconditions: { uid: p.metadata.uid } } : {}),
      });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  /** The CDIConfig singleton: created when absent, its status kept (the upload URL is the API server's). */
  async reconcileConfig(): Promise<ReconcileResult> {
    let cfg = this.configs.get(CDI_CONFIG_NAME);
    if (!cfg) {
      try {
        cfg = await this.client.create<CDIConfig>(resources.cdiconfigs, undefined, {
          apiVersion: "cdi.kubevirt.io/v1beta1",
          kind: "CDIConfig",
          metadata: { name: CDI_CONFIG_NAME, labels: { "app.kubernetes.io/managed-by": "tsvirt" } },
          spec: {},
        });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        cfg = await this.client.get<CDIConfig>(resources.cdiconfigs, undefined, CDI_CONFIG_NAME);
      }
    }
    const status = cdiConfigStatus(cfg, this.apiServerURL);
    if (JSON.stringify(status) !== JSON.stringify(cfg.status ?? {})) {
      await this.client.updateStatus<CDIConfig>(resources.cdiconfigs, { ...cfg, status });
    }
    return {};
  }

  private readonly onError = (key: string, err: unknown) =>
    this.log.warn("Reconcile failed, re-enqueuing", { queue: "datavolume", key, err: String(err) });

  /** Step function for tests: process exactly one queued key. */
  step(): Promise<boolean> {
    return processNextItem(this.queue, (k) => this.reconcile(k), this.onError);
  }

  private mine<T extends { start(): void; stop(): Promise<void> | void }>(i: T): T {
    this.own.push(i);
    return i;
  }

  /** Its own informers (shared ones, and the storage controller's, are started by their owner). */
  startInformers(): void {
    for (const i of this.own) i.start();
  }

  async waitForSync(): Promise<void> {
    await Promise.all([this.dvs.waitForSync(), this.pods.waitForSync(), this.configs.waitForSync()]);
  }

  async run(threads = 2): Promise<void> {
    this.queue.add(CONFIG_KEY);
    this.workers.push(runWorkers(this.queue, threads, (k) => this.reconcile(k), this.onError));
  }

  async stop(): Promise<void> {
    this.queue.shutdown();
    await Promise.all(this.own.map((i) => i.stop()));
    await Promise.all(this.workers);
    this.workers = [];
  }
}
