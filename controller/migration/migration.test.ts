// The migration controller over the fake client with the real VMI controller and scheduler: the agents' writes
// (target address, start, completion, handover) are played by hand.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Migration } from "../../api/index.js";
import {
  type Pod,
  resources,
  type VirtualMachineInstance,
  type VirtualMachineInstanceMigration,
} from "../../client/index.js";
import { newNode, newVmi } from "../testing/factories.js";
import { type Harness, startHarness } from "../testing/harness.js";
import { type MigrationDeps, reconcileMigration } from "./controller.js";

const vmiOf = (h: Harness) => h.client.peek<VirtualMachineInstance>(resources.vmis, "default", "testvmi")!;
const vmimOf = (h: Harness, name = "mig1") =>
  h.client.peek<VirtualMachineInstanceMigration>(resources.vmims, "default", name);
/** Pods not being deleted (the fake client keeps a bound pod, with deletionTimestamp, until its node lets go). */
const podsOf = (h: Harness) => h.client.all<Pod>(resources.pods).filter((p) => !p.metadata.deletionTimestamp);

async function runPod(h: Harness, name: string) {
  const cur = h.client.peek<Pod>(resources.pods, "default", name)!;
  await h.client.updateStatus(resources.pods, {
    ...cur,
    status: { ...cur.status, phase: "Running", conditions: [{ type: "ContainersReady", status: "True" }] },
  });
}

/** A VMI running on node01 (the only node at first), as the node agent would report it. */
async function runningVmi(nodes: string[]): Promise<Harness> {
  const h = await startHarness([
    { ref: resources.vmis, objs: [newVmi()] },
    { ref: resources.nodes, objs: [newNode("node01")] },
  ]);
  await h.drain();
  const source = podsOf(h)[0]!;
  await runPod(h, source.metadata.name!);
  await h.drain();
  const v = vmiOf(h);
  await h.client.update(resources.vmis, { ...v, status: { ...v.status, phase: "Running" } });
  for (const n of nodes) await h.client.create(resources.nodes, undefined, newNode(n));
  await h.drain();
  return h;
}

async function migrate(h: Harness, name = "mig1") {
  await h.client.create(resources.vmims, "default", {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: { name, namespace: "default", labels: { [Migration.vmiNameLabel]: "testvmi" } },
    spec: { vmiName: "testvmi" },
  } as VirtualMachineInstanceMigration);
  await h.drain();
}

async function agentWrites(
  h: Harness,
  state: Record<string, unknown>,
  extra: Partial<VirtualMachineInstance["status"]> = {},
) {
  const v = vmiOf(h);
  await h.client.update(resources.vmis, {
    ...v,
    status: { ...v.status, ...extra, migrationState: { ...v.status?.migrationState, ...state } },
  });
  await h.drain();
}

describe("migration controller", () => {
  it("drives a migration to Succeeded as the agents report, then cleans up", async (t) => {
    const h = await runningVmi(["node02"]);
    t.after(() => h.stop());
    const vmi0 = vmiOf(h);
    assert.equal(vmi0.status?.conditions?.find((c) => c.type === "LiveMigratable")?.status, "True");
    assert.equal(vmi0.status?.migrationMethod, "LiveMigration");
    const source = podsOf(h)[0]!;
    await migrate(h);

    const target = podsOf(h).find((p) => p.metadata.labels?.[Migration.jobUidLabel]);
    assert.ok(target, "target pod created");
    assert.equal(target.spec.nodeName, "node02", "the scheduler placed it away from the source");
    let m = vmimOf(h)!;
    assert.deepEqual(m.metadata.finalizers, [Migration.finalizer]);
    assert.equal(m.status?.phase, "PreparingTarget");
    let vmi = vmiOf(h);
    assert.equal(vmi.metadata.labels?.[Migration.targetNodeLabel], "node02");
    assert.equal(vmi.status?.migrationState?.migrationUid, m.metadata.uid);
    assert.equal(vmi.status?.migrationState?.sourcePod, source.metadata.name);
    assert.equal(vmi.status?.migrationState?.targetPod, target.metadata.name);
    assert.equal(vmi.status?.migrationState?.migrationConfiguration?.completionTimeoutPerGiB, 150);
    assert.equal(vmi.status?.phase, "Running", "the VMI controller leaves the target pod alone");
    assert.equal(podsOf(h).length, 2);

    await runPod(h, target.metadata.name!);
    await agentWrites(h, { targetNodeAddress: "10.244.2.7", targetDirectMigrationNodePorts: { "49152": 0 } });
    assert.equal(vmimOf(h)?.status?.phase, "TargetReady");
    await agentWrites(h, { startTimestamp: "2026-12-07T07:00:00Z" });
    assert.equal(vmimOf(h)?.status?.phase, "Running");
    // the handover: the target agent's one update
    const v = vmiOf(h);
    await h.client.update(resources.vmis, {
      ...v,
      metadata: { ...v.metadata, labels: { ...v.metadata.labels, "kubevirt.io/nodeName": "node02" } },
      status: {
        ...v.status,
        nodeName: "node02",
        migrationState: { ...v.status?.migrationState, completed: true, endTimestamp: "2026-12-07T07:00:05Z" },
      },
    });
    await h.drain();
    m = vmimOf(h)!;
    assert.equal(m.status?.phase, "Succeeded");
    assert.deepEqual(
      m.status?.phaseTransitionTimestamps?.map((p) => p.phase),
      ["Pending", "Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Succeeded"],
    );
    assert.equal(m.status?.migrationState?.completed, true);
    assert.deepEqual(m.metadata.finalizers ?? [], []);
    vmi = vmiOf(h);
    assert.equal(vmi.metadata.labels?.[Migration.targetNodeLabel], undefined);
    assert.equal(vmi.status?.migrationState?.completed, true, "the VMI keeps its migrationState");
    assert.equal(vmi.status?.phase, "Running");
    assert.deepEqual(
      podsOf(h).map((p) => p.metadata.name),
      [target.metadata.name],
      "the source pod is deleted",
    );
  });

  it("migrate-cancel (VMIM deleted) before the target is scheduled: Failed, target pod gone, VMIM released", async (t) => {
    const h = await runningVmi([]);
    t.after(() => h.stop());
    await migrate(h);
    const target = podsOf(h).find((p) => p.metadata.labels?.[Migration.jobUidLabel]);
    assert.ok(target);
    assert.equal(target.spec.nodeName, undefined, "one node: nowhere to go");
    assert.equal(vmimOf(h)?.status?.phase, "Scheduling");
    await h.client.delete(resources.vmims, "default", "mig1");
    await h.drain();
    assert.equal(vmimOf(h), undefined, "finalizer released, VMIM gone");
    assert.equal(podsOf(h).length, 1);
    assert.equal(vmiOf(h).status?.phase, "Running");
    assert.ok((await h.eventReasons()).includes("FailedMigration"));
  });

  it("a migration cancelled while Running asks the source to abort; the abort ends it Failed", async (t) => {
    const h = await runningVmi(["node02"]);
    t.after(() => h.stop());
    await migrate(h);
    await agentWrites(h, { targetNodeAddress: "10.244.2.7", startTimestamp: "2026-12-07T07:00:00Z" });
    await h.client.delete(resources.vmims, "default", "mig1");
    await h.drain();
    assert.equal(vmiOf(h).status?.migrationState?.abortRequested, true);
    assert.equal(vmimOf(h)?.status?.phase, "Running", "kept by its finalizer until the source answers");
    await agentWrites(h, { abortStatus: "Succeeded", failed: true, endTimestamp: "2026-12-07T07:00:03Z" });
    assert.equal(vmimOf(h), undefined);
    assert.equal(vmiOf(h).metadata.labels?.[Migration.targetNodeLabel], undefined);
    assert.equal(podsOf(h).length, 1, "target pod deleted");
    assert.equal(vmiOf(h).status?.nodeName, "node01");
  });

  it("a VMI deleted (its VM stopped): its migrations end Failed, and go once the VMI is gone", async (t) => {
    const h = await runningVmi([]);
    t.after(() => h.stop());
    await migrate(h, "mig1"); // one node: stays Scheduling
    await migrate(h, "mig2"); // another active migration of the VMI: Failed at once
    assert.equal(vmimOf(h, "mig1")?.status?.phase, "Scheduling");
    assert.equal(vmimOf(h, "mig2")?.status?.phase, "Failed");
    await h.client.delete(resources.vmis, "default", "testvmi");
    await h.drain();
    assert.ok(vmiOf(h).metadata.deletionTimestamp, "held by its finalizer");
    assert.equal(vmimOf(h, "mig1")?.status?.phase, "Failed", "the VMI is being deleted: the migration fails");
    assert.match(vmimOf(h, "mig1")?.status?.migrationState?.failureReason ?? "", /being deleted/);
    assert.ok(vmimOf(h, "mig2"), "kept while the VMI exists");
    const v = vmiOf(h);
    await h.client.update(resources.vmis, { ...v, metadata: { ...v.metadata, finalizers: [] } });
    await h.drain();
    assert.equal(h.client.peek(resources.vmis, "default", "testvmi"), undefined);
    assert.equal(vmimOf(h, "mig1"), undefined, "deleted with its VMI");
    assert.equal(vmimOf(h, "mig2"), undefined, "deleted with its VMI");
  });

  it("a VMIM whose VMI is gone is failed and deleted, also after a controller restart; a lagging cache deletes nothing", async (t) => {
    const h = await startHarness([
      { ref: resources.nodes, objs: [newNode("node01")] },
      {
        ref: resources.vmims,
        objs: [
          {
            apiVersion: "kubevirt.io/v1",
            kind: "VirtualMachineInstanceMigration",
            metadata: { name: "left", namespace: "default", finalizers: [Migration.finalizer] },
            spec: { vmiName: "gone" },
            status: { phase: "Running" },
          } as VirtualMachineInstanceMigration,
          {
            apiVersion: "kubevirt.io/v1",
            kind: "VirtualMachineInstanceMigration",
            metadata: { name: "done", namespace: "default" },
            spec: { vmiName: "gone" },
            status: { phase: "Succeeded" },
          } as VirtualMachineInstanceMigration,
        ],
      },
    ]);
    t.after(() => h.stop());
    // the cache misses a VMI the API has: the migration is left alone
    await h.client.create(resources.vmis, "default", newVmi("gone"));
    const blind = { ...h.ctrl.migrationDeps, vmis: { get: () => undefined } as unknown as MigrationDeps["vmis"] };
    assert.deepEqual(await reconcileMigration(blind, "default/left"), { requeueAfterMs: 1_000 });
    assert.equal(vmimOf(h, "left")?.status?.phase, "Running");
    await h.client.delete(resources.vmis, "default", "gone");
    const cur = h.client.peek<VirtualMachineInstance>(resources.vmis, "default", "gone")!;
    await h.client.update(resources.vmis, { ...cur, metadata: { ...cur.metadata, finalizers: [] } });
    await h.drain();
    assert.equal(vmimOf(h, "left"), undefined, "failed, finalizer released, deleted");
    assert.equal(vmimOf(h, "done"), undefined);
    assert.ok((await h.eventReasons()).includes("FailedMigration"));
  });

  it("ignores cold migrations (tsvirt.io/migration-mode=Cold)", async (t) => {
    const h = await runningVmi(["node02"]);
    t.after(() => h.stop());
    await h.client.create(resources.vmims, "default", {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstanceMigration",
      metadata: { name: "cold", namespace: "default", labels: { [Migration.modeLabel]: "Cold" } },
      spec: { vmiName: "testvmi" },
    } as VirtualMachineInstanceMigration);
    await h.drain();
    // (the cold migration controller answers it; the live one makes no target pod and leaves the VMI alone)
    assert.equal(podsOf(h).length, 1);
    assert.equal(vmiOf(h).status?.migrationState, undefined);
    assert.equal(vmiOf(h).metadata.labels?.[Migration.targetNodeLabel], undefined);
  });
});
