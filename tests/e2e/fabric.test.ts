// Two nodes that reach each other, through `tsvirt up --nodes 2`: `tsvirt up` makes the cluster's fabric namespace,
// each node agent links its node namespace into it and routes the other node's podCIDR, learnt from the Node
// objects. Launcher-pod stand-ins (the pod network's own pods, a guest namespace behind each masquerade binding,
// no QEMU) on node01 and node02 reach each other, the node namespace (where the agent's connections start) reaches
// a pod on the other node, a killed agent restores a lost route, and the host's links and routes never change.
// All traffic stays inside namespaces this test (or its `tsvirt up`) created.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FABRIC_PROTO, fabricNetns, nodeNetns, PodNetwork, runCommand } from "../../handler/network/index.js";
import {
  echoFrom,
  hostNetworkState,
  makeGuest,
  netnsList,
  ping,
  sh,
  startEchoServer,
} from "../../handler/network/testing.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { startCluster, until } from "../lib/up.js";

async function routesIn(netns: string): Promise<string> {
  return (await runCommand(["ip", "-n", netns, "route", "show", "proto", FABRIC_PROTO])).stdout;
}

describe("nodes that reach each other (tsvirt up --nodes 2)", async () => {
  it("routes pod CIDRs between node namespaces through the fabric, never through the host", {
    timeout: 600_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const before = await hostNetworkState();
    const c = await startCluster(t, { nodes: 2, name: "fabric" });
    const [n1, n2] = c.nodes as [string, string];
    const fabric = fabricNetns(c.dir);
    assert.ok((await netnsList()).includes(fabric), `tsvirt up made the fabric namespace ${fabric}`);
    const [cidr1, cidr2] = await Promise.all(
      c.nodes.map((n) => c.waitFor(`node/${n}`, "{.spec.podCIDR}", /\//, 60_000)),
    );
    assert.ok(cidr1 && cidr2 && cidr1 !== cidr2);

    // Each agent routes the other node's podCIDR (from the Node objects) through the fabric.
    for (const [ns, other] of [
      [nodeNetns(n1), cidr2],
      [nodeNetns(n2), cidr1],
    ] as const) {
      await until(`${ns} routes ${other} through the fabric`, 60_000, async () =>
        (await routesIn(ns)).includes(`${other} via `) ? true : undefined,
      );
    }

    // Launcher-pod stand-ins on each node, in the node's own pod network state (its IPAM), each with a guest.
    const pods = [n1, n2].map((node, i) => ({
      // The test's own state dir, not the agent's: these pods are not in the API, and a restarted agent collects
      // the network state of pods the API does not have.
      net: new PodNetwork({ node, podCIDR: i === 0 ? cidr1 : cidr2, dataDir: join(c.dir, "fabric-test", node) }),
      uid: randomUUID(),
      guest: `tsvt-e2eguest${i}-${process.pid}`,
    }));
    let server: ChildProcess | undefined;
    t.after(async () => {
      server?.kill("SIGKILL");
      for (const p of pods) {
        await runCommand(["ip", "netns", "del", p.guest]);
        await p.net.teardownPod(p.uid).catch(() => {});
      }
    });
    const [a, b] = await Promise.all(pods.map((p) => p.net.setupPod(p.uid)));
    assert.ok(a && b);
    for (const [i, p] of pods.entries()) await makeGuest(i === 0 ? a.netns : b.netns, p.guest, c.dir);
    const [guestA, guestB] = pods.map((p) => p.guest) as [string, string];
    assert.ok(await ping(guestA, b.ip), `the guest of a pod on ${n1} reaches the pod ${b.ip} on ${n2}`);
    assert.ok(await ping(guestB, a.ip), `the guest of a pod on ${n2} reaches the pod ${a.ip} on ${n1}`);

    // The agent's path: a TCP stream from node01's namespace to a server behind the pod on node02.
    server = await startEchoServer(guestB, 7000);
    const got = await echoFrom(nodeNetns(n1), b.ip, 7000, "over the fabric");
    assert.equal(got, `${a.gateway}\nover the fabric\n`, "the server sees node01's gateway as the source");

    // Nothing of this is in the host's namespace: no new links, no new routes.
    assert.deepEqual(await hostNetworkState(), before);

    // A route lost while node01's agent is down comes back when the supervisor restarts it (kill -9).
    await sh(["ip", "-n", nodeNetns(n1), "route", "del", cidr2]);
    assert.equal(await ping(guestA, b.ip), false, "no route, no reach");
    const oldPid = await c.pid(`handler-${n1}`);
    process.kill(oldPid, "SIGKILL");
    await until(`${n1}'s route to ${cidr2} restored by the restarted agent`, 120_000, async () =>
      (await c.pid(`handler-${n1}`)) !== oldPid && (await routesIn(nodeNetns(n1))).includes(`${cidr2} via `)
        ? true
        : undefined,
    );
    assert.ok(await ping(guestA, b.ip), "reachable again");

    // `tsvirt up` exits: the fabric and node namespaces go; the host is as before.
    server.kill("SIGKILL");
    for (const p of pods) {
      await runCommand(["ip", "netns", "del", p.guest]);
      await p.net.teardownPod(p.uid);
    }
    c.up.kill("SIGINT");
    await until("tsvirt up exited", 180_000, async () =>
      c.up.exitCode !== null || c.up.signalCode !== null ? true : undefined,
    );
    const left = await netnsList();
    for (const ns of [fabric, nodeNetns(n1), nodeNetns(n2)]) assert.ok(!left.includes(ns), `${ns} left behind`);
    assert.deepEqual(await hostNetworkState(), before);
  });
});
