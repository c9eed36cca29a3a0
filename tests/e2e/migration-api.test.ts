// The migration API on one node (no second node to go to): a running VM is LiveMigratable (BlockMigration, its
// containerDisk is node-local); `virtctl migrate` makes a VMIM whose target pod cannot be scheduled away from the
// source (Scheduling, `kubectl get vmim` columns), `virtctl migrate-cancel` ends it Failed and deletes it; a VMIM
// with a short unschedulable timeout fails with the scheduler's reason. The VM keeps running on node01 throughout;
// once it is stopped its VMIMs are deleted with its VMI.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { startCluster, until } from "../lib/up.js";

describe("migration API on one node", () => {
  it("migrate → Scheduling, migrate-cancel → gone; an unschedulable target fails with a reason", {
    timeout: 900_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "migapi" });
    const node = c.nodes[0] ?? "";
    await c.apply(c.vm("mv", { runStrategy: "Always" }));
    await c.waitFor("vmi/mv", "{.status.phase}", "Running", 300_000);
    await c.waitFor("vmi/mv", '{.status.conditions[?(@.type=="LiveMigratable")].status}', "True", 60_000);
    assert.equal(await c.kubectl("get", "vmi", "mv", "-o", "jsonpath={.status.migrationMethod}"), "BlockMigration");

    const out = await c.virtctl("migrate", "mv");
    assert.match(out, /VM mv was scheduled to migrate/);
    const vmimName = async () =>
      (
        await c.kubectl("get", "vmim", "-l", "kubevirt.io/vmi-name=mv", "-o", "jsonpath={.items[*].metadata.name}")
      ).trim();
    const name = await until("the VMIM", 60_000, async () => (await vmimName()) || undefined);
    await c.waitFor(`vmim/${name}`, "{.status.phase}", "Scheduling", 60_000);
    assert.equal(
      await c.kubectl("get", "vmim", name, "-o", "jsonpath={.metadata.finalizers}"),
      '["kubevirt.io/migrationJobFinalize"]',
    );
    const table = await c.kubectl("get", "vmim");
    assert.match(table.split("\n")[0] ?? "", /^NAME\s+PHASE\s+VMI$/);
    assert.match(table, new RegExp(`${name}\\s+Scheduling\\s+mv\\s+`));
    const target = await c.kubectl(
      "get",
      "pods",
      "-l",
      "kubevirt.io/migrationJobUID",
      "-o",
      "jsonpath={.items[0].status.conditions[0].reason}",
    );
    assert.equal(target, "Unschedulable", "one node: the target pod has nowhere to go");

    assert.match(await c.virtctl("migrate-cancel", "mv"), /VM mv was scheduled to migrate-cancel/);
    await until("the cancelled VMIM deleted", 60_000, async () => ((await vmimName()) === "" ? true : undefined));
    await until("the target pod deleted", 60_000, async () =>
      (await c.kubectl("get", "pods", "-l", "kubevirt.io/migrationJobUID", "-o", "name")).trim() === ""
        ? true
        : undefined,
    );
    await assert.rejects(c.virtctl("migrate-cancel", "mv"), /Found no migration to cancel for mv/);

    await c.apply({
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstanceMigration",
      metadata: {
        name: "short",
        namespace: "default",
        annotations: { "kubevirt.io/migrationUnschedulablePodTimeoutSeconds": "5" },
      },
      spec: { vmiName: "mv" },
    });
    await c.waitFor("vmim/short", "{.status.phase}", "Failed", 90_000);
    assert.match(
      await c.kubectl("get", "vmim", "short", "-o", "jsonpath={.status.migrationState.failureReason}"),
      /Migration target pod was unschedulable for 5s: .*node/,
    );
    assert.equal(await c.kubectl("get", "vmim", "short", "-o", "jsonpath={.metadata.finalizers}"), "");
    assert.equal(await c.kubectl("get", "vmi", "mv", "-o", "jsonpath={.status.phase}"), "Running");
    assert.equal(await c.kubectl("get", "vmi", "mv", "-o", "jsonpath={.status.nodeName}"), node);
    assert.equal(
      await c.kubectl("get", "vmi", "mv", "-o", "jsonpath={.metadata.labels.kubevirt\\.io/migrationTargetNodeName}"),
      "",
    );

    // the VM stopped: its VMI is gone, and its migrations go with it (KubeVirt's)
    await c.virtctl("stop", "mv");
    await until("the stopped VM's VMIM deleted", 120_000, async () =>
      (await c.kubectl("get", "vmim", "-o", "name")).trim() === "" ? true : undefined,
    );
  });
});
