// The storage controller's shell (kube-controller-manager's PV binder plus the tsvirt-local provisioner's
// controller half): informers for claims, volumes and classes, one work queue each for claims and volumes, and one
// key for the per-node CSIStorageCapacity objects. The decisions are plan.ts's; this file reads caches and writes.

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { nowRfc3339, StorageAnnotations } from "../api/index.js";
import {
  type Client,
  type CSIStorageCapacity,
  Informer,
  type KObject,
  keyOf,
  type Node,
  type PersistentVolume,
  type PersistentVolumeClaim,
  resources,
  type StorageClass,
} from "../client/index.js";
import { isAlreadyExists, isConflict, isNotFound } from "../lib/errors.js";
import { forObject, type Logger } from "../lib/log.js";
import { processNextItem, type ReconcileResult, runWorkers, WorkQueue } from "../lib/workqueue/index.js";
import {
  CAPACITY_NAMESPACE,
  type ClaimLookup,
  capacityObjects,
  claimedBefore,
  claimRefOf,
  claimSize,
  classOf,
  expansionRoom,
  freeByNode,
  LOCAL_CLASS,
  LOCAL_PROVISIONER,
  localStorageClass,
  nodeStorageCapacity,
  noRoomMessage,
  planClaim,
  planProvision,
  planVolume,
  RESIZING_CONDITION,
  usedByNode,
  volumeSize,
} from "./plan.js";

/** What the controller records events with (controller/events' Recorder has this shape). */
export interface EventSink {
  event(obj: KObject, type: "Normal" | "Warning", reason: string, message: string): void;
  /** The same sink, its events attributed to `component` (`kubectl get events`' SOURCE). */
  forComponent(component: string): EventSink;
}

/** Who a claim's or volume's events come from in Kubernetes: kube-controller-manager's PV binder and the
 * external-resizer (`external-resizer <driver>`); the provisioner's is provisionerComponent(). */
export const StorageComponents = {
  binder: "persistentvolume-controller",
  resizer: `external-resizer ${LOCAL_PROVISIONER}`,
} as const;

/** sig-storage-lib-external-provisioner's event source: `<provisioner>_<host>_<uuid>`, one per process. */
export function provisionerComponent(id = `${hostname()}_${randomUUID()}`): string {
  return `${LOCAL_PROVISIONER}_${id}`;
}

export interface StorageOptions {
  client: Client;
  /** The controller process's node informer (shared with the scheduler). */
  nodes: Informer<Node>;
  recorder: EventSink;
  log: Logger;
  now?: () => Date;
  /** The provisioner's identity in its events (default `<host>_<uuid>`, as the external provisioner's). */
  provisionerId?: string;
}

/** Retry of a claim the provisioner could not place (besides the retries capacity changes trigger). */
export const PROVISION_RETRY_MS = 30_000;
const CAPACITY_KEY = "capacity";

export class StorageController {
  readonly claims: Informer<PersistentVolumeClaim>;
  readonly volumes: Informer<PersistentVolume>;
  readonly classes: Informer<StorageClass>;
  readonly capacities: Informer<CSIStorageCapacity>;
  readonly nodes: Informer<Node>;
  readonly claimQueue = new WorkQueue<string>();
  readonly volumeQueue = new WorkQueue<string>();
  readonly capacityQueue = new WorkQueue<string>();
  private readonly client: Client;
  /** Events of the PV binder, the provisioner and the resizer, each under its Kubernetes component name. */
  private readonly binderEvents: EventSink;
  private readonly provisionerEvents: EventSink;
  private readonly resizerEvents: EventSink;
  private readonly log: Logger;
  private workers: Promise<unknown>[] = [];

  constructor(opts: StorageOptions) {
    this.client = opts.client;
    this.binderEvents = opts.recorder.forComponent(StorageComponents.binder);
    this.provisionerEvents = opts.recorder.forComponent(provisionerComponent(opts.provisionerId));
    this.resizerEvents = opts.recorder.forComponent(StorageComponents.resizer);
    this.log = opts.log.child({ controller: "storage" });
    this.nodes = opts.nodes;
    this.claims = new Informer<PersistentVolumeClaim>(opts.client, resources.pvcs, { log: this.log });
    this.volumes = new Informer<PersistentVolume>(opts.client, resources.pvs, { log: this.log });
    this.classes = new Informer<StorageClass>(opts.client, resources.storageclasses, { log: this.log });
    this.capacities = new Informer<CSIStorageCapacity>(opts.client, resources.csistoragecapacities, {
      log: this.log,
    });

    this.claims.addEventHandler({
      onAdd: (c) => this.claimChanged(c),
      onUpdate: (_o, c) => this.claimChanged(c),
      onDelete: (c) => {
        if (c.spec.volumeName) this.volumeQueue.add(c.spec.volumeName);
        this.spaceChanged();
      },
    });
    this.volumes.addEventHandler({
      onAdd: (v) => this.volumeChanged(v),
      onUpdate: (_o, v) => this.volumeChanged(v),
      onDelete: (v) => this.volumeChanged(v, true),
    });
    this.nodes.addEventHandler({
      onAdd: () => this.spaceChanged(),
      onUpdate: (o, n) => {
        if (nodeStorageCapacity(o) !== nodeStorageCapacity(n)) this.spaceChanged();
      },
      onDelete: () => this.spaceChanged(),
    });
    this.capacities.addEventHandler({ onDelete: () => this.capacityQueue.add(CAPACITY_KEY) });
  }

  private claimChanged(c: PersistentVolumeClaim): void {
    this.claimQueue.add(keyOf(c));
    if (c.spec.volumeName) this.volumeQueue.add(c.spec.volumeName);
    if (c.metadata.annotations?.[StorageAnnotations.selectedNode]) this.capacityQueue.add(CAPACITY_KEY);
  }

  private volumeChanged(v: PersistentVolume, deleted = false): void {
    if (!deleted) this.volumeQueue.add(v.metadata.name ?? "");
    const ref = v.spec.claimRef;
    if (ref?.name) this.claimQueue.add(`${ref.namespace}/${ref.name}`);
    if (deleted) this.spaceChanged();
    else this.capacityQueue.add(CAPACITY_KEY);
  }

  /** Space on some node changed: republish capacity and retry the claims waiting for room. */
  private spaceChanged(): void {
    this.capacityQueue.add(CAPACITY_KEY);
    for (const c of this.claims.list()) {
      const pv = c.spec.volumeName ? this.volumes.get(c.spec.volumeName) : undefined;
      // Unbound claims waiting for room, and bound ones waiting for room to grow.
      if (!c.spec.volumeName || (pv && claimSize(c) > volumeSize(pv))) this.claimQueue.add(keyOf(c));
    }
  }

  /** Whether the claim is the local provisioner's (its class, or the default class, is tsvirt-local's). */
  readonly isLocal = (c: PersistentVolumeClaim): boolean =>
    classOf(c, this.classes.list())?.provisioner === LOCAL_PROVISIONER;

  /** The caches as the scheduler's volume binding reads them. */
  readonly lookup: ClaimLookup = {
    claim: (ns, name) => this.claims.get(`${ns}/${name}`),
    volume: (name) => this.volumes.get(name),
    classOf: (c) => classOf(c, this.classes.list()),
    volumes: () => this.volumes.list(),
  };

  /** Each storage node's free bytes, counting `extra` claims too (the scheduler's not-yet-annotated ones). */
  freeBytes(extra: readonly { node: string; claim: PersistentVolumeClaim }[] = []): Map<string, number> {
    return freeByNode(this.nodes.list(), usedByNode(this.volumes.list(), this.claims.list(), this.isLocal, extra));
  }

  async reconcileClaim(key: string): Promise<ReconcileResult> {
    const pvc = this.claims.get(key);
    if (!pvc) return {};
    const log = forObject(this.log, pvc);
    const cls = classOf(pvc, this.classes.list());
    const selected = pvc.metadata.annotations?.[StorageAnnotations.selectedNode];
    const node = selected ? this.nodes.get(selected) : undefined;
    const action = planClaim(pvc, cls, this.volumes.list(), node);
    switch (action.kind) {
      case "none":
        return {};
      case "bind":
        await this.bind(pvc, action.volume);
        log.info("Bound claim", { volume: action.volume });
        return {};
      case "markBound": {
        const pv = this.volumes.get(action.volume);
        if (pv) await this.markBound(pvc, pv);
        return {};
      }
      case "warn": // only planExpansion warns (a volume it cannot grow): the resizer's word
        this.resizerEvents.event(pvc, "Warning", action.reason, action.message);
        return {};
      case "lost":
        await this.setClaimPhase(pvc, "Lost");
        this.binderEvents.event(pvc, "Warning", "ClaimLost", action.message);
        return {};
      case "pending": {
        await this.setClaimPhase(pvc, "Pending");
        if (action.reason) this.binderEvents.event(pvc, action.eventType, action.reason, action.message);
        // A waiting local claim that no node could hold says so now, not only once a pod needs it.
        if (action.reason === "WaitForFirstConsumer" && cls?.provisioner === LOCAL_PROVISIONER) {
          const free = this.freeFor(pvc);
          const size = claimSize(pvc);
          if (![...free.values()].some((f) => f >= size)) {
            this.provisionerEvents.event(pvc, "Warning", "ProvisioningFailed", noRoomMessage(size, free));
          }
        }
        return {};
      }
      case "provision":
        return this.provision(pvc, selected ?? "", node);
      case "expand":
        return this.expand(pvc, action.volume, action.bytes);
      case "resizing":
        await this.setResizing(pvc);
        return {};
      case "expanded": {
        const pv = this.volumes.get(action.volume);
        if (!pv) return {};
        const conditions = (pvc.status?.conditions ?? []).filter(
          (c) => c.type !== RESIZING_CONDITION && c.type !== "FileSystemResizePending",
        );
        const status = { ...pvc.status, capacity: { ...pvc.status?.capacity, ...pv.spec.capacity }, conditions };
        if (conditions.length === 0) delete (status as { conditions?: unknown }).conditions; // omitted when empty
        await this.client.updateStatus(resources.pvcs, { ...pvc, status });
        this.resizerEvents.event(pvc, "Normal", "VolumeResizeSuccessful", "Resize volume succeeded");
        log.info("Expanded claim", { volume: action.volume, capacity: pv.spec.capacity?.storage });
        return {};
      }
    }
  }

  /** Grows the claim's PV to the requested size if its node has room (thick); its node agent grows the data. */
  private async expand(pvc: PersistentVolumeClaim, volumeName: string, bytes: number): Promise<ReconcileResult> {
    const pv = this.volumes.get(volumeName);
    if (!pv) return {};
    const noRoom = expansionRoom(pv, bytes, this.freeBytes());
    if (noRoom) {
      this.resizerEvents.event(pvc, "Warning", "VolumeResizeFailed", noRoom);
      forObject(this.log, pvc).info("Cannot expand claim", { volume: volumeName, message: noRoom });
      return { requeueAfterMs: PROVISION_RETRY_MS };
    }
    const storage = pvc.spec.resources?.requests?.storage ?? String(bytes);
    await this.client.update(resources.pvs, {
      ...pv,
      spec: { ...pv.spec, capacity: { ...pv.spec.capacity, storage } },
    });
    await this.setResizing(pvc);
    this.resizerEvents.event(pvc, "Normal", "Resizing", `External resizer is resizing volume ${volumeName}`);
    forObject(this.log, pvc).info("Expanding volume", { volume: volumeName, storage });
    return {};
  }

  /** The claim's Resizing condition (kept until the node has grown the volume). */
  private async setResizing(pvc: PersistentVolumeClaim): Promise<void> {
    if (pvc.status?.conditions?.some((c) => c.type === RESIZING_CONDITION && c.status === "True")) return;
    const conditions = [
      ...(pvc.status?.conditions ?? []).filter((c) => c.type !== RESIZING_CONDITION),
      { type: RESIZING_CONDITION, status: "True" as const, lastTransitionTime: nowRfc3339() },
    ];
    await this.client.updateStatus(resources.pvcs, { ...pvc, status: { ...pvc.status, conditions } });
  }

  /** Free bytes per node for this claim: volumes and the claims ahead of it, not the claim itself. */
  private freeFor(pvc: PersistentVolumeClaim): Map<string, number> {
    const ahead = claimedBefore(pvc, this.claims.list());
    return freeByNode(this.nodes.list(), usedByNode(this.volumes.list(), ahead, this.isLocal));
  }

  private async provision(pvc: PersistentVolumeClaim, nodeName: string, node: Node | undefined) {
    const cls = classOf(pvc, this.classes.list());
    if (!cls) return {};
    await this.setClaimPhase(pvc, "Pending");
    const plan = planProvision(pvc, cls, nodeName, node, this.freeFor(pvc));
    if (!plan.ok) {
      this.provisionerEvents.event(pvc, "Warning", "ProvisioningFailed", plan.message);
      forObject(this.log, pvc).info("Cannot provision claim", { node: nodeName, message: plan.message });
      return { requeueAfterMs: PROVISION_RETRY_MS };
    }
    try {
      await this.client.create(resources.pvs, undefined, plan.volume);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return {};
    }
    this.provisionerEvents.event(
      pvc,
      "Normal",
      "ProvisioningSucceeded",
      `Successfully provisioned volume ${plan.volume.metadata.name} on node ${nodeName}`,
    );
    forObject(this.log, pvc).info("Provisioned volume", { volume: plan.volume.metadata.name, node: nodeName });
    return {};
  }

  /** kube's bindVolumeToClaim then bindClaimToVolume: the PV first, so a crash between leaves a PV the claim finds. */
  private async bind(pvc: PersistentVolumeClaim, volumeName: string): Promise<void> {
    let pv = this.volumes.get(volumeName);
    if (!pv) return;
    const ref = pv.spec.claimRef;
    if (!ref?.uid || ref.uid !== pvc.metadata.uid || ref.name !== pvc.metadata.name) {
      const annotations = ref
        ? pv.metadata.annotations
        : { ...pv.metadata.annotations, [StorageAnnotations.boundByController]: "yes" };
      pv = await this.client.update<PersistentVolume>(resources.pvs, {
        ...pv,
        metadata: { ...pv.metadata, ...(annotations ? { annotations } : {}) },
        spec: {
          ...pv.spec,
          claimRef: { ...claimRefOf(pvc), resourceVersion: pvc.metadata.resourceVersion },
        },
      });
    }
    if (pv.status?.phase !== "Bound") {
      pv = await this.client.updateStatus<PersistentVolume>(resources.pvs, {
        ...pv,
        status: { ...pv.status, phase: "Bound" },
      });
    }
    let claim = pvc;
    if (claim.spec.volumeName !== volumeName) {
      const annotations: Record<string, string> = {
        ...claim.metadata.annotations,
        [StorageAnnotations.bindCompleted]: "yes",
      };
      if (!claim.spec.volumeName) annotations[StorageAnnotations.boundByController] = "yes";
      claim = await this.client.update(resources.pvcs, {
        ...claim,
        metadata: { ...claim.metadata, annotations },
        spec: { ...claim.spec, volumeName },
      });
    }
    await this.markBound(claim, pv);
  }

  private async markBound(pvc: PersistentVolumeClaim, pv: PersistentVolume): Promise<void> {
    if (pv.status?.phase !== "Bound") {
      await this.client.updateStatus(resources.pvs, { ...pv, status: { ...pv.status, phase: "Bound" } });
    }
    const status = {
      ...pvc.status,
      phase: "Bound" as const,
      accessModes: pv.spec.accessModes ?? [],
      capacity: { ...pv.spec.capacity },
    };
    if (JSON.stringify(status) === JSON.stringify(pvc.status)) return;
    await this.client.updateStatus(resources.pvcs, { ...pvc, status });
  }

  private async setClaimPhase(pvc: PersistentVolumeClaim, phase: "Pending" | "Lost"): Promise<void> {
    if (pvc.status?.phase === phase) return;
    try {
      await this.client.updateStatus(resources.pvcs, { ...pvc, status: { ...pvc.status, phase } });
    } catch (err) {
      if (!isNotFound(err) && !isConflict(err)) throw err;
    }
  }

  async reconcileVolume(name: string): Promise<ReconcileResult> {
    const pv = this.volumes.get(name);
    if (!pv) return {};
    const ref = pv.spec.claimRef;
    let claim = ref?.name ? this.claims.get(`${ref.namespace}/${ref.name}`) : undefined;
    if (ref?.uid && !claim) {
      // The cache may lag a claim just made: only the API's 404 releases a volume (kube's syncVolume does the same).
      claim = await this.client
        .get<PersistentVolumeClaim>(resources.pvcs, ref.namespace, ref.name ?? "")
        .catch((err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        });
    }
    const action = planVolume(pv, claim);
    const log = forObject(this.log, pv);
    switch (action.kind) {
      case "none":
        return {};
      case "phase":
        await this.client.updateStatus(resources.pvs, {
          ...pv,
          status: { ...pv.status, phase: action.phase, ...(action.message ? { message: action.message } : {}) },
        });
        if (action.phase === "Failed")
          this.binderEvents.event(pv, "Warning", "VolumeFailedDelete", action.message ?? "");
        log.info("Volume phase", { phase: action.phase });
        return {};
      case "delete":
        try {
          await this.client.delete(resources.pvs, undefined, name, { preconditions: { uid: pv.metadata.uid } });
        } catch (err) {
          if (!isNotFound(err) && !isConflict(err)) throw err;
        }
        log.info("Deleting released volume (reclaim policy Delete); the node frees its data");
        return {};
    }
  }

  /** Publishes one CSIStorageCapacity per storage node and removes those of nodes that went. */
  async reconcileCapacity(): Promise<ReconcileResult> {
    const want = capacityObjects(this.freeBytes());
    const have = new Map(
      this.capacities
        .list(CAPACITY_NAMESPACE)
        .filter((c) => c.storageClassName === LOCAL_CLASS)
        .map((c) => [c.metadata.name ?? "", c]),
    );
    for (const w of want) {
      const cur = have.get(w.metadata.name ?? "");
      have.delete(w.metadata.name ?? "");
      if (!cur) {
        await this.client.create(resources.csistoragecapacities, CAPACITY_NAMESPACE, w).catch((err: unknown) => {
          if (!isAlreadyExists(err)) throw err;
        });
      } else if (cur.capacity !== w.capacity || cur.maximumVolumeSize !== w.maximumVolumeSize) {
        await this.client.update(resources.csistoragecapacities, { ...cur, ...w, metadata: cur.metadata });
      }
    }
    for (const stale of have.values()) {
      await this.client
        .delete(resources.csistoragecapacities, CAPACITY_NAMESPACE, stale.metadata.name ?? "")
        .catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
    }
    return {};
  }

  /** Creates the default tsvirt-local class when absent (an existing one, even edited, is left alone). */
  async ensureDefaultClass(): Promise<void> {
    try {
      await this.client.create(resources.storageclasses, undefined, localStorageClass());
      this.log.info("Created the default storage class", { name: LOCAL_CLASS });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  private readonly onError = (queue: string) => (key: string, err: unknown) =>
    this.log.warn("Reconcile failed, re-enqueuing", { queue, key, err: String(err) });

  /** Step functions for tests: process exactly one queued key. */
  stepClaim(): Promise<boolean> {
    return processNextItem(this.claimQueue, (k) => this.reconcileClaim(k), this.onError("claim"));
  }
  stepVolume(): Promise<boolean> {
    return processNextItem(this.volumeQueue, (k) => this.reconcileVolume(k), this.onError("volume"));
  }
  stepCapacity(): Promise<boolean> {
    return processNextItem(this.capacityQueue, () => this.reconcileCapacity(), this.onError("capacity"));
  }

  /** Informers other than nodes (the owner of the node informer starts it). */
  startInformers(): void {
    this.claims.start();
    this.volumes.start();
    this.classes.start();
    this.capacities.start();
  }

  async waitForSync(): Promise<void> {
    await Promise.all([
      this.claims.waitForSync(),
      this.volumes.waitForSync(),
      this.classes.waitForSync(),
      this.capacities.waitForSync(),
    ]);
  }

  /** Runs the workers (informers started and synced by the caller). */
  async run(threads = 2): Promise<void> {
    await this.ensureDefaultClass();
    this.workers.push(runWorkers(this.claimQueue, threads, (k) => this.reconcileClaim(k), this.onError("claim")));
    this.workers.push(runWorkers(this.volumeQueue, threads, (k) => this.reconcileVolume(k), this.onError("volume")));
    this.workers.push(runWorkers(this.capacityQueue, 1, () => this.reconcileCapacity(), this.onError("capacity")));
    this.capacityQueue.add(CAPACITY_KEY);
  }

  async stop(): Promise<void> {
    for (const q of [this.claimQueue, this.volumeQueue, this.capacityQueue]) q.shutdown();
    await Promise.all([this.claims.stop(), this.volumes.stop(), this.classes.stop(), this.capacities.stop()]);
    await Promise.all(this.workers);
    this.workers = [];
  }
}
