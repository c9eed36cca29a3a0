import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeHypervisor } from "./hypervisor/index.js";
import { completionBudgetS, destinationXml, followStep, GIB, MigrationListener } from "./migration.js";
import type { MigrateStatusResult, PrepareMigrationTargetResult } from "./protocol.js";
import { LauncherCore } from "./server.js";

const uid = "0b9d6c1e-1111-4a2b-9c3d-123456789abc";
const vmi = {
  apiVersion: "kubevirt.io/v1",
  kind: "VirtualMachineInstance",
  metadata: { name: "vm1", namespace: "default", uid },
  spec: { domain: { devices: {} } },
};
const start = {
  destinationUri: "qemu+tcp://10.244.1.5:49152/system",
  migrateUri: "tcp://10.244.1.5:49153",
  domainXml: "<domain type='qemu'><name>default_vm1</name></domain>",
  copyStorage: ["vda"],
};
const limits = { progressTimeoutS: 150, completionTimeoutPerGiB: 150, dataBytes: 1.5 * GIB };

describe("migration follower", () => {
  it("budgets 150 s per started GiB and names the timeout that fired", () => {
    assert.equal(completionBudgetS(limits), 300);
    assert.equal(completionBudgetS({ ...limits, dataBytes: 10 }), 150);
    let st = { startedAtMs: 0, progressAtMs: 0 };
    // Progress keeps it going: the remaining data reaches new lows.
    for (let s = 1; s <= 290; s++) {
      const r = followStep(st, { dataRemaining: 1e9 - s }, s * 1000, limits);
      assert.equal(r.abort, undefined);
      st = r.state;
    }
    const late = followStep(st, { dataRemaining: 1 }, 301_000, limits);
    assert.match(late.abort ?? "", /completion timeout of 300 s \(completionTimeoutPerGiB 150 s × 2 GiB\)/);
    // No new low for longer than progressTimeout: stuck (a higher figure is no progress).
    const stuck = { startedAtMs: 0, progressAtMs: 10_000, lowestRemaining: 5 };
    assert.equal(followStep(stuck, { dataRemaining: 9 }, 160_000, limits).abort, undefined);
    assert.match(followStep(stuck, { dataRemaining: 9 }, 160_001, limits).abort ?? "", /no progress for 150 s/);
    assert.match(followStep(stuck, {}, 160_001, limits).abort ?? "", /progressTimeout/);
  });

  it("past the completion budget with post-copy allowed: switches once instead of aborting, then never aborts", () => {
    const pc = { ...limits, postCopy: true };
    const st = { startedAtMs: 0, progressAtMs: 0 };
    assert.deepEqual(followStep(st, { dataRemaining: 5 }, 300_000, pc), {
      state: { startedAtMs: 0, progressAtMs: 300_000, lowestRemaining: 5 },
    });
    // Not while libvirt still mirrors the disks (the memory stream has not begun): no abort either.
    assert.deepEqual(followStep(st, { dataRemaining: 5, memoryIteration: 0 }, 300_001, pc), {
      state: { startedAtMs: 0, progressAtMs: 300_001, lowestRemaining: 5 },
    });
    const sw = followStep(st, { dataRemaining: 5, memoryIteration: 1 }, 300_001, pc);
    assert.equal(sw.postCopy, true);
    assert.equal(sw.abort, undefined);
    assert.equal(sw.state.mode, "PostCopy");
    // In post-copy neither budget fires again: the guest already runs on the target.
    const later = followStep(sw.state, { dataRemaining: 5 }, 10_000_000, pc);
    assert.deepEqual([later.postCopy, later.abort, later.state.mode], [undefined, undefined, "PostCopy"]);
    // Without post-copy (or with workload disruption refused: the launcher passes postCopy false) it aborts.
    assert.match(followStep(st, { dataRemaining: 5 }, 300_001, limits).abort ?? "", /completion timeout/);
    // A stuck pre-copy job is aborted even with post-copy allowed (KubeVirt's progress timeout).
    const stuck = { startedAtMs: 0, progressAtMs: 0, lowestRemaining: 5 };
    const r = followStep(stuck, { dataRemaining: 9 }, 150_001, pc);
    assert.deepEqual([r.postCopy, /progressTimeout/.test(r.abort ?? "")], [undefined, true]);
  });

  it("completes the target's XML with the MACs and uuid libvirt generated on the source, keeps its paths", () => {
    const source =
      "<domain><name>ns_vm</name><uuid>1234</uuid><devices><disk><source file='/a/x'/></disk>" +
      "<interface type='ethernet'><mac address='52:54:00:aa:bb:cc'/><target dev='tap0'/></interface>" +
      "<interface type='ethernet'><mac address='52:54:00:11:22:33'/></interface></devices></domain>";
    const target =
      "<domain><name>ns_vm</name><devices><disk><source file='/b/x'/></disk>" +
      "<interface type='ethernet'><target dev='tap0'/></interface>" +
      "<interface type='ethernet'><mac address='02:00:00:00:00:01'/></interface></devices></domain>";
    assert.equal(
      destinationXml(target, source),
      "<domain><name>ns_vm</name><uuid>1234</uuid><devices><disk><source file='/b/x'/></disk>" +
        "<interface type='ethernet'><mac address='52:54:00:aa:bb:cc'/><target dev='tap0'/></interface>" +
        "<interface type='ethernet'><mac address='02:00:00:00:00:01'/></interface></devices></domain>",
    );
  });

  it("refuses to listen without a free port range and listens once (idempotent)", async (t) => {
    const l = new MigrationListener("/nonexistent.sock", (await import("../lib/log.js")).nullLogger);
    t.after(() => l.close());
    const a = await l.listen("127.0.0.1", "127.0.0.2");
    const b = await l.listen("127.0.0.1", undefined);
    assert.deepEqual(a, b);
    assert.equal(new Set(Object.values(a.ports)).size, 3);
  });
});

function core(hv: FakeHypervisor, listen = true): LauncherCore {
  return new LauncherCore({
    uid,
    hv,
    build: async (v) => `<domain type="qemu"><name>${v.metadata?.namespace}_${v.metadata?.name}</name></domain>`,
    followIntervalMs: 10,
    ...(listen
      ? { migration: { listen: async () => ({ address: "10.0.0.9", ports: { libvirt: 1, qemu: 2, nbd: 3 } }) } }
      : {}),
  });
}

async function until<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("condition not reached");
}

describe("launcher migration handlers (fake hypervisor)", () => {
  it("target: renders its XML, listens, refuses Sync; idempotent", async (t) => {
    const c = core(new FakeHypervisor());
    t.after(() => c.close());
    const r = (await c.handle("PrepareMigrationTarget", { vmi, prepared: {} })) as PrepareMigrationTargetResult;
    assert.deepEqual(r.ports, { libvirt: 1, qemu: 2, nbd: 3 });
    assert.match(r.domainXml, /default_vm1/);
    assert.deepEqual(await c.handle("PrepareMigrationTarget", { vmi, prepared: {} }), r);
    await assert.rejects(c.handle("Sync", { vmi }), /migration target/);
    await assert.rejects(c.handle("MigrateStart", start), /no domain|migration target/);
    await assert.rejects(c.handle("PrepareMigrationTarget", { vmi: { metadata: { uid: "x" } }, prepared: {} }), /uid/);
    await assert.rejects(c.handle("PrepareMigrationTarget", { vmi }), /prepared/);
  });

  it("source: starts once, follows, completes with QEMU's downtime; the launcher is told it migrated away", async (t) => {
    const hv = new FakeHypervisor();
    let away = 0;
    const c = new LauncherCore({
      uid,
      hv,
      build: async () => "<domain><name>default_vm1</name></domain>",
      followIntervalMs: 10,
      migration: {
        listen: async () => ({ address: "", ports: { libvirt: 1, qemu: 2, nbd: 3 } }),
        onMigratedAway: () => away++,
      },
    });
    t.after(() => c.close());
    await c.handle("Sync", { vmi });
    assert.deepEqual(await c.handle("MigrateStatus", {}), { state: "none" });
    const s1 = (await c.handle("MigrateStart", {
      ...start,
      maxDowntimeMs: 250,
      migrationUid: "u1",
    })) as MigrateStatusResult;
    assert.equal(s1.state, "running");
    const s2 = (await c.handle("MigrateStart", { ...start, migrationUid: "u1" })) as MigrateStatusResult;
    assert.equal(s2.state, "running");
    assert.equal(hv.calls.filter((x) => x === "migrate").length, 1);
    assert.equal(hv.migration?.opts.listenAddress, "10.244.1.5");
    assert.deepEqual(hv.migration?.opts.copyDisks, ["vda"]);
    await until(async () => hv.maxDowntimeMs);
    assert.equal(hv.maxDowntimeMs, 250);
    hv.finishMigration();
    const done = await until(async () => {
      const s = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return s.state === "running" ? undefined : s;
    });
    assert.equal(done.state, "completed");
    assert.equal(done.downtimeMs, 42);
    assert.equal(away, 1);
    assert.equal(c.completionReported, true);
    assert.deepEqual(c.info().status, { state: "Shutoff", reason: "Migrated" });
    // Completed: asked again, it answers, never migrates twice.
    assert.equal(((await c.handle("MigrateStart", start)) as MigrateStatusResult).state, "completed");
    assert.equal(hv.calls.filter((x) => x === "migrate").length, 1);
  });

  it("source: MigrateAbort cancels (guest stays); a new migration may start after; a stuck one fails naming the timeout", async (t) => {
    const hv = new FakeHypervisor();
    const c = core(hv, false);
    t.after(() => c.close());
    assert.deepEqual(await c.handle("MigrateAbort", {}), { aborted: false });
    await c.handle("Sync", { vmi });
    await c.handle("MigrateStart", start);
    assert.deepEqual(await c.handle("MigrateAbort", {}), { aborted: true });
    const cancelled = await until(async () => {
      const s = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return s.state === "running" ? undefined : s;
    });
    assert.equal(cancelled.state, "cancelled");
    assert.match(cancelled.message ?? "", /canceled by client/);
    assert.equal(c.info().status?.state, "Running");

    // progressTimeout 1 s with the remaining data never shrinking: the follower aborts, the job fails.
    const s = (await c.handle("MigrateStart", { ...start, progressTimeout: 1 })) as MigrateStatusResult;
    assert.equal(s.state, "running");
    const failed = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.state === "running" ? undefined : r;
    });
    assert.equal(failed.state, "failed");
    assert.match(failed.message ?? "", /no progress for 1 s \(progressTimeout\)/);
    assert.equal(c.info().status?.state, "Running");
    await assert.rejects(
      c.handle("MigrateStart", { ...start, destinationUri: "qemu+ssh://x/system" }),
      /destinationUri/,
    );
  });

  it("source: post-copy allowed and the budget spent → switched (mode PostCopy), no longer abortable; completes", async (t) => {
    const hv = new FakeHypervisor();
    const c = core(hv, false);
    t.after(() => c.close());
    await c.handle("Sync", { vmi });
    // The fake's guest is ≤ 1 GiB: a budget of 1 s.
    const s = (await c.handle("MigrateStart", {
      ...start,
      postCopy: true,
      completionTimeoutPerGiB: 1,
    })) as MigrateStatusResult;
    assert.deepEqual([s.state, s.mode], ["running", "PreCopy"]);
    assert.equal(hv.migration?.opts.postCopy, true, "the job is started with VIR_MIGRATE_POSTCOPY");
    const pc = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.mode === "PostCopy" ? r : undefined;
    });
    assert.equal(pc.state, "running");
    assert.equal(hv.calls.filter((x) => x === "startPostCopy").length, 1);
    assert.deepEqual(await c.handle("MigrateAbort", {}), { aborted: false });
    assert.equal(hv.calls.includes("abortJob"), false, "never aborted in post-copy");
    hv.finishMigration();
    const done = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.state === "running" ? undefined : r;
    });
    assert.deepEqual([done.state, done.mode], ["completed", "PostCopy"]);
  });

  it("source: a refused switch to post-copy is tried again at each sample, then the job is aborted naming why", async (t) => {
    const hv = new FakeHypervisor();
    hv.postCopyError = new Error("Postcopy must be started after migration has been started");
    const c = core(hv, false);
    t.after(() => c.close());
    await c.handle("Sync", { vmi });
    await c.handle("MigrateStart", { ...start, postCopy: true, completionTimeoutPerGiB: 1 });
    const failed = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.state === "running" ? undefined : r;
    });
    assert.deepEqual([failed.state, failed.mode], ["failed", "PreCopy"]);
    assert.match(failed.message ?? "", /switching to post-copy failed 10 times: Postcopy must be started/);
    assert.equal(hv.calls.filter((x) => x === "startPostCopy").length, 10);
    assert.equal(c.info().status?.state, "Running");
  });

  it("source: post-copy allowed but workload disruption refused → aborted at the budget, never switched", async (t) => {
    const hv = new FakeHypervisor();
    const c = core(hv, false);
    t.after(() => c.close());
    await c.handle("Sync", { vmi });
    await c.handle("MigrateStart", {
      ...start,
      postCopy: true,
      allowWorkloadDisruption: false,
      completionTimeoutPerGiB: 1,
    });
    const failed = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.state === "running" ? undefined : r;
    });
    assert.deepEqual([failed.state, failed.mode], ["failed", "PreCopy"]);
    assert.match(failed.message ?? "", /completion timeout of 1 s/);
    assert.equal(hv.calls.includes("startPostCopy"), false);
    assert.equal(c.info().status?.state, "Running");
  });
});
