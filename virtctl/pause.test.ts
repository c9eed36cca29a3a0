import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClient, resources } from "../client/index.js";
import { runVirtctl } from "./testing.js";

describe("virtctl pause", () => {
  it("pause vmi PUTs the VMI's pause subresource", async () => {
    const r = await runVirtctl(["pause", "vmi", "testvmi"]);
    assert.equal(r.out, "VMI testvmi was scheduled to pause\n");
    assert.deepEqual(
      r.client.actions.map((a) => [a.verb, a.resource, a.name, a.subresource]),
      [["putSubresource", "virtualmachineinstances", "testvmi", "pause"]],
    );
  });

  it("pause vm checks the VM, then pauses its VMI; a missing VM is an error", async () => {
    const c = new FakeClient();
    c.seed(resources.vms, {
      metadata: { name: "testvm", namespace: "default" },
      spec: { template: { spec: { domain: {} } } },
    });
    const ok = await runVirtctl(["pause", "vm", "testvm"], c);
    assert.equal(ok.code, 0);
    assert.deepEqual(
      ok.client.actions.map((a) => a.verb),
      ["get", "putSubresource"],
    );
    const missing = await runVirtctl(["pause", "vm", "nope"]);
    assert.equal(missing.code, 1);
    assert.equal(missing.err, 'Error: virtualmachines.kubevirt.io "nope" not found\n');
  });

  it("rejects a kind other than vm/vmi", async () => {
    const r = await runVirtctl(["pause", "pod", "x"]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^Error: unsupported resource type "pod"/);
  });
});
