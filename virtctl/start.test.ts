import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClient } from "../client/index.js";
import { conflict } from "../lib/errors.js";
import { runVirtctl } from "./testing.js";

describe("virtctl start", () => {
  it("PUTs StartOptions to the VM's start subresource in the namespace given", async () => {
    const r = await runVirtctl(["start", "testvm", "-n", "vms", "--paused"]);
    assert.equal(r.code, 0);
    assert.equal(r.out, "VM testvm was scheduled to start\n");
    assert.deepEqual(r.client.actions, [
      {
        verb: "putSubresource",
        resource: "virtualmachines",
        namespace: "vms",
        name: "testvm",
        subresource: "start",
        object: { kind: "StartOptions", apiVersion: "subresources.kubevirt.io/v1", paused: true },
      },
    ]);
  });

  it("--dry-run sends dryRun: [All]", async () => {
    const r = await runVirtctl(["start", "testvm", "--dry-run"]);
    assert.deepEqual((r.client.actions[0]?.object as { dryRun?: string[] } | undefined)?.dryRun, ["All"]);
    assert.equal(r.client.actions[0]?.namespace, "default");
  });

  it("prints the server's message as Error: … and exits 1", async () => {
    const c = new FakeClient();
    c.prependReactor("putSubresource", "virtualmachines", () => ({
      error: conflict(
        { group: "kubevirt.io", resource: "virtualmachine" },
        "testvm",
        "Always does not support manual start requests",
      ),
    }));
    const r = await runVirtctl(["start", "testvm"], c);
    assert.equal(r.code, 1);
    assert.equal(
      r.err,
      'Error: Operation cannot be fulfilled on virtualmachine.kubevirt.io "testvm": Always does not support manual start requests\n',
    );
    assert.equal(r.out, "");
  });
});
