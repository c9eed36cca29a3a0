// The store's group commit: writes queued in one event-loop turn commit in one SQLite transaction, each with its
// own compare-and-swap check and revision, acknowledged and emitted only after COMMIT.
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { removeDir, tempDir } from "../testutil.js";
import { BACKSTOP_PAGES } from "./checkpointer.js";
import { type Obj, Store, StoreError, type StoreEvent } from "./store.js";

const R = "kubevirt.io/virtualmachines";

function vm(name: string, extra: Record<string, unknown> = {}): Obj {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name, namespace: "ns", uid: name },
    ...extra,
  };
}

function rv(o: Obj): number {
  return Number(o.metadata?.resourceVersion);
}

/** A store on a file, plus a second connection that sees only committed data. */
function fileStore(t: { after: (fn: () => Promise<void>) => void }): {
  store: Store;
  committed: (name: string) => boolean;
} {
  const dir = tempDir("tsvirt-store-");
  const path = join(dir, "state.db");
  const store = new Store({ path });
  const reader = new Database(path, { readonly: true });
  const q = reader.prepare("SELECT 1 FROM objects WHERE res = ? AND ns = 'ns' AND name = ?");
  t.after(async () => {
    reader.close();
    store.close();
    await store.closed;
    removeDir(dir);
  });
  return { store, committed: (name) => q.get(R, name) !== undefined };
}

test("concurrent creates commit in one transaction, each with its own revision, in queue order", async (t) => {
  const { store, committed } = fileStore(t);
  const base = store.revision;
  const seen: StoreEvent[] = [];
  const committedAtEmit: boolean[] = [];
  store.subscribe((e) => {
    seen.push(e);
    committedAtEmit.push(committed(e.name));
  });
  const writes = Array.from({ length: 10 }, (_, i) => store.createAsync(R, vm(`vm-${i}`)));
  // nothing is stored, numbered or emitted before the group commit
  assert.equal(committed("vm-0"), false);
  assert.equal(store.revision, base);
  assert.equal(seen.length, 0);
  const before = store.groupCommits;
  const stored = await Promise.all(writes);
  assert.deepEqual(
    stored.map(rv),
    Array.from({ length: 10 }, (_, i) => base + 1 + i),
  );
  assert.equal(store.groupCommits.batches - before.batches, 1, "one transaction for the ten writes");
  assert.equal(store.groupCommits.writes - before.writes, 10);
  assert.deepEqual(
    seen.map((e) => [e.type, e.name, e.rv]),
    stored.map((o) => ["ADDED", o.metadata?.name, rv(o)]),
  );
  assert.deepEqual(committedAtEmit, Array(10).fill(true), "events are emitted after COMMIT");
  assert.equal(store.revision, base + 10);
  assert.equal(store.get(R, "ns", "vm-9")?.metadata?.resourceVersion, String(base + 10));
});

test("a failed compare-and-swap fails only its own write and takes no revision", async (t) => {
  const { store } = fileStore(t);
  const a = await store.createAsync(R, vm("a"));
  const b = await store.createAsync(R, vm("b"));
  const base = store.revision;
  const seen: StoreEvent[] = [];
  store.subscribe((e) => seen.push(e));
  const results = await Promise.allSettled([
    store.updateAsync(R, { ...vm("a"), spec: { n: 1 } }, rv(a)), // ok
    store.updateAsync(R, { ...vm("b"), spec: { n: 1 } }, rv(b) - 1), // stale: conflict
    store.createAsync(R, vm("c")), // ok
    store.createAsync(R, vm("a")), // exists
    store.updateAsync(R, { ...vm("a"), spec: { n: 2 } }, rv(a)), // the first update of "a" won: conflict
    store.updateAsync(R, vm("zz"), 1), // notfound
    store.deleteAsync(R, "ns", "b", rv(b)), // ok
  ]);
  const codes = results.map((r) =>
    r.status === "fulfilled" ? "ok" : r.reason instanceof StoreError ? r.reason.code : String(r.reason),
  );
  assert.deepEqual(codes, ["ok", "conflict", "ok", "exists", "conflict", "notfound", "ok"]);
  const ok = results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<Obj>).value);
  // the successful writes hold consecutive revisions; the failed ones took none
  assert.deepEqual(ok.map(rv), [base + 1, base + 2, base + 3]);
  assert.equal(store.revision, base + 3);
  assert.deepEqual(
    seen.map((e) => [e.type, e.name, e.rv]),
    [
      ["MODIFIED", "a", base + 1],
      ["ADDED", "c", base + 2],
      ["DELETED", "b", base + 3],
    ],
  );
  const conflict = results[1] as PromiseRejectedResult;
  assert.equal((conflict.reason as StoreError).currentRv, rv(b));
  // the failed writes left nothing behind
  assert.deepEqual(store.get(R, "ns", "a")?.spec, { n: 1 });
  assert.equal(store.get(R, "ns", "b"), undefined);
  assert.equal(store.get(R, "ns", "zz"), undefined);
  assert.deepEqual(
    store.eventsSince(R, base).map((e) => [e.type, e.name, e.rv]),
    seen.map((e) => [e.type, e.name, e.rv]),
  );
});

test("an update queued after a create in the same turn sees it (CAS runs inside the batch)", async (t) => {
  const { store } = fileStore(t);
  const base = store.revision;
  const created = store.createAsync(R, vm("x"));
  const updated = store.updateAsync(R, { ...vm("x"), spec: { n: 1 } }, base + 1);
  assert.equal(rv(await created), base + 1);
  assert.equal(rv(await updated), base + 2);
  assert.deepEqual(store.get(R, "ns", "x")?.spec, { n: 1 });
});

test("immediate writes between queued ones keep revisions and events in one order", async (t) => {
  const { store } = fileStore(t);
  const seen: number[] = [];
  store.subscribe((e) => seen.push(e.rv));
  const queued = store.createAsync(R, vm("q1"));
  const now = store.create(R, vm("s1")); // commits at once, before the queued batch
  const queued2 = store.createAsync(R, vm("q2"));
  const [q1, q2] = await Promise.all([queued, queued2]);
  assert.ok(rv(now) < rv(q1) && rv(q1) < rv(q2));
  assert.deepEqual(seen, [rv(now), rv(q1), rv(q2)]);
});

test("revisions continue above every acknowledged one after reopening; close() commits queued writes", async () => {
  const dir = tempDir("tsvirt-store-");
  try {
    const path = join(dir, "state.db");
    const s1 = new Store({ path });
    const acked = await Promise.all([s1.createAsync(R, vm("a")), s1.createAsync(R, vm("b"))]);
    const pending = s1.createAsync(R, vm("c"));
    s1.close();
    const c = await pending;
    await assert.rejects(s1.createAsync(R, vm("d")), /closed/);
    const s2 = new Store({ path });
    try {
      assert.equal(s2.revision, rv(c));
      assert.ok(rv(c) > Math.max(...acked.map(rv)));
      assert.ok(s2.get(R, "ns", "c"));
      const next = await s2.createAsync(R, vm("e"));
      assert.equal(rv(next), rv(c) + 1);
    } finally {
      s2.close();
      await Promise.all([s1.closed, s2.closed]);
    }
  } finally {
    removeDir(dir);
  }
});

test("after the event log is compacted to nothing, a reopened store still continues above the last revision", async () => {
  const dir = tempDir("tsvirt-store-");
  try {
    const path = join(dir, "state.db");
    const s1 = new Store({ path });
    s1.create(R, vm("a"));
    const last = rv(s1.update(R, { ...vm("a"), spec: { x: 1 } }, 2));
    s1.create("/configmaps", { metadata: { name: "c", namespace: "other", uid: "c" } });
    s1.delete("/configmaps", "other", "c", last + 1);
    const top = s1.revision;
    assert.equal(s1.compact(Date.now() + 1000), top, "every event compacted");
    s1.close();
    const s2 = new Store({ path });
    try {
      assert.equal(s2.revision, top);
      assert.equal(rv(s2.create(R, vm("b"))), top + 1);
      assert.deepEqual([...s2.countInNamespace("ns")], [[R, 2]]);
      assert.deepEqual([...s2.countInNamespace("other")], []);
    } finally {
      s2.close();
      await Promise.all([s1.closed, s2.closed]);
    }
  } finally {
    removeDir(dir);
  }
});

test("compaction drops exactly the events written before the cutoff", async () => {
  const s = new Store();
  try {
    const old = [s.create(R, vm("a")), s.create(R, vm("b")), s.create(R, vm("c"))].map(rv);
    await new Promise((r) => setTimeout(r, 5));
    const cutoff = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    s.create(R, vm("d"));
    s.update(R, { ...vm("d"), spec: { x: 1 } }, s.revision);
    assert.equal(s.compact(cutoff), Math.max(...old));
    assert.deepEqual(
      s.eventsSince(R, 0).map((e) => e.name),
      ["d", "d"],
    );
    assert.equal(s.compact(cutoff), Math.max(...old), "nothing more to drop");
  } finally {
    s.close();
  }
});

const specV = (e: { object: Obj } | undefined): unknown => (e?.object.spec as { v?: number } | undefined)?.v;

test("statesAt: each object's last logged event at or before a revision; what compaction took is absent", async () => {
  const s = new Store();
  try {
    const a1 = s.create(R, vm("a", { spec: { v: 1 } }));
    const b1 = s.create(R, vm("b"));
    s.create("other/things", vm("a", { spec: { v: "other resource" } }));
    await new Promise((r) => setTimeout(r, 5));
    const cutoff = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    s.update(R, vm("a", { spec: { v: 2 } }), rv(a1));
    const at = s.revision;
    s.update(R, vm("a", { spec: { v: 3 } }), at);
    s.delete(R, "ns", "b", rv(b1));
    const c = s.create(R, vm("c"));
    s.delete(R, "ns", "c", rv(c));
    const states = s.statesAt(R, ["ns/a", "ns/b", "ns/c", "ns/none"], at);
    assert.equal(specV(states.get("ns/a")), 2, "a as it was at that revision");
    assert.equal(states.get("ns/b")?.type, "ADDED");
    assert.ok(!states.has("ns/c"), "c did not exist yet");
    assert.ok(!states.has("ns/none"));
    const end = s.statesAt(R, ["ns/b", "ns/c"], s.revision);
    assert.deepEqual([end.get("ns/b")?.type, end.get("ns/c")?.type], ["DELETED", "DELETED"]);
    // b's creation is compacted away: its state before its delete is no longer told
    s.compact(cutoff);
    assert.ok(!s.statesAt(R, ["ns/b"], at).has("ns/b"));
    assert.equal(specV(s.statesAt(R, ["ns/a"], at).get("ns/a")), 2);
  } finally {
    s.close();
  }
});

test("a batch that cannot write (database locked elsewhere) stores nothing and hands out no revision", async (t) => {
  const { store } = fileStore(t);
  const base = store.revision;
  const seen: StoreEvent[] = [];
  store.subscribe((e) => seen.push(e));
  // a reader holding an open read transaction does not block a WAL writer; an exclusive lock from another
  // connection does: BEGIN IMMEDIATE elsewhere makes this batch's write fail after busy_timeout
  const other = new Database(store.db.name);
  other.pragma("busy_timeout = 0");
  other.exec("BEGIN IMMEDIATE");
  store.db.pragma("busy_timeout = 50");
  try {
    const results = await Promise.allSettled([store.createAsync(R, vm("p")), store.createAsync(R, vm("q"))]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["rejected", "rejected"],
    );
  } finally {
    other.exec("ROLLBACK");
    other.close();
  }
  assert.equal(store.revision, base);
  assert.equal(seen.length, 0);
  assert.equal(store.get(R, "ns", "p"), undefined);
  const later = await store.createAsync(R, vm("p"));
  assert.equal(rv(later), base + 1);
});

test("a write failing with SQLITE_FULL: every acknowledged write is stored with a revision, the others left none", async (t) => {
  const { store } = fileStore(t);
  await store.createAsync(R, vm("warm"));
  const base = store.revision;
  const seen: StoreEvent[] = [];
  store.subscribe((e) => seen.push(e));
  const pages = (store.db.pragma("page_count", { simple: true }) as number) + 2;
  store.db.pragma(`max_page_count = ${pages}`);
  const huge = vm("huge", { data: "x".repeat(2 * 1024 * 1024) });
  const results = await Promise.allSettled([
    store.createAsync(R, vm("s1")),
    store.createAsync(R, huge),
    store.createAsync(R, vm("s2")),
  ]);
  store.db.pragma("max_page_count = 1073741823");
  assert.equal(results[1]?.status, "rejected");
  assert.match(String((results[1] as PromiseRejectedResult).reason), /full/i);
  const names = ["s1", "huge", "s2"];
  const acked = names.filter((_, i) => results[i]?.status === "fulfilled");
  assert.equal(store.revision, base + acked.length);
  assert.deepEqual(
    seen.map((e) => [e.name, e.rv]),
    acked.map((n, i) => [n, base + 1 + i]),
  );
  for (const n of names) assert.equal(store.get(R, "ns", n) !== undefined, acked.includes(n), n);
  // and the store goes on from there
  const next = await store.createAsync(R, vm("after"));
  assert.equal(rv(next), base + acked.length + 1);
});

test("commits do not checkpoint the WAL; the background checkpointer does, and nothing is lost", async (t) => {
  const { store } = fileStore(t);
  const dbFile = store.db.name;
  // the writer's own automatic checkpoint is only a backstop, far above what this test writes
  assert.equal(store.db.pragma("wal_autocheckpoint", { simple: true }), BACKSTOP_PAGES);
  const sizeBefore = statSync(dbFile).size;
  const big = "y".repeat(2000);
  // ~1500 pages of WAL: past SQLite's default automatic checkpoint (1000 pages), far below the backstop
  for (let b = 0; b < 30; b++)
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.createAsync(R, vm(`ck-${b}-${i}`, { data: big }))));
  const deadline = Date.now() + 20_000;
  while (statSync(dbFile).size < sizeBefore + 3 * 1024 * 1024) {
    if (Date.now() > deadline) assert.fail(`the database file was never checkpointed (${statSync(dbFile).size} bytes)`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // a second connection reads every object, whether from the WAL or the database file
  const reader = new Database(dbFile, { readonly: true });
  try {
    assert.equal((reader.prepare("SELECT count(*) AS n FROM objects WHERE res = ?").get(R) as { n: number }).n, 1500);
  } finally {
    reader.close();
  }
});
