import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FakeHypervisor } from "./hypervisor/index.js";
import { completionBudgetS, destinationXml, followStep, GIB, MigrationListener, postCopyFailure } from "./migration.js";
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
    const pc = { ...limits, postCopy: true, workloadDisruption: true };
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
    // Without workload disruption (KubeVirt: it follows allowPostCopy unless refused) it aborts.
    assert.match(followStep(st, { dataRemaining: 5 }, 300_001, limits).abort ?? "", /completion timeout/);
    // A stuck pre-copy job is aborted even with post-copy allowed (KubeVirt's progress timeout).
    const stuck = { startedAtMs: 0, progressAtMs: 0, lowestRemaining: 5 };
    const r = followStep(stuck, { dataRemaining: 9 }, 150_001, pc);
    assert.deepEqual([r.postCopy, /progressTimeout/.test(r.abort ?? "")], [undefined, true]);
  });

  it("past the completion budget with workload disruption but no post-copy: pauses once, then aborts at twice it", () => {
    const wd = { ...limits, workloadDisruption: true };
    const st = { startedAtMs: 0, progressAtMs: 0 };
    // Pausing needs no memory stream (the paused guest dirties nothing, disks included).
    const p = followStep(st, { dataRemaining: 5, memoryIteration: 0 }, 300_001, wd);
    assert.deepEqual([p.pause, p.postCopy, p.abort, p.state.mode], [true, undefined, undefined, "Paused"]);
    // Paused: the budget doubles (KubeVirt's acceptableCompletionTime *= 2) and the job goes on.
    let s2 = p.state;
    for (let t = 301; t <= 600; t += 10) {
      const r = followStep(s2, { dataRemaining: 5 - t / 1000 }, t * 1000, wd);
      assert.deepEqual([r.pause, r.abort], [undefined, undefined], `at ${t} s`);
      s2 = r.state;
    }
    const over = followStep(s2, { dataRemaining: 1 }, 600_001, wd);
    assert.equal(over.pause, undefined, "never paused twice");
    assert.match(over.abort ?? "", /completion timeout of 600 s \(.*doubled once the guest was paused\)/);
    // Post-copy allowed too: the switch wins (KubeVirt's order), and refused workload disruption aborts.
    assert.equal(
      followStep(st, { dataRemaining: 5, memoryIteration: 2 }, 300_001, { ...wd, postCopy: true }).postCopy,
      true,
    );
    assert.match(
      followStep(st, { dataRemaining: 5 }, 300_001, { ...limits, postCopy: true }).abort ?? "",
      /completion/,
    );
  });

  it("a post-copy job whose domain reports PostcopyFailed (or stopped) failed for good; pre-copy never does", () => {
    assert.match(
      postCopyFailure("PostCopy", { state: "Paused", reason: "PostcopyFailed" }) ?? "",
      /post-copy migration failed after the switch-over \(domain Paused\/PostcopyFailed\): the guest is irrecoverable/,
    );
    assert.match(postCopyFailure("PostCopy", { state: "Running", reason: "PostcopyFailed" }) ?? "", /irrecoverable/);
    assert.match(postCopyFailure("PostCopy", { state: "Shutoff", reason: "Crashed" }) ?? "", /Shutoff\/Crashed/);
    assert.equal(postCopyFailure("PostCopy", { state: "Paused", reason: "Postcopy" }), undefined, "still running");
    assert.equal(postCopyFailure("PostCopy", { state: "Shutoff", reason: "Migrated" }), undefined, "completed");
    assert.equal(postCopyFailure("PreCopy", { state: "Paused", reason: "PostcopyFailed" }), undefined);
    assert.equal(postCopyFailure("Paused", { state: "Shutoff", reason: "Crashed" }), undefined);
    assert.equal(postCopyFailure("PostCopy", undefined), undefined);
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

  it("once the domain arrived: the source's open connection goes on, a new one is refused", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-ml-"));
    const sock = join(dir, "libvirt.sock");
    const libvirtd = net.createServer((c) => c.pipe(c)); // stands in for the daemon: echoes
    await new Promise<void>((r) => libvirtd.listen(sock, r));
    const l = new MigrationListener(sock, (await import("../lib/log.js")).nullLogger);
    t.after(async () => {
      l.close();
      libvirtd.close();
      await rm(dir, { recursive: true, force: true });
    });
    const { ports } = await l.listen("127.0.0.1", "127.0.0.1");
    const open = await connect(ports.libvirt);
    assert.equal(await echo(open, "before"), "before");
    l.stopAccepting();
    assert.equal(await echo(open, "after"), "after", "the source's connection still relays");
    await assert.rejects(connect(ports.libvirt), /ECONNREFUSED/);
    open.destroy();
  });
});

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: "127.0.0.1", port }, () => resolve(c));
    c.once("error", reject);
  });
}

function echo(c: net.Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    c.once("data", (d: Buffer) => resolve(d.toString()));
    c.write(text);
  });
}

function core(hv: FakeHypervisor, listen = true, arrived?: () => void): LauncherCore {
  return new LauncherCore({
    uid,
    hv,
    build: async (v) => `<domain type="qemu"><name>${v.metadata?.namespace}_${v.metadata?.name}</name></domain>`,
    followIntervalMs: 10,
    ...(listen
      ? {
          migration: {
            listen: async () => ({ address: "10.0.0.9", ports: { libvirt: 1, qemu: 2, nbd: 3 } }),
            ...(arrived ? { arrived } : {}),
          },
        }
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

  it("target: stops listening once the incoming domain runs here, and only then", async (t) => {
    const hv = new FakeHypervisor();
    let arrived = 0;
    const c = core(hv, true, () => arrived++);
    t.after(() => c.close());
    const r = (await c.handle("PrepareMigrationTarget", { vmi, prepared: {} })) as PrepareMigrationTargetResult;
    const name = await hv.define(r.domainXml); // libvirt defines the incoming domain, paused
    hv.setState(name, { state: "Paused", reason: "Migration" });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(arrived, 0, "not while the domain is still coming in");
    hv.setState(name, { state: "Running", reason: "Migrated" });
    await until(async () => (arrived > 0 ? true : undefined));
    hv.setState(name, { state: "Running", reason: "Unpaused" });
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(arrived, 1, "once");
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
  it("source: workload disruption without post-copy → the guest is paused (mode Paused) and the job completes", async (t) => {
    const hv = new FakeHypervisor();
    const c = core(hv, false);
    t.after(() => c.close());
    await c.handle("Sync", { vmi });
    await c.handle("MigrateStart", { ...start, allowWorkloadDisruption: true, completionTimeoutPerGiB: 1 });
    assert.equal(hv.migration?.opts.postCopy, undefined, "started without VIR_MIGRATE_POSTCOPY");
    const paused = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.mode === "Paused" ? r : undefined;
    });
    assert.equal(paused.state, "running");
    assert.deepEqual(c.info().status, { state: "Paused", reason: "Migration" });
    assert.equal(hv.calls.filter((x) => x === "pause").length, 1);
    hv.finishMigration();
    const done = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.state === "running" ? undefined : r;
    });
    assert.deepEqual([done.state, done.mode], ["completed", "Paused"]);
    assert.equal(hv.calls.includes("resume"), false, "the target resumes it, not the source");
  });

  it("source: a paused migration that fails (cancel) resumes the guest on the source", async (t) => {
    const hv = new FakeHypervisor();
    const c = core(hv, false);
    t.after(() => c.close());
    await c.handle("Sync", { vmi });
    await c.handle("MigrateStart", { ...start, allowWorkloadDisruption: true, completionTimeoutPerGiB: 1 });
    await until(async () => (c.info().status?.state === "Paused" ? true : undefined));
    // pre-copy still (paused, not switched): an abort is honoured
    assert.deepEqual(await c.handle("MigrateAbort", {}), { aborted: true });
    const ended = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.state === "running" ? undefined : r;
    });
    assert.deepEqual([ended.state, ended.mode], ["cancelled", "Paused"]);
    assert.equal(c.info().status?.state, "Running", "resumed on the source");
    assert.equal(hv.calls.filter((x) => x === "resume").length, 1);
  });

  it("source: post-copy that breaks after the switch-over → failed at once (irrecoverable), never resumed", async (t) => {
    const hv = new FakeHypervisor();
    const c = core(hv, false);
    t.after(() => c.close());
    await c.handle("Sync", { vmi });
    await c.handle("MigrateStart", { ...start, postCopy: true, completionTimeoutPerGiB: 1 });
    await until(
      async () => ((await c.handle("MigrateStatus", {})) as MigrateStatusResult).mode === "PostCopy" || undefined,
    );
    // libvirt keeps the job for a recovery; the domain says it failed: the follower ends the job without waiting.
    hv.setState("default_vm1", { state: "Paused", reason: "PostcopyFailed" });
    const failed = await until(async () => {
      const r = (await c.handle("MigrateStatus", {})) as MigrateStatusResult;
      return r.state === "running" ? undefined : r;
    });
    assert.deepEqual([failed.state, failed.mode], ["failed", "PostCopy"]);
    assert.match(failed.message ?? "", /irrecoverable/);
    assert.ok(hv.migration, "libvirt's call has not returned");
    hv.finishMigration(new Error("migration failed in post-copy"));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(((await c.handle("MigrateStatus", {})) as MigrateStatusResult).message, failed.message);
    assert.equal(hv.calls.includes("resume"), false);
  });
});
