import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runVirtctl } from "./testing.js";

describe("virtctl soft-reboot", () => {
  it("PUTs the VMI's softreboot subresource", async () => {
    const r = await runVirtctl(["soft-reboot", "testvmi"]);
    assert.equal(r.out, "VMI testvmi was scheduled to softreboot\n");
    assert.deepEqual(
      r.client.actions.map((a) => [a.resource, a.name, a.subresource]),
      [["virtualmachineinstances", "testvmi", "softreboot"]],
    );
  });
});
