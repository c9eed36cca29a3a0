// Real network namespaces (root): a node namespace, two launcher pods with the masquerade binding, and a "guest"
// namespace behind each pod's k6t-eth0 that gets its address from the pod's DHCP server as a VM's NIC would.
// All traffic stays inside namespaces this test creates.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { MIGRATION_PORT_RANGE } from "../../launcher/index.js";
import { requirePrereqs } from "../../tests/lib/prereqs.js";
import { findDhcp } from "./dhcp.js";
import { runCommand } from "./exec.js";
import { nodeNetns, podNetns } from "./names.js";
import { PodNetwork } from "./pod-network.js";
import { makeGuest, netnsList, ping, sh, startEchoServer } from "./testing.js";

requirePrereqs("root", "ip", "busybox", "nsenter", "iptables");

describe("pod network in real namespaces", () => {
  it("connects two pods on the node bridge; guests get 10.0.2.2 by DHCP and are reachable on the pod IP", {
    timeout: 180_000,
  }, async (t) => {
    const node = `t${process.pid}`;
    const guestA = `tsvt-guest-a-${process.pid}`;
    const guestB = `tsvt-guest-b-${process.pid}`;
    t.after(async () => {
      for (const g of [guestA, guestB]) await runCommand(["ip", "netns", "del", g]);
    });
    const { net, dataDir, uids, pods } = await twoPods(t, node, "10.97.0.0/24");
    const [uidA] = uids;
    const [a, b] = pods;
    assert.equal(a.ip, "10.97.0.2");
    assert.equal(b.ip, "10.97.0.3");
    assert.equal(a.gateway, "10.97.0.1");
    assert.equal(a.tap, "tap0");
    // The pod end carries the pod IP; the node bridge is in the node namespace, not the host's.
    assert.match(await sh(["ip", "-n", a.netns, "-4", "addr", "show", "eth0"]), /inet 10\.97\.0\.2\/24/);
    assert.match(await sh(["ip", "-n", nodeNetns(node), "-4", "addr", "show", "tsvbr0"]), /inet 10\.97\.0\.1\/24/);
    assert.equal((await runCommand(["ip", "link", "show", "tsvbr0"])).code !== 0, true);
    assert.match(await sh(["ip", "-n", a.netns, "link", "show", "tap0"]), /master k6t-eth0/);

    // Setup is idempotent: same IP, same DHCP server.
    const dhcpPid = await findDhcp(join(dataDir, "network", "pods", uidA), a.netns);
    assert.ok(dhcpPid);
    const again = await net.setupPod(uidA);
    assert.equal(again.ip, a.ip);
    assert.equal(await findDhcp(join(dataDir, "network", "pods", uidA), a.netns), dhcpPid);

    // Pod to node bridge, before any guest exists.
    assert.ok(await ping(a.netns, a.gateway, 3), "pod A reaches its gateway");
    // The pod IP is DNATed to the guest: nobody answers until a guest is attached.
    assert.equal(await ping(a.netns, b.ip), false, "no guest behind pod B yet");

    const leaseB = await makeGuest(b.netns, guestB, dataDir);
    assert.deepEqual(leaseB, { ip: "10.0.2.2", subnet: "255.255.255.0", router: "10.0.2.1" });
    const leaseA = await makeGuest(a.netns, guestA, dataDir);
    assert.equal(leaseA.ip, "10.0.2.2");

    assert.ok(await ping(a.netns, b.ip, 3), "pod A reaches guest B on pod B's IP");
    assert.ok(await ping(guestB, a.ip, 3), "guest B reaches guest A on pod A's IP (SNAT out of B, DNAT into A)");
    assert.ok(await ping(guestA, a.gateway, 3), "guest A reaches the node bridge");
  });

  it("converges after a crash mid-setup and tears down a half-made pod", { timeout: 120_000 }, async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), "tsvirt-net-"));
    const node = `u${process.pid}`;
    const net = new PodNetwork({ node, podCIDR: "10.98.0.0/24", dataDir });
    const uid = randomUUID();
    const half = randomUUID();
    t.after(async () => {
      await net.teardownPod(uid).catch(() => {});
      await net.teardownPod(half).catch(() => {});
      await net.teardownNode().catch(() => {});
      await rm(dataDir, { recursive: true, force: true });
    });
    const p = await net.setupPod(uid);
    const podDir = join(dataDir, "network", "pods", uid);
    const pid = await findDhcp(podDir, p.netns);
    assert.ok(pid);
    // Simulate the damage a kill -9 can leave: DHCP server gone, veth gone.
    process.kill(pid, "SIGKILL");
    await sh(["ip", "-n", nodeNetns(node), "link", "del", `veth${uid.replaceAll("-", "").slice(0, 11)}`]);
    const q = await net.setupPod(uid);
    assert.equal(q.ip, p.ip);
    assert.match(
      await sh(["ip", "-n", q.netns, "-4", "addr", "show", "eth0"]),
      new RegExp(`inet ${q.ip.replaceAll(".", "\\.")}/24`),
    );
    const pid2 = await findDhcp(podDir, q.netns);
    assert.ok(pid2 && pid2 !== pid);
    assert.ok(await ping(q.netns, q.gateway));

    // A half-made pod: only its IP and namespace exist.
    await net.ipam.allocate(half);
    await sh(["ip", "netns", "add", podNetns(half)]);
    await net.teardownPod(half);
    await net.teardownPod(half);
    assert.equal(await net.ipam.lookup(half), undefined);

    await net.teardownPod(uid);
    await net.teardownPod(uid);
    await net.teardownNode();
    const left = await netnsList();
    for (const ns of [podNetns(uid), podNetns(half), nodeNetns(node)])
      assert.ok(!left.includes(ns), `${ns} left behind`);
    assert.equal((await net.ipam.list()).size, 0);
    assert.equal(await findDhcp(podDir, q.netns), undefined);
  });
  it("a former migration target, now the source, gets the replies to its own connections", {
    timeout: 120_000,
  }, async (t) => {
    const servers: ChildProcess[] = [];
    t.after(() => {
      for (const s of servers) s.kill("SIGKILL");
    });
    const { net, uids, pods } = await twoPods(t, `m${process.pid}`, "10.99.0.0/24");
    const [src, dst] = uids;
    const [a, b] = pods;
    // The kernel never picks a migration port as a local port in a launcher pod.
    assert.equal(
      (await sh(["ip", "netns", "exec", a.netns, "cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"])).trim(),
      MIGRATION_PORT_RANGE,
    );
    // A was the target of an earlier migration from some other pod: its rules for 49152-49154 stay.
    await net.allowMigration(src, "10.99.0.77", [49152, 49153, 49154]);
    // Now B is the target and A the source: A's connection from local port 49153 (a reply's destination port then)
    // gets B's answer.
    await net.allowMigration(dst, a.ip, [49160]);
    servers.push(await startEchoServer(b.netns, 49160));
    const got = await connectFrom(a.netns, b.ip, 49160, 49153);
    assert.match(got, new RegExp(`^${a.ip.replaceAll(".", "\\.")}\n`), "B answered A's connection from port 49153");
    // Anyone else's connection attempt to A's migration ports is still dropped.
    const refused = await connectFrom(b.netns, a.ip, 49153).catch((e: Error) => e.message);
    assert.match(refused, /timed out/);
  });
});

/** A node with two masquerade pods, all of it torn down after the test. */
async function twoPods(t: TestContext, node: string, podCIDR: string) {
  const dataDir = await mkdtemp(join(tmpdir(), "tsvirt-net-"));
  const net = new PodNetwork({ node, podCIDR, dataDir });
  const uids = [randomUUID(), randomUUID()] as const;
  t.after(async () => {
    for (const uid of uids) await net.teardownPod(uid).catch(() => {});
    await net.teardownNode().catch(() => {});
    await rm(dataDir, { recursive: true, force: true });
  });
  const pods = [await net.setupPod(uids[0]), await net.setupPod(uids[1])] as const;
  return { net, dataDir, uids, pods };
}

/** Connects from `netns` (from `localPort` if given) and returns the first line the server sends; 3 s at most. */
async function connectFrom(netns: string, ip: string, port: number, localPort?: number): Promise<string> {
  const script =
    "const c = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2])," +
    " ...(process.argv[3] ? { localPort: Number(process.argv[3]) } : {}) });" +
    "c.setTimeout(3000, () => { console.error('timed out'); process.exit(2); });" +
    "c.on('data', (d) => { process.stdout.write(d); process.exit(0); });" +
    "c.on('error', (e) => { console.error(e.message); process.exit(1); });";
  const args = [`--net=/run/netns/${netns}`, "--", process.execPath, "-e", script, ip, String(port)];
  if (localPort !== undefined) args.push(String(localPort));
  const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const c = spawn("nsenter", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    c.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    c.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    c.once("exit", (code) => resolve({ code, out, err }));
  });
  if (r.code !== 0) throw new Error(`connect to ${ip}:${port} from ${netns}: ${r.err.trim()}`);
  return r.out;
}
