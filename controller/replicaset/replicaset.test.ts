import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { resources, type VirtualMachineInstance, type VirtualMachineInstanceReplicaSet } from "../../client/index.js";
import { newVmi } from "../testing/factories.js";
import { type Harness, startHarness } from "../testing/harness.js";
import { planReplicaSet, selectorMatches, selectorString } from "./plan.js";

function newRs(
  replicas: number,
  extra: Partial<VirtualMachineInstanceReplicaSet["spec"]> = {},
): VirtualMachineInstanceReplicaSet {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceReplicaSet",
    metadata: { name: "testreplicaset", namespace: "default" },
    spec: {
      replicas,
      selector: { matchLabels: { myvmi: "myvmi" } },
      template: {
        metadata: { labels: { myvmi: "myvmi" } },
        spec: { domain: { devices: {}, resources: { requests: { memory: "64Mi" } } } },
      },
      ...extra,
    },
  };
}

const vmis = (h: Harness) =>
  h.client.all<VirtualMachineInstance>(resources.vmis).filter((v) => !v.metadata.deletionTimestamp);
const rsOf = (h: Harness) =>
  h.client.peek<VirtualMachineInstanceReplicaSet>(resources.vmirs, "default", "testreplicaset")!;

async function scale(h: Harness, n: number) {
  const rs = rsOf(h);
  await h.client.update(resources.vmirs, { ...rs, spec: { ...rs.spec, replicas: n } });
  await h.drain();
}

describe("VMI ReplicaSet controller", () => {
  it("creates replicas from the template with owner references; scale 3 → 1 → 2; status counts", async (t) => {
    const h = await startHarness([{ ref: resources.vmirs, objs: [newRs(3)] }]);
    t.after(() => h.stop());
    await h.drain();
    const made = vmis(h);
    assert.equal(made.length, 3);
    const rs = rsOf(h);
    for (const v of made) {
      assert.match(v.metadata.name!, /^testreplicaset[a-z0-9]{5}$/);
      assert.deepEqual(
        v.metadata.ownerReferences?.map((r) => [r.kind, r.uid, r.controller]),
        [["VirtualMachineInstanceReplicaSet", rs.metadata.uid, true]],
      );
    }
    assert.equal(rs.status?.replicas, 3);
    assert.equal(rs.status?.readyReplicas, 0);
    assert.equal(rs.status?.labelSelector, "myvmi=myvmi");
    await scale(h, 1);
    // The VMI controller drops the finalizer once no pods remain, so deleted VMIs go.
    assert.equal(vmis(h).length, 1);
    assert.equal(rsOf(h).status?.replicas, 1);
    await scale(h, 2);
    assert.equal(vmis(h).length, 2);
    assert.ok((await h.eventReasons()).includes("SuccessfulCreate"));
  });

  it("a deleted VMI is replaced; a finished one is removed and replaced", async (t) => {
    const h = await startHarness([{ ref: resources.vmirs, objs: [newRs(2)] }]);
    t.after(() => h.stop());
    await h.drain();
    const [a, b] = vmis(h);
    await h.client.delete(resources.vmis, "default", a!.metadata.name!);
    await h.drain();
    const cur = h.client.peek<VirtualMachineInstance>(resources.vmis, "default", b!.metadata.name!)!;
    await h.client.update(resources.vmis, { ...cur, status: { ...cur.status, phase: "Succeeded" } });
    await h.drain();
    const now = vmis(h);
    assert.equal(now.length, 2);
    assert.ok(!now.some((v) => v.metadata.uid === a!.metadata.uid || v.metadata.uid === b!.metadata.uid));
  });

  it("adopts matching orphans instead of creating; releases owned VMIs that stop matching", async (t) => {
    const orphan = newVmi("orphan");
    orphan.metadata.labels = { myvmi: "myvmi" };
    const h = await startHarness([
      { ref: resources.vmis, objs: [orphan] },
      { ref: resources.vmirs, objs: [newRs(1)] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const all = vmis(h);
    assert.deepEqual(
      all.map((v) => v.metadata.name),
      ["orphan"],
    );
    assert.equal(all[0]?.metadata.ownerReferences?.[0]?.kind, "VirtualMachineInstanceReplicaSet");
    const o = h.client.peek<VirtualMachineInstance>(resources.vmis, "default", "orphan")!;
    await h.client.update(resources.vmis, { ...o, metadata: { ...o.metadata, labels: { other: "x" } } });
    await h.drain();
    assert.deepEqual(
      h.client.peek<VirtualMachineInstance>(resources.vmis, "default", "orphan")?.metadata.ownerReferences,
      [],
    );
    assert.equal(vmis(h).length, 2, "a replacement was made");
  });

  it("paused: no scaling, ReplicaPaused condition", async (t) => {
    const h = await startHarness([{ ref: resources.vmirs, objs: [newRs(2, { paused: true })] }]);
    t.after(() => h.stop());
    await h.drain();
    assert.equal(vmis(h).length, 0);
    assert.equal(rsOf(h).status?.conditions?.find((c) => c.type === "ReplicaPaused")?.status, "True");
  });

  it("a failing create sets ReplicaFailure and retries", async (t) => {
    const h = await startHarness([{ ref: resources.vmirs, objs: [newRs(1)] }]);
    t.after(() => h.stop());
    let fail = true;
    h.client.prependReactor("create", "virtualmachineinstances", () =>
      fail ? { error: new Error("quota exceeded") } : undefined,
    );
    await h.ctrl.stepReplicaSet();
    const cond = rsOf(h).status?.conditions?.find((c) => c.type === "ReplicaFailure");
    assert.equal(cond?.status, "True");
    assert.match(cond?.message ?? "", /quota exceeded/);
    assert.equal(h.ctrl.rsQueue.numRequeues("default/testreplicaset"), 1);
    fail = false;
    h.ctrl.rsQueue.add("default/testreplicaset");
    await h.drain();
    assert.equal(vmis(h).length, 1);
    assert.equal(
      rsOf(h).status?.conditions?.find((c) => c.type === "ReplicaFailure"),
      undefined,
    );
  });
});

describe("ReplicaSet planning", () => {
  it("scale-down removes not-ready VMIs first, then the newest", () => {
    const mk = (name: string, created: string, ready: boolean): VirtualMachineInstance => {
      const v = newVmi(name);
      v.metadata.creationTimestamp = created;
      v.status = { phase: "Running", conditions: [{ type: "Ready", status: ready ? "True" : "False" }] };
      return v;
    };
    const owned = [
      mk("old-ready", "2026-01-01T00:00:00Z", true),
      mk("new-ready", "2026-01-03T00:00:00Z", true),
      mk("notready", "2026-01-02T00:00:00Z", false),
    ];
    assert.deepEqual(
      planReplicaSet(newRs(1), owned).delete.map((v) => v.metadata.name),
      ["notready", "new-ready"],
    );
  });

  it("selectors: matchLabels and matchExpressions; empty matches nothing", () => {
    const sel = {
      matchLabels: { a: "1" },
      matchExpressions: [{ key: "b", operator: "In" as const, values: ["x", "y"] }],
    };
    assert.equal(selectorMatches(sel, { a: "1", b: "y" }), true);
    assert.equal(selectorMatches(sel, { a: "1", b: "z" }), false);
    assert.equal(selectorMatches({}, { a: "1" }), false);
    assert.equal(selectorString(sel), "a=1,b in (x,y)");
  });
});
