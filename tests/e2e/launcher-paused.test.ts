// Paused migration between two real launcher pods (each its private libvirtd + QEMU, in network namespaces this test
// links): a busy guest (rewriting 16 MiB of random data in a loop) migrates under a bandwidth cap with
// allowWorkloadDisruption but without allowPostCopy, and a completion budget too short for pre-copy to converge.
// KubeVirt's monitor then pauses the guest (virDomainSuspend on the source) instead of aborting, so the job can
// finish: the launcher reports mode Paused, the source domain is Paused/Migration, the job completes, and the guest
// runs again on the target (resumed there) with its memory intact: same boot (the heartbeat goes on past the pause),
// a value kept in RAM and the checksum of the random data are unchanged.
import assert from "node:assert/strict";
import { it } from "node:test";
import {
  alive,
  assertSameGuest,
  busyGuest,
  describeMigration,
  jobEnd,
  nextState,
  tail,
  waitFor,
} from "./launcher-lib.js";

describeMigration("paused migration between two launcher pods (real libvirt + QEMU)", "pause", 9, (ctx) => {
  it("a busy guest past its completion budget is paused, migrates, and runs on in the target, memory intact", async (t) => {
    const g = await busyGuest(ctx, "paused", 16, "kept-in-ram-0815");
    const { src, dst } = g;
    const pausedOnSource = nextState(src.client, (d) => d.status?.state === "Paused", 120_000);
    const t0 = performance.now();
    const start = await src.client.migrateStart({
      ...g.start,
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
    assert.equal((await g.running).status?.state, "Running");
    await waitFor("the source pod to end", () => !alive(src.pid) || undefined, 30_000);
    g.con.close();
    await assertSameGuest(g, "kept-in-ram-0815");
  });
});
