// The fabric's pure parts: which routes a node needs, what changes them, and how `ip -j route` reads back.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffRoutes, parseRoutes, planFabricRoutes } from "./fabric.js";
import { fabricNetns, fabricPeer, nodeNetns, validateFabricNetns } from "./names.js";

const self = { name: "node01", podCIDR: "10.244.0.0/24" };

describe("fabric route planner", () => {
  it("routes every other node's podCIDR via its gateway, and nothing for itself", () => {
    const plan = planFabricRoutes(self, [
      { name: "node01", podCIDR: "10.244.0.0/24" },
      { name: "node03", podCIDR: "10.244.2.0/24" },
      { name: "node02", podCIDR: "10.244.1.0/24" },
    ]);
    assert.deepEqual(plan.routes, [
      { dst: "10.244.1.0/24", via: "10.244.1.1" },
      { dst: "10.244.2.0/24", via: "10.244.2.1" },
    ]);
    assert.deepEqual(plan.problems, []);
  });
  it("waits for nodes without a podCIDR and leaves out bad or overlapping ones, the same way in any order", () => {
    const nodes = [
      { name: "node02", podCIDR: "10.244.1.0/24" },
      { name: "node03" },
      { name: "node04", podCIDR: "10.244.9.9/24" },
      { name: "node05", podCIDR: "10.244.0.0/16" },
      { name: "node06", podCIDR: "10.244.1.0/25" },
    ];
    const plan = planFabricRoutes(self, nodes);
    assert.deepEqual(plan.routes, [{ dst: "10.244.1.0/24", via: "10.244.1.1" }]);
    assert.equal(plan.problems.length, 3);
    assert.match(plan.problems[0] ?? "", /node04: .*host bits/);
    assert.match(plan.problems[1] ?? "", /node05: podCIDR 10.244.0.0\/16 overlaps node node01's 10.244.0.0\/24/);
    assert.match(plan.problems[2] ?? "", /node06: .* overlaps node node02's/);
    assert.deepEqual(planFabricRoutes(self, [...nodes].reverse()), plan);
  });
  it("refuses to plan for a node whose own podCIDR is invalid", () => {
    assert.throws(() => planFabricRoutes({ name: "node01", podCIDR: "nonsense" }, []), /invalid CIDR/);
  });
});

describe("fabric route diff", () => {
  const a = { dst: "10.244.1.0/24", via: "10.244.1.1" };
  const b = { dst: "10.244.2.0/24", via: "10.244.2.1" };
  it("adds what is missing or points elsewhere, removes what no node needs, and is empty when converged", () => {
    assert.deepEqual(diffRoutes([a, b], [a]), { add: [b], del: [] });
    assert.deepEqual(diffRoutes([a], [a, b]), { add: [], del: ["10.244.2.0/24"] });
    assert.deepEqual(diffRoutes([a], [{ dst: a.dst, via: "10.244.7.1" }]), { add: [a], del: [] });
    assert.deepEqual(diffRoutes([a, b], [b, a]), { add: [], del: [] });
    assert.deepEqual(diffRoutes([], []), { add: [], del: [] });
  });
});

describe("ip -j route parsing", () => {
  it("reads our routes back, a /32 with its prefix", () => {
    const json =
      '[{"dst":"10.244.1.0/24","gateway":"10.244.1.1","dev":"fabric0","flags":["onlink"]},' +
      '{"dst":"10.9.9.9","gateway":"10.9.9.1","dev":"fabric0","flags":["onlink"]}]\n';
    assert.deepEqual(parseRoutes(json), [
      { dst: "10.244.1.0/24", via: "10.244.1.1" },
      { dst: "10.9.9.9/32", via: "10.9.9.1" },
    ]);
    assert.deepEqual(parseRoutes(""), []);
    assert.deepEqual(parseRoutes("[]"), []);
  });
});

describe("fabric names", () => {
  it("one fabric namespace per data dir; one short fabric port per node", () => {
    assert.equal(fabricNetns("/var/lib/tsvirt"), fabricNetns("/var/lib/tsvirt"));
    assert.notEqual(fabricNetns("/tmp/a"), fabricNetns("/tmp/b"));
    const name = fabricNetns("/tmp/a");
    assert.match(name, /^tsvirt-fabric\.[0-9a-f]{8}$/);
    // No node's namespace can carry the fabric's name: node names have no dots.
    assert.throws(() => nodeNetns(name.slice("tsvirt-".length)), /invalid node name/);
    assert.throws(() => validateFabricNetns("tsvirt-node01"), /invalid fabric namespace/);
    assert.ok(fabricPeer("node01").length <= 15);
    assert.notEqual(fabricPeer("node01"), fabricPeer("node02"));
    assert.throws(() => fabricPeer("../x"), /invalid node name/);
  });
});
