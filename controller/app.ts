// virt-controller's wiring: shared informers (VMs, VMIs, pods, nodes), one work queue per reconciler, event handlers
// that map a changed object to the keys it affects, and worker loops. Nothing here decides anything; the reconcilers do.

import {
  Evacuation,
  effectiveConfiguration,
  isColdMigration,
  KUBEVIRT_NAME,
  KUBEVIRT_NAMESPACE,
  Migration,
  RetainedDisks,
} from "../api/index.js";
import {
  type Client,
  ClusterConfig,
  type DataVolume,
  Informer,
  type KObject,
  keyOf,
  type MigrationPolicy,
  type Node,
  ownerUidIndex,
  type PersistentVolume,
  type Pod,
  resources,
  type VirtualMachine,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
  type VirtualMachineInstanceReplicaSet,
} from "../client/index.js";
import { createLogger, type Logger } from "../lib/log.js";
import { processNextItem, runWorkers, WorkQueue } from "../lib/workqueue/index.js";
import { DataVolumeController } from "../storage/datavolume/index.js";
import { podClaimNames, StorageController } from "../storage/index.js";
import { type ColdDeps, coldKeysFor, reconcileColdMigration } from "./coldmigration/index.js";
import { type EvacuationDeps, reconcileEvacuation } from "./evacuation/controller.js";
import { EventRecorder, type Recorder } from "./events/index.js";
import { Expectations } from "./expectations.js";
import { isFinal, type MigrationDeps, reconcileMigration } from "./migration/index.js";
import { type PodCidrDeps, reconcileNodeCidr } from "./node/podcidr.js";
import { selectorMatches } from "./replicaset/plan.js";
import { type RsDeps, reconcileReplicaSet } from "./replicaset/replicaset.js";
import {
  hasPodAffinity,
  NODE_INDEX,
  needsScheduling,
  nodeNameIndex,
  POD_AFFINITY_INDEX,
  podAffinityIndex,
  reconcilePodScheduling,
  type SchedulerDeps,
} from "./scheduler/scheduler.js";
import { reconcileVm, type VmDeps } from "./vm/vm.js";
import { OWNER_INDEX, reconcileVmi, type VmiDeps } from "./vmi/vmi.js";

export interface ControllerOptions {
  client: Client;
  log?: Logger;
  now?: () => Date;
  recorder?: Recorder;
  /** Worker loops per queue (VM, ReplicaSet). Default 3 (KubeVirt's defaultControllerThreads). */
  threads?: number;
  /** Worker loops of the VMI queue. Default 10 (KubeVirt's defaultVMIControllerThreads). */
  vmiThreads?: number;
  /** Scheduler workers, i.e. bindings in flight at once (each decides and reserves synchronously). Default 8. */
  schedulerThreads?: number;
  /** Run the built-in scheduler (embedded mode). Default true. */
  scheduler?: boolean;
  /** Allocate Node spec.podCIDR. Default true. */
  podCidr?: boolean;
  /** Run the PV binder and the tsvirt-local provisioner (storage/), and the DataVolume controller. Default true. */
  storage?: boolean;
  /** The API server's URL as this process reaches it (CDIConfig status.uploadProxyURL: uploads go there). */
  apiServerURL?: string;
}

/** VMIMs by the ns/name of the VMI they migrate. */
const VMIM_VMI_INDEX = "vmi";

function controllerKey(o: KObject, kind: string): string | undefined {
  const ref = o.metadata.ownerReferences?.find((r) => r.controller && r.kind === kind);
  if (!ref) return undefined;
  return o.metadata.namespace ? `${o.metadata.namespace}/${ref.name}` : ref.name;
}

export class VirtController {
  readonly vms: Informer<VirtualMachine>;
  readonly vmis: Informer<VirtualMachineInstance>;
  readonly pods: Informer<Pod>;
  readonly nodes: Informer<Node>;
  /** Namespaces (their labels), for pod affinity terms with a namespaceSelector. */
  readonly namespaces: Informer<KObject>;
  readonly replicasets: Informer<VirtualMachineInstanceReplicaSet>;
  /** DataVolumes (the VMs' disks) and VirtualMachinePools (whether their members keep their disks). */
  readonly dvs: Informer<DataVolume>;
  readonly pools: Informer<KObject>;
  /** Live migrations (VMIMs, indexed by their VMI's ns/name) and the MigrationPolicies that tune them. */
  readonly vmims: Informer<VirtualMachineInstanceMigration>;
  readonly policies: Informer<MigrationPolicy>;
  readonly migrationQueue = new WorkQueue<string>();
  readonly migrationDeps: MigrationDeps;
  readonly coldQueue = new WorkQueue<string>();
  readonly coldDeps: ColdDeps;
  /** The cluster's KubeVirt settings (kubevirt/kubevirt), defaulted and live. */
  readonly clusterConfig: ClusterConfig;
  readonly rsQueue = new WorkQueue<string>();
  readonly rsDeps: RsDeps;
  readonly vmQueue = new WorkQueue<string>();
  readonly vmiQueue = new WorkQueue<string>();
  readonly podQueue = new WorkQueue<string>();
  readonly nodeQueue = new WorkQueue<string>();
  /** Node drain: one key per node (controller/evacuation). */
  readonly evacuationQueue = new WorkQueue<string>();
  readonly evacuationDeps: EvacuationDeps;
  readonly vmDeps: VmDeps;
  readonly vmiDeps: VmiDeps;
  readonly schedulerDeps: SchedulerDeps;
  readonly podCidrDeps: PodCidrDeps;
  readonly recorder: Recorder;
  /** Volume binding and the local provisioner; its caches also feed the scheduler's volume checks. */
  readonly storage: StorageController;
  /** DataVolumes: their claims, worker pods and status (storage/datavolume). */
  readonly dataVolumes: DataVolumeController;
  private readonly log: Logger;
  private readonly opts: ControllerOptions;
  private workers: Promise<unknown>[] = [];

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    const client = opts.client;
    this.log = opts.log ?? createLogger({ component: "virt-controller" });
    const now = opts.now ?? (() => new Date());
    this.recorder = opts.recorder ?? new EventRecorder(client, "virt-controller", this.log, now);
    this.vms = new Informer<VirtualMachine>(client, resources.vms, { log: this.log });
    this.vmis = new Informer<VirtualMachineInstance>(client, resources.vmis, { log: this.log });
    this.pods = new Informer<Pod>(client, resources.pods, {
      log: this.log,
      indexers: { [OWNER_INDEX]: ownerUidIndex, [NODE_INDEX]: nodeNameIndex, [POD_AFFINITY_INDEX]: podAffinityIndex },
    });
    this.nodes = new Informer<Node>(client, resources.nodes, { log: this.log });
    this.namespaces = new Informer<KObject>(client, resources.namespaces, { log: this.log });
    this.replicasets = new Informer<VirtualMachineInstanceReplicaSet>(client, resources.vmirs, { log: this.log });
    this.clusterConfig = new ClusterConfig(
      client,
      { effectiveConfiguration, KUBEVIRT_NAME, KUBEVIRT_NAMESPACE },
      { log: this.log },
    );
    this.dvs = new Informer<DataVolume>(client, resources.datavolumes, { log: this.log });
    this.pools = new Informer<KObject>(client, resources.vmpools, { log: this.log });
    this.vmims = new Informer<VirtualMachineInstanceMigration>(client, resources.vmims, {
      log: this.log,
      indexers: { [VMIM_VMI_INDEX]: (m) => [`${m.metadata.namespace}/${m.spec.vmiName}`] },
    });
    this.policies = new Informer<MigrationPolicy>(client, resources.migrationpolicies, { log: this.log });
    this.storage = new StorageController({ client, nodes: this.nodes, recorder: this.recorder, log: this.log, now });
    const vmExp = new Expectations();
    const vmiExp = new Expectations();
    const rsExp = new Expectations();
    this.vmDeps = {
      client,
      vms: this.vms,
      vmis: this.vmis,
      expectations: vmExp,
      recorder: this.recorder,
      log: this.log,
      now,
      dvs: this.dvs,
      claims: this.storage.claims,
      volumes: this.storage.volumes,
      nodes: this.nodes,
      pools: this.pools,
    };
    this.vmiDeps = {
      client,
      vmis: this.vmis,
      pods: this.pods,
      expectations: vmiExp,
      recorder: this.recorder,
      log: this.log,
      now,
      dvs: this.dvs,
      claims: this.storage.claims,
    };
    const migrationExp = new Expectations();
    this.migrationDeps = {
      client,
      vmims: this.vmims,
      vmis: this.vmis,
      pods: this.pods,
      policies: this.policies,
      namespaces: this.namespaces,
      claims: this.storage.claims,
      vms: this.vms,
      dvs: this.dvs,
      volumes: this.storage.volumes,
      clusterConfig: this.clusterConfig,
      expectations: migrationExp,
      recorder: this.recorder,
      log: this.log.child({ controller: "migration" }),
      now,
    };
    this.dataVolumes = new DataVolumeController({
      client,
      storage: this.storage,
      recorder: this.recorder,
      log: this.log,
      now,
      dvs: this.dvs,
      pods: this.pods,
      ...(opts.apiServerURL ? { apiServerURL: opts.apiServerURL } : {}),
    });
    this.schedulerDeps = {
      storage: this.storage,
      client,
      pods: this.pods,
      nodes: this.nodes,
      namespaces: this.namespaces,
      recorder: this.recorder,
      log: this.log.child({ controller: "scheduler" }),
      now,
      assumed: new Map(),
    };
    this.rsDeps = {
      client,
      replicasets: this.replicasets,
      vmis: this.vmis,
      expectations: rsExp,
      recorder: this.recorder,
      log: this.log,
      now,
    };
    this.podCidrDeps = { client, nodes: this.nodes, recorder: this.recorder, log: this.log, pending: new Map() };
    this.evacuationDeps = {
      client,
      nodes: this.nodes,
      vmis: this.vmis,
      pods: this.pods,
      migrations: this.vmims,
      config: () => this.clusterConfig.current,
      expectations: new Expectations(),
      recorder: this.recorder,
      log: this.log.child({ controller: "evacuation" }),
    };
    this.watchEvacuation();
    this.coldDeps = {
      client,
      vmims: this.vmims,
      vms: this.vms,
      vmis: this.vmis,
      dvs: this.dvs,
      nodes: this.nodes,
      storage: this.storage,
      recorder: this.recorder,
      log: this.log.child({ controller: "coldmigration" }),
      now,
    };

    this.vms.addEventHandler({
      onAdd: (vm) => this.vmQueue.add(keyOf(vm)),
      onUpdate: (_o, vm) => this.vmQueue.add(keyOf(vm)),
      onDelete: (vm) => this.vmQueue.add(keyOf(vm)),
    });
    this.replicasets.addEventHandler({
      onAdd: (rs) => this.rsQueue.add(keyOf(rs)),
      onUpdate: (_o, rs) => this.rsQueue.add(keyOf(rs)),
      onDelete: (rs) => this.rsQueue.add(keyOf(rs)),
    });
    // A VMI event concerns its controlling ReplicaSet, or, for an orphan, every ReplicaSet whose selector matches it.
    const rsFor = (vmi: VirtualMachineInstance, observed?: "add" | "del") => {
      const key = controllerKey(vmi, "VirtualMachineInstanceReplicaSet");
      if (key) {
        if (observed === "add") rsExp.creationObserved(key);
        if (observed === "del") rsExp.deletionObserved(key);
        this.rsQueue.add(key);
      } else if (!vmi.metadata.ownerReferences?.some((r) => r.controller)) {
        for (const rs of this.replicasets.list(vmi.metadata.namespace)) {
          if (selectorMatches(rs.spec.selector, vmi.metadata.labels)) this.rsQueue.add(keyOf(rs));
        }
      }
    };
    this.vmis.addEventHandler({
      onAdd: (v) => rsFor(v, "add"),
      onUpdate: (o, v) => {
        rsFor(o);
        rsFor(v);
      },
      onDelete: (v) => rsFor(v, "del"),
    });
    this.vmis.addEventHandler({
      onAdd: (vmi) => {
        const vmKey = controllerKey(vmi, "VirtualMachine");
        if (vmKey) {
          vmExp.creationObserved(vmKey);
          this.vmQueue.add(vmKey);
        }
        this.vmiQueue.add(keyOf(vmi));
      },
      onUpdate: (o, vmi) => {
        // the old owner too: a VMI orphaned by its VM's deletion releases that VM's finalizer
        const vmKey = controllerKey(vmi, "VirtualMachine") ?? controllerKey(o, "VirtualMachine");
        if (vmKey) this.vmQueue.add(vmKey);
        this.vmiQueue.add(keyOf(vmi));
      },
      onDelete: (vmi) => {
        const vmKey = controllerKey(vmi, "VirtualMachine");
        if (vmKey) {
          vmExp.deletionObserved(vmKey);
          this.vmQueue.add(vmKey);
        }
        this.vmiQueue.add(keyOf(vmi));
      },
    });
    this.pods.addEventHandler({
      onAdd: (pod) => {
        const vmiKey = controllerKey(pod, "VirtualMachineInstance");
        if (vmiKey) {
          vmiExp.creationObserved(vmiKey);
          this.vmiQueue.add(vmiKey);
        }
        if (needsScheduling(pod)) this.podQueue.add(keyOf(pod));
      },
      onUpdate: (old, pod) => {
        const vmiKey = controllerKey(pod, "VirtualMachineInstance");
        if (vmiKey) this.vmiQueue.add(vmiKey);
        if (pod.spec.nodeName) this.schedulerDeps.assumed.delete(pod.metadata.uid ?? "");
        if (needsScheduling(pod)) this.podQueue.add(keyOf(pod));
        const freed = (p: Pod) => p.status?.phase === "Succeeded" || p.status?.phase === "Failed";
        if (pod.spec.nodeName && freed(pod) && !freed(old)) this.requeuePending();
        // A pod just placed may be the one a pending pod's required pod affinity waits for.
        if (pod.spec.nodeName && !old.spec.nodeName) this.requeuePending(hasPodAffinity);
      },
      onDelete: (pod) => {
        const vmiKey = controllerKey(pod, "VirtualMachineInstance");
        if (vmiKey) {
          vmiExp.deletionObserved(vmiKey);
          this.vmiQueue.add(vmiKey);
        }
        this.schedulerDeps.assumed.delete(pod.metadata.uid ?? "");
        if (pod.spec.nodeName) this.requeuePending();
      },
    });
    this.nodes.addEventHandler({
      onAdd: (n) => {
        this.nodeQueue.add(keyOf(n));
        this.requeuePending();
      },
      onUpdate: (o, n) => {
        if (!n.spec?.podCIDR) this.nodeQueue.add(keyOf(n));
        if (
          JSON.stringify([o.spec, o.metadata.labels, o.status?.allocatable, readyOf(o)]) !==
          JSON.stringify([n.spec, n.metadata.labels, n.status?.allocatable, readyOf(n)])
        ) {
          this.requeuePending();
        }
      },
    });
    this.watchDisks();
    this.watchMigrations(migrationExp);
    this.watchColdMigrations();
    const changed = { onAdd: this.storageChanged, onUpdate: this.storageChanged, onDelete: this.storageChanged };
    this.storage.claims.addEventHandler(changed);
    this.storage.volumes.addEventHandler(changed);
  }

  /**
   * What a VM's disks depend on maps to the VMs (and VMIs) naming them: a DataVolume (by template or volume name, its
   * controlling VM, the VM it was retained from), a claim, a volume (by its claim), a node's readiness (VMs with
   * claims), a pool (its members).
   */
  private watchDisks(): void {
    const vmsNaming = (ns: string | undefined, name: string) => {
      for (const vm of this.vms.list(ns)) {
        const names = [
          ...(vm.spec.dataVolumeTemplates ?? []).map((t) => t.metadata?.name),
          ...(vm.spec.template.spec?.volumes ?? []).map(
            (v) => v.dataVolume?.name ?? v.persistentVolumeClaim?.claimName,
          ),
        ];
        if (names.includes(name)) this.vmQueue.add(keyOf(vm));
      }
      for (const vmi of this.vmis.list(ns)) {
        const names = (v: { dataVolume?: { name: string }; persistentVolumeClaim?: { claimName: string } }) =>
          v.dataVolume?.name === name || v.persistentVolumeClaim?.claimName === name;
        if ((vmi.spec.volumes ?? []).some(names)) this.vmiQueue.add(keyOf(vmi));
      }
    };
    const onDv = (dv: DataVolume) => {
      const ns = dv.metadata.namespace;
      const owner = controllerKey(dv, "VirtualMachine");
      if (owner) this.vmQueue.add(owner);
      const from = dv.metadata.labels?.[RetainedDisks.fromVmLabel];
      if (from) this.vmQueue.add(`${ns}/${from}`);
      vmsNaming(ns, dv.metadata.name ?? "");
    };
    this.dvs.addEventHandler({ onAdd: onDv, onUpdate: (_o, dv) => onDv(dv), onDelete: onDv });
    const onClaim = (c: KObject) => vmsNaming(c.metadata.namespace, c.metadata.name ?? "");
    this.storage.claims.addEventHandler({ onAdd: onClaim, onUpdate: (_o, c) => onClaim(c), onDelete: onClaim });
    const onVolume = (pv: PersistentVolume) => {
      const ref = pv.spec.claimRef;
      if (ref?.name) vmsNaming(ref.namespace, ref.name);
    };
    this.storage.volumes.addEventHandler({ onAdd: onVolume, onUpdate: (_o, pv) => onVolume(pv) });
    this.nodes.addEventHandler({
      onUpdate: (o, n) => {
        if (readyOf(o) === readyOf(n)) return;
        for (const vm of this.vms.list()) {
          if ((vm.spec.template.spec?.volumes ?? []).some((v) => v.dataVolume || v.persistentVolumeClaim))
            this.vmQueue.add(keyOf(vm));
        }
      },
    });
    const onPool = (p: KObject) => {
      for (const vm of this.vms.list(p.metadata.namespace)) {
        if (vm.metadata.ownerReferences?.some((r) => r.uid === p.metadata.uid)) this.vmQueue.add(keyOf(vm));
      }
    };
    this.pools.addEventHandler({ onAdd: onPool, onUpdate: (_o, p) => onPool(p), onDelete: onPool });
  }

  /** Node drain: a VMI maps to its node, a migration to its VMI's node (or the node it evacuates), a node to itself. */
  private watchEvacuation(): void {
    const q = this.evacuationQueue;
    const exp = this.evacuationDeps.expectations;
    const onVmi = (v: VirtualMachineInstance) => {
      if (v.status?.nodeName) q.add(v.status.nodeName);
    };
    this.vmis.addEventHandler({
      onAdd: onVmi,
      onUpdate: (o, v) => {
        onVmi(o);
        onVmi(v);
      },
      onDelete: onVmi,
    });
    const onVmim = (m: VirtualMachineInstanceMigration, observed?: boolean) => {
      const evacuated = m.metadata.annotations?.[Evacuation.migrationAnnotation];
      if (evacuated) {
        if (observed) exp.creationObserved(evacuated);
        q.add(evacuated);
      }
      const vmi = this.vmis.getByName(m.metadata.namespace, m.spec.vmiName ?? "");
      if (vmi) onVmi(vmi);
    };
    this.vmims.addEventHandler({
      onAdd: (m) => onVmim(m, true),
      onUpdate: (_o, m) => onVmim(m),
      onDelete: (m) => onVmim(m),
    });
    this.nodes.addEventHandler({
      onAdd: (n) => q.add(keyOf(n)),
      onUpdate: (_o, n) => q.add(keyOf(n)),
    });
    // the KubeVirt object's evictionStrategy, limits and drain taint key
    this.clusterConfig.onChange(() => {
      for (const n of this.nodes.list()) q.add(keyOf(n));
    });
  }

  /** VMIMs, and what a migration depends on: its VMI, the VMI's launcher pods (source and target). */
  private watchMigrations(exp: Expectations): void {
    const q = this.migrationQueue;
    const ofVmi = (ns: string | undefined, name: string) => {
      for (const m of this.vmims.byIndex(VMIM_VMI_INDEX, `${ns}/${name}`)) q.add(keyOf(m));
    };
    // a migration that ends frees a slot of the limits: the Pending ones may go
    const freed = () => {
      for (const m of this.vmims.list()) if ((m.status?.phase ?? "") === "Pending") q.add(keyOf(m));
    };
    this.vmims.addEventHandler({
      onAdd: (m) => q.add(keyOf(m)),
      onUpdate: (o, m) => {
        q.add(keyOf(m));
        if (isFinal(m) && !isFinal(o)) freed();
      },
      onDelete: (m) => {
        q.add(keyOf(m));
        freed();
      },
    });
    const onVmi = (v: VirtualMachineInstance) => ofVmi(v.metadata.namespace, v.metadata.name ?? "");
    this.vmis.addEventHandler({ onAdd: onVmi, onUpdate: (_o, v) => onVmi(v), onDelete: onVmi });
    const onPod = (p: Pod, added = false) => {
      const uid = p.metadata.labels?.[Migration.jobUidLabel];
      if (uid && added) {
        const m = this.vmims.list(p.metadata.namespace).find((x) => x.metadata.uid === uid);
        if (m) exp.creationObserved(keyOf(m));
      }
      const vmiKey = controllerKey(p, "VirtualMachineInstance");
      if (vmiKey) for (const m of this.vmims.byIndex(VMIM_VMI_INDEX, vmiKey)) q.add(keyOf(m));
    };
    this.pods.addEventHandler({
      onAdd: (p) => onPod(p, true),
      onUpdate: (_o, p) => onPod(p),
      onDelete: (p) => onPod(p),
    });
    // the DataVolumes a migration makes for node-local disks (made, going), and the old ones it releases
    const onDv = (dv: DataVolume) => {
      for (const m of this.vmims.list(dv.metadata.namespace)) {
        if (isFinal(m) && !(m.metadata.finalizers ?? []).includes(Migration.finalizer)) continue;
        if (!isColdMigration(m)) q.add(keyOf(m));
      }
    };
    this.dvs.addEventHandler({ onAdd: onDv, onUpdate: (_o, dv) => onDv(dv), onDelete: onDv });
  }

  /**
   * Cold migrations: a cold VMIM, and what its step waits for: its VM (status, spec), a VMI of that name, the
   * DataVolumes and claims of its namespace (clones finishing, old disks going).
   */
  private watchColdMigrations(): void {
    const onVmim = (m: VirtualMachineInstanceMigration) => {
      if (isColdMigration(m)) this.coldQueue.add(keyOf(m));
    };
    this.vmims.addEventHandler({ onAdd: onVmim, onUpdate: (_o, m) => onVmim(m), onDelete: onVmim });
    const byName = (o: KObject) => {
      for (const k of coldKeysFor(this.coldDeps, o.metadata.namespace, o.metadata.name)) this.coldQueue.add(k);
    };
    const byNamespace = (o: KObject) => {
      for (const k of coldKeysFor(this.coldDeps, o.metadata.namespace)) this.coldQueue.add(k);
    };
    const on = (f: (o: KObject) => void) => ({ onAdd: f, onUpdate: (_o: KObject, x: KObject) => f(x), onDelete: f });
    this.vms.addEventHandler(on(byName));
    this.vmis.addEventHandler(on(byName));
    this.dvs.addEventHandler(on(byNamespace));
    this.storage.claims.addEventHandler(on(byNamespace));
  }

  /** A claim or volume changed: pods with claims that wait for a node may fit now. */
  private readonly storageChanged = () => this.requeuePending((p) => podClaimNames(p).length > 0);

  /** Re-queues every pod waiting for a node (something that may make it fit has changed). */
  private requeuePending(only?: (p: Pod) => boolean): void {
    if (this.opts.scheduler === false) return;
    for (const p of this.pods.list()) if (needsScheduling(p) && (!only || only(p))) this.podQueue.add(keyOf(p));
  }

  private readonly onError = (queue: string) => (key: string, err: unknown) =>
    this.log.warn("Reconcile failed, re-enqueuing", { queue, key, err: String(err) });

  /** Step functions for tests: process exactly one queued key. */
  stepVm(): Promise<boolean> {
    return processNextItem(this.vmQueue, (k) => reconcileVm(this.vmDeps, k), this.onError("vm"));
  }
  stepVmi(): Promise<boolean> {
    return processNextItem(this.vmiQueue, (k) => reconcileVmi(this.vmiDeps, k), this.onError("vmi"));
  }
  stepScheduler(): Promise<boolean> {
    return processNextItem(
      this.podQueue,
      (k) => reconcilePodScheduling(this.schedulerDeps, k),
      this.onError("scheduler"),
    );
  }
  stepReplicaSet(): Promise<boolean> {
    return processNextItem(this.rsQueue, (k) => reconcileReplicaSet(this.rsDeps, k), this.onError("replicaset"));
  }
  stepEvacuation(): Promise<boolean> {
    return processNextItem(
      this.evacuationQueue,
      (k) => reconcileEvacuation(this.evacuationDeps, k),
      this.onError("evacuation"),
    );
  }
  stepMigration(): Promise<boolean> {
    return processNextItem(
      this.migrationQueue,
      (k) => reconcileMigration(this.migrationDeps, k),
      this.onError("migration"),
    );
  }
  stepCold(): Promise<boolean> {
    return processNextItem(this.coldQueue, (k) => reconcileColdMigration(this.coldDeps, k), this.onError("cold"));
  }
  stepNode(): Promise<boolean> {
    return processNextItem(this.nodeQueue, (k) => reconcileNodeCidr(this.podCidrDeps, k), this.onError("node"));
  }

  startInformers(): void {
    this.vms.start();
    this.vmis.start();
    this.pods.start();
    this.nodes.start();
    this.namespaces.start();
    this.replicasets.start();
    this.dvs.start();
    this.pools.start();
    this.vmims.start();
    this.policies.start();
    this.clusterConfig.start();
    if (this.opts.storage !== false || this.opts.scheduler !== false) this.storage.startInformers();
    if (this.opts.storage !== false) this.dataVolumes.startInformers();
  }

  async waitForSync(): Promise<void> {
    await Promise.all([
      this.vms.waitForSync(),
      this.vmis.waitForSync(),
      this.pods.waitForSync(),
      this.nodes.waitForSync(),
      this.namespaces.waitForSync(),
      this.clusterConfig.waitForSync(),
      this.dvs.waitForSync(),
      this.pools.waitForSync(),
      this.vmims.waitForSync(),
      this.policies.waitForSync(),
      ...(this.opts.storage !== false || this.opts.scheduler !== false ? [this.storage.waitForSync()] : []),
      ...(this.opts.storage !== false ? [this.dataVolumes.waitForSync()] : []),
    ]);
  }

  /** Starts informers, waits for their first sync, then runs the workers in the background. */
  async start(): Promise<void> {
    this.startInformers();
    await this.waitForSync();
    const threads = this.opts.threads ?? 3;
    this.workers.push(runWorkers(this.vmQueue, threads, (k) => reconcileVm(this.vmDeps, k), this.onError("vm")));
    const vmiThreads = this.opts.vmiThreads ?? 10;
    this.workers.push(runWorkers(this.vmiQueue, vmiThreads, (k) => reconcileVmi(this.vmiDeps, k), this.onError("vmi")));
    this.workers.push(
      runWorkers(this.rsQueue, threads, (k) => reconcileReplicaSet(this.rsDeps, k), this.onError("replicaset")),
    );
    this.workers.push(
      runWorkers(
        this.migrationQueue,
        threads,
        (k) => reconcileMigration(this.migrationDeps, k),
        this.onError("migration"),
      ),
    );
    if (this.opts.scheduler !== false) {
      this.workers.push(
        runWorkers(
          this.podQueue,
          this.opts.schedulerThreads ?? 8,
          (k) => reconcilePodScheduling(this.schedulerDeps, k),
          this.onError("scheduler"),
        ),
      );
    }
    this.workers.push(
      runWorkers(
        this.evacuationQueue,
        threads,
        (k) => reconcileEvacuation(this.evacuationDeps, k),
        this.onError("evacuation"),
      ),
    );
    if (this.opts.podCidr !== false) {
      this.workers.push(
        runWorkers(this.nodeQueue, 1, (k) => reconcileNodeCidr(this.podCidrDeps, k), this.onError("node")),
      );
    }
    // Cold migrations clone DataVolumes: they run where the storage controllers do.
    if (this.opts.storage !== false) {
      this.workers.push(
        runWorkers(this.coldQueue, 2, (k) => reconcileColdMigration(this.coldDeps, k), this.onError("cold")),
      );
    }
    if (this.opts.storage !== false) {
      await this.storage.run();
      await this.dataVolumes.run();
    }
    this.log.info("virt-controller started", {
      threads,
      vmiThreads,
      schedulerThreads: this.opts.schedulerThreads ?? 8,
    });
  }

  async stop(): Promise<void> {
    for (const q of [
      this.vmQueue,
      this.vmiQueue,
      this.podQueue,
      this.nodeQueue,
      this.rsQueue,
      this.migrationQueue,
      this.evacuationQueue,
      this.coldQueue,
    ])
      q.shutdown();
    await this.dataVolumes.stop();
    await this.storage.stop();
    await Promise.all([
      this.vms.stop(),
      this.vmis.stop(),
      this.pods.stop(),
      this.nodes.stop(),
      this.namespaces.stop(),
      this.replicasets.stop(),
      this.dvs.stop(),
      this.pools.stop(),
      this.vmims.stop(),
      this.policies.stop(),
      this.clusterConfig.stop(),
    ]);
    await Promise.all(this.workers);
    this.workers = [];
  }
}

function readyOf(n: Node): string | undefined {
  return n.status?.conditions?.find((c) => c.type === "Ready")?.status;
}
