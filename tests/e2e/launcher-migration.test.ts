// Live migration between two real launcher pods (compiled JavaScript, private libvirtd + QEMU each), each in a
// network namespace this test creates and links with a veth pair: the source boots the test guest, the target is
// prepared (PrepareMigrationTarget), the source migrates (MigrateStart, MigrateStatus until completed) with its
// containerDisk overlay and emptyDisk block-copied. The guest must live on in the target: same boot (its heartbeat
// counter continues), a value kept in RAM and one written to the emptyDisk are still there, the console answers.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import {
  commandSocketPath,
  LauncherClient,
  type MigrateStatusResult,
  podCommand,
  podPaths,
} from "../../launcher/index.js";
import { ensureGuest, GUEST_CMDLINE, type Guest, HEARTBEAT } from "../guest/index.js";
import { GUEST, LIBVIRT, requirePrereqs } from "../lib/prereqs.js";
import { alive, baseDir, Console, nextState, podProcesses, tsvirtJs, waitFor } from "./launcher-lib.js";

requirePrereqs(...LIBVIRT, ...GUEST, "ip");

const run = promisify(execFile);
const BOOT_MS = 180_000;
const tag = String(process.pid % 100000);
const NS = { src: `tsvirt-migs-${tag}`, dst: `tsvirt-migd-${tag}` };
const IP = { src: "10.213.7.1", dst: "10.213.7.2" };

interface NsPod {
  pid: number;
  client: LauncherClient;
  podDir: string;
  console: string;
  log: string;
}

function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, "utf8").slice(-4000) : "";
}

async function ip(...args: string[]): Promise<void> {
  await run("ip", args);
}

/** A launcher pod started inside `netns`, as the node agent's pod runner does (ip netns exec + the pod command). */
async function startPodIn(netns: string, uid: string, node: string): Promise<NsPod> {
  const nodeDir = path.join(baseDir, `mig-${tag}-${node}`);
  const podDir = path.join(baseDir, `mig-${tag}-${node}-pod`);
  await rm(podDir, { recursive: true, force: true });
  mkdirSync(podDir, { recursive: true });
  const paths = podPaths(podDir);
  mkdirSync(paths.socketsDir, { recursive: true });
  const cmd = podCommand({
    uid,
    podDir,
    lockDir: path.join(nodeDir, "locks"),
    nodeDir,
    accel: process.env.TSVIRT_ACCEL ?? "auto",
    tsvirtJs,
  });
  mkdirSync(path.join(nodeDir, "locks"), { recursive: true });
  const fd = openSync(paths.logFile, "a");
  const child = spawn("ip", ["netns", "exec", netns, cmd.command, ...cmd.args], {
    detached: true,
    stdio: ["ignore", fd, fd],
    env: cmd.env,
  });
  closeSync(fd);
  child.unref();
  const socket = commandSocketPath(nodeDir, uid);
  const client = await waitFor(
    `the launcher's command socket in ${netns}`,
    async () => (existsSync(socket) ? await LauncherClient.connect(socket).catch(() => undefined) : undefined),
    60_000,
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\nlauncher log:\n${readFileSync(paths.logFile, "utf8").slice(-3000)}`);
  });
  return { pid: child.pid ?? 0, client, podDir, console: paths.consoleSocket, log: paths.logFile };
}

describe("live migration between two launcher pods (real libvirt + QEMU)", () => {
  let guest: Guest;
  const pods: NsPod[] = [];

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
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    for (const p of pods) await waitFor("the pod to end", () => !alive(p.pid) || undefined, 10_000).catch(() => {});
    for (const n of Object.values(NS)) await run("ip", ["netns", "del", n]).catch(() => {});
    for (const p of pods) await rm(p.podDir, { recursive: true, force: true });
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
    const con = await Console.connect(src.console);
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
    assert.match(t.domainXml, new RegExp(path.join(dst.podDir, "qemu")));
    assert.doesNotMatch(t.domainXml, new RegExp(src.podDir));
    await assert.rejects(dst.client.call("Sync", { vmi, prepared }), /migration target/);

    const t0 = performance.now();
    const start = await src.client.migrateStart({
      destinationUri: `qemu+tcp://${t.address}:${t.ports.libvirt}/system`,
      migrateUri: `tcp://${t.address}:${t.ports.qemu}`,
      disksUri: `tcp://${t.address}:${t.ports.nbd}`,
      domainXml: t.domainXml,
      copyStorage: ["vda", "vdb"],
      maxDowntimeMs: 300,
      migrationUid: "mig-1",
    });
    assert.ok(["running", "completed"].includes(start.state), `${JSON.stringify(start)}\n${tail(src.log)}`);
    // Asked again: the same job answers, no second one.
    const dup = await src.client.migrateStart({
      destinationUri: `qemu+tcp://${t.address}:${t.ports.libvirt}/system`,
      migrateUri: `tcp://${t.address}:${t.ports.qemu}`,
      domainXml: t.domainXml,
      copyStorage: [],
      migrationUid: "mig-1",
    });
    assert.ok(["running", "completed"].includes(dup.state), `${JSON.stringify(dup)}\n${tail(src.log)}`);
    const running = nextState(dst.client, (d) => d.status?.state === "Running", 300_000);
    const final = await waitFor<MigrateStatusResult>(
      "the migration to end",
      async () => {
        const s = await src.client.migrateStatus();
        return s.state === "running" ? undefined : s;
      },
      300_000,
    );
    const ms = Math.round(performance.now() - t0);
    assert.equal(final.state, "completed", `${JSON.stringify(final)}\n${tail(src.log)}\n${tail(dst.log)}`);
    console.log(
      JSON.stringify({ migration: "launcher", total_ms: ms, downtime_ms: final.downtimeMs, data: final.dataTotal }),
    );
    const onTarget = await running;
    assert.equal(onTarget.status?.state, "Running");

    // The source pod ends by itself (Succeeded: exit 0, termination log Shutoff/Migrated); no QEMU left there.
    await waitFor("the source pod to end", () => !alive(src.pid) || undefined, 30_000);
    assert.deepEqual(JSON.parse(readFileSync(podPaths(src.podDir).terminationLog, "utf8")), {
      state: "Shutoff",
      reason: "Migrated",
    });
    con.close();
    assert.ok(podProcesses(dst.pid)["qemu-system-x86"]?.length === 1);

    // The same guest on the target: its heartbeat counter continues, RAM and disk kept what was written.
    const tc = await Console.connect(dst.console);
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
