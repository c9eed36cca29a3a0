// Live migration between two real launcher pods (compiled JavaScript, private libvirtd + QEMU each), each in a
// network namespace this test creates and links with a veth pair: the source boots the test guest, the target is
// prepared (PrepareMigrationTarget), the source migrates (MigrateStart, MigrateStatus until completed) with its
// containerDisk overlay and emptyDisk block-copied. The guest must live on in the target: same boot (its heartbeat
// counter continues), a value kept in RAM and one written to the emptyDisk are still there, the console answers.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { it } from "node:test";
import { podPaths } from "../../launcher/index.js";
import { HEARTBEAT } from "../guest/index.js";
import * as lib from "./launcher-lib.js";

const { alive, Console, jobEnd, migratableVmi, nextState, podProcesses, preparedFor, tail, waitFor } = lib;
const BOOT_MS = 180_000;

lib.describeMigration("live migration between two launcher pods (real libvirt + QEMU)", "mig", 7, (ctx) => {
  it("migrates a running guest with its node-local disks; the guest lives on, same boot, data intact", async () => {
    const { pair, guest } = ctx;
    const IP = pair.ip;
    const uid = randomUUID();
    const vmi = migratableVmi(uid, "mover");
    const prepared = preparedFor(guest);
    const [src, dst] = await Promise.all([pair.startPod("src", uid), pair.startPod("dst", uid)]);

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
