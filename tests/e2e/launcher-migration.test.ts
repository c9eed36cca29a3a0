// Live migration between two real launcher pods (compiled JavaScript, private libvirtd + QEMU each), each in a
// network namespace this test creates and links with a veth pair: the source boots the test guest, the target is
// prepared (PrepareMigrationTarget), the source migrates (MigrateStart, MigrateStatus until completed) with its
// containerDisk overlay and emptyDisk block-copied. The guest must live on in the target: same boot (its heartbeat
// counter continues), a value kept in RAM and one written to the emptyDisk are still there, the console answers.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type MigrateStatusResult, podPaths } from "../../launcher/index.js";
import { ensureGuest, GUEST_CMDLINE, type Guest, HEARTBEAT } from "../guest/index.js";
import { GUEST, LIBVIRT, requirePrereqs } from "../lib/prereqs.js";
import { alive, baseDir, Console, nextState, type Pod, podProcesses, startPod, waitFor } from "./launcher-lib.js";

requirePrereqs(...LIBVIRT, ...GUEST, "ip");

const run = promisify(execFile);
const BOOT_MS = 180_000;
const tag = String(process.pid % 100000);
const NS = { src: `tsvirt-migs-${tag}`, dst: `tsvirt-migd-${tag}` };
const IP = { src: "10.213.7.1", dst: "10.213.7.2" };

function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, "utf8").slice(-4000) : "";
}

async function ip(...args: string[]): Promise<void> {
  await run("ip", args);
}

/** The source's migration job once it is no longer running. */
function jobEnd(src: Pod, timeoutMs: number): Promise<MigrateStatusResult> {
  return waitFor(
    "the migration job to end",
    async () => {
      const s = await src.client.migrateStatus();
      return s.state === "running" ? undefined : s;
    },
    timeoutMs,
  );
}

/** A launcher pod of VMI `uid` on "node" `node`, inside `netns` (as the node agent's pod runner starts it). */
function startPodIn(netns: string, uid: string, node: string): Promise<Pod> {
  const nodeDir = path.join(baseDir, `mig-${tag}-${node}`);
  return startPod(nodeDir, {
    uid,
    netns,
    podDir: path.join(baseDir, `mig-${tag}-${node}-pod`),
    lockDir: path.join(nodeDir, "locks"),
  });
}

describe("live migration between two launcher pods (real libvirt + QEMU)", () => {
  let guest: Guest;
  const pods: Pod[] = [];

  before(async () => {
    guest = await ensureGuest();
    for (const n of Object.values(NS)) await run("ip", ["netns", "del", n]).catch(() => {});
    await ip("netns", "add", NS.src);
    await ip("netns", "add", NS.dst);
    await ip("link", "add", `tmig${tag}s`, "type", "veth", "peer", "name", `tmig${tag}d`);
    for (const side of ["src", "dst"] as const) {
      const ns = NS[side];
      const dev = `tmig${tag}${side[0]}`;
      await ip("link", "set", dev, "netns", ns);
      await ip("-n", ns, "link", "set", dev, "name", "eth0");
      await ip("-n", ns, "addr", "add", `${IP[side]}/24`, "dev", "eth0");
      await ip("-n", ns, "link", "set", "eth0", "up");
      await ip("-n", ns, "link", "set", "lo", "up");
    }
  });

  after(async () => {
    for (const p of pods) {
      p.client.close();
      p.kill();
    }
    for (const p of pods) await waitFor("the pod to end", () => !alive(p.pid) || undefined, 10_000).catch(() => {});
    for (const n of Object.values(NS)) await run("ip", ["netns", "del", n]).catch(() => {});
    for (const p of pods) await rm(p.paths.podDir, { recursive: true, force: true });
    for (const n of ["n1", "n2"]) await rm(path.join(baseDir, `mig-${tag}-${n}`), { recursive: true, force: true });
  });

  it("migrates a running guest with its node-local disks; the guest lives on, same boot, data intact", async () => {
    const uid = randomUUID();
    const vmi = {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstance",
      metadata: { name: "mover", namespace: "default", uid },
      spec: {
        domain: {
          resources: { requests: { memory: "256Mi" } },
          firmware: {
            kernelBoot: {
              container: { image: "guest-kernel" },
              kernelArgs: `${GUEST_CMDLINE} ip=off tsvirt.heartbeat=1`,
            },
          },
          devices: {
            disks: [
              { name: "containerdisk", disk: { bus: "virtio" } },
              { name: "scratch", disk: { bus: "virtio" } },
            ],
          },
        },
        volumes: [
          { name: "containerdisk", containerDisk: { image: "registry.local/guest:latest" } },
          { name: "scratch", emptyDisk: { capacity: "64Mi" } },
        ],
      },
    };
    const prepared = {
      kernelBoot: { kernel: guest.vmlinux, initrd: guest.initrd },
      baseImages: { containerdisk: guest.qcow2 },
    };
    const [src, dst] = await Promise.all([startPodIn(NS.src, uid, "n1"), startPodIn(NS.dst, uid, "n2")]);
    pods.push(src, dst);

    const booted = await src.client.call("Sync", { vmi, prepared });
    assert.equal(booted.status?.state, "Running");
    const con = await Console.connect(src.paths.consoleSocket);
    let last = 0;
    try {
      await con.waitFor(new RegExp(guest.marker), BOOT_MS);
      let mark = con.text.length;
      con.send(
        "echo kept-in-ram-4711 > /migval; echo on-disk-0815 | dd of=/dev/vdb bs=512 count=1 conv=fsync; echo W-$((6*7))\n",
      );
      await con.waitFor(/W-42/, 30_000, mark);
      mark = con.text.length;
      const hb = await con.waitFor(new RegExp(`${HEARTBEAT} (\\d+)`), 30_000, mark);
      last = Number(hb[1]);
      assert.ok(last > 0);
    } finally {
      // the source's console ends with its pod
    }

    // Target: prepared twice (idempotent), Sync refused while it waits for the domain.
    const prepParams = { vmi, prepared, sourceNodeAddress: IP.src };
    const t = await dst.client.prepareMigrationTarget(prepParams);
    const again = await dst.client.prepareMigrationTarget(prepParams);
    assert.equal(t.address, IP.dst);
    assert.deepEqual(again.ports, t.ports);
    assert.match(t.domainXml, new RegExp(path.join(dst.paths.podDir, "qemu")));
    assert.doesNotMatch(t.domainXml, new RegExp(src.paths.podDir));
    await assert.rejects(dst.client.call("Sync", { vmi, prepared }), /migration target/);

    const toTarget = {
      destinationUri: `qemu+tcp://${t.address}:${t.ports.libvirt}/system`,
      migrateUri: `tcp://${t.address}:${t.ports.qemu}`,
      disksUri: `tcp://${t.address}:${t.ports.nbd}`,
      domainXml: t.domainXml,
    };
    // Cancelled (a 1 MiB/s cap keeps it running): the guest stays on the source, the target holds no domain.
    const slow = await src.client.migrateStart({
      ...toTarget,
      copyStorage: ["vda", "vdb"],
      bandwidthMiBps: 1,
      migrationUid: "mig-0",
    });
    assert.equal(slow.state, "running", `${JSON.stringify(slow)}\n${tail(src.paths.logFile)}`);
    await waitFor(
      "the job to move data",
      async () => ((await src.client.migrateStatus()).dataProcessed ?? 0) > 0,
      60_000,
    );
    assert.deepEqual(await src.client.migrateAbort(), { aborted: true });
    const cancelled = await jobEnd(src, 60_000);
    assert.equal(cancelled.state, "cancelled", JSON.stringify(cancelled));
    assert.equal((await src.client.call("GetDomain")).domain.status?.state, "Running");
    {
      const mark = con.text.length;
      con.send("echo S-$((2+3))\n");
      await con.waitFor(/S-5/, 30_000, mark);
    }

    const t0 = performance.now();
    const start = await src.client.migrateStart({
      ...toTarget,
      copyStorage: ["vda", "vdb"],
      maxDowntimeMs: 300,
      parallelConnections: 2,
      migrationUid: "mig-1",
    });
    assert.ok(["running", "completed"].includes(start.state), `${JSON.stringify(start)}\n${tail(src.paths.logFile)}`);
    // Asked again: the same job answers, no second one.
    const dup = await src.client.migrateStart({
      ...toTarget,
      copyStorage: [],
      migrationUid: "mig-1",
    });
    assert.ok(["running", "completed"].includes(dup.state), `${JSON.stringify(dup)}\n${tail(src.paths.logFile)}`);
    const running = nextState(dst.client, (d) => d.status?.state === "Running", 300_000);
    const final = await jobEnd(src, 300_000);
    const ms = Math.round(performance.now() - t0);
    assert.equal(
      final.state,
      "completed",
      `${JSON.stringify(final)}\n${tail(src.paths.logFile)}\n${tail(dst.paths.logFile)}`,
    );
    console.log(
      JSON.stringify({ migration: "launcher", total_ms: ms, downtime_ms: final.downtimeMs, data: final.dataTotal }),
    );
    const onTarget = await running;
    assert.equal(onTarget.status?.state, "Running");

    // The source pod ends by itself (Succeeded: exit 0, termination log Shutoff/Migrated); no QEMU left there.
    await waitFor("the source pod to end", () => !alive(src.pid) || undefined, 30_000);
    assert.deepEqual(JSON.parse(readFileSync(podPaths(src.paths.podDir).terminationLog, "utf8")), {
      state: "Shutoff",
      reason: "Migrated",
    });
    con.close();
    assert.ok(podProcesses(dst.pid)["qemu-system-x86"]?.length === 1);

    // The same guest on the target: its heartbeat counter continues, RAM and disk kept what was written.
    const tc = await Console.connect(dst.paths.consoleSocket);
    try {
      const hb = await tc.waitFor(new RegExp(`${HEARTBEAT} (\\d+)`), 30_000);
      assert.ok(Number(hb[1]) > last, `heartbeat ${hb[1]} continues after ${last} (same boot)`);
      const mark = tc.text.length;
      tc.send("\necho R-$(cat /migval)-$(dd if=/dev/vdb bs=12 count=1 2>/dev/null)-E\n");
      await tc.waitFor(/R-kept-in-ram-4711-on-disk-0815-E/, 30_000, mark);
    } finally {
      tc.close();
    }
  });
});
