// Paused migration between two real launcher pods (each its private libvirtd + QEMU, in network namespaces this test
// links): a busy guest (rewriting 16 MiB of random data in a loop) migrates under a bandwidth cap with
// allowWorkloadDisruption but without allowPostCopy, and a completion budget too short for pre-copy to converge.
// KubeVirt's monitor then pauses the guest (virDomainSuspend on the source) instead of aborting, so the job can
// finish: the launcher reports mode Paused, the source domain is Paused/Migration, the job completes, and the guest
// runs again on the target (resumed there) with its memory intact: same boot (the heartbeat goes on past the pause),
// a value kept in RAM and the checksum of the random data are unchanged.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { it } from "node:test";
import { HEARTBEAT } from "../guest/index.js";
import {
  alive,
  Console,
  describeMigration,
  jobEnd,
  migratableVmi,
  nextState,
  preparedFor,
  tail,
  waitFor,
} from "./launcher-lib.js";

describeMigration("paused migration between two launcher pods (real libvirt + QEMU)", "pause", 9, (ctx) => {
  it("a busy guest past its completion budget is paused, migrates, and runs on in the target, memory intact", async (t) => {
    const { pair, guest } = ctx;
    const uid = randomUUID();
    const vmi = migratableVmi(uid, "paused");
    const prepared = preparedFor(guest);
    const [src, dst] = await Promise.all([pair.startPod("src", uid), pair.startPod("dst", uid)]);
    assert.equal((await src.client.call("Sync", { vmi, prepared })).status?.state, "Running");

    const con = await Console.connect(src.paths.consoleSocket);
    await con.waitFor(new RegExp(guest.marker), 180_000);
    let mark = con.text.length;
    con.send(
      "echo kept-in-ram-0815 > /migval; head -c 16777216 /dev/urandom > /pz.a; echo S-$(md5sum < /pz.a | cut -c1-32)-E\n",
    );
    const sum = (await con.waitFor(/S-([0-9a-f]{32})-E/, 120_000, mark))[1];
    mark = con.text.length;
    con.send("(while :; do cp /pz.a /pz.b; done) >/dev/null 2>&1 & echo B-$((6*7))\n");
    await con.waitFor(/B-42/, 30_000, mark);
    mark = con.text.length;
    const last = Number((await con.waitFor(new RegExp(`${HEARTBEAT} (\\d+)`), 30_000, mark))[1]);

    const target = await dst.client.prepareMigrationTarget({ vmi, prepared, sourceNodeAddress: pair.ip.src });
    const running = nextState(dst.client, (d) => d.status?.state === "Running", 300_000);
    const pausedOnSource = nextState(src.client, (d) => d.status?.state === "Paused", 120_000);
    const t0 = performance.now();
    const start = await src.client.migrateStart({
      destinationUri: `qemu+tcp://${target.address}:${target.ports.libvirt}/system`,
      migrateUri: `tcp://${target.address}:${target.ports.qemu}`,
      disksUri: `tcp://${target.address}:${target.ports.nbd}`,
      domainXml: target.domainXml,
      copyStorage: ["vda", "vdb"],
      // the busy guest dirties memory faster than 16 MiB/s: pre-copy never converges; paused at 15 s (one GiB of
      // budget), the rest (its working set) goes in a few seconds, well within the doubled budget of 30 s
      bandwidthMiBps: 16,
      allowWorkloadDisruption: true,
      completionTimeoutPerGiB: 15,
      migrationUid: "pz-1",
    });
    assert.deepEqual([start.state, start.mode], ["running", "PreCopy"], tail(src.paths.logFile));

    const paused = await pausedOnSource;
    assert.deepEqual(paused.status, { state: "Paused", reason: "Migration" }, "suspended during the job");
    const status = await src.client.migrateStatus();
    assert.equal(status.mode, "Paused", `${JSON.stringify(status)}\n${tail(src.paths.logFile)}`);
    t.diagnostic(`paused after ${Math.round(performance.now() - t0)} ms`);

    const final = await jobEnd(src, 120_000);
    assert.equal(
      final.state,
      "completed",
      `${JSON.stringify(final)}\n${tail(src.paths.logFile)}\n${tail(dst.paths.logFile)}`,
    );
    assert.equal(final.mode, "Paused");
    t.diagnostic(JSON.stringify({ total_ms: Math.round(performance.now() - t0), downtime_ms: final.downtimeMs }));
    // resumed on the target: running, not left paused
    assert.equal((await running).status?.state, "Running");
    await waitFor("the source pod to end", () => !alive(src.pid) || undefined, 30_000);
    con.close();

    // The same guest on the target, its memory intact: heartbeat continues, RAM value and random data unchanged.
    const tc = await Console.connect(dst.paths.consoleSocket);
    try {
      const hb = await tc.waitFor(new RegExp(`${HEARTBEAT} (\\d+)`), 30_000);
      assert.ok(Number(hb[1]) > last, `heartbeat ${hb[1]} continues after ${last} (same boot)`);
      const next = await tc.waitFor(new RegExp(`${HEARTBEAT} (${Number(hb[1]) + 1})`), 30_000);
      assert.ok(next, "the guest runs (its heartbeat ticks on the target)");
      const m = tc.text.length;
      tc.send("\necho R-$(cat /migval)-$(md5sum < /pz.a | cut -c1-32)-E\n");
      const r = await tc.waitFor(/R-([a-z0-9-]+)-([0-9a-f]{32})-E/, 60_000, m);
      assert.deepEqual([r[1], r[2]], ["kept-in-ram-0815", sum]);
    } finally {
      tc.close();
    }
  });
});
