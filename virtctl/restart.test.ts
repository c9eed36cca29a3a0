import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runVirtctl } from "./testing.js";

describe("virtctl restart", () => {
  it("PUTs RestartOptions to the VM's restart subresource", async () => {
    const r = await runVirtctl(["restart", "testvm", "--grace-period=5", "--force"]);
    assert.equal(r.out, "VM testvm was scheduled to restart\n");
    const a = r.client.actions[0];
    assert.equal(a?.resource, "virtualmachines");
    assert.equal(a?.subresource, "restart");
    assert.deepEqual(a?.object, {
      kind: "RestartOptions",
      apiVersion: "subresources.kubevirt.io/v1",
      gracePeriodSeconds: 5,
    });
  });
});
