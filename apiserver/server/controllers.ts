// The in-process controllers an embedded API server needs: garbage collection through ownerReferences
// (background and foreground), namespace deletion that empties the namespace first, the one-hour event TTL and
// compaction of the watch event log. All are level-triggered: a restart rescans and converges.

import type { UnstructuredObject as KObj } from "../../api/index.js";
import type { Logger } from "../../lib/log.js";
import type { StoreEvent } from "../storage/store.js";
import type { Rest } from "./rest.js";

export interface ControllerOptions {
  rest: Rest;
  log: Logger;
  eventTtlSeconds: number;
  historySeconds: number;
  /** period of the full rescans (namespaces, orphans, event TTL, compaction) */
  resyncMs: number;
}

export class Controllers {
  readonly #o: ControllerOptions;
  #pendingOwners = new Set<string>();
  #pendingNamespaces = new Set<string>();
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;
  #unsub: () => void = () => {};
  #running = false;
  #stopped = false;

  constructor(o: ControllerOptions) {
    this.#o = o;
  }

  start(): void {
    this.#unsub = this.#o.rest.store.subscribe((e) => this.#onEvent(e));
    this.#resync();
  }

  stop(): void {
    this.#stopped = true;
    this.#unsub();
    if (this.#timer) clearTimeout(this.#timer);
  }

  #onEvent(e: StoreEvent): void {
    const md = (e.object as KObj).metadata;
    if (e.type === "DELETED" && md.uid) this.#pendingOwners.add(md.uid);
    if (
      e.type === "MODIFIED" &&
      md.deletionTimestamp &&
      (md.finalizers ?? []).includes("foregroundDeletion") &&
      md.uid
    ) {
      this.#pendingOwners.add(md.uid);
    }
    if (e.type === "DELETED" && md.ownerReferences)
      for (const ref of md.ownerReferences) this.#pendingOwners.add(ref.uid);
    if (e.resource === "/namespaces" && md.deletionTimestamp && md.name) this.#pendingNamespaces.add(md.name);
    if (e.type === "DELETED" && e.namespace) this.#pendingNamespaces.add(e.namespace);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#run();
    });
  }

  async #run(): Promise<void> {
    if (this.#running || this.#stopped) {
      if (!this.#stopped) setTimeout(() => this.#schedule(), 10);
      return;
    }
    this.#running = true;
    try {
      const owners = [...this.#pendingOwners];
      this.#pendingOwners.clear();
      for (const uid of owners) await this.#collect(uid);
      const nss = [...this.#pendingNamespaces];
      this.#pendingNamespaces.clear();
      for (const ns of nss) await this.#namespace(ns);
    } catch (e) {
      this.#o.log.error("controller pass failed", { err: e });
    } finally {
      this.#running = false;
    }
  }

  /** Dependents of `uid`: deleted when no owner is left; a foreground-deleting owner waits for them. */
  async #collect(uid: string): Promise<void> {
    const { rest } = this.#o;
    const store = rest.store;
    const owner = store.getByUid(uid);
    const deps = store.dependents(uid);
    if (owner) {
      const md = (owner.object as KObj).metadata;
      if (!md.deletionTimestamp || !(md.finalizers ?? []).includes("foregroundDeletion")) return;
      if (deps.length === 0) {
        rest.removeFinalizer(owner.resource, md.namespace ?? "", md.name ?? "", "foregroundDeletion");
        return;
      }
      for (const d of deps) {
        const cur = store.get(d.resource, d.namespace, d.name) as KObj | undefined;
        if (cur && !cur.metadata.deletionTimestamp)
          await rest.systemDelete(d.resource, d.namespace, d.name, "Foreground");
      }
      return;
    }
    for (const d of deps) {
      const cur = store.get(d.resource, d.namespace, d.name) as KObj | undefined;
      if (!cur || cur.metadata.deletionTimestamp) continue;
      const refs = cur.metadata.ownerReferences ?? [];
      // an object goes only when every owner is gone
      if (refs.some((ref) => ref.uid !== uid && store.getByUid(ref.uid))) continue;
      await rest.systemDelete(d.resource, d.namespace, d.name, "Background");
    }
  }

  async #namespace(name: string): Promise<void> {
    const { rest } = this.#o;
    const store = rest.store;
    const ns = store.get("/namespaces", "", name) as KObj | undefined;
    if (!ns?.metadata.deletionTimestamp) return;
    const counts = store.countInNamespace(name);
    let left = 0;
    for (const [res, n] of counts) {
      left += n;
      for (const o of store.list(res, { namespace: name })) {
        const md = (o as KObj).metadata;
        if (!md.deletionTimestamp) await rest.systemDelete(res, name, md.name ?? "", "Background");
      }
    }
    if (left > 0) return;
    const cur = store.get("/namespaces", "", name) as KObj | undefined;
    if (!cur) return;
    try {
      store.delete("/namespaces", "", name, Number(cur.metadata.resourceVersion));
    } catch {
      this.#pendingNamespaces.add(name);
    }
  }

  #resync(): void {
    if (this.#stopped) return;
    const { rest, log } = this.#o;
    const store = rest.store;
    try {
      for (const uid of store.missingOwners()) this.#pendingOwners.add(uid);
      for (const o of store.list("/namespaces")) {
        const md = (o as KObj).metadata;
        if (md.deletionTimestamp && md.name) this.#pendingNamespaces.add(md.name);
        if ((md.finalizers ?? []).includes("foregroundDeletion") && md.uid) this.#pendingOwners.add(md.uid);
      }
      // event TTL (kube-apiserver's --event-ttl, one hour)
      const cutoff = Date.now() - this.#o.eventTtlSeconds * 1000;
      for (const o of store.list("/events")) {
        const e = o as KObj & { lastTimestamp?: string; eventTime?: string };
        const t = Date.parse(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? "");
        if (!Number.isNaN(t) && t < cutoff) {
          try {
            store.delete(
              "/events",
              e.metadata.namespace ?? "",
              e.metadata.name ?? "",
              Number(e.metadata.resourceVersion),
            );
          } catch {
            // changed meanwhile
          }
        }
      }
      store.compact(Date.now() - this.#o.historySeconds * 1000);
    } catch (e) {
      log.error("resync failed", { err: e });
    }
    this.#schedule();
    this.#timer = setTimeout(() => this.#resync(), this.#o.resyncMs);
    this.#timer.unref();
  }
}
