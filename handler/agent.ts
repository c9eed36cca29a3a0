// virt-handler: wires the node agent's parts to the API's caches. Pods bound to this node (field selector
// spec.nodeName, a core field) feed the pod runner; VMIs labelled kubevirt.io/nodeName=<node> feed VMI sync; the
// node's own object gives the podCIDR for the pod network. Launchers outlive this process.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { statusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { PodNetwork } from "./network/index.js";
import { machineInfo, NodeAgent } from "./node-agent.js";
import { PodRunner } from "./pod-runner.js";
import type { ApiClient, ImagePuller, LauncherDialer, LauncherVerb } from "./ports.js";
import { podDirOf, readPodRecord } from "./processes.js";
import { startServer } from "./server.js";
import type { DomainStatus, KObject, Node, Pod, VirtualMachineInstance } from "./types.js";
import { type PhaseMapper, VmiSync } from "./vmi-sync.js";

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

export const NODE_NAME_LABEL = "kubevirt.io/nodeName";

/** Selectors the caches must use (the caller builds the informers with them). */
export function selectorsFor(node: string) {
  return {
    pods: { fieldSelector: `spec.nodeName=${node}` },
    vmis: { labelSelector: `${NODE_NAME_LABEL}=${node}` },
    node: { fieldSelector: `metadata.name=${node}` },
  };
}

export interface HandlerOptions {
  node: string;
  dataDir: string;
  api: ApiClient;
  caches: { pods: CacheLike<Pod>; vmis: CacheLike<VirtualMachineInstance>; node: CacheLike<Node> };
  dial: LauncherDialer;
  puller: ImagePuller;
  /** hostDisk is allowed only below this directory (tsvirt handler --host-disk-root); absent: refused. */
  hostDiskRoot?: string;
  launcherCommand: (vmiUid: string, podDir: string) => { argv: string[]; env?: NodeJS.ProcessEnv };
  terminate?: (pid: number) => void;
  /** Reads the domain's final state a launcher left in its pod directory (launcher/'s readTerminationLog). */
  terminationLog?: (podDir: string) => Promise<DomainStatus | undefined>;
  mapPhase: PhaseMapper;
  /** Address the API server reaches this agent on (and the pods' hostIP). */
  address: string;
  listenHost?: string;
  port?: number;
  uplink?: string;
  version: string;
  resyncMs?: number;
  log?: Logger;
}

export interface RunningHandler {
  port: number;
  runner: PodRunner;
  vmiSync: VmiSync;
  close(): Promise<void>;
}

export async function runHandler(o: HandlerOptions): Promise<RunningHandler> {
  const log = (o.log ?? nullLogger).child({ node: o.node });
  const pods = new Map<string, Pod>();
  const vmis = new Map<string, VirtualMachineInstance>();
  let network: PodNetwork | undefined;
  let networkReady: Promise<void> | undefined;
  let vmisSynced: () => void = () => {};
  const vmiCacheSynced = new Promise<void>((resolve) => {
    vmisSynced = resolve;
  });

  const runner: PodRunner = new PodRunner({
    node: o.node,
    hostIP: o.address,
    dataDir: o.dataDir,
    api: o.api,
    network: () => network,
    getPod: (uid) => pods.get(uid),
    dial: o.dial,
    launcherCommand: o.launcherCommand,
    ...(o.terminate ? { terminate: o.terminate } : {}),
    log,
    onDomain: (vmiUid) => void vmiSync.trigger(vmiUid),
    onLauncher: (vmiUid) => void vmiSync.trigger(vmiUid),
    ...(o.terminationLog ? { terminationLog: o.terminationLog } : {}),
    beforeRemove: async (vmiUid) => {
      // A restarted agent may meet a deleted pod before its VMI cache is filled.
      await vmiCacheSynced;
      await vmiSync.trigger(vmiUid);
      return vmiSync.settled(vmiUid);
    },
  });
  const vmiSync: VmiSync = new VmiSync({
    node: o.node,
    api: o.api,
    launchers: runner,
    puller: o.puller,
    ...(o.hostDiskRoot ? { hostDiskRoot: o.hostDiskRoot } : {}),
    getVmi: (uid) => vmis.get(uid),
    getPod: (uid) => pods.get(uid),
    mapPhase: o.mapPhase,
    log,
  });

  const byNsName = <T extends KObject>(m: Map<string, T>, ns: string, name: string): T | undefined => {
    for (const x of m.values()) if (x.metadata.namespace === ns && x.metadata.name === name) return x;
    return undefined;
  };
  const server = await startServer({
    host: o.listenHost ?? o.address,
    port: o.port ?? 0,
    podDir: (ns, name) => {
      const p = byNsName(pods, ns, name);
      return p?.metadata.uid ? podDirOf(o.dataDir, p.metadata.uid) : undefined;
    },
    vmiCommand: async (ns, name, verb) => {
      const v = byNsName(vmis, ns, name);
      const podUid = v?.metadata.uid ? runner.podForVmi(v.metadata.uid) : undefined;
      const conn = podUid ? runner.connection(podUid) : undefined;
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
    vmiPodDir: (ns, name) => {
      const v = byNsName(vmis, ns, name);
      const podUid = v?.metadata.uid ? runner.podForVmi(v.metadata.uid) : undefined;
      return podUid ? podDirOf(o.dataDir, podUid) : undefined;
    },
    log,
  });

  const agent = new NodeAgent({
    node: o.node,
    api: o.api,
    machine: machineInfo(o.address, server.port, o.version),
    log,
  });
  await agent.register();
  agent.start();

  const triggerAllPods = (): void => {
    for (const uid of pods.keys()) void runner.trigger(uid);
  };
  const ownerVmi = (p: Pod): string | undefined =>
    p.metadata.ownerReferences?.find((r) => r.kind === "VirtualMachineInstance")?.uid;

  o.caches.node.addEventHandler({
    onAdd: (n) => onNode(n),
    onUpdate: (_a, n) => onNode(n),
  });
  function onNode(n: Node): void {
    const cidr = n.spec?.podCIDR;
    if (!cidr) return;
    // The podCIDR is read once; pods keep their addresses for their lifetime.
    if (network || networkReady) return;
    const netOpts: ConstructorParameters<typeof PodNetwork>[0] = { node: o.node, podCIDR: cidr, dataDir: o.dataDir };
    if (o.uplink) netOpts.uplink = o.uplink;
    const net = new PodNetwork(netOpts);
    networkReady = net.ensureNode().then(
      () => {
        network = net;
        log.info("pod network ready", { podCIDR: cidr, netns: net.nodeNs });
        triggerAllPods();
      },
      (err: unknown) => {
        networkReady = undefined;
        log.error("pod network setup failed", { err });
      },
    );
  }

  o.caches.pods.addEventHandler({
    onAdd: (p) => {
      if (!p.metadata.uid) return;
      pods.set(p.metadata.uid, p);
      void runner.trigger(p.metadata.uid);
    },
    onUpdate: (_old, p) => {
      if (!p.metadata.uid) return;
      pods.set(p.metadata.uid, p);
      void runner.trigger(p.metadata.uid);
      const v = ownerVmi(p);
      if (v) void vmiSync.trigger(v);
    },
    onDelete: (p) => {
      if (!p.metadata.uid) return;
      pods.delete(p.metadata.uid);
      void runner.trigger(p.metadata.uid);
      const v = ownerVmi(p);
      if (v) void vmiSync.trigger(v);
    },
  });
  o.caches.vmis.addEventHandler({
    onAdd: (v) => {
      if (!v.metadata.uid) return;
      vmis.set(v.metadata.uid, v);
      void vmiSync.trigger(v.metadata.uid);
    },
    onUpdate: (_old, v) => {
      if (!v.metadata.uid) return;
      vmis.set(v.metadata.uid, v);
      void vmiSync.trigger(v.metadata.uid);
    },
    onDelete: (v) => {
      if (!v.metadata.uid) return;
      vmis.delete(v.metadata.uid);
      void vmiSync.trigger(v.metadata.uid);
    },
  });
  o.caches.node.start();
  o.caches.pods.start();
  o.caches.vmis.start();
  await Promise.all([o.caches.node.waitForSync(), o.caches.pods.waitForSync(), o.caches.vmis.waitForSync()]);
  vmisSynced();
  // Image pins of VMIs deleted while the agent was down (the cache is complete now): released, exactly those.
  void o.puller
    .releaseExcept?.(new Set(vmis.keys()))
    .catch((e: unknown) => log.warn("releasing stale image pins failed", { err: e }));
  await networkReady;

  // Pods whose state is on this node but which the API no longer has (deleted while the agent was down): clean up.
  try {
    for (const d of await readdir(join(o.dataDir, "pods"))) {
      const rec = await readPodRecord(join(o.dataDir, "pods", d));
      if (rec && !pods.has(rec.podUid)) void runner.trigger(rec.podUid);
    }
  } catch {
    // no pods dir yet
  }

  const resync = setInterval(() => {
    triggerAllPods();
    for (const uid of vmis.keys()) void vmiSync.trigger(uid);
  }, o.resyncMs ?? 30_000);
  log.info("handler running", { port: server.port });

  return {
    port: server.port,
    runner,
    vmiSync,
    async close() {
      clearInterval(resync);
      agent.stop();
      runner.close();
      vmiSync.close();
      await Promise.all([o.caches.node.stop(), o.caches.pods.stop(), o.caches.vmis.stop()]);
      await server.close();
    },
  };
}
