import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  FakeClient,
  Informer,
  type Lease,
  type Node,
  type Pod,
  resources,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { nullLogger } from "../../lib/log.js";
import { NodeLifecycleController } from "./controller.js";
import { type NodeAction, type NodeLifecycleConfig, planNodeLifecycle } from "./plan.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();
const cfg: NodeLifecycleConfig = { monitorGracePeriodMs: 40_000, podEvictionTimeoutMs: 300_000 };

function node(ready: "True" | "Unknown", transition: number, beat = 0, schedulable = "true"): Node {
  return {
    metadata: { name: "n1", labels: { "kubevirt.io/schedulable": schedulable }, creationTimestamp: iso(-100) },
    status: {
      conditions: [
        {
          type: "Ready",
          status: ready,
          reason: ready === "True" ? "KubeletReady" : "NodeStatusUnknown",
          lastHeartbeatTime: iso(beat),
          lastTransitionTime: iso(transition),
        },
      ],
    },
  };
}
const lease = (renew: number): Lease => ({
  metadata: { name: "n1", namespace: "kube-node-lease" },
  spec: { holderIdentity: "n1", leaseDurationSeconds: 40, renewTime: iso(renew) },
});
const pod: Pod = {
  metadata: { name: "virt-launcher-v-x", namespace: "default" },
  spec: { nodeName: "n1", containers: [] },
};
const vmi = {
  metadata: { name: "v", namespace: "default" },
  spec: {},
  status: { phase: "Running", nodeName: "n1" },
} as unknown as VirtualMachineInstance;

const kinds = (a: NodeAction[]) => a.map((x) => x.kind).sort();

describe("planNodeLifecycle", () => {
  const table: { name: string; node: Node; lease?: Lease; now: number; want: string[] }[] = [
    { name: "fresh lease: nothing", node: node("True", 0), lease: lease(30), now: 60, want: [] },
    { name: "silent 39 s: nothing yet", node: node("True", 0), lease: lease(0), now: 39, want: [] },
    {
      name: "silent 40 s: Ready=Unknown, unschedulable",
      node: node("True", 0),
      lease: lease(0),
      now: 40,
      want: ["markUnknown", "unschedulable"],
    },
    {
      name: "Unknown for 299 s: pods kept",
      node: node("Unknown", 41, 0, "false"),
      lease: lease(0),
      now: 340,
      want: [],
    },
    {
      name: "Unknown for 300 s and silent: VMI fails, pod deleted",
      node: node("Unknown", 41, 0, "false"),
      lease: lease(0),
      now: 341,
      want: ["deletePod", "failVmi"],
    },
    {
      name: "heartbeat resumed within the grace: VMs kept",
      node: node("Unknown", 41, 0, "false"),
      lease: lease(330),
      now: 341,
      want: [],
    },
    { name: "no lease: the Ready heartbeat counts", node: node("True", 0, 50), now: 80, want: [] },
  ];
  for (const c of table) {
    it(c.name, () => {
      const acts = planNodeLifecycle(
        { nodes: [c.node], leases: c.lease ? [c.lease] : [], pods: [pod], vmis: [vmi] },
        new Date(T0 + c.now * 1000),
        cfg,
      );
      assert.deepEqual(kinds(acts), c.want);
      const mu = acts.find((a) => a.kind === "markUnknown");
      if (mu?.kind === "markUnknown") {
        const r = mu.conditions.find((x) => x.type === "Ready");
        assert.equal(r?.status, "Unknown");
        assert.equal(r?.reason, "NodeStatusUnknown");
        assert.equal(r?.message, "Kubelet stopped posting node status.");
        assert.equal(r?.lastTransitionTime, iso(c.now));
      }
    });
  }
  it("finished VMIs and terminating pods are left alone", () => {
    const done = { ...vmi, status: { phase: "Succeeded", nodeName: "n1" } } as unknown as VirtualMachineInstance;
    const going: Pod = { ...pod, metadata: { ...pod.metadata, deletionTimestamp: iso(1) } };
    const acts = planNodeLifecycle(
      { nodes: [node("Unknown", 41, 0, "false")], leases: [lease(0)], pods: [going], vmis: [done] },
      new Date(T0 + 400_000),
      cfg,
    );
    assert.deepEqual(acts, []);
  });
});

describe("NodeLifecycleController (FakeClient, fake clock)", () => {
  it("marks a silent node Unknown, then after the grace fails its VMI with NodeUnresponsive and deletes its pod", async () => {
    const c = new FakeClient();
    let now = T0 + 60_000;
    c.now = () => new Date(now);
    c.seed(resources.nodes, node("True", 0));
    c.seed(resources.leases, lease(0));
    c.seed(resources.pods, pod);
    c.seed(resources.vmis, vmi);
    const ctl = new NodeLifecycleController({
      client: c,
      log: nullLogger,
      now: () => new Date(now),
      config: cfg,
    });
    await ctl.step();
    const n = c.peek<Node>(resources.nodes, undefined, "n1");
    assert.equal(n?.status?.conditions?.find((x) => x.type === "Ready")?.status, "Unknown");
    assert.equal(n?.metadata.labels?.["kubevirt.io/schedulable"], "false");
    assert.ok(c.peek(resources.pods, "default", pod.metadata.name ?? ""), "pod kept during the grace");
    now += 299_000;
    await ctl.step();
    assert.ok(c.peek(resources.pods, "default", pod.metadata.name ?? ""), "pod kept during the grace");
    assert.equal(c.peek<VirtualMachineInstance>(resources.vmis, "default", "v")?.status?.phase, "Running");
    now += 1_000;
    await ctl.step();
    assert.equal(c.peek(resources.pods, "default", pod.metadata.name ?? ""), undefined);
    const v = c.peek<VirtualMachineInstance>(resources.vmis, "default", "v");
    assert.equal(v?.status?.phase, "Failed");
    assert.equal(v?.status?.reason, "NodeUnresponsive");
  });

  it("inside virt-controller it reads nodes, pods and VMIs from the informers, listing only the node leases", async (t) => {
    const c = new FakeClient();
    const now = T0 + 60_000;
    c.now = () => new Date(now);
    c.seed(resources.nodes, node("True", 0));
    c.seed(resources.leases, lease(0));
    c.seed(resources.pods, pod);
    c.seed(resources.vmis, vmi);
    const nodes = new Informer<Node>(c, resources.nodes);
    const pods = new Informer<Pod>(c, resources.pods);
    const vmis = new Informer<VirtualMachineInstance>(c, resources.vmis);
    for (const i of [nodes, pods, vmis]) i.start();
    t.after(() => Promise.all([nodes.stop(), pods.stop(), vmis.stop()]));
    await Promise.all([nodes.waitForSync(), pods.waitForSync(), vmis.waitForSync()]);
    c.clearActions();
    const ctl = new NodeLifecycleController({
      client: c,
      log: nullLogger,
      now: () => new Date(now),
      config: cfg,
      cache: { nodes, pods, vmis },
    });
    const acts = await ctl.step();
    assert.deepEqual(
      c.actions.filter((a) => a.verb === "list").map((a) => a.resource),
      ["leases"],
    );
    assert.deepEqual(
      acts.map((a) => a.kind),
      ["markUnknown", "unschedulable"],
      "the same decisions as from lists",
    );
  });
});
