import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runVirtctl } from "./testing.js";

describe("virtctl unpause", () => {
  it("PUTs UnpauseOptions to the VMI's unpause subresource", async () => {
    const r = await runVirtctl(["unpause", "vmi", "testvmi", "--dry-run"]);
    assert.equal(r.out, "VMI testvmi was scheduled to unpause\n");
    assert.deepEqual(r.client.actions[0]?.object, {
      kind: "UnpauseOptions",
      apiVersion: "subresources.kubevirt.io/v1",
      dryRun: ["All"],
    });
    assert.equal(r.client.actions[0]?.subresource, "unpause");
  });
});
