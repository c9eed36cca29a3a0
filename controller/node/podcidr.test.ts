import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Node, resources } from "../../client/index.js";
import { newNode } from "../testing/factories.js";
import { startHarness } from "../testing/harness.js";
import { nextFree } from "./podcidr.js";

describe("pod CIDR allocation", () => {
  it("gives each node without one the lowest free 10.244.N.0/24 and keeps existing ones", async (t) => {
    const has = newNode("node00");
    has.spec = { podCIDR: "10.244.0.0/24", podCIDRs: ["10.244.0.0/24"] };
    const h = await startHarness([{ ref: resources.nodes, objs: [has, newNode("node01"), newNode("node02")] }]);
    t.after(() => h.stop());
    await h.drain();
    const cidrs = Object.fromEntries(
      h.client.all<Node>(resources.nodes).map((n) => [n.metadata.name, n.spec?.podCIDR]),
    );
    assert.deepEqual(cidrs, { node00: "10.244.0.0/24", node01: "10.244.1.0/24", node02: "10.244.2.0/24" });
    assert.deepEqual(h.client.peek<Node>(resources.nodes, undefined, "node02")?.spec?.podCIDRs, ["10.244.2.0/24"]);
  });

  it("nextFree fills gaps and reports exhaustion", () => {
    assert.equal(nextFree(new Set([0, 1, 3])), 2);
    assert.equal(nextFree(new Set(Array.from({ length: 256 }, (_, i) => i))), undefined);
  });
});
