// The object store: SQLite (better-sqlite3) in WAL mode, one global revision that is every object's
// resourceVersion, compare-and-swap on every write, and an event log that watches resume from.
//
// Durability choice: journal_mode=WAL with synchronous=NORMAL. In WAL mode a commit appends the transaction's
// pages to the -wal file with write(2) before better-sqlite3 returns; the bytes are then in the kernel's page
// cache, which survives the death of the process (kill -9, crash, OOM kill). Only an operating-system crash or
// power loss can drop the last few transactions, because NORMAL skips the fsync at every commit (the WAL is
// fsynced at checkpoints). So no acknowledged write is lost on kill -9, and a write costs no fsync.
// synchronous=FULL would add one fsync per commit to also survive power loss, at several times the latency.
//
// Every revision is the key of the event row written in the same transaction as the write it numbers, so after any
// restart the newest revision is the log's largest key, or the compaction floor once the log is empty (`meta`
// keeps that floor): the next revision is above every revision ever acknowledged. Dry runs never take a revision.
// (No counter row is rewritten per commit: each commit writes one page fewer.)
//
// Group commit: the request path writes through createAsync/updateAsync/deleteAsync. Every such write queued during
// one turn of the event loop commits in ONE SQLite transaction at the next check phase (setImmediate). Each write
// keeps its own compare-and-swap check (run inside that transaction, so it sees the writes queued before it) and its
// own revision; a write whose check fails rolls back to its own savepoint and fails alone. The promises settle only
// after COMMIT returned, and the batch's events are emitted in revision order right after the commit, so no write
// is acknowledged or seen by a watcher before it is durable. BEGIN/COMMIT and the WAL append are paid once per batch.
import Database from "better-sqlite3";
import { BACKSTOP_PAGES, Checkpointer } from "./checkpointer.js";

export type Obj = Record<string, unknown> & {
  metadata?: Record<string, unknown> & { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
};

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

export interface StoreEvent {
  type: EventType;
  rv: number;
  /** group/plural of the resource (version independent) */
  resource: string;
  namespace: string;
  name: string;
  object: Obj;
  /** the previous state (MODIFIED, DELETED), when known (live events only) */
  prev?: Obj;
}

export type StoreErrorCode = "exists" | "conflict" | "notfound";
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly currentRv: number;
  constructor(code: StoreErrorCode, currentRv = 0) {
    super(`store: ${code}`);
    this.code = code;
    this.currentRv = currentRv;
  }
}

/** A write of a group commit that failed on its own (its savepoint was rolled back). */
class BatchFailure {
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

export interface StoreOptions {
  /** SQLite file; omitted or ":memory:" for an in-memory store (tests) */
  path?: string;
  /** synchronous pragma; default NORMAL (see the header comment) */
  synchronous?: "OFF" | "NORMAL" | "FULL" | "EXTRA";
  /** WAL checkpoints in a worker thread (checkpointer.ts) rather than inside commits; default true for files */
  backgroundCheckpoints?: boolean;
}

export interface ListOptions {
  namespace?: string;
  /** exclusive start key "namespace/name" */
  after?: string;
  limit?: number;
}

/** A MODIFIED event; its previous state is parsed only when a reader asks for it (watches with selectors). */
class ModifiedEvent implements StoreEvent {
  readonly type = "MODIFIED";
  readonly rv: number;
  readonly resource: string;
  readonly namespace: string;
  readonly name: string;
  readonly object: Obj;
  readonly #prevText: string;
  #prev: Obj | undefined;
  constructor(rv: number, resource: string, namespace: string, name: string, object: Obj, prevText: string) {
    this.rv = rv;
    this.resource = resource;
    this.namespace = namespace;
    this.name = name;
    this.object = object;
    this.#prevText = prevText;
  }
  get prev(): Obj {
    this.#prev ??= JSON.parse(this.#prevText) as Obj;
    return this.#prev;
  }
}

/** One write waiting for the group commit. `run` executes inside the batch's transaction. */
interface QueuedWrite {
  run: () => StoreEvent;
  resolve: (e: StoreEvent) => void;
  reject: (e: unknown) => void;
}

interface Row {
  ns: string;
  name: string;
  rv: number;
  data: string;
}

interface KeyRow {
  rv: number;
  ns: string;
  name: string;
  type: EventType;
}

interface EventRow {
  rv: number;
  res: string;
  ns: string;
  name: string;
  type: EventType;
  data: string;
}

export class Store {
  readonly db: Database.Database;
  readonly synchronous: string;
  #rev: number;
  #compacted: number;
  #subs = new Set<(e: StoreEvent) => void>();
  #st: ReturnType<Store["prepare"]>;
  // built once: better-sqlite3's transaction() allocates four wrappers per call
  readonly #txCreate: (resource: string, obj: Obj) => StoreEvent;
  readonly #txUpdate: (resource: string, obj: Obj, expectedRv: number) => StoreEvent;
  readonly #txDelete: (resource: string, namespace: string, name: string, expectedRv: number) => StoreEvent;
  readonly #txBatch: (batch: readonly QueuedWrite[], out: (StoreEvent | unknown)[]) => void;
  /** writes waiting for the next group commit */
  #queue: QueuedWrite[] = [];
  /** object → the JSON text written for it (see serialized()) */
  readonly #texts = new WeakMap<object, string>();
  #flushScheduled = false;
  #checkpointer: Checkpointer | undefined;
  #batches = 0;
  #batchedWrites = 0;

  constructor(opts: StoreOptions = {}) {
    const path = opts.path ?? ":memory:";
    this.db = new Database(path);
    if (path !== ":memory:") this.db.pragma("journal_mode = WAL");
    if (path !== ":memory:" && opts.backgroundCheckpoints !== false) {
      this.db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
      this.#checkpointer = new Checkpointer(path);
    }
    this.synchronous = opts.synchronous ?? "NORMAL";
    this.db.pragma(`synchronous = ${this.synchronous}`);
    this.db.pragma("busy_timeout = 5000");
    // 4 MiB of page cache instead of SQLite's 16 MiB: 10k VMs take about 4 MiB on disk, and pages that miss it are
    // read from the OS page cache in microseconds, so the larger cache mostly grew the server's RSS (bench:scale).
    this.db.pragma("cache_size = -4000");
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS objects (res TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL,
        rv INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (res, ns, name)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS objects_uid ON objects (uid);
      DROP INDEX IF EXISTS objects_ns;
      CREATE TABLE IF NOT EXISTS events (rv INTEGER PRIMARY KEY, res TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
        type TEXT NOT NULL, ts INTEGER NOT NULL, data TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS events_res ON events (res, rv);
      CREATE TABLE IF NOT EXISTS owners (owner TEXT NOT NULL, res TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
        PRIMARY KEY (owner, res, ns, name)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS owners_obj ON owners (res, ns, name);
      INSERT OR IGNORE INTO meta (k, v) VALUES ('rev', 1), ('compacted', 0);
    `);
    this.#st = this.prepare();
    this.#txCreate = this.db.transaction((resource: string, obj: Obj) => this.#createTx(resource, obj));
    this.#txUpdate = this.db.transaction((resource: string, obj: Obj, rv: number) => this.#updateTx(resource, obj, rv));
    this.#txDelete = this.db.transaction((resource: string, ns: string, name: string, rv: number) =>
      this.#deleteTx(resource, ns, name, rv),
    );
    // Each write runs through its own nested transaction (a SAVEPOINT inside the batch's BEGIN ... COMMIT), so a
    // failed check or statement undoes only that write; its error is recorded and the batch goes on.
    // Some errors (SQLITE_FULL, SQLITE_IOERR, ...) make SQLite roll the whole transaction back by itself: then the
    // batch is over (a later write must not run, let alone autocommit on its own) and every write in it fails.
    this.#txBatch = this.db.transaction((batch: readonly QueuedWrite[], out: (StoreEvent | unknown)[]) => {
      for (const w of batch) {
        try {
          out.push(w.run());
        } catch (e) {
          if (!this.db.inTransaction) throw e;
          out.push(new BatchFailure(e));
        }
      }
    });
    this.#compacted = (this.#st.getMeta.get("compacted") as { v: number }).v;
    const logged = (this.#st.maxEvent.get() as { m: number | null }).m ?? 0;
    // (`rev` in meta: where stores written before the log carried the revision left it)
    this.#rev = Math.max(logged, this.#compacted, (this.#st.getMeta.get("rev") as { v: number }).v);
  }

  private prepare() {
    const db = this.db;
    return {
      getMeta: db.prepare("SELECT v FROM meta WHERE k = ?"),
      setMeta: db.prepare("UPDATE meta SET v = ? WHERE k = ?"),
      get: db.prepare("SELECT ns, name, rv, data FROM objects WHERE res = ? AND ns = ? AND name = ?"),
      byUid: db.prepare("SELECT res, ns, name, rv, data FROM objects WHERE uid = ?"),
      insert: db.prepare("INSERT INTO objects (res, ns, name, uid, rv, data) VALUES (?, ?, ?, ?, ?, ?)"),
      update: db.prepare("UPDATE objects SET rv = ?, data = ?, uid = ? WHERE res = ? AND ns = ? AND name = ?"),
      del: db.prepare("DELETE FROM objects WHERE res = ? AND ns = ? AND name = ?"),
      event: db.prepare("INSERT INTO events (rv, res, ns, name, type, ts, data) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      ownersDel: db.prepare("DELETE FROM owners WHERE res = ? AND ns = ? AND name = ?"),
      ownersAdd: db.prepare("INSERT OR IGNORE INTO owners (owner, res, ns, name) VALUES (?, ?, ?, ?)"),
      dependents: db.prepare("SELECT res, ns, name FROM owners WHERE owner = ?"),
      orphans: db.prepare(
        "SELECT DISTINCT owner FROM owners WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.uid = owners.owner)",
      ),
      listAll: db.prepare(
        "SELECT ns, name, rv, data FROM objects WHERE res = ? AND (ns, name) > (?, ?) ORDER BY ns, name LIMIT ?",
      ),
      listNs: db.prepare(
        "SELECT ns, name, rv, data FROM objects WHERE res = ? AND ns = ? AND name > ? ORDER BY name LIMIT ?",
      ),
      // the resources present, one primary-key seek each (a skip scan)
      nextRes: db.prepare("SELECT res FROM objects WHERE res > ? ORDER BY res LIMIT 1"),
      countNs: db.prepare("SELECT count(*) AS n FROM objects WHERE res = ? AND ns = ?"),
      maxEvent: db.prepare("SELECT max(rv) AS m FROM events"),
      eventsSince: db.prepare("SELECT rv, res, ns, name, type, data FROM events WHERE res = ? AND rv > ? ORDER BY rv"),
      // newest first, keys only: a watch replay's search for objects' states at its start revision
      keysBefore: db.prepare("SELECT rv, ns, name, type FROM events WHERE res = ? AND rv <= ? ORDER BY rv DESC"),
      eventData: db.prepare("SELECT data FROM events WHERE rv = ?"),
      eventAtOrAfter: db.prepare("SELECT rv, ts FROM events WHERE rv >= ? ORDER BY rv LIMIT 1"),
      compactDel: db.prepare("DELETE FROM events WHERE rv <= ?"),
      count: db.prepare("SELECT count(*) AS n FROM objects WHERE res = ?"),
    };
  }

  /** The newest revision handed out. */
  get revision(): number {
    return this.#rev;
  }
  /** Events at or below this revision are gone from the log. */
  get compactedRevision(): number {
    return this.#compacted;
  }

  get(resource: string, namespace: string, name: string): Obj | undefined {
    const row = this.#st.get.get(resource, namespace, name) as Row | undefined;
    return row ? (JSON.parse(row.data) as Obj) : undefined;
  }

  /** The stored JSON text of an object, unparsed. */
  getText(resource: string, namespace: string, name: string): string | undefined {
    return (this.#st.get.get(resource, namespace, name) as Row | undefined)?.data;
  }

  /**
   * The JSON text the store wrote (or logged) for this very object, if it is one the store handed out with a write
   * or an event: readers serialize it once, not again. (Objects from the store are not changed after the fact.)
   */
  serialized(obj: object): string | undefined {
    return this.#texts.get(obj);
  }

  getByUid(uid: string): { resource: string; object: Obj } | undefined {
    const row = this.#st.byUid.get(uid) as (Row & { res: string }) | undefined;
    return row ? { resource: row.res, object: JSON.parse(row.data) as Obj } : undefined;
  }

  /** Objects of one resource, ordered by namespace then name. */
  list(resource: string, opts: ListOptions = {}): Obj[] {
    const limit = opts.limit ?? -1;
    let rows: Row[];
    if (opts.namespace !== undefined) {
      let after = "";
      if (opts.after) after = opts.after.slice(opts.after.indexOf("/") + 1);
      rows = this.#st.listNs.all(resource, opts.namespace, after, limit) as Row[];
    } else {
      let ns = "";
      let name = "";
      if (opts.after) {
        const i = opts.after.indexOf("/");
        ns = opts.after.slice(0, i);
        name = opts.after.slice(i + 1);
      }
      rows = this.#st.listAll.all(resource, ns, name, limit) as Row[];
    }
    return rows.map((r) => {
      const o = JSON.parse(r.data) as Obj;
      this.#texts.set(o, r.data); // list answers and a watch's initial events send the stored text
      return o;
    });
  }

  count(resource: string): number {
    return (this.#st.count.get(resource) as { n: number }).n;
  }

  /** resource → number of objects in a namespace */
  countInNamespace(namespace: string): Map<string, number> {
    const out = new Map<string, number>();
    for (let r = this.#st.nextRes.get("") as { res: string } | undefined; r; r = this.#st.nextRes.get(r.res) as never) {
      const n = (this.#st.countNs.get(r.res, namespace) as { n: number }).n;
      if (n > 0) out.set(r.res, n);
    }
    return out;
  }

  dependents(ownerUid: string): { resource: string; namespace: string; name: string }[] {
    return (this.#st.dependents.all(ownerUid) as { res: string; ns: string; name: string }[]).map((r) => ({
      resource: r.res,
      namespace: r.ns,
      name: r.name,
    }));
  }

  /** Owner uids that some object references but no stored object carries. */
  missingOwners(): string[] {
    return (this.#st.orphans.all() as { owner: string }[]).map((r) => r.owner);
  }

  /** Creates; the object's metadata.resourceVersion is set to the new revision. Throws StoreError("exists"). */
  create(resource: string, obj: Obj): Obj {
    const ev = this.#txCreate(resource, obj);
    this.#emit(ev);
    return obj;
  }

  #createTx(resource: string, obj: Obj): StoreEvent {
    const md = obj.metadata ?? {};
    const ns = md.namespace ?? "";
    const name = md.name ?? "";
    const rev = this.#rev + 1;
    md.resourceVersion = String(rev);
    const data = JSON.stringify(obj);
    try {
      this.#st.insert.run(resource, ns, name, md.uid ?? "", rev, data);
    } catch (e) {
      // the primary key (res, ns, name) is the existence check
      if ((e as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
        const cur = this.#st.get.get(resource, ns, name) as Row | undefined;
        throw new StoreError("exists", cur?.rv ?? 0);
      }
      throw e;
    }
    // a new object has no owner rows yet (delete removes them)
    this.#writeOwners(resource, ns, name, obj, false);
    this.#st.event.run(rev, resource, ns, name, "ADDED", Date.now(), data);
    this.#rev = rev;
    this.#texts.set(obj, data);
    return { type: "ADDED", rv: rev, resource, namespace: ns, name, object: obj };
  }

  /**
   * Replaces the stored object if its revision is still `expectedRv` (compare-and-swap).
   * Throws StoreError("notfound") or StoreError("conflict").
   */
  update(resource: string, obj: Obj, expectedRv: number): Obj {
    const ev = this.#txUpdate(resource, obj, expectedRv);
    this.#emit(ev);
    return obj;
  }

  #updateTx(resource: string, obj: Obj, expectedRv: number): StoreEvent {
    const md = obj.metadata ?? {};
    const ns = md.namespace ?? "";
    const name = md.name ?? "";
    const cur = this.#st.get.get(resource, ns, name) as Row | undefined;
    if (!cur) throw new StoreError("notfound");
    if (cur.rv !== expectedRv) throw new StoreError("conflict", cur.rv);
    const rev = this.#rev + 1;
    md.resourceVersion = String(rev);
    const data = JSON.stringify(obj);
    this.#st.update.run(rev, data, md.uid ?? "", resource, ns, name);
    this.#writeOwners(resource, ns, name, obj, cur.data.includes('"ownerReferences"'));
    this.#st.event.run(rev, resource, ns, name, "MODIFIED", Date.now(), data);
    this.#rev = rev;
    this.#texts.set(obj, data);
    return new ModifiedEvent(rev, resource, ns, name, obj, cur.data);
  }

  /** Deletes if the stored revision is still `expectedRv`. The DELETED event carries the last state at a new revision. */
  delete(resource: string, namespace: string, name: string, expectedRv: number): Obj {
    const ev = this.#txDelete(resource, namespace, name, expectedRv);
    this.#emit(ev);
    return ev.object;
  }

  #deleteTx(resource: string, namespace: string, name: string, expectedRv: number): StoreEvent {
    const cur = this.#st.get.get(resource, namespace, name) as Row | undefined;
    if (!cur) throw new StoreError("notfound");
    if (cur.rv !== expectedRv) throw new StoreError("conflict", cur.rv);
    const last = JSON.parse(cur.data) as Obj;
    const rev = this.#rev + 1;
    // The DELETED event carries the object's last state with the deletion's revision, as etcd-backed servers do.
    if (last.metadata) last.metadata.resourceVersion = String(rev);
    this.#st.del.run(resource, namespace, name);
    this.#st.ownersDel.run(resource, namespace, name);
    const data = JSON.stringify(last);
    this.#st.event.run(rev, resource, namespace, name, "DELETED", Date.now(), data);
    this.#rev = rev;
    this.#texts.set(last, data);
    return { type: "DELETED", rv: rev, resource, namespace, name, object: last };
  }

  // ---------- group commit

  /** create(), committed with the other writes of this event-loop turn; settles after COMMIT. */
  createAsync(resource: string, obj: Obj): Promise<Obj> {
    return this.#enqueue(() => this.#txCreate(resource, obj)).then(() => obj);
  }

  /** update(), committed with the other writes of this event-loop turn; settles after COMMIT. */
  updateAsync(resource: string, obj: Obj, expectedRv: number): Promise<Obj> {
    return this.#enqueue(() => this.#txUpdate(resource, obj, expectedRv)).then(() => obj);
  }

  /** delete(), committed with the other writes of this event-loop turn; settles after COMMIT. */
  deleteAsync(resource: string, namespace: string, name: string, expectedRv: number): Promise<Obj> {
    return this.#enqueue(() => this.#txDelete(resource, namespace, name, expectedRv)).then((e) => e.object);
  }

  /** Group commits so far and the writes they carried (tests, metrics). */
  get groupCommits(): { batches: number; writes: number } {
    return { batches: this.#batches, writes: this.#batchedWrites };
  }

  #enqueue(run: () => StoreEvent): Promise<StoreEvent> {
    if (!this.db.open) return Promise.reject(new Error("store: closed"));
    return new Promise<StoreEvent>((resolve, reject) => {
      this.#queue.push({ run, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Commits every queued write in one transaction, then emits their events in revision order and settles them. */
  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    if (!this.db.open) {
      for (const w of batch) w.reject(new Error("store: closed"));
      return;
    }
    const rev0 = this.#rev;
    const out: (StoreEvent | unknown)[] = [];
    try {
      this.#txBatch(batch, out);
    } catch (e) {
      // COMMIT (or BEGIN) failed: nothing of the batch is stored and no revision of it was handed out
      this.#rev = rev0;
      for (const w of batch) w.reject(e);
      return;
    }
    this.#batches++;
    this.#batchedWrites += batch.length;
    for (const r of out) if (!(r instanceof BatchFailure)) this.#emit(r as StoreEvent);
    for (let i = 0; i < batch.length; i++) {
      const r = out[i];
      const w = batch[i] as QueuedWrite;
      if (r instanceof BatchFailure) w.reject(r.error);
      else w.resolve(r as StoreEvent);
    }
  }

  /** Keeps the owners index in step; `hadOwners` false skips clearing rows the object cannot have. */
  #writeOwners(resource: string, ns: string, name: string, obj: Obj, hadOwners: boolean): void {
    if (hadOwners) this.#st.ownersDel.run(resource, ns, name);
    const refs = (obj.metadata as { ownerReferences?: { uid?: unknown }[] } | undefined)?.ownerReferences;
    if (!Array.isArray(refs)) return;
    for (const r of refs)
      if (r && typeof r.uid === "string" && r.uid) this.#st.ownersAdd.run(r.uid, resource, ns, name);
  }

  /** Logged events of one resource with revision > rv, in order. */
  eventsSince(resource: string, rv: number): StoreEvent[] {
    return (this.#st.eventsSince.all(resource, rv) as EventRow[]).map((r) => {
      const object = JSON.parse(r.data) as Obj;
      this.#texts.set(object, r.data);
      return { type: r.type, rv: r.rv, resource: r.res, namespace: r.ns, name: r.name, object };
    });
  }

  /**
   * The last logged event at or before revision `rv` of each of `keys` ("namespace/name"): the object's state at
   * `rv` (gone if that event is a DELETED). A key the log no longer tells (its last write at or before `rv` was
   * compacted away, or it had none) is absent from the answer. A watch that resumes from `rv` with a selector needs
   * these to tell which objects its client holds.
   */
  statesAt(resource: string, keys: Iterable<string>, rv: number): Map<string, { type: EventType; object: Obj }> {
    const want = new Set(keys);
    const found = new Map<string, { rv: number; type: EventType }>();
    if (want.size > 0 && rv > this.#compacted) {
      // newest first over this resource's log only (its index), stopping once every key is found
      for (const r of this.#st.keysBefore.iterate(resource, rv) as Iterable<KeyRow>) {
        const key = `${r.ns}/${r.name}`;
        if (!want.has(key) || found.has(key)) continue;
        found.set(key, { rv: r.rv, type: r.type });
        if (found.size === want.size) break;
      }
    }
    const out = new Map<string, { type: EventType; object: Obj }>();
    for (const [key, e] of found) {
      const data = (this.#st.eventData.get(e.rv) as { data: string }).data;
      const object = JSON.parse(data) as Obj;
      this.#texts.set(object, data);
      out.set(key, { type: e.type, object });
    }
    return out;
  }

  /** Drops logged events written before `beforeMs` (epoch ms). Watches from below the new floor get 410 Expired. */
  compact(beforeMs: number): number {
    // The log is appended in revision order with the time of each write, so the newest event older than
    // `beforeMs` is found by bisecting revisions on the primary key: a scan of the time column (no index on it,
    // which every write would pay for) blocked the event loop for tens of milliseconds on a large log.
    let lo = this.#compacted;
    let hi = this.#rev;
    while (lo < hi) {
      const mid = lo + Math.ceil((hi - lo) / 2);
      const e = this.#st.eventAtOrAfter.get(mid) as { rv: number; ts: number } | undefined;
      if (e && e.ts < beforeMs && e.rv <= hi) lo = e.rv;
      else hi = mid - 1;
    }
    const m = lo;
    if (m <= this.#compacted) return this.#compacted;
    this.db.transaction(() => {
      this.#st.compactDel.run(m);
      this.#st.setMeta.run(m, "compacted");
      this.#st.setMeta.run(this.#rev, "rev");
    })();
    this.#compacted = m;
    return m;
  }

  /** Called synchronously after every committed write, in revision order. */
  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.#subs.add(fn);
    return () => this.#subs.delete(fn);
  }

  #emit(e: StoreEvent): void {
    for (const fn of this.#subs) {
      try {
        fn(e);
      } catch {
        // a subscriber's failure is its own; the write is committed
      }
    }
  }

  close(): void {
    // writes already queued are committed (their callers wait for them); later ones are refused
    if (this.db.open) this.#flush();
    this.#checkpointer?.close();
    this.#subs.clear();
    if (this.db.open) this.db.close();
  }

  /** settles once nothing of this store touches its files any more (after close(): the checkpointer has ended) */
  get closed(): Promise<void> {
    return this.#checkpointer?.exited ?? Promise.resolve();
  }
}
