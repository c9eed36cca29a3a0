// Post-copy switch-over between two real launcher pods (each its private libvirtd + QEMU, in network namespaces this
// test links): a busy guest (rewriting 32 MiB of random data in a loop) migrates under a bandwidth cap with
// allowPostCopy and a completion budget of 1 s per GiB, far too short for pre-copy. KubeVirt's monitor then switches
// to post-copy instead of aborting: the launcher reports mode PostCopy, refuses an abort from then on, and the job
// completes. The guest lives on in the target with its memory intact: same boot (the heartbeat continues), a value
// kept in RAM and the checksum of the random data are unchanged.
import assert from "node:assert/strict";
import { it } from "node:test";
import { alive, assertSameGuest, busyGuest, describeMigration, jobEnd, tail, waitFor } from "./launcher-lib.js";

describeMigration("post-copy switch-over between two launcher pods (real libvirt + QEMU)", "pcopy", 8, (ctx) => {
  it("a busy guest past its completion budget finishes in post-copy, memory intact", async (t) => {
    const g = await busyGuest(ctx, "postcopy", 32, "kept-in-ram-4711");
    const { src, dst } = g;
    const t0 = performance.now();
    const start = await src.client.migrateStart({
      ...g.start,
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
    assert.equal((await g.running).status?.state, "Running");
    await waitFor("the source pod to end", () => !alive(src.pid) || undefined, 30_000);
    g.con.close();
    // The same guest on the target, its memory intact: heartbeat continues, RAM value and random data unchanged.
    await assertSameGuest(g, "kept-in-ram-4711");
  });
});
