// An informer: list, then watch from the list's resourceVersion, keeping a cache the controllers read. A 410 Expired
// (or any watch failure the stream cannot resume from) leads to a relist, after which a delete is delivered for every
// cached object that vanished meanwhile. It asks for bookmarks, strips metadata.managedFields, reconnects with
// back-off, and maintains indexes (by namespace, plus custom key functions such as owner uid or a label).

import { isStatusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import type { Client, WatchHandle } from "./interface.js";
import { keyOf, type ResourceRef } from "./resources.js";
import type { KObject, WatchEvent } from "./types.js";

export type IndexFunc<T> = (obj: T) => string[];

export interface EventHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  /** `obj` is the last state known; `tombstone` is true when the delete was inferred from a relist. */
  onDelete?(obj: T, tombstone: boolean): void;
}

export interface InformerOptions<T> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  indexers?: Record<string, IndexFunc<T>>;
  log?: Logger;
  /** Server-side watch timeout per request, seconds (the informer simply rewatches). Default 300 ± jitter. */
  watchTimeoutSeconds?: number;
  /** Back-off bounds for reconnects, ms. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export const NAMESPACE_INDEX = "namespace";

/** Index function: the uids of an object's owner references. */
export function ownerUidIndex<T extends KObject>(obj: T): string[] {
  return (obj.metadata.ownerReferences ?? []).map((r) => r.uid);
}

/** Index function factory: the value of one label. */
export function labelIndex<T extends KObject>(label: string): IndexFunc<T> {
  return (obj) => {
    const v = obj.metadata.labels?.[label];
    return v === undefined ? [] : [v];
  };
}

export class Informer<T extends KObject> {
  private readonly items = new Map<string, T>();
  private readonly indices = new Map<string, Map<string, Set<string>>>();
  private readonly indexers: Record<string, IndexFunc<T>>;
  private readonly handlers: EventHandlers<T>[] = [];
  private readonly log: Logger;
  private lastRv = "";
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private running = false;
  private current: WatchHandle | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  /** Counters for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, relists: 0 };

  constructor(
    private readonly client: Client,
    readonly ref: ResourceRef,
    private readonly opts: InformerOptions<T> = {},
  ) {
    this.indexers = { [NAMESPACE_INDEX]: (o) => [o.metadata.namespace ?? ""], ...(opts.indexers ?? {}) };
    for (const name of Object.keys(this.indexers)) this.indices.set(name, new Map());
    this.log = (opts.log ?? nullLogger).child({ informer: ref.resource });
  }

  addEventHandler(h: EventHandlers<T>): void {
    this.handlers.push(h);
    if (this.synced) for (const o of this.items.values()) h.onAdd?.(o);
  }

  /** Starts the list/watch loop in the background. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop().catch((err) => this.log.error("informer loop ended", { err }));
  }

  async stop(): Promise<void> {
    this.running = false;
    this.current?.stop();
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.loopDone;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  getByName(namespace: string | undefined, name: string): T | undefined {
    return this.items.get(namespace ? `${namespace}/${name}` : name);
  }

  list(namespace?: string): T[] {
    if (namespace === undefined) return [...this.items.values()];
    return this.byIndex(NAMESPACE_INDEX, namespace);
  }

  keys(): string[] {
    return [...this.items.keys()];
  }

  byIndex(index: string, value: string): T[] {
    const keys = this.indices.get(index)?.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const k of keys) {
      const o = this.items.get(k);
      if (o) out.push(o);
    }
    return out;
  }

  /** The resourceVersion the cache reflects (last list, event or bookmark). */
  get resourceVersion(): string {
    return this.lastRv;
  }

  // ---- the loop -------------------------------------------------------------------------------------------------

  private async loop(): Promise<void> {
    let backoff = this.opts.minBackoffMs ?? 200;
    const maxBackoff = this.opts.maxBackoffMs ?? 30_000;
    let needList = true;
    while (this.running) {
      try {
        if (needList) {
          await this.relist();
          needList = false;
        }
        if (!this.running) break;
        const started = Date.now();
        const outcome = await this.watchOnce();
        if (outcome === "expired") {
          this.stats.relists++;
          needList = true;
          continue;
        }
        // A stream that ends at once (a server shutting down) is retried with back-off, not in a tight loop.
        if (Date.now() - started < 1000) {
          await this.sleep(backoff);
          backoff = Math.min(maxBackoff, backoff * 2);
        } else backoff = this.opts.minBackoffMs ?? 200;
      } catch (err) {
        if (!this.running) break;
        if (isStatusError(err) && err.code === 410) {
          this.stats.relists++;
          needList = true;
          continue;
        }
        this.log.warn("list/watch failed, retrying", { err: String(err), backoffMs: backoff });
        await this.sleep(backoff);
        backoff = Math.min(maxBackoff, backoff * 2);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (!this.running) return resolve();
      this.wake = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }

  private async relist(): Promise<void> {
    this.stats.lists++;
    const list = await this.client.list<T>(this.ref, this.opts.namespace, {
      ...(this.opts.labelSelector ? { labelSelector: this.opts.labelSelector } : {}),
      ...(this.opts.fieldSelector ? { fieldSelector: this.opts.fieldSelector } : {}),
    });
    if (!this.running) return;
    const seen = new Set<string>();
    for (const raw of list.items) {
      const o = clean(raw);
      const key = keyOf(o);
      seen.add(key);
      const old = this.items.get(key);
      this.put(key, o);
      if (!old) this.fireAdd(o);
      else if (old.metadata.resourceVersion !== o.metadata.resourceVersion) {
        this.fireUpdate(old, o);
      }
    }
    for (const [key, old] of [...this.items]) {
      if (seen.has(key)) continue;
      this.drop(key);
      this.fireDelete(old, true);
    }
    this.lastRv = list.metadata.resourceVersion ?? "";
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  /** One watch request; resolves "closed" when the server ends it, "expired" on a 410 ERROR event. */
  private watchOnce(): Promise<"closed" | "expired"> {
    this.stats.watches++;
    let expired = false;
    const timeout = this.opts.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
    const handle = this.client.watch<T>(
      this.ref,
      this.opts.namespace,
      {
        resourceVersion: this.lastRv,
        allowWatchBookmarks: true,
        timeoutSeconds: timeout,
        ...(this.opts.labelSelector ? { labelSelector: this.opts.labelSelector } : {}),
        ...(this.opts.fieldSelector ? { fieldSelector: this.opts.fieldSelector } : {}),
      },
      (ev) => {
        if (ev.type === "ERROR") {
          const st = ev.object as unknown as { code?: number; message?: string };
          if (st.code === 410) expired = true;
          else this.log.warn("watch error event", { status: st });
          handle.stop();
          return;
        }
        this.apply(ev);
      },
    );
    this.current = handle;
    return handle.done.then(() => {
      if (this.running && expired) return "expired";
      return "closed";
    });
  }

  private apply(ev: WatchEvent<T>): void {
    const rv = ev.object?.metadata?.resourceVersion;
    if (ev.type === "BOOKMARK") {
      if (rv) this.lastRv = rv;
      return;
    }
    const o = clean(ev.object);
    const key = keyOf(o);
    const old = this.items.get(key);
    if (ev.type === "DELETED") {
      if (old) this.drop(key);
      this.fireDelete(o, false);
    } else {
      this.put(key, o);
      if (old) this.fireUpdate(old, o);
      else this.fireAdd(o);
    }
    if (rv) this.lastRv = rv;
  }

  private fireAdd(o: T): void {
    for (const h of this.handlers) h.onAdd?.(o);
  }
  private fireUpdate(old: T, o: T): void {
    for (const h of this.handlers) h.onUpdate?.(old, o);
  }
  private fireDelete(o: T, tombstone: boolean): void {
    for (const h of this.handlers) h.onDelete?.(o, tombstone);
  }

  private put(key: string, o: T): void {
    const old = this.items.get(key);
    if (old) this.unindex(key, old);
    this.items.set(key, o);
    for (const [name, fn] of Object.entries(this.indexers)) {
      const idx = this.indices.get(name)!;
      for (const v of fn(o)) {
        let s = idx.get(v);
        if (!s) {
          s = new Set();
          idx.set(v, s);
        }
        s.add(key);
      }
    }
  }

  private drop(key: string): void {
    const old = this.items.get(key);
    if (!old) return;
    this.unindex(key, old);
    this.items.delete(key);
  }

  private unindex(key: string, o: T): void {
    for (const [name, fn] of Object.entries(this.indexers)) {
      const idx = this.indices.get(name)!;
      for (const v of fn(o)) {
        const s = idx.get(v);
        s?.delete(key);
        if (s && s.size === 0) idx.delete(v);
      }
    }
  }
}

/** Cached objects carry no managedFields (they are large and no controller reads them); frozen in spirit. */
function clean<T extends KObject>(o: T): T {
  if (o.metadata?.managedFields === undefined) return o;
  const { managedFields: _drop, ...meta } = o.metadata;
  return { ...o, metadata: meta };
}
