// The fabric in real namespaces (root): two node namespaces linked through a fabric namespace, a launcher-pod
// stand-in with a guest behind its masquerade binding on each, and a third node that exists only as a Node object.
// All traffic stays inside namespaces this test creates; the host's links and routes are checked unchanged.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { requirePrereqs } from "../../tests/lib/prereqs.js";
import { connectFromNetns } from "./dial.js";
import { inNetns, runCommand } from "./exec.js";
import { deleteFabric, ensureFabric, FABRIC_PROTO } from "./fabric.js";
import { fabricNetns, nodeNetns } from "./names.js";
import { PodNetwork } from "./pod-network.js";
import { echoFrom, hostNetworkState, makeGuest, netnsList, ping, sh, startEchoServer } from "./testing.js";

async function fabricRoutes(nodeNs: string): Promise<string[]> {
  const out = await sh(["ip", "-n", nodeNs, "route", "show", "proto", FABRIC_PROTO]);
  return out
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => l.split(" ").slice(0, 3).join(" "));
}

describe("cluster fabric in real namespaces", async () => {
  it("routes pod CIDRs between node namespaces, reconciles routes and links, and never touches the host", {
    timeout: 240_000,
  }, async (t) => {
    requirePrereqs("root", "ip", "busybox", "nsenter", "iptables");
    const before = await hostNetworkState();
    const root = await mkdtemp(join(tmpdir(), "tsvirt-fabric-"));
    const fabric = fabricNetns(root);
    const [nA, nB, nC] = ["a", "b", "c"].map((x) => `f${x}${process.pid}`) as [string, string, string];
    const nodes = [
      { name: nA, podCIDR: "10.95.0.0/24" },
      { name: nB, podCIDR: "10.95.1.0/24" },
      // A node with no namespace here (another machine's, or not started yet): routed all the same.
      { name: nC, podCIDR: "10.95.2.0/24" },
    ];
    const netFor = (i: 0 | 1) => {
      const n = nodes[i] as { name: string; podCIDR: string };
      return new PodNetwork({ node: n.name, podCIDR: n.podCIDR, dataDir: join(root, n.name), fabric });
    };
    const netA = netFor(0);
    const netB = netFor(1);
    const uidA = randomUUID();
    const uidB = randomUUID();
    const guestA = `tsvt-fguest-a-${process.pid}`;
    const guestB = `tsvt-fguest-b-${process.pid}`;
    let server: ChildProcess | undefined;
    t.after(async () => {
      server?.kill("SIGKILL");
      for (const g of [guestA, guestB]) await runCommand(["ip", "netns", "del", g]);
      await netA.teardownPod(uidA).catch(() => {});
      await netB.teardownPod(uidB).catch(() => {});
      await netA.teardownNode().catch(() => {});
      await netB.teardownNode().catch(() => {});
      await deleteFabric(fabric, runCommand).catch(() => {});
      await rm(root, { recursive: true, force: true });
    });

    // tsvirt up makes the fabric; each agent links its node and routes the others.
    await ensureFabric(fabric, runCommand);
    const rA = await netA.syncRoutes(nodes);
    assert.deepEqual(
      rA.add.map((r) => `${r.dst} via ${r.via}`),
      ["10.95.1.0/24 via 10.95.1.1", "10.95.2.0/24 via 10.95.2.1"],
    );
    await netB.syncRoutes(nodes);
    assert.deepEqual(await fabricRoutes(netA.nodeNs), ["10.95.1.0/24 via 10.95.1.1", "10.95.2.0/24 via 10.95.2.1"]);
    assert.deepEqual(await fabricRoutes(netB.nodeNs), ["10.95.0.0/24 via 10.95.0.1", "10.95.2.0/24 via 10.95.2.1"]);
    // Converged: a second pass changes nothing.
    assert.deepEqual(await netA.syncRoutes(nodes), { add: [], del: [], problems: [] });

    const a = await netA.setupPod(uidA);
    const b = await netB.setupPod(uidB);
    assert.equal(a.ip, "10.95.0.2");
    assert.equal(b.ip, "10.95.1.2");
    await makeGuest(a.netns, guestA, root);
    await makeGuest(b.netns, guestB, root);
    assert.ok(await ping(guestA, b.ip), "guest on node A reaches the pod on node B");
    assert.ok(await ping(guestB, a.ip), "guest on node B reaches the pod on node A");
    assert.ok(await ping(a.netns, b.ip), "pod A reaches pod B");

    // The agent's own connections start in its node namespace: a TCP stream from node A to a server in pod B.
    server = await startEchoServer(guestB, 7000);
    const got = await echoFrom(netA.nodeNs, b.ip, 7000, "hello");
    assert.equal(got, "10.95.0.1\nhello\n");
    await assert.rejects(connectFromNetns(netA.nodeNs, b.ip, 7001), /ECONNREFUSED/);

    // Nothing of this reached the host namespace.
    assert.deepEqual(await hostNetworkState(), before);

    // Node C goes away: its route goes; a route that is not ours stays.
    await sh(["ip", "-n", netA.nodeNs, "route", "add", "10.96.9.0/24", "dev", "tsvbr0"]);
    const gone = await netA.syncRoutes(nodes.slice(0, 2));
    assert.deepEqual(gone.del, ["10.95.2.0/24"]);
    assert.deepEqual(await fabricRoutes(netA.nodeNs), ["10.95.1.0/24 via 10.95.1.1"]);
    assert.match(await sh(["ip", "-n", netA.nodeNs, "route", "show", "10.96.9.0/24"]), /tsvbr0/);

    // A restarted agent (a new PodNetwork) puts back a route deleted by hand.
    await sh(["ip", "-n", netA.nodeNs, "route", "del", "10.95.1.0/24"]);
    assert.equal(await ping(guestA, b.ip), false);
    await netFor(0).syncRoutes(nodes.slice(0, 2));
    assert.ok(await ping(guestA, b.ip), "route restored");

    // The fabric namespace deleted under running nodes: the next sync re-creates it and re-links both nodes.
    // (The kernel dismantles the old namespace asynchronously: fabric0 may still exist, its peer in the dying one.)
    await deleteFabric(fabric, runCommand);
    await netA.syncRoutes(nodes);
    await netB.syncRoutes(nodes);
    assert.ok(await ping(guestA, b.ip), "fabric re-created");
    assert.ok(await ping(guestB, a.ip), "fabric re-created (other way)");
    assert.equal((await runCommand(inNetns(nodeNetns(nA), ["true"]))).code, 0);

    assert.deepEqual(await hostNetworkState(), before);
    await deleteFabric(fabric, runCommand);
    await deleteFabric(fabric, runCommand);
    assert.ok(!(await netnsList()).includes(fabric));
  });
});
