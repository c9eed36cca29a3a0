import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Client, type Event, type FakeClient, type Pod, resources } from "../../client/index.js";
import { newNode, newPod } from "../testing/factories.js";
import { startHarness } from "../testing/harness.js";
import { schedule, taintToleration, usageOf } from "./predicates.js";

const podOf = (h: Awaited<ReturnType<typeof startHarness>>, name: string) =>
  h.client.peek<Pod>(resources.pods, "default", name)!;

describe("scheduler", () => {
  it("binds through pods/binding to the least allocated node that fits", async (t) => {
    const h = await startHarness([
      { ref: resources.nodes, objs: [newNode("node01"), newNode("node02")] },
      {
        ref: resources.pods,
        objs: [newPod("busy", { nodeName: "node01", memory: "4Gi" }), newPod("p1", { memory: "1Gi" })],
      },
    ]);
    t.after(() => h.stop());
    await h.drain();
    assert.equal(podOf(h, "p1").spec.nodeName, "node02");
    const bind = h.client.actions.find((a) => a.verb === "createSubresource" && a.subresource === "binding");
    assert.deepEqual((bind?.object as { target: unknown } | undefined)?.target, {
      apiVersion: "v1",
      kind: "Node",
      name: "node02",
    });
    assert.ok((await h.eventReasons()).includes("Scheduled"));
  });

  it("counts terminating pods and pods bound a moment ago; no node fits → Unschedulable with kube's message", async (t) => {
    const terminating = newPod("old", { nodeName: "node01", memory: "6Gi", phase: "Running" });
    terminating.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
    const h = await startHarness([
      {
        ref: resources.nodes,
        objs: [
          newNode("node01", { memory: "8Gi", labels: { zone: "a" } }),
          newNode("node02", { labels: { zone: "b" } }),
        ],
      },
      { ref: resources.pods, objs: [terminating] },
    ]);
    t.after(() => h.stop());
    const p = newPod("big", { memory: "3Gi" });
    p.spec.nodeSelector = { zone: "a" };
    await h.client.create(resources.pods, "default", p);
    await h.drain();
    const pod = podOf(h, "big");
    assert.equal(pod.spec.nodeName, undefined);
    const cond = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
    assert.equal(cond?.status, "False");
    assert.equal(cond?.reason, "Unschedulable");
    assert.equal(
      cond?.message,
      "0/2 nodes are available: 1 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector.",
    );
    await h.recorder.flush();
    const ev = h.client.all<Event>(resources.events).find((e) => e.reason === "FailedScheduling");
    assert.equal(ev?.type, "Warning");
    assert.equal(ev?.message, cond?.message);
    // Once the terminating pod is really gone, the pod fits node01.
    await h.client.delete(resources.pods, "default", "old", { gracePeriodSeconds: 0 });
    assert.equal(h.client.peek(resources.pods, "default", "old"), undefined);
    await h.drain();
    assert.equal(podOf(h, "big").spec.nodeName, "node01");
  });

  it("never overcommits a node in a burst", async (t) => {
    const h = await startHarness([{ ref: resources.nodes, objs: [newNode("node01", { memory: "4Gi", cpu: "1" })] }]);
    t.after(() => h.stop());
    for (let i = 0; i < 6; i++)
      await h.client.create(resources.pods, "default", newPod(`p${i}`, { memory: "1Gi", cpu: "100m" }));
    await h.drain();
    const bound = h.client.all<Pod>(resources.pods).filter((p) => p.spec.nodeName === "node01");
    assert.equal(bound.length, 4);
  });

  it("binds concurrently: workers decide while bindings are in flight and still never overcommit", async (t) => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let inFlight = 0;
    let maxInFlight = 0;
    // A slow API: every pods/binding request waits at the gate until all six workers have decided.
    const slowBinding = (c: FakeClient): Client =>
      new Proxy(c, {
        get(target, prop, recv) {
          const v = Reflect.get(target, prop, recv);
          if (prop !== "createSubresource" || typeof v !== "function")
            return typeof v === "function" ? v.bind(target) : v;
          return async (...args: Parameters<FakeClient["createSubresource"]>) => {
            inFlight++;
            maxInFlight = Math.max(maxInFlight, inFlight);
            await gate;
            inFlight--;
            return target.createSubresource(...args);
          };
        },
      });
    const h = await startHarness(
      [
        {
          ref: resources.nodes,
          objs: [newNode("node01", { memory: "4Gi", cpu: "1" }), newNode("node02", { memory: "1Gi", cpu: "1" })],
        },
      ],
      slowBinding,
    );
    t.after(() => h.stop());
    for (let i = 0; i < 6; i++)
      await h.client.create(resources.pods, "default", newPod(`p${i}`, { memory: "1Gi", cpu: "100m" }));
    assert.equal(h.ctrl.podQueue.len(), 6);
    // Six workers take one pod each; none has finished binding when the last one decides.
    const steps = Array.from({ length: 6 }, () => h.ctrl.stepScheduler());
    for (let i = 0; i < 100 && inFlight < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(inFlight, 5, "five bindings in flight at once (4 on node01, 1 on node02); the sixth did not fit");
    release();
    await Promise.all(steps);
    await h.drain();
    const pods = h.client.all<Pod>(resources.pods);
    assert.equal(pods.filter((p) => p.spec.nodeName === "node01").length, 4);
    assert.equal(pods.filter((p) => p.spec.nodeName === "node02").length, 1);
    const left = pods.filter((p) => !p.spec.nodeName);
    assert.equal(left.length, 1);
    assert.equal(left[0]?.status?.conditions?.find((c) => c.type === "PodScheduled")?.reason, "Unschedulable");
    assert.equal(maxInFlight, 5);
  });

  it("skips cordoned and not-ready nodes; respects taints and tolerations", () => {
    const pod = newPod("p");
    const cordoned = newNode("a", { unschedulable: true });
    const notReady = newNode("b", { ready: false });
    const tainted = newNode("c");
    tainted.spec = { taints: [{ key: "dedicated", value: "gpu", effect: "NoSchedule" }] };
    const r = schedule(pod, [cordoned, notReady, tainted], () => usageOf([]));
    assert.deepEqual(r, {
      fit: false,
      message:
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable.",
    });
    pod.spec.tolerations = [{ key: "dedicated", operator: "Equal", value: "gpu", effect: "NoSchedule" }];
    assert.equal(taintToleration(pod, tainted, { usage: usageOf([]) }), undefined);
    assert.deepEqual(
      schedule(pod, [cordoned, notReady, tainted], () => usageOf([])),
      { fit: true, node: "c" },
    );
  });

  it("required node affinity and preferred terms", () => {
    const pod = newPod("p");
    pod.spec.affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }] }],
        },
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 100, preference: { matchExpressions: [{ key: "zone", operator: "In", values: ["b"] }] } },
        ],
      },
    };
    const nodes = [
      newNode("n-a", { labels: { zone: "a" } }),
      newNode("n-b", { labels: { zone: "b" } }),
      newNode("n-c", { labels: { zone: "c" } }),
    ];
    assert.deepEqual(
      schedule(pod, nodes, () => usageOf([])),
      { fit: true, node: "n-b" },
    );
    assert.deepEqual(
      schedule(pod, [nodes[2]!], () => usageOf([])),
      {
        fit: false,
        message: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
      },
    );
  });
});
