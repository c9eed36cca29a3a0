// A FAKE node agent for control-plane scale measurements (bench:scale) and its own small test — never used in an
// end-to-end test. It talks to the real API server over HTTP like the real node agent (handler/), but its pod runner
// and launcher are in-process fakes: a bound launcher pod "runs" at once (no process, no network namespace) and the
// fake launcher reports the domain Running as soon as the VMI is Scheduled.
//
// Writes per VMI equal the real node agent's in the normal start sequence because the same pure functions decide
// them, with the same "write only when the computed status differs" rule:
//   - pod runner: one PUT pods/status when the launcher answers (handler/pod-runner.ts reports `running` with
//     answering=true after the launcher's Ping; it never reports `starting`) — computePodStatus;
//   - VMI sync: one PUT virtualmachineinstances when the domain is Running (handler/vmi-sync.ts) — computeVmiStatus
//     with the phase from the handler's own phase mapper; Scheduled without a domain writes nothing.
// Node registration mirrors handler/node-agent.ts: create Node, PUT nodes/status (Ready), create the Lease; then the
// lease is renewed every 10 s and the status heartbeat every 30 s (per node, not per VMI).
import { isDeepStrictEqual } from "node:util";
import {
  type Client,
  Informer,
  type Node,
  type Pod,
  resources,
  type VirtualMachineInstance,
} from "../../../client/index.js";
import { classifyPod, computePodStatus, computeVmiStatus, mapPhase } from "../../../handler/index.js";
import { isStatusError } from "../../../lib/errors.js";

export const NODE_NAME_LABEL = "kubevirt.io/nodeName";
const LEASE_NS = "kube-node-lease";

export interface FakeNodeOptions {
  client: Client;
  node: string;
  /** Index of the node: its fake pod IPs are 10.244.<index>.x. */
  index: number;
  capacity?: { cpu: string; memory: string; pods: string };
  leaseRenewMs?: number;
  statusEveryMs?: number;
}

type HPod = Parameters<typeof computePodStatus>[0];
type HVmi = Parameters<typeof computeVmiStatus>[0];

/** Runs one sync per key at a time; an event during a sync runs it once more afterwards. */
class KeyedQueue {
  private readonly running = new Map<string, boolean>();
  constructor(private readonly onError: (key: string, err: unknown) => void) {}
  trigger(key: string, fn: () => Promise<void>): void {
    if (this.running.has(key)) {
      this.running.set(key, true);
      return;
    }
    this.running.set(key, false);
    const loop = async (): Promise<void> => {
      for (;;) {
        try {
          await fn();
        } catch (e) {
          this.onError(key, e);
        }
        if (!this.running.get(key)) break;
        this.running.set(key, false);
      }
      this.running.delete(key);
    };
    void loop();
  }
}

function ignoreConflict(e: unknown): void {
  if (isStatusError(e) && (e.code === 409 || e.code === 404)) return;
  throw e;
}

/** The fake node agent: fake pod runner + fake launcher, real API traffic. */
export class FakeNodeAgent {
  readonly node: string;
  private readonly o: FakeNodeOptions;
  private readonly pods: Informer<Pod>;
  private readonly vmis: Informer<VirtualMachineInstance>;
  private readonly queue: KeyedQueue;
  /** The fake pod runner's state: pod uid → fake IP and start time. */
  private readonly running = new Map<string, { ip: string; startedAt: string }>();
  private readonly podOfVmi = new Map<string, string>();
  private nextIp = 2;
  private timers: NodeJS.Timeout[] = [];
  errors = 0;

  constructor(o: FakeNodeOptions) {
    this.o = o;
    this.node = o.node;
    this.pods = new Informer<Pod>(o.client, resources.pods, { fieldSelector: `spec.nodeName=${o.node}` });
    this.vmis = new Informer<VirtualMachineInstance>(o.client, resources.vmis, {
      labelSelector: `${NODE_NAME_LABEL}=${o.node}`,
    });
    this.queue = new KeyedQueue(() => {
      this.errors++;
    });
  }

  private now(): string {
    return new Date().toISOString();
  }

  private nodeStatus(old: Node["status"]): NonNullable<Node["status"]> {
    const cap = this.o.capacity ?? { cpu: "64", memory: "512Gi", pods: "500" };
    const now = this.now();
    const prev = old?.conditions?.find((c) => c.type === "Ready");
    return {
      ...(old ?? {}),
      capacity: { ...cap },
      allocatable: { ...cap },
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "tsvirt fake node agent is posting ready status",
          lastHeartbeatTime: now,
          lastTransitionTime: prev?.status === "True" && prev.lastTransitionTime ? prev.lastTransitionTime : now,
        },
      ],
      addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
    };
  }

  async register(): Promise<void> {
    const c = this.o.client;
    const now = this.now();
    try {
      await c.create<Node>(resources.nodes, undefined, {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: this.node,
          labels: {
            "kubernetes.io/hostname": this.node,
            "kubernetes.io/os": "linux",
            "kubevirt.io/schedulable": "true",
            "tsvirt.io/fake-node": "true",
          },
          annotations: { "kubevirt.io/heartbeat": now },
        },
        spec: {},
      });
    } catch (e) {
      if (!(isStatusError(e) && e.code === 409)) throw e;
    }
    await this.heartbeat();
    await this.renewLease();
  }

  private async heartbeat(): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const cur = await this.o.client.get<Node>(resources.nodes, undefined, this.node);
      try {
        await this.o.client.updateStatus<Node>(resources.nodes, { ...cur, status: this.nodeStatus(cur.status) });
        return;
      } catch (e) {
        if (!(isStatusError(e) && e.code === 409)) throw e;
      }
    }
  }

  private async renewLease(): Promise<void> {
    const c = this.o.client;
    const renewTime = this.now().replace(/\.(\d{3})Z$/, ".$1000Z");
    const spec = { holderIdentity: this.node, leaseDurationSeconds: 40, renewTime };
    try {
      const cur = await c.get<Node>(resources.leases, LEASE_NS, this.node);
      await c.update(resources.leases, { ...cur, spec });
    } catch (e) {
      if (!(isStatusError(e) && e.code === 404)) throw e;
      await c.create(resources.leases, LEASE_NS, {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.node, namespace: LEASE_NS },
        spec,
      } as unknown as Node);
    }
  }

  async start(): Promise<void> {
    await this.register();
    this.pods.addEventHandler({
      onAdd: (p) => this.triggerPod(p),
      onUpdate: (_o, p) => this.triggerPod(p),
      onDelete: (p) => {
        const uid = p.metadata.uid ?? "";
        this.running.delete(uid);
        const cls = classifyPod(p as unknown as HPod);
        if (cls.kind === "launcher" && this.podOfVmi.get(cls.vmiUid) === uid) this.podOfVmi.delete(cls.vmiUid);
      },
    });
    this.vmis.addEventHandler({
      onAdd: (v) => this.triggerVmi(v),
      onUpdate: (_o, v) => this.triggerVmi(v),
    });
    this.pods.start();
    this.vmis.start();
    await Promise.all([this.pods.waitForSync(), this.vmis.waitForSync()]);
    const every = (ms: number, fn: () => Promise<void>): void => {
      const t = setInterval(() => {
        fn().catch(() => {
          this.errors++;
        });
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.leaseRenewMs ?? 10_000, () => this.renewLease());
    every(this.o.statusEveryMs ?? 30_000, () => this.heartbeat());
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.all([this.pods.stop(), this.vmis.stop()]);
  }

  private triggerPod(p: Pod): void {
    const uid = p.metadata.uid;
    if (!uid) return;
    this.queue.trigger(`pod/${uid}`, () => this.syncPod(uid));
  }

  private triggerVmi(v: VirtualMachineInstance): void {
    const uid = v.metadata.uid;
    if (!uid) return;
    this.queue.trigger(`vmi/${uid}`, () => this.syncVmi(uid));
  }

  /** The fake pod runner: a launcher pod bound here runs and answers at once; a deleted one is gone at once. */
  private async syncPod(uid: string): Promise<void> {
    const pod = this.pods.list().find((p) => p.metadata.uid === uid);
    if (!pod) return;
    const hpod = pod as unknown as HPod;
    if (pod.metadata.deletionTimestamp) {
      // kubelet's final delete once the containers are gone.
      this.running.delete(uid);
      await this.o.client
        .delete(resources.pods, pod.metadata.namespace, pod.metadata.name ?? "", {
          gracePeriodSeconds: 0,
          preconditions: { uid },
        })
        .catch(ignoreConflict);
      return;
    }
    const cls = classifyPod(hpod);
    if (cls.kind !== "launcher") {
      const status = computePodStatus(hpod, { state: "unsupported", message: cls.message }, "127.0.0.1", this.now());
      if (!isDeepStrictEqual(status, pod.status))
        await this.o.client.updateStatus(resources.pods, { ...pod, status } as Pod).catch(ignoreConflict);
      return;
    }
    if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") return;
    let rt = this.running.get(uid);
    if (!rt) {
      rt = { ip: `10.244.${this.o.index}.${this.nextIp}`, startedAt: this.now() };
      this.nextIp = this.nextIp >= 65_000 ? 2 : this.nextIp + 1;
      this.running.set(uid, rt);
    }
    this.podOfVmi.set(cls.vmiUid, uid);
    const status = computePodStatus(
      hpod,
      {
        state: "running",
        ip: rt.ip,
        startedAt: pod.status?.startTime ?? rt.startedAt,
        answering: true,
        unpaused: true,
      },
      "127.0.0.1",
      this.now(),
    );
    if (!isDeepStrictEqual(status, pod.status)) {
      await this.o.client.updateStatus(resources.pods, { ...pod, status } as Pod).catch(ignoreConflict);
    }
    // The VMI sync reads the pod's readiness: poke it as the real handler's cache events do.
    const vmi = this.vmis.list().find((v) => v.metadata.uid === cls.vmiUid);
    if (vmi) this.triggerVmi(vmi);
  }

  /** The fake launcher: once the VMI is Scheduled here and its pod runs, the domain is Running. */
  private async syncVmi(uid: string): Promise<void> {
    const vmi = this.vmis.list().find((v) => v.metadata.uid === uid);
    if (!vmi || vmi.metadata.deletionTimestamp) return;
    const phase = vmi.status?.phase;
    if (phase !== "Scheduled" && phase !== "Running") return;
    if (vmi.status?.nodeName && vmi.status.nodeName !== this.node) return;
    const podUid = this.podOfVmi.get(uid);
    const pod = podUid ? this.pods.list().find((p) => p.metadata.uid === podUid) : undefined;
    const rt = podUid ? this.running.get(podUid) : undefined;
    if (!pod || !rt) return; // no launcher connection yet: the real handler cannot Sync either
    const hvmi = vmi as unknown as HVmi;
    const domain = { state: "Running" as const, reason: "Unknown" };
    const obs: Parameters<typeof computeVmiStatus>[1] = {
      nodeName: this.node,
      podIP: rt.ip,
      domain,
      podReady: pod.status?.conditions?.find((c) => c.type === "Ready")?.status === "True",
      now: this.now(),
    };
    const mapped = mapPhase(domain, hvmi);
    if (mapped) obs.phase = mapped;
    const status = computeVmiStatus(hvmi, obs);
    if (!status) return;
    await this.o.client
      .update(resources.vmis, { ...vmi, status } as unknown as VirtualMachineInstance)
      .catch(ignoreConflict);
  }
}

/** Starts `count` fake node agents named fake-node-00 … sharing one client. */
export async function startFakeNodes(client: Client, count: number): Promise<FakeNodeAgent[]> {
  const agents: FakeNodeAgent[] = [];
  for (let i = 0; i < count; i++) {
    const a = new FakeNodeAgent({ client, node: `fake-node-${String(i).padStart(2, "0")}`, index: i });
    agents.push(a);
  }
  await Promise.all(agents.map((a) => a.start()));
  return agents;
}
