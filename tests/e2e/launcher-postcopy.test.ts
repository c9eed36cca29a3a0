// Post-copy switch-over between two real launcher pods (each its private libvirtd + QEMU, in network namespaces this
// test links): a busy guest (rewriting 32 MiB of random data in a loop) migrates under a bandwidth cap with
// allowPostCopy and a completion budget of 1 s per GiB, far too short for pre-copy. KubeVirt's monitor then switches
// to post-copy instead of aborting: the launcher reports mode PostCopy, refuses an abort from then on, and the job
// completes. The guest lives on in the target with its memory intact: same boot (the heartbeat continues), a value
// kept in RAM and the checksum of the random data are unchanged.
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

describeMigration("post-copy switch-over between two launcher pods (real libvirt + QEMU)", "pcopy", 8, (ctx) => {
  it("a busy guest past its completion budget finishes in post-copy, memory intact", async (t) => {
    const { pair, guest } = ctx;
    const uid = randomUUID();
    const vmi = migratableVmi(uid, "postcopy");
    const prepared = preparedFor(guest);
    const [src, dst] = await Promise.all([pair.startPod("src", uid), pair.startPod("dst", uid)]);
    assert.equal((await src.client.call("Sync", { vmi, prepared })).status?.state, "Running");

    const con = await Console.connect(src.paths.consoleSocket);
    await con.waitFor(new RegExp(guest.marker), 180_000);
    let mark = con.text.length;
    con.send(
      "echo kept-in-ram-4711 > /migval; head -c 33554432 /dev/urandom > /pc.a; echo S-$(md5sum < /pc.a | cut -c1-32)-E\n",
    );
    const sum = (await con.waitFor(/S-([0-9a-f]{32})-E/, 120_000, mark))[1];
    mark = con.text.length;
    con.send("(while :; do cp /pc.a /pc.b; done) >/dev/null 2>&1 & echo B-$((6*7))\n");
    await con.waitFor(/B-42/, 30_000, mark);
    mark = con.text.length;
    const last = Number((await con.waitFor(new RegExp(`${HEARTBEAT} (\\d+)`), 30_000, mark))[1]);

    const target = await dst.client.prepareMigrationTarget({ vmi, prepared, sourceNodeAddress: pair.ip.src });
    const running = nextState(dst.client, (d) => d.status?.state === "Running", 300_000);
    const t0 = performance.now();
    const start = await src.client.migrateStart({
      destinationUri: `qemu+tcp://${target.address}:${target.ports.libvirt}/system`,
      migrateUri: `tcp://${target.address}:${target.ports.qemu}`,
      disksUri: `tcp://${target.address}:${target.ports.nbd}`,
      domainXml: target.domainXml,
      copyStorage: ["vda", "vdb"],
      // 256 MiB at 8 MiB/s takes half a minute; the budget is 1 s (1 s per started GiB).
      bandwidthMiBps: 8,
      postCopy: true,
      completionTimeoutPerGiB: 1,
      migrationUid: "pc-1",
    });
    assert.deepEqual([start.state, start.mode], ["running", "PreCopy"], tail(src.paths.logFile));

    const switched = await waitFor(
      "the switch to post-copy",
      async () => {
        const s = await src.client.migrateStatus();
        return s.mode === "PostCopy" || s.state !== "running" ? s : undefined;
      },
      120_000,
    );
    assert.equal(switched.mode, "PostCopy", `${JSON.stringify(switched)}\n${tail(src.paths.logFile)}`);
    t.diagnostic(`switched to post-copy after ${Math.round(performance.now() - t0)} ms`);
    // From now on the guest runs on the target: a cancel is refused, never half-done.
    if (switched.state === "running") assert.deepEqual(await src.client.migrateAbort(), { aborted: false });

    const final = await jobEnd(src, 300_000);
    assert.equal(
      final.state,
      "completed",
      `${JSON.stringify(final)}\n${tail(src.paths.logFile)}\n${tail(dst.paths.logFile)}`,
    );
    assert.equal(final.mode, "PostCopy");
    t.diagnostic(JSON.stringify({ total_ms: Math.round(performance.now() - t0), downtime_ms: final.downtimeMs }));
    assert.equal((await running).status?.state, "Running");
    await waitFor("the source pod to end", () => !alive(src.pid) || undefined, 30_000);
    con.close();

    // The same guest on the target, its memory intact: heartbeat continues, RAM value and random data unchanged.
    const tc = await Console.connect(dst.paths.consoleSocket);
    try {
      const hb = await tc.waitFor(new RegExp(`${HEARTBEAT} (\\d+)`), 30_000);
      assert.ok(Number(hb[1]) > last, `heartbeat ${hb[1]} continues after ${last} (same boot)`);
      const m = tc.text.length;
      tc.send("\necho R-$(cat /migval)-$(md5sum < /pc.a | cut -c1-32)-E\n");
      const r = await tc.waitFor(/R-([a-z0-9-]+)-([0-9a-f]{32})-E/, 60_000, m);
      assert.deepEqual([r[1], r[2]], ["kept-in-ram-4711", sum]);
    } finally {
      tc.close();
    }
  });
});
