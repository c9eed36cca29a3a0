// Live migration end to end, through `tsvirt up --nodes 2` with real QEMU: a guest counting in memory (/dev/shm)
// moves to the other node via `virtctl migrate` (the migration controller makes the target pod, the node agents
// prepare the target, drive libvirt's migration over the nodes' fabric and hand the VMI over), then back. Each time:
// the same boot (boot_id) and the counter continues, the VMI reports the target node, its IP and
// migrationState.completed, the console answers through the new node, and nothing of the VM is left on the source
// node (no QEMU, no process of the pod, no pod dir, netns or launcher socket).
import assert from "node:assert/strict";
import { readdir, readFile, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { podNetns } from "../../handler/network/index.js";
import { podDirOf } from "../../handler/processes.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { type Cluster, netnsLink, qemuFor, startCluster, until } from "../lib/up.js";
import { ask, START_COUNTER } from "./crash-lib.js";

const VM = "mig1";

interface PodInfo {
  name: string;
  uid: string;
  node: string;
  ip: string;
}

async function launcherPods(c: Cluster, vmiUid: string): Promise<PodInfo[]> {
  const list = await c.getJson<{
    items: {
      metadata: { name: string; uid: string; labels?: Record<string, string> };
      spec: { nodeName?: string };
      status?: { podIP?: string; phase?: string };
    }[];
  }>("pods", "-l", `kubevirt.io/created-by=${vmiUid}`);
  return list.items
    .filter((p) => p.status?.phase === "Running")
    .map((p) => ({
      name: p.metadata.name,
      uid: p.metadata.uid,
      node: p.spec.nodeName ?? "",
      ip: p.status?.podIP ?? "",
    }));
}

async function processesMentioning(text: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes(text)) out.push(Number(d));
  }
  return out;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

describe("live migration (tsvirt up --nodes 2)", async () => {
  it("moves a running guest to the other node and back: same boot, counter continues, source left clean", {
    timeout: 1_800_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { nodes: 2, name: "mig" });
    await c.apply(c.vm(VM, { runStrategy: "Always", memory: "128Mi" }));
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    const uid = await c.kubectl("get", "vmi", VM, "-o", "jsonpath={.metadata.uid}");
    let con = c.console(VM);
    await con.expect(new RegExp(c.guest.marker), 300_000);
    con.send("\n");
    const bootId = await ask(con, "cat /proc/sys/kernel/random/boot_id");
    assert.match(bootId, /^[0-9a-f-]{36}$/);
    con.send(START_COUNTER);
    let last = await until("the counter runs", 30_000, async () => {
      const v = Number(await ask(con, "cat /dev/shm/count"));
      return v > 0 ? v : undefined;
    });

    for (const round of [1, 2]) {
      const [src] = await launcherPods(c, uid);
      assert.ok(src, "one running launcher pod");
      const from = src.node;
      const to = c.nodes.find((n) => n !== from) as string;
      con.close();
      const started = Date.now();
      await c.virtctl("migrate", VM);
      await c.waitFor(`vmi/${VM}`, "{.status.migrationState.completed}", "true", 600_000);
      await c.waitFor(`vmi/${VM}`, "{.status.nodeName}", to, 120_000);
      const vmim = await until("the migration Succeeded", 120_000, async () => {
        const l = await c.getJson<{ items: { metadata: { name: string }; status?: { phase?: string } }[] }>("vmim");
        const done = l.items.filter((m) => m.status?.phase === "Succeeded");
        return done.length === round ? done : undefined;
      });
      assert.equal(vmim.length, round);
      t.diagnostic(`round ${round}: ${from} → ${to} in ${Date.now() - started} ms (virtctl migrate → completed)`);
      const vmi = await c.getJson<{
        metadata: { labels?: Record<string, string> };
        status: {
          nodeName: string;
          phase: string;
          interfaces?: { ipAddress?: string }[];
          migrationState: Record<string, unknown>;
        };
      }>("vmi", VM);
      assert.equal(vmi.status.phase, "Running");
      assert.equal(vmi.metadata.labels?.["kubevirt.io/nodeName"], to);
      assert.equal(vmi.status.migrationState.sourceNode, from);
      assert.equal(vmi.status.migrationState.targetNode, to);
      assert.ok(vmi.status.migrationState.startTimestamp && vmi.status.migrationState.endTimestamp);
      assert.ok(vmi.status.migrationState.targetNodeDomainReadyTimestamp);
      assert.notEqual(vmi.status.migrationState.failed, true);

      // The source pod goes (controller), and with it everything of the VM on the source node.
      await until(`source pod ${src.name} gone`, 120_000, async () =>
        (await c.kubectl("get", "pod", src.name).catch(() => "gone")) === "gone" ? true : undefined,
      );
      const [dst] = await launcherPods(c, uid);
      assert.ok(dst && dst.node === to, `the launcher pod runs on ${to}`);
      assert.equal(vmi.status.interfaces?.[0]?.ipAddress, dst.ip, "the VMI's IP is the target pod's");
      const fromDir = join(c.dir, "nodes", from);
      await until(`nothing of the VM left on ${from}`, 60_000, async () => {
        const srcDir = podDirOf(fromDir, src.uid);
        const left = [
          ...(await processesMentioning(srcDir)).map((p) => `process ${p} of the source pod`),
          ...((await exists(srcDir)) ? [`pod dir ${srcDir}`] : []),
          ...((await exists(`/run/netns/${podNetns(src.uid)}`)) ? [`netns ${podNetns(src.uid)}`] : []),
          ...((await exists(join(fromDir, "sockets", `${uid}_sock`))) ? ["the launcher socket"] : []),
        ];
        if (left.length) t.diagnostic(`left on ${from}: ${left.join(", ")}`);
        return left.length === 0 ? true : undefined;
      });
      const qemus = await qemuFor(uid);
      assert.equal(qemus.length, 1, `exactly one QEMU of the VM (found ${qemus.join(", ")})`);
      const qemuNs = await readlink(`/proc/${qemus[0]}/ns/net`);
      assert.equal(qemuNs, await netnsLink(podNetns(dst.uid)), "QEMU runs in the target pod's netns");

      // The console answers through the new node; same boot, the counter went on.
      con = c.console(VM);
      con.send("\n");
      assert.equal(await ask(con, "cat /proc/sys/kernel/random/boot_id"), bootId, "same boot: no reset");
      const now = Number(await ask(con, "cat /dev/shm/count"));
      assert.ok(now > last, `the counter continues (${last} → ${now})`);
      last = await until("the counter still runs on the target", 30_000, async () => {
        const v = Number(await ask(con, "cat /dev/shm/count"));
        return v > now ? v : undefined;
      });
    }
    con.close();
  });
});
