// The evacuation controller inside virt-controller (fake client, queues stepped): a VMI marked by the eviction
// admission gets one migration, a second pass creates no duplicate, and the mark goes once the VMI has moved.
import assert from "node:assert/strict";
import { test } from "node:test";
import { resources, type VirtualMachineInstance } from "../../client/index.js";
import { newNode, newVmi } from "../testing/factories.js";
import { startHarness } from "../testing/harness.js";
import type { Vmim } from "./plan.js";

function running(name: string, node: string, mark?: string): VirtualMachineInstance {
  return newVmi(name, (v) => {
    v.metadata.uid = `uid-${name}`;
    v.spec.evictionStrategy = "LiveMigrate";
    v.status = {
      phase: "Running",
      nodeName: node,
      conditions: [{ type: "LiveMigratable", status: "True" }],
      ...(mark ? { evacuationNodeName: mark } : {}),
    };
  });
}

/** Steps only the evacuation queue (the VMI controller would fail these pod-less VMIs), letting watch events in. */
async function settle(h: Awaited<ReturnType<typeof startHarness>>): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setImmediate(r));
    if (h.ctrl.evacuationQueue.len() > 0) await h.ctrl.stepEvacuation();
  }
}

test("a marked VMI gets one evacuation migration; the mark is cleared after it moved", async () => {
  const h = await startHarness([
    { ref: resources.nodes, objs: [newNode("node01"), newNode("node02")] },
    { ref: resources.vmis, objs: [running("a", "node01", "node01"), running("b", "node01")] },
  ]);
  try {
    await settle(h);
    const migs = h.client.all<Vmim>(resources.vmims);
    assert.equal(migs.length, 1);
    assert.equal(migs[0]?.spec.vmiName, "a");
    assert.match(migs[0]?.metadata.name ?? "", /^kubevirt-evacuation-/);
    assert.equal(migs[0]?.metadata.annotations?.["kubevirt.io/evacuationMigration"], "node01");
    // a later pass (the node changed) sees the unfinished migration and creates nothing more
    h.ctrl.evacuationQueue.add("node01");
    await settle(h);
    assert.equal(h.client.all<Vmim>(resources.vmims).length, 1);
    assert.ok((await h.eventReasons()).includes("SuccessfulCreate"));
    // the handover: the VMI now runs on node02, its mark still names node01
    const cur = await h.client.get<VirtualMachineInstance>(resources.vmis, "default", "a");
    await h.client.update(resources.vmis, { ...cur, status: { ...cur.status, nodeName: "node02" } });
    await settle(h);
    const after = await h.client.get<VirtualMachineInstance>(resources.vmis, "default", "a");
    assert.equal(after.status?.evacuationNodeName, undefined);
  } finally {
    await h.stop();
  }
});
