// FakeClient: an in-memory API for unit tests. Objects get uids, resourceVersions and creation timestamps; writes
// check resourceVersion preconditions; watches replay the event log from a resourceVersion and then follow; every
// call is recorded as an Action; reactors (like client-go's PrependReactor) can answer or fail any verb first.

import { randomUUID } from "node:crypto";
import {
  alreadyExists,
  conflict,
  expired,
  invalid as invalidError,
  isStatusError,
  notFound,
  type StatusError,
  statusError,
} from "../lib/errors.js";
import { applyJsonPatch } from "../lib/jsonpatch.js";
import { applyMergePatch } from "../lib/mergepatch.js";
import {
  type FieldTerm,
  type LabelSelector,
  parseFieldSelectorTerms,
  parseLabelSelector,
  selectionEvent,
} from "../lib/selectors.js";
import type {
  Client,
  DeleteOptions,
  ListOptions,
  PatchOptions,
  PatchType,
  WatchHandle,
  WatchHandler,
  WatchOptions,
  WriteOptions,
} from "./interface.js";
import { apiVersionOf, keyOf, type ResourceRef } from "./resources.js";
import type { KList, KObject, Pod, WatchEvent, WatchEventType } from "./types.js";

export type Verb =
  | "get"
  | "list"
  | "create"
  | "update"
  | "updateStatus"
  | "patch"
  | "delete"
  | "watch"
  | "createSubresource"
  | "putSubresource"
  | "getPath";

export interface Action {
  verb: Verb;
  resource: string;
  namespace: string | undefined;
  name?: string;
  subresource?: string;
  object?: unknown;
  patchType?: PatchType;
  patch?: unknown;
  options?: unknown;
}

/** A reactor returns undefined to pass, `{ error }` to fail the call, or `{ result }` to answer it. */
export type Reactor = (action: Action) => { error?: Error; result?: unknown } | undefined;

const withStatusSubresource = new Set([
  "virtualmachines",
  "virtualmachineinstancereplicasets",
  "virtualmachineinstancemigrations",
  "pods",
  "cdiconfigs",
  "nodes",
  "namespaces",
  "persistentvolumeclaims",
  "persistentvolumes",
  "datavolumes",
]);

const NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789";

function randomSuffix(n = 5): string {
  let s = "";
  for (let i = 0; i < n; i++) s += NAME_CHARS[Math.floor(Math.random() * NAME_CHARS.length)];
  return s;
}

interface LogEntry {
  rv: number;
  resource: string;
  type: WatchEventType;
  object: KObject;
  /** the state before a MODIFIED (a selector's watch tells coming to match and ceasing to match from it) */
  prev?: KObject;
}

interface Watcher {
  resource: string;
  namespace: string | undefined;
  selector: LabelSelector;
  bookmarks: boolean;
  onEvent: WatchHandler<KObject>;
  end: (err?: Error) => void;
}

export class FakeClient implements Client {
  private readonly stores = new Map<string, Map<string, KObject>>();
  private rv = 0;
  private log: LogEntry[] = [];
  private compactedRv = 0;
  private readonly watchers = new Set<Watcher>();
  private readonly reactors: { verb: Verb | "*"; resource: string; fn: Reactor }[] = [];
  readonly actions: Action[] = [];
  /** Clock for timestamps. */
  now: () => Date = () => new Date();

  /** Puts objects into the store directly (no action recorded), as tests seed a fake clientset. */
  seed<T extends KObject>(ref: ResourceRef, ...objs: T[]): T[] {
    return objs.map((o) => this.store(ref, this.fill(ref, structuredClone(o)), "ADDED") as T);
  }

  prependReactor(verb: Verb | "*", resource: string, fn: Reactor): void {
    this.reactors.unshift({ verb, resource, fn });
  }

  clearActions(): void {
    this.actions.length = 0;
  }

  /** Actions other than get/list/watch, as KubeVirt's tests filter them. */
  writes(): Action[] {
    return this.actions.filter((a) => a.verb !== "get" && a.verb !== "list" && a.verb !== "watch");
  }

  /** The stored object, or undefined, without recording an action. */
  peek<T extends KObject>(ref: ResourceRef, namespace: string | undefined, name: string): T | undefined {
    const o = this.bucket(ref).get(namespace && ref.namespaced ? `${namespace}/${name}` : name);
    return o ? (structuredClone(o) as T) : undefined;
  }

  all<T extends KObject>(ref: ResourceRef): T[] {
    return [...this.bucket(ref).values()].map((o) => structuredClone(o) as T);
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Sends a BOOKMARK at the current resourceVersion to every watcher that asked for bookmarks. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (w.bookmarks) {
        w.onEvent({ type: "BOOKMARK", object: { kind: "", metadata: { resourceVersion: String(this.rv) } } });
      }
    }
  }

  /** Forgets the event log: a watch from an older resourceVersion now gets 410 Expired. */
  compact(): void {
    this.compactedRv = this.rv;
    this.log = [];
  }

  /** Ends every open watch: with a 410 ERROR event (expired=true), or as a plain stream close. */
  endWatches(expiredToo = false): void {
    for (const w of [...this.watchers]) {
      if (expiredToo) w.onEvent({ type: "ERROR", object: expired("too old resource version").status as never });
      w.end();
    }
  }

  watcherCount(): number {
    return this.watchers.size;
  }

  // ---- Client ---------------------------------------------------------------------------------------------------

  async get<T extends KObject>(ref: ResourceRef, namespace: string | undefined, name: string): Promise<T> {
    const r = this.react({ verb: "get", resource: ref.resource, namespace, name });
    if (r) return r as T;
    const o = this.bucket(ref).get(this.k(ref, namespace, name));
    if (!o) throw notFound(ref, name);
    return structuredClone(o) as T;
  }

  async list<T extends KObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    opts: ListOptions = {},
  ): Promise<KList<T>> {
    const r = this.react({ verb: "list", resource: ref.resource, namespace, options: opts });
    if (r) return r as KList<T>;
    const sel = parseLabelSelector(opts.labelSelector);
    const fields = parseFieldSelectorTerms(opts.fieldSelector);
    const items = [...this.bucket(ref).values()]
      .filter((o) => !namespace || !ref.namespaced || o.metadata.namespace === namespace)
      .filter((o) => sel.matches(o.metadata.labels))
      .filter((o) => fieldsMatch(fieldsOf(o), fields))
      .map((o) => structuredClone(o) as T);
    return {
      apiVersion: apiVersionOf(ref),
      kind: `${ref.kind}List`,
      metadata: { resourceVersion: String(this.rv) },
      items,
    };
  }

  async create<T extends KObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    obj: T,
    opts?: WriteOptions,
  ): Promise<T> {
    const ns = ref.namespaced ? (namespace ?? obj.metadata.namespace ?? "default") : undefined;
    const o = structuredClone(obj);
    if (ns) o.metadata.namespace = ns;
    const r = this.react({ verb: "create", resource: ref.resource, namespace: ns, name: o.metadata.name, object: o });
    if (r) return r as T;
    if (!o.metadata.name) {
      if (!o.metadata.generateName)
        throw invalidError(ref, "", [
          {
            field: "metadata.name",
            type: "FieldValueRequired",
            message: "Required value: name or generateName is required",
          },
        ]);
      o.metadata.name = o.metadata.generateName + randomSuffix();
    }
    if (this.bucket(ref).has(this.k(ref, ns, o.metadata.name))) throw alreadyExists(ref, o.metadata.name);
    if (opts?.dryRun) return this.fill(ref, o);
    return structuredClone(this.store(ref, this.fill(ref, o), "ADDED")) as T;
  }

  async update<T extends KObject>(ref: ResourceRef, obj: T, opts?: WriteOptions): Promise<T> {
    return this.put(ref, obj, "update", opts);
  }

  async updateStatus<T extends KObject>(ref: ResourceRef, obj: T, opts?: WriteOptions): Promise<T> {
    return this.put(ref, obj, "updateStatus", opts);
  }

  async patch<T extends KObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    opts?: PatchOptions,
  ): Promise<T> {
    const ns = ref.namespaced ? namespace : undefined;
    const action: Action = { verb: "patch", resource: ref.resource, namespace: ns, name, patchType: type, patch };
    if (opts?.subresource) action.subresource = opts.subresource;
    const r = this.react(action);
    if (r) return r as T;
    const cur = this.bucket(ref).get(this.k(ref, ns, name));
    if (!cur) throw notFound(ref, name);
    let next: KObject;
    try {
      next = type === "json" ? applyJsonPatch<KObject>(cur, patch) : applyMergePatch<KObject>(cur, patch);
    } catch (e) {
      // a failed `test` guards a write: the fake answers it as the conflict it stands for
      if (isStatusError(e) && e.status.details?.causes?.some((c) => c.message?.startsWith("testing value"))) {
        throw conflict(ref, name, "the object has been modified");
      }
      throw e;
    }
    next.metadata = { ...next.metadata, resourceVersion: cur.metadata.resourceVersion };
    return this.commit(ref, cur, next as T, opts?.subresource === "status" ? "status" : "main", opts?.dryRun);
  }

  async delete(ref: ResourceRef, namespace: string | undefined, name: string, opts?: DeleteOptions): Promise<void> {
    const ns = ref.namespaced ? namespace : undefined;
    const r = this.react({ verb: "delete", resource: ref.resource, namespace: ns, name, options: opts });
    if (r) return;
    const key = this.k(ref, ns, name);
    const cur = this.bucket(ref).get(key);
    if (!cur) throw notFound(ref, name);
    if (opts?.preconditions?.uid && opts.preconditions.uid !== cur.metadata.uid) {
      throw conflict(
        ref,
        name,
        `Precondition failed: UID in precondition: ${opts.preconditions.uid}, UID in object meta: ${cur.metadata.uid}`,
      );
    }
    const rv = opts?.preconditions?.resourceVersion;
    if (rv && rv !== cur.metadata.resourceVersion) {
      throw conflict(
        ref,
        name,
        `Precondition failed: ResourceVersion in precondition: ${rv}, ResourceVersion in object meta: ${cur.metadata.resourceVersion}`,
      );
    }
    if (opts?.dryRun) return;
    const boundPod =
      ref.resource === "pods" &&
      (cur as Pod).spec?.nodeName &&
      opts?.gracePeriodSeconds !== 0 &&
      !["Succeeded", "Failed"].includes((cur as Pod).status?.phase ?? "");
    if ((cur.metadata.finalizers?.length ?? 0) > 0 || boundPod) {
      if (cur.metadata.deletionTimestamp) return;
      const next = structuredClone(cur);
      next.metadata.deletionTimestamp = this.now().toISOString();
      if (boundPod) next.metadata.deletionGracePeriodSeconds = opts?.gracePeriodSeconds ?? 30;
      this.store(ref, next, "MODIFIED");
      return;
    }
    this.remove(ref, key);
  }

  watch<T extends KObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    opts: WatchOptions,
    onEvent: WatchHandler<T>,
  ): WatchHandle {
    let end!: (err?: Error) => void;
    const done = new Promise<void>((resolve, reject) => {
      end = (err) => (err ? reject(err) : resolve());
    });
    const r = this.reactorFor({ verb: "watch", resource: ref.resource, namespace, options: opts });
    if (r?.error) {
      end(r.error);
      return { stop: () => {}, done };
    }
    let stopped = false;
    const w: Watcher = {
      resource: ref.resource,
      namespace: ref.namespaced ? namespace : undefined,
      selector: parseLabelSelector(opts.labelSelector),
      bookmarks: opts.allowWatchBookmarks === true,
      onEvent: onEvent as WatchHandler<KObject>,
      end: (err) => {
        if (stopped) return;
        stopped = true;
        this.watchers.delete(w);
        end(err);
      },
    };
    const from = opts.resourceVersion ? Number(opts.resourceVersion) : undefined;
    queueMicrotask(() => {
      if (stopped) return;
      if (from !== undefined && from > 0 && from < this.compactedRv) {
        onEvent({
          type: "ERROR",
          object: expired(`too old resource version: ${from} (${this.compactedRv})`).status as never,
        });
        w.end();
        return;
      }
      this.watchers.add(w);
      if (from === undefined || from === 0) {
        for (const o of this.bucket(ref).values()) this.deliver(w, { type: "ADDED", object: o });
      } else {
        for (const e of this.log) if (e.rv > from && e.resource === ref.resource) this.deliver(w, e);
      }
    });
    return { stop: () => w.end(), done };
  }

  async createSubresource<T>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<T> {
    const r = this.react({
      verb: "createSubresource",
      resource: ref.resource,
      namespace,
      name,
      subresource,
      object: body,
    });
    if (r) return r as T;
    if (ref.resource === "pods" && subresource === "binding") {
      const cur = this.bucket(ref).get(this.k(ref, namespace, name)) as Pod | undefined;
      if (!cur) throw notFound(ref, name);
      if (cur.spec.nodeName)
        throw conflict(ref, name, `pod ${name} is already assigned to node "${cur.spec.nodeName}"`);
      const next = structuredClone(cur);
      next.spec.nodeName = (body as { target: { name: string } }).target.name;
      const conds = (next.status?.conditions ?? []).filter((c) => c.type !== "PodScheduled");
      conds.push({ type: "PodScheduled", status: "True", lastTransitionTime: this.now().toISOString() });
      next.status = { ...next.status, conditions: conds };
      this.store(ref, next, "MODIFIED");
      return { kind: "Status", status: "Success", code: 201 } as T;
    }
    return {} as T;
  }

  async getPath<T>(path: string): Promise<T> {
    const r = this.react({ verb: "getPath", resource: path, namespace: undefined });
    if (r) return r as T;
    throw statusError(404, "NotFound", "the server could not find the requested resource");
  }

  async putSubresource(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<void> {
    this.react({ verb: "putSubresource", resource: ref.resource, namespace, name, subresource, object: body });
  }

  // ---- internals ------------------------------------------------------------------------------------------------

  private async put<T extends KObject>(
    ref: ResourceRef,
    obj: T,
    verb: "update" | "updateStatus",
    opts?: WriteOptions,
  ): Promise<T> {
    const ns = ref.namespaced ? obj.metadata.namespace : undefined;
    const name = obj.metadata.name ?? "";
    const action: Action = { verb, resource: ref.resource, namespace: ns, name, object: structuredClone(obj) };
    if (verb === "updateStatus") action.subresource = "status";
    const r = this.react(action);
    if (r) return r as T;
    if (verb === "updateStatus" && !withStatusSubresource.has(ref.resource)) {
      throw notFound({ group: ref.group, resource: `${ref.resource}/status` }, name);
    }
    const cur = this.bucket(ref).get(this.k(ref, ns, name));
    if (!cur) throw notFound(ref, name);
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== cur.metadata.resourceVersion) {
      throw conflict(
        ref,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    const part = verb === "updateStatus" ? "status" : withStatusSubresource.has(ref.resource) ? "spec" : "main";
    return this.commit(ref, cur, structuredClone(obj), part, opts?.dryRun);
  }

  /** Writes `next` over `cur`: `status` keeps all but status; `spec` keeps cur's status; `main` takes all. */
  private commit<T extends KObject>(
    ref: ResourceRef,
    cur: KObject,
    next: T,
    part: "status" | "spec" | "main",
    dryRun?: boolean,
  ): T {
    const c = cur as KObject & { status?: unknown };
    let merged: KObject & { status?: unknown };
    if (part === "status") merged = { ...structuredClone(c), status: (next as { status?: unknown }).status };
    else {
      merged = structuredClone(next) as KObject & { status?: unknown };
      if (part === "spec" && withStatusSubresource.has(ref.resource)) {
        if (c.status === undefined) delete merged.status;
        else merged.status = structuredClone(c.status);
      }
    }
    // Identity and server-owned metadata are kept from the stored object.
    merged.metadata = {
      ...merged.metadata,
      name: c.metadata.name!,
      uid: c.metadata.uid!,
      creationTimestamp: c.metadata.creationTimestamp!,
    };
    if (c.metadata.namespace) merged.metadata.namespace = c.metadata.namespace;
    if (c.metadata.deletionTimestamp) merged.metadata.deletionTimestamp = c.metadata.deletionTimestamp;
    if (c.metadata.generation !== undefined) {
      const specChanged = JSON.stringify(specOf(merged)) !== JSON.stringify(specOf(c));
      merged.metadata.generation = c.metadata.generation + (specChanged ? 1 : 0);
    }
    const same =
      JSON.stringify({ ...merged, metadata: { ...merged.metadata, resourceVersion: "" } }) ===
      JSON.stringify({ ...c, metadata: { ...c.metadata, resourceVersion: "" } });
    if (dryRun || same) return structuredClone(same ? c : merged) as T;
    if (
      merged.metadata.deletionTimestamp &&
      (merged.metadata.finalizers?.length ?? 0) === 0 &&
      ref.resource !== "pods"
    ) {
      this.remove(ref, keyOf(merged as KObject & { metadata: { name: string } }), merged);
      return structuredClone(merged) as T;
    }
    return structuredClone(this.store(ref, merged, "MODIFIED")) as T;
  }

  private fill<T extends KObject>(ref: ResourceRef, o: T): T {
    o.apiVersion = apiVersionOf(ref);
    o.kind = ref.kind;
    o.metadata.uid ??= randomUUID();
    o.metadata.creationTimestamp ??= this.now()
      .toISOString()
      .replace(/\.\d+Z$/, "Z");
    o.metadata.generation ??= 1;
    return o;
  }

  private store(ref: ResourceRef, o: KObject, type: WatchEventType): KObject {
    this.rv++;
    o.metadata.resourceVersion = String(this.rv);
    const key = this.k(ref, o.metadata.namespace, o.metadata.name ?? "");
    const prev = this.bucket(ref).get(key);
    this.bucket(ref).set(key, o);
    this.emit(ref.resource, type, o, prev);
    return o;
  }

  private remove(ref: ResourceRef, key: string, last?: KObject): void {
    const cur = last ?? this.bucket(ref).get(key);
    this.bucket(ref).delete(key);
    if (!cur) return;
    this.rv++;
    const gone = structuredClone(cur);
    gone.metadata.resourceVersion = String(this.rv);
    this.emit(ref.resource, "DELETED", gone);
  }

  private emit(resource: string, type: WatchEventType, o: KObject, prev?: KObject): void {
    const e: LogEntry = { rv: this.rv, resource, type, object: structuredClone(o) };
    if (type === "MODIFIED" && prev) e.prev = structuredClone(prev);
    this.log.push(e);
    for (const w of this.watchers) if (w.resource === resource) this.deliver(w, e);
  }

  private deliver(w: Watcher, e: Pick<LogEntry, "type" | "object" | "prev">): void {
    const matches = (o: KObject): boolean =>
      (!w.namespace || o.metadata.namespace === w.namespace) && w.selector.matches(o.metadata.labels);
    const now = matches(e.object);
    const type =
      e.type === "MODIFIED" && e.prev ? selectionEvent("MODIFIED", matches(e.prev), now) : now ? e.type : undefined;
    if (type) w.onEvent({ type, object: structuredClone(e.object) } as WatchEvent<KObject>);
  }

  private bucket(ref: ResourceRef): Map<string, KObject> {
    let b = this.stores.get(ref.resource);
    if (!b) {
      b = new Map();
      this.stores.set(ref.resource, b);
    }
    return b;
  }

  private k(ref: ResourceRef, namespace: string | undefined, name: string): string {
    return ref.namespaced && namespace ? `${namespace}/${name}` : name;
  }

  private reactorFor(action: Action): { error?: Error; result?: unknown } | undefined {
    this.actions.push(action);
    for (const r of this.reactors) {
      if ((r.verb === "*" || r.verb === action.verb) && (r.resource === "*" || r.resource === action.resource)) {
        const res = r.fn(action);
        if (res) return res;
      }
    }
    return undefined;
  }

  private react(action: Action): unknown {
    const r = this.reactorFor(action);
    if (!r) return undefined;
    if (r.error) throw r.error;
    return r.result ?? {};
  }
}

function specOf(o: KObject): unknown {
  const { metadata: _m, status: _s, ...rest } = o as KObject & { status?: unknown };
  return rest;
}

function fieldsOf(o: KObject): Record<string, string> {
  const f: Record<string, string> = { "metadata.name": o.metadata.name ?? "" };
  if (o.metadata.namespace) f["metadata.namespace"] = o.metadata.namespace;
  const pod = o as Pod;
  if (pod.spec && typeof pod.spec === "object" && "containers" in pod.spec) {
    f["spec.nodeName"] = pod.spec.nodeName ?? "";
    f["status.phase"] = pod.status?.phase ?? "";
  }
  return f;
}

/** The fake's selectable fields: a field it does not know never equals a value. */
function fieldsMatch(f: Record<string, string>, terms: readonly FieldTerm[]): boolean {
  return terms.every((t) => (Object.hasOwn(f, t.field) && f[t.field] === t.value) === (t.operator === "="));
}

export type { StatusError };
