import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runVirtctl } from "./testing.js";

describe("virtctl soft-reboot and reset", () => {
  it("soft-reboot PUTs the VMI's softreboot subresource", async () => {
    const r = await runVirtctl(["soft-reboot", "testvmi"]);
    assert.equal(r.code, 0);
    assert.equal(r.out, "VMI testvmi was scheduled to softreboot\n");
    assert.deepEqual(
      r.client.actions.map((a) => [a.resource, a.name, a.subresource]),
      [["virtualmachineinstances", "testvmi", "softreboot"]],
    );
  });

  it("reset PUTs the VMI's reset subresource in the namespace given", async () => {
    const r = await runVirtctl(["reset", "testvmi", "-n", "vms"]);
    assert.equal(r.code, 0);
    assert.equal(r.out, "VMI testvmi was scheduled to reset\n");
    assert.deepEqual(
      r.client.actions.map((a) => [a.resource, a.namespace, a.name, a.subresource]),
      [["virtualmachineinstances", "vms", "testvmi", "reset"]],
    );
  });
});
