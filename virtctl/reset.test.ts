import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runVirtctl } from "./testing.js";

describe("virtctl reset", () => {
  it("PUTs the VMI's reset subresource", async () => {
    const r = await runVirtctl(["reset", "testvmi", "-n", "vms"]);
    assert.equal(r.code, 0);
    assert.equal(r.out, "VMI testvmi was scheduled to reset\n");
    assert.deepEqual(
      r.client.actions.map((a) => [a.resource, a.namespace, a.name, a.subresource]),
      [["virtualmachineinstances", "vms", "testvmi", "reset"]],
    );
  });
});
