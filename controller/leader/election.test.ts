import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FakeClient, type Lease, resources } from "../../client/index.js";
import { nullLogger } from "../../lib/log.js";
import { decide, LeaderElector, loadIdentity } from "./election.js";

const cfg = { namespace: "kubevirt", name: "virt-controller", identity: "a", leaseDurationMs: 15_000 };
const lease = (holder: string, renew = "2026-01-01T00:00:00.000000Z"): Lease => ({
  metadata: { name: "virt-controller", namespace: "kubevirt", resourceVersion: "5" },
  spec: { holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: renew, renewTime: renew, leaseTransitions: 2 },
});

describe("decide (tryAcquireOrRenew)", () => {
  const t0 = new Date("2026-01-01T00:00:00Z");
  const at = (s: number) => new Date(t0.getTime() + s * 1000);
  const seen = (l: Lease, s: number) => ({ spec: JSON.stringify(l.spec), at: at(s).getTime() });
  const cases: { name: string; cur?: Lease; obs?: number; now: number; want: string; transitions?: number }[] = [
    { name: "no lease: create it", now: 0, want: "create", transitions: 0 },
    { name: "held by another, fresh on our clock: wait", cur: lease("b"), obs: 0, now: 14, want: "wait" },
    { name: "held by another, first seen now: wait a full duration", cur: lease("b"), now: 100, want: "wait" },
    {
      name: "held by another, unchanged for 15 s: take it",
      cur: lease("b"),
      obs: 0,
      now: 15,
      want: "update",
      transitions: 3,
    },
    {
      name: "our own lease (restart, same identity): renew at once",
      cur: lease("a"),
      now: 1,
      want: "update",
      transitions: 2,
    },
    { name: "released (empty holder): take it at once", cur: lease(""), now: 1, want: "update", transitions: 3 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decide(cfg, c.cur, c.cur && c.obs !== undefined ? seen(c.cur, c.obs) : undefined, at(c.now));
      assert.equal(d.kind, c.want);
      if (d.kind !== "wait") {
        assert.equal(d.lease.spec.holderIdentity, "a");
        assert.equal(d.lease.spec.leaseDurationSeconds, 15);
        assert.equal(d.lease.spec.leaseTransitions, c.transitions);
        assert.match(d.lease.spec.renewTime ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
        if (d.kind === "update")
          assert.equal(d.lease.metadata.resourceVersion, "5", "writes carry the resourceVersion");
      }
    });
  }
});

describe("LeaderElector", () => {
  it("one of two candidates leads; the other takes over only after the lease expires on its clock", async () => {
    const c = new FakeClient();
    let now = new Date("2026-01-01T00:00:00Z");
    const clock = () => now;
    const events: string[] = [];
    const mk = (id: string) =>
      new LeaderElector(
        c,
        { ...cfg, identity: id, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
        {
          onStartedLeading: () => void events.push(`${id} leads`),
          onStoppedLeading: () => void events.push(`${id} lost`),
        },
        nullLogger,
        clock,
      );
    const a = mk("a");
    const b = mk("b");
    assert.equal(await a.tryAcquireOrRenew(), true);
    assert.equal(await b.tryAcquireOrRenew(), false);
    now = new Date(now.getTime() + 10_000);
    assert.equal(await b.tryAcquireOrRenew(), false, "a's lease is still valid as b observed it");
    now = new Date(now.getTime() + 6_000);
    assert.equal(await b.tryAcquireOrRenew(), true, "a stopped renewing 16 s ago");
    const l = c.peek<Lease>(resources.leases, "kubevirt", "virt-controller");
    assert.equal(l?.spec.holderIdentity, "b");
    assert.equal(l?.spec.leaseTransitions, 1);
    // a comes back: it must not steal b's fresh lease.
    assert.equal(await a.tryAcquireOrRenew(), false);
  });

  it("a stale write loses on resourceVersion (conflict), not by overwriting", async () => {
    const c = new FakeClient();
    c.seed(resources.leases, lease(""));
    const a = new LeaderElector(
      c,
      { ...cfg, identity: "a", renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
      { onStartedLeading: () => {}, onStoppedLeading: () => {} },
      nullLogger,
    );
    // Between a's read and write, b takes the lease.
    let raced = false;
    c.prependReactor("update", "leases", () => {
      if (!raced) {
        raced = true;
        const cur = c.peek<Lease>(resources.leases, "kubevirt", "virt-controller");
        if (cur) c.seed(resources.leases, { ...cur, spec: { ...cur.spec, holderIdentity: "b" } });
      }
      return undefined;
    });
    assert.equal(await a.tryAcquireOrRenew(), false);
    assert.equal(c.peek<Lease>(resources.leases, "kubevirt", "virt-controller")?.spec.holderIdentity, "b");
  });

  it("loadIdentity keeps one random identity per file", (t) => {
    const dir = mkdtempSync(join(tmpdir(), "ident-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const f = join(dir, "sub", "controller-identity");
    const id = loadIdentity(f);
    assert.match(id, /_[0-9a-f]{16}$/);
    assert.equal(loadIdentity(f), id);
    assert.notEqual(loadIdentity(join(dir, "other")), id);
  });
});
