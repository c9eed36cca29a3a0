import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runVirtctl } from "./testing.js";

describe("virtctl stop", () => {
  it("PUTs StopOptions; --grace-period needs --force", async () => {
    const plain = await runVirtctl(["stop", "testvm"]);
    assert.equal(plain.out, "VM testvm was scheduled to stop\n");
    assert.deepEqual(plain.client.actions[0]?.object, {
      kind: "StopOptions",
      apiVersion: "subresources.kubevirt.io/v1",
    });
    const noForce = await runVirtctl(["stop", "testvm", "--grace-period", "0"]);
    assert.equal(noForce.code, 1);
    assert.equal(noForce.err, "Error: Must both use --force=true and set --grace-period.\n");
    assert.equal(noForce.client.actions.length, 0);
    const forced = await runVirtctl(["stop", "testvm", "--grace-period", "0", "--force"]);
    assert.deepEqual(forced.client.actions[0]?.object, {
      kind: "StopOptions",
      apiVersion: "subresources.kubevirt.io/v1",
      gracePeriod: 0,
    });
    assert.equal(forced.client.actions[0]?.subresource, "stop");
  });
});
