import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Migration } from "../api/index.js";
import { FakeClient, resources } from "../client/index.js";
import { runVirtctl } from "./testing.js";

const vmim = (name: string, phase?: string, vmi = "testvm") => ({
  apiVersion: "kubevirt.io/v1",
  kind: "VirtualMachineInstanceMigration",
  metadata: { name, namespace: "default", labels: { [Migration.vmiNameLabel]: vmi } },
  spec: { vmiName: vmi },
  ...(phase ? { status: { phase } } : {}),
});

describe("virtctl migrate", () => {
  it("PUTs MigrateOptions with the addedNodeSelector to the VM's migrate subresource", async () => {
    const r = await runVirtctl(["migrate", "testvm", "--addedNodeSelector", "zone=b,disk=ssd", "--dry-run"]);
    assert.equal(r.out, "VM testvm was scheduled to migrate\n");
    const a = r.client.actions[0];
    assert.equal(a?.resource, "virtualmachines");
    assert.equal(a?.subresource, "migrate");
    assert.deepEqual(a?.object, {
      kind: "MigrateOptions",
      apiVersion: "subresources.kubevirt.io/v1",
      dryRun: ["All"],
      addedNodeSelector: { zone: "b", disk: "ssd" },
    });
  });
  it("a malformed --addedNodeSelector is an error and sends nothing", async () => {
    const r = await runVirtctl(["migrate", "testvm", "--addedNodeSelector", "zone"]);
    assert.equal(r.code, 1);
    assert.match(r.err, /zone must be formatted as key=value/);
    assert.equal(r.client.actions.length, 0);
  });
});

describe("virtctl migrate-cancel", () => {
  it("deletes the VM's migration that is not final (found by kubevirt.io/vmi-name)", async () => {
    const client = new FakeClient();
    client.seed(resources.vmims, vmim("old", "Failed"), vmim("other", "Running", "othervm"), vmim("cur", "Running"));
    const r = await runVirtctl(["migrate-cancel", "testvm"], client);
    assert.equal(r.out, "VM testvm was scheduled to migrate-cancel\n");
    const del = r.client.actions.filter((a) => a.verb === "delete");
    assert.deepEqual(
      del.map((a) => a.name),
      ["cur"],
    );
  });
  it("no active migration: KubeVirt's error", async () => {
    const client = new FakeClient();
    client.seed(resources.vmims, vmim("old", "Succeeded"));
    const r = await runVirtctl(["migrate-cancel", "testvm"], client);
    assert.equal(r.code, 1);
    assert.equal(r.err, "Error: Found no migration to cancel for testvm\n");
  });
});
