import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { contains, formatCidr, gatewayOf, parseCidr, podRange } from "./cidr.js";
import { renderUdhcpdConfig } from "./dhcp.js";
import { HostLocalIpam, IpExhaustedError, LAST_RESERVED } from "./ipam.js";
import { nodeNetns, podNetns, podVeth, uplinkHostVeth, validateUid } from "./names.js";
import { masqueradeRules, migrationRules } from "./pod-network.js";

const UID_A = "0f8e2b9c-1d3a-4c5b-9e7f-123456789abc";
const UID_B = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";

describe("cidr", () => {
  it("parses a node podCIDR and finds gateway and pod range", () => {
    const c = parseCidr("10.244.1.0/24");
    assert.equal(formatCidr(c), "10.244.1.0/24");
    assert.equal(gatewayOf(c), "10.244.1.1");
    const r = podRange(c);
    assert.equal(r.last - r.first + 1, 253);
    assert.ok(contains(c, "10.244.1.200"));
    assert.ok(!contains(c, "10.244.2.1"));
  });
  it("rejects malformed and host-bit CIDRs", () => {
    for (const bad of ["10.244.1.1/24", "10.244.1.0", "300.1.1.0/24", "10.0.0.0/31", "10.0.0.0/24/1", "x/24"]) {
      assert.throws(() => parseCidr(bad), /CIDR|IPv4/, bad);
    }
  });
});

describe("names", () => {
  it("derives namespace and link names from validated node names and uids", () => {
    assert.equal(nodeNetns("node01"), "tsvirt-node01");
    assert.equal(podNetns(UID_A), "tsvirt-pod-0f8e2b9c1d3a");
    assert.equal(podVeth(UID_A), "veth0f8e2b9c1d3");
    assert.ok(podVeth(UID_A).length <= 15);
    assert.ok(uplinkHostVeth("node01").length <= 15);
  });
  it("refuses anything that could escape a path or an argument", () => {
    for (const bad of ["../x", "Node", "a b", "-rf", "node;rm", "", "x".repeat(60)]) {
      assert.throws(() => nodeNetns(bad), /invalid node name/, bad);
    }
    for (const bad of ["../../etc", "0f8e2b9c", "ZZZ", `${UID_A} `])
      assert.throws(() => validateUid(bad), /invalid pod uid/);
  });
});

describe("masquerade", () => {
  it("DNATs inbound to the guest and SNATs the guest's outbound to the pod IP", () => {
    const rules = masqueradeRules("10.244.0.7");
    assert.deepEqual(rules[0], {
      table: "nat",
      chain: "PREROUTING",
      spec: ["-i", "eth0", "-j", "DNAT", "--to-destination", "10.0.2.2"],
    });
    assert.deepEqual(rules[1]?.spec, ["-s", "10.0.2.2/32", "-o", "eth0", "-j", "SNAT", "--to-source", "10.244.0.7"]);
  });
  it("exempts a migration target's ports from the DNAT for the source pod only, and drops others on them", () => {
    const rules = migrationRules("10.244.0.7", [49152, 49153, 49154]);
    assert.equal(rules.length, 9, "three rules per port");
    const match = ["-i", "eth0", "-p", "tcp", "--dport", "49152"];
    assert.deepEqual(rules.slice(0, 3), [
      { table: "nat", chain: "PREROUTING", spec: [...match, "-s", "10.244.0.7/32", "-j", "ACCEPT"], first: true },
      { table: "filter", chain: "INPUT", spec: [...match, "-s", "10.244.0.7/32", "-j", "ACCEPT"], first: true },
      { table: "filter", chain: "INPUT", spec: [...match, "--syn", "-j", "DROP"], first: false },
    ]);
  });
  it("renders a one-lease udhcpd config giving 10.0.2.2/24 via 10.0.2.1", () => {
    const conf = renderUdhcpdConfig({ dir: "/data/network/pods/u", dns: ["10.0.0.10"], hostname: "vm1" });
    const lines = conf.trim().split("\n");
    for (const want of [
      "interface k6t-eth0",
      "start 10.0.2.2",
      "end 10.0.2.2",
      "max_leases 1",
      "opt subnet 255.255.255.0",
      "opt router 10.0.2.1",
      "opt dns 10.0.0.10",
      "opt hostname vm1",
      "lease_file /data/network/pods/u/udhcpd.leases",
    ]) {
      assert.ok(lines.includes(want), `missing "${want}" in\n${conf}`);
    }
    assert.throws(() => renderUdhcpdConfig({ dir: "/tmp/a b" }), /unsafe/);
    assert.throws(() => renderUdhcpdConfig({ dir: "/tmp/a", hostname: "x\nopt router 1.2.3.4" }), /unsafe/);
  });
});

describe("host-local IPAM", () => {
  it("allocates idempotently by uid, survives a restart, releases, and reports exhaustion", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-ipam-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const cidr = parseCidr("10.9.0.0/30"); // gateway .1, exactly one pod address: .2
    const ipam = new HostLocalIpam(dir, cidr);
    const a = await ipam.allocate(UID_A);
    assert.equal(a, "10.9.0.2");
    assert.equal(await ipam.allocate(UID_A), a);
    // A new allocator over the same directory (a restarted handler) sees the allocation.
    const again = new HostLocalIpam(dir, cidr);
    assert.equal(await again.lookup(UID_A), a);
    await assert.rejects(again.allocate(UID_B), IpExhaustedError);
    await again.release(UID_A);
    await again.release(UID_A);
    assert.equal(await again.allocate(UID_B), "10.9.0.2");
    assert.deepEqual((await readdir(dir)).sort(), ["10.9.0.2", LAST_RESERVED]);
  });
  it("hands out addresses round-robin: a released address is reused only after the others", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-ipam-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const ipam = new HostLocalIpam(dir, parseCidr("10.9.0.0/29")); // pod addresses .2 … .6
    assert.equal(await ipam.allocate(UID_A), "10.9.0.2");
    await ipam.release(UID_A);
    assert.equal(await ipam.allocate(UID_B), "10.9.0.3", "not the address just freed");
    const more = ["c", "d", "e"].map((c) => `00000000-0000-4000-8000-00000000000${c}`);
    const got = [];
    for (const u of more) got.push(await new HostLocalIpam(dir, parseCidr("10.9.0.0/29")).allocate(u));
    assert.deepEqual(got, ["10.9.0.4", "10.9.0.5", "10.9.0.6"]);
    assert.equal(await ipam.allocate("00000000-0000-4000-8000-00000000000f"), "10.9.0.2", "wraps to the start");
  });
  it("never hands one address to two concurrent allocations", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-ipam-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const cidr = parseCidr("10.9.0.0/24");
    const uids = Array.from({ length: 20 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`);
    const ips = await Promise.all(uids.map((u) => new HostLocalIpam(dir, cidr).allocate(u)));
    assert.equal(new Set(ips).size, uids.length);
  });
});
