// Controller HA and node failure against the embedded API server, with `tsvirt controller` as real processes:
// two candidates, kill -9 the leader, the follower takes over within the lease time and creates the launcher pod of
// a new VMI; the killed one, restarted with its data dir, retakes its own lease at once when it is free. A node that
// stops renewing its Lease goes Ready=Unknown, and only after the eviction grace loses its pod and its VMI fails.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  type Lease,
  type Node,
  type Pod,
  type RestClient,
  resources,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { kill9, startTestApi, TSVIRT, waitFor } from "../lib/process.js";

function startController(kubeconfig: string, args: string[]): ChildProcess {
  return spawn(process.execPath, [TSVIRT, "controller", "--kubeconfig", kubeconfig, ...args], {
    stdio: ["ignore", "ignore", "ignore"],
  });
}

const micro = (d: Date) =>
  d
    .toISOString()
    .replace(/Z$/, "000Z")
    .replace(/\.(\d{3})000Z$/, ".$1000Z");

const setup = (t: { after: (fn: () => unknown) => void }) => startTestApi(t, "ctrl-ha-");

async function addNode(client: RestClient, name: string): Promise<void> {
  const node = await client.create<Node>(resources.nodes, undefined, {
    metadata: { name, labels: { "kubevirt.io/schedulable": "true" } },
  });
  const now = new Date().toISOString();
  await client.updateStatus(resources.nodes, {
    ...node,
    status: {
      allocatable: { cpu: "2", memory: "4Gi", pods: "110" },
      conditions: [{ type: "Ready", status: "True", lastHeartbeatTime: now, lastTransitionTime: now }],
    },
  });
  await client.create<Lease>(resources.leases, "kube-node-lease", {
    metadata: { name, namespace: "kube-node-lease" },
    spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: micro(new Date()) },
  });
}

async function renewNodeLease(client: RestClient, name: string): Promise<void> {
  const l = await client.get<Lease>(resources.leases, "kube-node-lease", name);
  await client.update(resources.leases, { ...l, spec: { ...l.spec, renewTime: micro(new Date()) } });
}

const vmi = (name: string): VirtualMachineInstance =>
  ({
    metadata: { name, namespace: "default" },
    spec: { domain: { devices: {}, resources: { requests: { memory: "64Mi" } } } },
  }) as VirtualMachineInstance;

const launcherOf = async (client: RestClient, name: string) => {
  const l = await client.list<Pod>(resources.pods, "default", { labelSelector: "kubevirt.io=virt-launcher" });
  return l.items.find((p) => p.metadata.ownerReferences?.some((r) => r.name === name));
};

const holder = async (client: RestClient) =>
  (await client.get<Lease>(resources.leases, "kubevirt", "virt-controller")).spec.holderIdentity;

describe("controller HA", () => {
  it("kill -9 the leader: the follower acts within the lease time; the restarted one retakes its free lease", async (t) => {
    const { dir, kc, client } = await setup(t);
    await addNode(client, "node01");
    const le = ["--leader-elect", "--lease-duration", "4", "--renew-deadline", "3", "--retry-period", "1"];
    const a = startController(kc, [...le, "--data-dir", join(dir, "a")]);
    t.after(() => kill9(a));
    const first = await waitFor("a leader", () => holder(client));
    const b = startController(kc, [...le, "--data-dir", join(dir, "b")]);
    t.after(() => kill9(b));
    await client.create(resources.vmis, "default", vmi("v1"));
    await waitFor("launcher pod of v1", () => launcherOf(client, "v1"));
    assert.equal(await holder(client), first, "the leader keeps its lease while it renews");

    await kill9(a);
    const killedAt = Date.now();
    await client.create(resources.vmis, "default", vmi("v2"));
    await waitFor("launcher pod of v2 from the follower", () => launcherOf(client, "v2"), 30_000);
    const second = await holder(client);
    assert.notEqual(second, first, "the follower took the lease");
    assert.ok(Date.now() - killedAt < 30_000);

    // Give the lease up (the follower stops: SIGTERM releases it), then restart a with its data dir: it is the
    // same identity and holds the lease again.
    await new Promise<void>((resolve) => {
      b.once("exit", () => resolve());
      b.kill("SIGTERM");
    });
    const a2 = startController(kc, [...le, "--data-dir", join(dir, "a")]);
    t.after(() => kill9(a2));
    await waitFor("a retakes its lease", async () => ((await holder(client)) === first ? true : undefined), 20_000);
  });

  it("a silent node goes Ready=Unknown, then after the grace its pod is deleted and its VMI fails NodeUnresponsive", async (t) => {
    const { kc, client } = await setup(t);
    await addNode(client, "dead");
    await addNode(client, "alive");
    const ctl = startController(kc, [
      "--node-monitor-grace-period",
      "3",
      "--pod-eviction-timeout",
      "6",
      "--node-monitor-period",
      "1",
    ]);
    t.after(() => kill9(ctl));
    // The "alive" node keeps renewing its Lease (this test plays its agent), the "dead" one stopped at once.
    const beat = setInterval(() => void renewNodeLease(client, "alive").catch(() => undefined), 1000);
    t.after(() => clearInterval(beat));
    const ready = async (n: string) =>
      (await client.get<Node>(resources.nodes, undefined, n)).status?.conditions?.find((c) => c.type === "Ready");
    // Only the dead node is schedulable soon: taint alive off first so the VMI lands on dead.
    await client.patch(resources.nodes, undefined, "alive", "merge", { spec: { unschedulable: true } });
    await client.create(resources.vmis, "default", vmi("v"));
    const pod = await waitFor("v's launcher pod bound", async () => {
      const p = await launcherOf(client, "v");
      return p?.spec.nodeName ? p : undefined;
    });
    assert.equal(pod.spec.nodeName, "dead");
    const unknown = await waitFor("dead is Ready=Unknown", async () => {
      const r = await ready("dead");
      return r?.status === "Unknown" ? r : undefined;
    });
    assert.equal(unknown.reason, "NodeStatusUnknown");
    assert.equal(unknown.message, "Kubelet stopped posting node status.");
    // the grace counts from the transition the controller recorded (when this test saw it may be much later)
    const markedAt = Date.parse(unknown.lastTransitionTime ?? "");
    assert.ok(!Number.isNaN(markedAt), "the Unknown condition has its transition time");
    // the label is its own write, after the condition's: waited for, not read at once
    await waitFor("dead labelled unschedulable", async () => {
      const n = await client.get<Node>(resources.nodes, undefined, "dead");
      return n.metadata.labels?.["kubevirt.io/schedulable"] === "false" ? true : undefined;
    });
    assert.ok(await launcherOf(client, "v"), "the pod survives the Unknown transition");
    await waitFor("the pod is deleted", async () => ((await launcherOf(client, "v")) ? undefined : true), 60_000);
    assert.ok(Date.now() - markedAt >= 6_000, "not before the eviction grace (6 s)");
    const failed = await waitFor("VMI Failed", async () => {
      const v = await client.get<VirtualMachineInstance>(resources.vmis, "default", "v");
      return v.status?.phase === "Failed" ? v : undefined;
    });
    assert.equal(failed.status?.reason, "NodeUnresponsive");
    assert.equal((await ready("alive"))?.status, "True", "a renewing node stays Ready");
  });
});
