import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Event, type Pod, resources } from "../../client/index.js";
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
