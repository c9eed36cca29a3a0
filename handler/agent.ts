// virt-handler: wires the node agent's parts to the API's caches. Pods bound to this node (field selector
// spec.nodeName, a core field) feed the pod runner (embedded mode: kubelet's job) and tell VMI sync about its
// launcher pods; VMIs labelled kubevirt.io/nodeName=<node> feed VMI sync, which dials each launcher at its socket
// (<data dir>/sockets/<vmi uid>_sock) itself; the node's own object gives the podCIDR for the pod network; all
// Nodes' podCIDRs give the fabric routes to the other nodes' pods. Launchers outlive this process.
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { RegistriesConfig } from "../images/index.js";
import { commandSocketPath, commandSocketsDir } from "../launcher/index.js";
import { statusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { MIGRATION_TARGET_NODE_LABEL, MigrationSync } from "./migration/index.js";
import { FabricRouteSync, PodNetwork } from "./network/index.js";
import { machineInfo, NodeAgent } from "./node-agent.js";
import { PodRunner } from "./pod-runner.js";
import { podShapes } from "./pod-shapes.js";
import type {
  ApiClient,
  EventRecorder,
  ImagePuller,
  KObject,
  LauncherDialer,
  LauncherVerb,
  MigrationDialer,
  Node,
  PersistentVolume,
  Pod,
  VirtualMachineInstance,
} from "./ports.js";
import { NODE_NAME_LABEL } from "./ports.js";
import { prepareNode } from "./prepare.js";
import { podDirOf, readPodRecord } from "./processes.js";
import { startServer } from "./server.js";
import { launcherPodOf, launcherPrepared, type PhaseMapper, VmiSync } from "./vmi-sync.js";
import { VolumeSync } from "./volumes.js";
import { claimUploadTicket, WorkerServices } from "./workers/index.js";

/** The part of client/'s Informer the agent uses. */
export interface CacheLike<T extends KObject> {
  addEventHandler(h: {
    onAdd?(obj: T): void;
    onUpdate?(oldObj: T, newObj: T): void;
    onDelete?(obj: T, tombstone: boolean): void;
  }): void;
  start(): void;
  stop(): Promise<void>;
  waitForSync(): Promise<void>;
  list(namespace?: string): T[];
}

export { NODE_NAME_LABEL };

/** Selectors the caches must use (the caller builds the informers with them). */
export function selectorsFor(node: string) {
  return {
    pods: { fieldSelector: `spec.nodeName=${node}` },
    vmis: { labelSelector: `${NODE_NAME_LABEL}=${node}` },
    // VMIs migrating to this node (handler/migration/): this node prepares the target until the handover.
    migrationVmis: { labelSelector: `${MIGRATION_TARGET_NODE_LABEL}=${node}` },
    // Every Node: their podCIDRs are the fabric's routes (this node's own object is picked out by name).
    node: {},
    // Every PV: those pinned to this node are picked out by their node affinity (no field selector reaches it).
    pvs: {},
  };
}

export interface HandlerOptions {
  node: string;
  dataDir: string;
  api: ApiClient;
  caches: {
    pods: CacheLike<Pod>;
    vmis: CacheLike<VirtualMachineInstance>;
    /** VMIs labelled kubevirt.io/migrationTargetNodeName=<node> (absent: this node is never a migration target). */
    migrationVmis?: CacheLike<VirtualMachineInstance>;
    node: CacheLike<Node>;
    /** PersistentVolumes: this node's tsvirt-local volumes are made and removed from them. */
    pvs: CacheLike<PersistentVolume>;
  };
  /** Bytes this node offers to tsvirt-local volumes (tsvirt handler --node-storage); absent: none. */
  localStorageBytes?: number;
  /** QEMU's user: owner of the node's local volumes. */
  volumeOwner?: { uid: number; gid: number };
  /** The cluster's fabric namespace (tsvirt up's --fabric): routes to other nodes' pods. None: this node only. */
  fabric?: string;
  /** Dials a launcher's command socket. */
  dial: LauncherDialer;
  /** Dials a launcher for the live-migration calls (absent: this node takes no part in live migrations). */
  migrationDial?: MigrationDialer;
  /** The launcher pod's readiness probe (its socket answers). */
  probe: (socketPath: string) => Promise<boolean>;
  puller: ImagePuller;
  /** hostDisk is allowed only below this directory (tsvirt handler --host-disk-root); absent: refused. */
  hostDiskRoot?: string;
  launcherCommand: (vmiUid: string, podDir: string) => { argv: string[]; env?: NodeJS.ProcessEnv };
  /** DataVolume worker pods (importer): the node's registry list and the tsvirt entry point they run. */
  workers?: { registries: () => Promise<RegistriesConfig>; tsvirtJs?: string };
  terminate?: (pid: number) => void;
  mapPhase: PhaseMapper;
  /** Where SyncFailed events go (controller/'s EventRecorder over the client). */
  recorder?: EventRecorder;
  /** Address the API server reaches this agent on (and the pods' hostIP). */
  address: string;
  listenHost?: string;
  port?: number;
  uplink?: string;
  /**
   * Embedded mode (default): this agent runs the launcher pods bound to its node and their pod network (kubelet's and
   * CNI's jobs). False: a kubelet does; the agent only drives the launchers through their sockets.
   */
  podRunner?: boolean;
  version: string;
  resyncMs?: number;
  log?: Logger;
}

export interface RunningHandler {
  port: number;
  /** Undefined when a kubelet runs the pods. */
  runner: PodRunner | undefined;
  vmiSync: VmiSync;
  close(): Promise<void>;
}

export async function runHandler(o: HandlerOptions): Promise<RunningHandler> {
  const log = (o.log ?? nullLogger).child({ node: o.node });
  // Refuse at start, not at the first VM: every launcher's socket path must fit a unix socket address.
  commandSocketPath(o.dataDir, "00000000-0000-0000-0000-000000000000");
  const pods = new Map<string, Pod>();
  const vmis = new Map<string, VirtualMachineInstance>();
  /** VMIs migrating to this node (not this node's VMI sync's until the handover). */
  const targetVmis = new Map<string, VirtualMachineInstance>();
  let network: PodNetwork | undefined;
  let networkReady: Promise<void> | undefined;
  const keyOf = (ns: string | undefined, name: string | undefined): string => `${ns ?? ""}/${name ?? ""}`;

  const embedded = o.podRunner ?? true;
  const workerServices =
    embedded && o.workers
      ? new WorkerServices({
          api: o.api,
          getPod: (uid) => pods.get(uid),
          // an upload server that says it listens is Ready at once (the runner's probe then answers true)
          onReady: (podDir) => {
            for (const uid of pods.keys()) if (podDirOf(o.dataDir, uid) === podDir) void runner?.trigger(uid);
          },
          log,
        })
      : undefined;
  const runner = !embedded
    ? undefined
    : new PodRunner({
        node: o.node,
        hostIP: o.address,
        dataDir: o.dataDir,
        api: o.api,
        network: () => network,
        getPod: (uid) => pods.get(uid),
        shapes: podShapes({
          node: o.node,
          dataDir: o.dataDir,
          api: o.api,
          launcherCommand: o.launcherCommand,
          probe: o.probe,
          ...(o.workers && workerServices ? { workers: { ...o.workers, services: workerServices } } : {}),
        }),
        ...(o.terminate ? { terminate: o.terminate } : {}),
        log,
      });
  const launcherPods = (vmiUid: string): Pod[] =>
    [...pods.values()].filter(
      (p) => p.spec?.nodeName === o.node && p.metadata.ownerReferences?.some((r) => r.uid === vmiUid),
    );
  const vmiSync = new VmiSync({
    node: o.node,
    api: o.api,
    dial: o.dial,
    socketPath: (uid) => commandSocketPath(o.dataDir, uid),
    puller: o.puller,
    ...(o.hostDiskRoot ? { hostDiskRoot: o.hostDiskRoot } : {}),
    dataDir: o.dataDir,
    getVmi: (key) => vmis.get(key),
    podsOf: launcherPods,
    mapPhase: o.mapPhase,
    ...(o.recorder ? { recorder: o.recorder } : {}),
    log,
  });

  const migration = o.migrationDial
    ? new MigrationSync({
        node: o.node,
        api: o.api,
        dial: o.migrationDial,
        socketPath: (uid) => commandSocketPath(o.dataDir, uid),
        getVmi: (key) => vmis.get(key) ?? targetVmis.get(key),
        podsOf: launcherPods,
        prepare: async (vmi) =>
          launcherPrepared(
            vmi,
            await prepareNode(vmi as Parameters<typeof prepareNode>[0], {
              api: o.api,
              puller: o.puller,
              hostDiskRoot: o.hostDiskRoot,
              node: o.node,
              dataDir: o.dataDir,
              ...(o.volumeOwner ? { volumeOwner: o.volumeOwner } : {}),
            }),
          ),
        release: (uid) => o.puller.release(uid).catch(() => {}),
        ...(embedded
          ? {
              firewall: async (podUid: string, sourceIp: string, ports: number[]) => {
                if (!network) throw new Error("the pod network is not ready");
                await network.allowMigration(podUid, sourceIp, ports);
              },
            }
          : {}),
        ...(o.recorder ? { recorder: o.recorder } : {}),
        log,
      })
    : undefined;

  const byNsName = <T extends KObject>(m: Map<string, T>, ns: string, name: string): T | undefined => {
    for (const x of m.values()) if (x.metadata.namespace === ns && x.metadata.name === name) return x;
    return undefined;
  };
  const podOfVmi = (ns: string, name: string): Pod | undefined => {
    const uid = vmis.get(keyOf(ns, name))?.metadata.uid;
    return uid ? launcherPodOf(launcherPods(uid)) : undefined;
  };
  const server = await startServer({
    host: o.listenHost ?? o.address,
    port: o.port ?? 0,
    podDir: (ns, name) => {
      const p = byNsName(pods, ns, name);
      return p?.metadata.uid ? podDirOf(o.dataDir, p.metadata.uid) : undefined;
    },
    vmiCommand: async (ns, name, verb) => {
      const conn = vmiSync.connection(keyOf(ns, name));
      if (!conn) throw statusError(409, "Conflict", `VMI "${name}" has no running launcher on node ${o.node}`);
      const m: Record<string, LauncherVerb> = {
        pause: "Pause",
        unpause: "Unpause",
        softreboot: "SoftReboot",
        reset: "Reset",
      };
      const launcherVerb = m[verb];
      if (!launcherVerb) throw statusError(404, "NotFound", `unknown verb ${verb}`);
      await conn.command(launcherVerb);
    },
    claimUploadTicket: (ns, name, ticket) => claimUploadTicket(o.api, ns, name, ticket),
    ...(workerServices ? { uploadHandoff: (podDir: string) => workerServices.uploadHandoff(podDir) } : {}),
    vmiPodDir: (ns, name) => {
      const podUid = podOfVmi(ns, name)?.metadata.uid;
      return podUid ? podDirOf(o.dataDir, podUid) : undefined;
    },
    log,
  });

  const agent = new NodeAgent({
    node: o.node,
    api: o.api,
    machine: {
      ...machineInfo(o.address, server.port, o.version),
      ...(o.localStorageBytes ? { localStorageBytes: o.localStorageBytes } : {}),
    },
    log,
  });
  await agent.register();
  agent.start();

  const triggerAllPods = (): void => {
    if (runner) for (const uid of pods.keys()) void runner.trigger(uid);
  };
  /** The VMI sync key of a launcher pod's VMI. */
  const ownerVmi = (p: Pod): string | undefined => {
    const r = p.metadata.ownerReferences?.find((x) => x.kind === "VirtualMachineInstance");
    return r ? keyOf(p.metadata.namespace, r.name) : undefined;
  };

  const routes = new FabricRouteSync({
    network: () => network,
    nodes: () => o.caches.node.list().map((n) => ({ name: n.metadata.name ?? "", podCIDR: n.spec?.podCIDR })),
    log,
  });
  o.caches.node.addEventHandler({
    onAdd: (n) => {
      onNode(n);
      routes.trigger();
    },
    onUpdate: (a, n) => {
      onNode(n);
      if (a.spec?.podCIDR !== n.spec?.podCIDR) routes.trigger();
    },
    onDelete: () => routes.trigger(),
  });
  function onNode(n: Node): void {
    if (n.metadata.name !== o.node) return;
    const cidr = n.spec?.podCIDR;
    if (!cidr || !embedded) return;
    // The podCIDR is read once; pods keep their addresses for their lifetime.
    if (network || networkReady) return;
    const netOpts: ConstructorParameters<typeof PodNetwork>[0] = { node: o.node, podCIDR: cidr, dataDir: o.dataDir };
    if (o.uplink) netOpts.uplink = o.uplink;
    if (o.fabric) netOpts.fabric = o.fabric;
    const net = new PodNetwork(netOpts);
    networkReady = net.ensureNode().then(
      () => {
        network = net;
        log.info("pod network ready", { podCIDR: cidr, netns: net.nodeNs });
        triggerAllPods();
        routes.trigger();
      },
      (err: unknown) => {
        networkReady = undefined;
        log.error("pod network setup failed", { err });
      },
    );
  }

  const onPod = (p: Pod, deleted: boolean): void => {
    if (!p.metadata.uid) return;
    if (deleted) pods.delete(p.metadata.uid);
    else pods.set(p.metadata.uid, p);
    void runner?.trigger(p.metadata.uid);
    // a worker pod's egress proxy and progress relay follow the pod (re-served after an agent restart)
    if (workerServices && p.metadata.labels?.["cdi.kubevirt.io"] && p.spec?.nodeName === o.node) {
      const uid = p.metadata.uid;
      void workerServices
        .sync(uid, podDirOf(o.dataDir, uid))
        .catch((e: unknown) => log.warn("worker services sync failed", { podUid: uid, err: e }));
    }
    const v = ownerVmi(p);
    if (v) {
      vmiSync.enqueue(v);
      migration?.enqueue(v);
    }
  };
  o.caches.pods.addEventHandler({
    onAdd: (p) => onPod(p, false),
    onUpdate: (_old, p) => onPod(p, false),
    onDelete: (p) => onPod(p, true),
  });
  const onVmi = (v: VirtualMachineInstance, deleted: boolean): void => {
    const key = keyOf(v.metadata.namespace, v.metadata.name);
    if (deleted) {
      // A delete event of an older VMI of the same name must not drop a newer one.
      if (vmis.get(key)?.metadata.uid === v.metadata.uid) vmis.delete(key);
    } else vmis.set(key, v);
    vmiSync.enqueue(key);
    migration?.enqueue(key);
  };
  o.caches.vmis.addEventHandler({
    onAdd: (v) => onVmi(v, false),
    onUpdate: (_old, v) => onVmi(v, false),
    onDelete: (v) => onVmi(v, true),
  });
  o.caches.migrationVmis?.addEventHandler({
    onAdd: (v) => onTargetVmi(v, false),
    onUpdate: (_old, v) => onTargetVmi(v, false),
    onDelete: (v) => onTargetVmi(v, true),
  });
  function onTargetVmi(v: VirtualMachineInstance, deleted: boolean): void {
    const key = keyOf(v.metadata.namespace, v.metadata.name);
    if (deleted) {
      if (targetVmis.get(key)?.metadata.uid === v.metadata.uid) targetVmis.delete(key);
    } else targetVmis.set(key, v);
    migration?.enqueue(key);
  }
  const pvByName = (name: string): PersistentVolume | undefined =>
    o.caches.pvs.list().find((v) => v.metadata.name === name);
  const volumeSync = new VolumeSync({
    node: o.node,
    dataDir: o.dataDir,
    api: o.api,
    getVolume: pvByName,
    // A grown volume: the VMIs here compare their disks' sizes (the few on a node; each compares, level-triggered).
    onGrown: () => {
      for (const key of vmis.keys()) vmiSync.enqueue(key);
    },
    ...(o.volumeOwner ? { owner: o.volumeOwner } : {}),
    log,
  });
  o.caches.pvs.addEventHandler({
    onAdd: (v) => volumeSync.enqueue(v.metadata.name ?? ""),
    onUpdate: (_old, v) => volumeSync.enqueue(v.metadata.name ?? ""),
    onDelete: (v) => volumeSync.enqueue(v.metadata.name ?? ""),
  });
  o.caches.node.start();
  o.caches.pods.start();
  o.caches.vmis.start();
  o.caches.migrationVmis?.start();
  o.caches.pvs.start();
  await Promise.all([
    o.caches.node.waitForSync(),
    o.caches.pods.waitForSync(),
    o.caches.vmis.waitForSync(),
    o.caches.migrationVmis?.waitForSync(),
    o.caches.pvs.waitForSync(),
  ]);
  // Loop devices of volumes deleted while the agent was down go before the workers start (the cache is complete).
  // Two workers: a long same-node clone does not hold up the other volumes of the node.
  await volumeSync.start(o.caches.pvs.list(), 2);
  vmiSync.start();
  migration?.start();
  // Image pins of VMIs deleted while the agent was down (the cache is complete now): released, exactly those.
  void o.puller
    .releaseExcept?.(new Set([...vmis.values(), ...targetVmis.values()].map((v) => v.metadata.uid ?? "")))
    .catch((e: unknown) => log.warn("releasing stale image pins failed", { err: e }));
  await networkReady;

  // Pods whose state is on this node but which the API no longer has (deleted while the agent was down): clean up.
  try {
    for (const d of await readdir(join(o.dataDir, "pods"))) {
      const rec = await readPodRecord(join(o.dataDir, "pods", d));
      if (rec && !pods.has(rec.podUid)) void runner?.trigger(rec.podUid);
    }
  } catch {
    // no pods dir yet
  }
  // ...and those with only network state (an IP, a namespace): an agent killed after making a pod's namespace and
  // before writing its pod.json left no record above; the runner's cleanup deletes the namespace, releases the IP.
  for (const uid of (await network?.knownPods().catch(() => [] as string[])) ?? []) {
    if (!pods.has(uid)) void runner?.trigger(uid);
  }

  // Sockets of launchers whose VMI and pods the API no longer has (they ended while the agent was down).
  const known = new Set([...vmis.values(), ...targetVmis.values()].map((v) => v.metadata.uid));
  for (const p of pods.values()) for (const r of p.metadata.ownerReferences ?? []) known.add(r.uid);
  for (const f of await readdir(commandSocketsDir(o.dataDir)).catch(() => [] as string[])) {
    const uid = /^(.+)_sock$/.exec(f)?.[1];
    if (uid && !known.has(uid)) await rm(join(commandSocketsDir(o.dataDir), f), { force: true });
  }

  const resync = setInterval(() => {
    triggerAllPods();
    for (const key of vmis.keys()) vmiSync.enqueue(key);
    for (const key of [...vmis.keys(), ...targetVmis.keys()]) migration?.enqueue(key);
    for (const v of o.caches.pvs.list()) volumeSync.enqueue(v.metadata.name ?? "");
  }, o.resyncMs ?? 30_000);
  log.info("handler running", { port: server.port });

  return {
    port: server.port,
    runner,
    vmiSync,
    async close() {
      clearInterval(resync);
      agent.stop();
      runner?.close();
      await workerServices?.close();
      vmiSync.close();
      migration?.close();
      volumeSync.close();
      routes.close();
      await Promise.all([
        o.caches.node.stop(),
        o.caches.pods.stop(),
        o.caches.vmis.stop(),
        o.caches.migrationVmis?.stop(),
        o.caches.pvs.stop(),
      ]);
      await server.close();
    },
  };
}
