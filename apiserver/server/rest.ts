// The generic REST semantics of every served resource: create, get, list, update, patch, delete, subresources.
// The HTTP layer (http.ts) parses requests and serializes answers; everything a client can observe is decided here.
import { randomBytes, randomUUID } from "node:crypto";
import YAML from "yaml";
import { EVICTION_API_VERSIONS, Eviction, type UnstructuredObject as KObj, nowRfc3339 } from "../../api/index.js";
import type { CustomResourceDefinition, ResourceDefinition } from "../../api/meta/v1/crd.js";
import {
  alreadyExists,
  badRequest,
  conflict,
  forbidden,
  invalid,
  isStatusError,
  methodNotAllowed,
  notFound,
  type StatusCause,
  statusError,
  unsupportedMediaType,
} from "../../lib/errors.js";
import { clone as deepClone, deepEqual, field, isObject as isPlainObject, type Rec, rec } from "../../lib/json.js";
import type { Logger } from "../../lib/log.js";
import { runAdmission } from "../admission/index.js";
import type { AdmissionPlugin, AdmissionRequest } from "../admission/types.js";
import { reviewAccess, serviceAccountInfo, type UserInfo } from "../auth/index.js";
import {
  applyJsonPatch,
  applyMergePatch,
  applyServerSide,
  applyStrategicMergePatch,
  updateManagedFields as libUpdateManagedFields,
} from "../patch/index.js";
import type { Registry, ServedResource } from "../registry/resources.js";
import {
  type FieldSelector,
  kindFieldSelectors,
  type LabelSelector,
  parseFieldSelector,
  parseLabelSelector,
} from "../selectors/index.js";
import { type Obj, type Store, StoreError } from "../storage/store.js";
import { dns1123Label, dns1123Subdomain, type StrategyContext, strategyFor } from "../strategy/index.js";
import { pruneUnknownMeta, strictDecodingError, unknownFieldWarnings, validateObject } from "../validation/index.js";
import type { DeleteOptions, WriteOptions, WriteResult } from "./options.js";

export const PATCH_TYPES = {
  json: "application/json-patch+json",
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
} as const;

const genChars = "bcdfghjklmnpqrstvwxz2456789";
const GARBAGE_COLLECTOR = serviceAccountInfo("generic-garbage-collector", "kube-system");

export interface ListResult {
  items: KObj[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface Selectors {
  labels: LabelSelector;
  fields: FieldSelector;
}

function gr(r: ServedResource): { group: string; resource: string } {
  return { group: r.group, resource: r.plural };
}

export function apiVersionOf(r: ServedResource, version: string): string {
  return r.group ? `${r.group}/${version}` : version;
}

/** A shallow copy of a stored object as seen at `version`. */
export function atVersion(o: Obj, r: ServedResource, version: string): KObj {
  return { ...(o as KObj), apiVersion: apiVersionOf(r, version) };
}

function meta(o: unknown): KObj["metadata"] {
  const m = rec(o).metadata;
  return isPlainObject(m) ? (m as KObj["metadata"]) : {};
}

/** Everything but metadata and status: a change here bumps metadata.generation. */
function specPart(o: KObj): Rec {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

function withoutManagedFields(o: KObj): KObj {
  const { managedFields: _mf, ...md } = o.metadata;
  return { ...o, metadata: md };
}

/** managedFields for a non-apply write (apiserver/patch): sets next.metadata.managedFields in place. */
function updateManagedFields(
  before: Rec | undefined,
  after: Rec,
  o: { manager: string; apiVersion: string; subresource?: string; ignoreStatus?: boolean },
): void {
  const res = libUpdateManagedFields({
    before,
    after,
    manager: o.manager,
    apiVersion: o.apiVersion,
    ...(o.subresource ? { subresource: o.subresource } : {}),
    ...(o.ignoreStatus ? { ignoredFields: [["status"]] } : {}),
  });
  const md = rec(after.metadata);
  if (res.managedFields.length) md.managedFields = res.managedFields;
  else delete md.managedFields;
  after.metadata = md;
}

function serverSideApply(
  live: Rec | undefined,
  applied: Rec,
  o: { manager: string; force: boolean; apiVersion: string; subresource?: string; ignoreStatus?: boolean },
): Rec {
  const res = applyServerSide({
    live,
    applied,
    manager: o.manager,
    force: o.force,
    ...(o.subresource ? { subresource: o.subresource } : {}),
    ...(o.ignoreStatus ? { ignoredFields: [["status"]] } : {}),
  });
  return res.object as Rec;
}

function generateName(prefix: string): string {
  const bytes = randomBytes(5);
  let s = "";
  for (const b of bytes) s += genChars[b % genChars.length];
  return (prefix.length > 58 ? prefix.slice(0, 58) : prefix) + s;
}

export interface RestOptions {
  store: Store;
  registry: Registry;
  log: Logger;
  admission?: AdmissionPlugin[];
  /** called when a CRD is created/updated/deleted through the API */
  onCrdChange?: () => void;
  /** answers a create of UploadTokenRequest (apiserver/upload): nothing is stored */
  uploadTokenRequest?: (ns: string, body: unknown, user: UserInfo) => WriteResult;
}

export class Rest {
  readonly store: Store;
  readonly registry: Registry;
  readonly log: Logger;
  readonly admission: AdmissionPlugin[];
  readonly onCrdChange: (() => void) | undefined;
  readonly #uploadTokenRequest: RestOptions["uploadTokenRequest"];

  constructor(o: RestOptions) {
    this.#uploadTokenRequest = o.uploadTokenRequest;
    this.store = o.store;
    this.registry = o.registry;
    this.log = o.log;
    this.admission = o.admission ?? [];
    this.onCrdChange = o.onCrdChange;
    // every namespace write reaches the store's subscribers (after its commit, before any other code runs)
    this.store.subscribe((e) => {
      if (e.resource === "/namespaces") this.#namespaces.delete(e.name);
    });
  }

  /** Namespace name → whether it exists and whether it is terminating; filled on lookup, dropped on every write. */
  readonly #namespaces = new Map<string, { exists: boolean; terminating: boolean }>();

  // ---------- selectors

  parseSelectors(r: ServedResource, q: URLSearchParams): Selectors {
    const labels = parseLabelSelector(q.get("labelSelector"));
    // exactly the field selectors a real cluster accepts: metadata.name/namespace, the documented core ones,
    // a CRD's selectableFields; anything else is a 400
    const kind = kindFieldSelectors(r);
    const fields = parseFieldSelector(q.get("fieldSelector"), kind.fields, kind);
    return { labels, fields };
  }

  matches(o: Obj, sel: Selectors): boolean {
    return sel.labels.matches((meta(o).labels ?? {}) as Record<string, string>) && sel.fields.matches(o);
  }

  // ---------- reads

  getObject(r: ServedResource, ns: string, name: string): KObj {
    const o = this.store.get(r.key, r.namespaced ? ns : "", name);
    if (!o) throw notFound(gr(r), name);
    return o as KObj;
  }

  /** The stored JSON text of an object (NotFound if absent). */
  getText(r: ServedResource, ns: string, name: string): string {
    const t = this.store.getText(r.key, r.namespaced ? ns : "", name);
    if (t === undefined) throw notFound(gr(r), name);
    return t;
  }

  list(r: ServedResource, ns: string | undefined, q: URLSearchParams): ListResult {
    const sel = this.parseSelectors(r, q);
    const limitRaw = q.get("limit");
    const limit = limitRaw && /^\d+$/.test(limitRaw) && Number(limitRaw) > 0 ? Number(limitRaw) : 0;
    let after: string | undefined;
    let rv = String(this.store.revision);
    const cont = q.get("continue");
    if (cont) {
      try {
        const c = JSON.parse(Buffer.from(cont, "base64url").toString("utf8")) as { rv?: unknown; start?: unknown };
        if (typeof c.start !== "string" || typeof c.rv !== "string") throw new Error("bad");
        after = c.start;
        rv = c.rv;
      } catch {
        throw badRequest("continue key is not valid: illegal base64 data or malformed token");
      }
    }
    const nsFilter = r.namespaced && ns !== undefined ? ns : undefined;
    const items: KObj[] = [];
    const batch = limit ? Math.max(limit * 2, 100) : 0;
    let last: string | undefined = after;
    let more = false;
    for (;;) {
      const page = this.store.list(r.key, {
        ...(nsFilter !== undefined ? { namespace: nsFilter } : {}),
        ...(last !== undefined ? { after: last } : {}),
        ...(batch ? { limit: batch } : {}),
      });
      for (const o of page) {
        const m = meta(o);
        if (limit && items.length >= limit) {
          more = true;
          break;
        }
        last = `${m.namespace ?? ""}/${m.name ?? ""}`;
        if (this.matches(o, sel)) items.push(o as KObj);
      }
      if (more || !batch || page.length < batch) break;
    }
    const out: ListResult = { items, resourceVersion: rv };
    if (more && last !== undefined)
      out.continue = Buffer.from(JSON.stringify({ rv, start: last })).toString("base64url");
    return out;
  }

  // ---------- namespaces

  #checkNamespace(r: ServedResource, ns: string, creating: boolean): void {
    if (!r.namespaced) return;
    if (!ns) throw badRequest("the namespace of the object must be set for a namespaced resource");
    let state = this.#namespaces.get(ns);
    if (!state) {
      const nsObj = this.store.get("/namespaces", "", ns) as KObj | undefined;
      state = { exists: !!nsObj, terminating: !!nsObj?.metadata.deletionTimestamp };
      if (this.#namespaces.size >= 10_000) this.#namespaces.clear();
      this.#namespaces.set(ns, state);
    }
    if (!state.exists) throw notFound({ group: "", resource: "namespaces" }, ns);
    if (creating && state.terminating) {
      throw forbidden(
        `${r.plural}${r.group ? `.${r.group}` : ""} is forbidden: unable to create new content in namespace ${ns} because it is being terminated`,
      );
    }
  }

  // ---------- admission

  async #admit(
    r: ServedResource,
    version: string,
    op: "CREATE" | "UPDATE" | "DELETE",
    obj: KObj | undefined,
    old: KObj | undefined,
    opts: { dryRun: boolean; user: UserInfo; subresource?: string },
  ): Promise<{ object: KObj | undefined; warnings: string[] }> {
    const warnings: string[] = [];
    if (this.admission.length === 0) return { object: obj, warnings };
    const req: AdmissionRequest = {
      uid: randomUUID(),
      kind: { group: r.group, version, kind: r.kind },
      resource: { group: r.group, version, resource: r.plural },
      operation: op,
      userInfo: { username: opts.user.username, groups: [...opts.user.groups] },
      dryRun: opts.dryRun,
    };
    const name = obj?.metadata.name ?? old?.metadata.name;
    if (name) req.name = name;
    const ns = obj?.metadata.namespace ?? old?.metadata.namespace;
    if (ns) req.namespace = ns;
    if (opts.subresource) req.subResource = opts.subresource;
    if (obj) req.object = obj as Rec;
    if (old) req.oldObject = old as Rec;
    // the object is this request's own copy: built-in plugins mutate it in place
    const res = await runAdmission(this.admission, req, { mutateInPlace: true });
    warnings.push(...res.warnings);
    return { object: res.object as KObj | undefined, warnings };
  }

  // ---------- validation helpers

  #prune(r: ServedResource, version: string, o: KObj, fv: WriteOptions["fieldValidation"]): string[] {
    // metadata is ObjectMeta for every kind (a CRD's schema cannot change it); the rest follows the kind's schema
    const unknown = pruneUnknownMeta(o as Rec);
    const schema = r.schema(version);
    if (schema) {
      const { metadata, apiVersion, kind, ...body } = o;
      const res = validateObject(schema, body, { fieldValidation: fv });
      for (const k of Object.keys(o)) delete o[k];
      Object.assign(o, { apiVersion, kind }, res.object, { metadata });
      unknown.push(...res.unknownFields);
      const causes = res.causes.filter((c) => !c.field?.startsWith("metadata"));
      if (causes.length && !(unknown.length && fv === "Strict")) {
        throw invalid({ group: r.group, kind: r.kind }, o.metadata.name ?? o.metadata.generateName ?? "", causes);
      }
    }
    if (unknown.length === 0 || fv === "Ignore") return [];
    if (fv === "Strict") throw strictDecodingError(unknown);
    return unknownFieldWarnings(unknown);
  }

  #validateMeta(r: ServedResource, o: KObj): void {
    const causes: StatusCause[] = [];
    const name = o.metadata.name ?? "";
    const label = !!strategyFor(r).nameIsLabel;
    const re = label ? dns1123Label : dns1123Subdomain;
    const max = label ? 63 : 253;
    if (!re.test(name) || name.length > max) {
      causes.push({
        type: "FieldValueInvalid",
        field: "metadata.name",
        message: `Invalid value: "${name}": a lowercase RFC 1123 ${label ? "label" : "subdomain"} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      });
    }
    const md = o.metadata;
    for (const k of ["labels", "annotations"] as const) {
      const v = md[k];
      if (v === undefined || v === null) continue;
      if (!isPlainObject(v) || Object.values(v).some((x) => typeof x !== "string")) {
        causes.push({
          type: "FieldValueInvalid",
          field: `metadata.${k}`,
          message: "Invalid value: must be a map of strings",
        });
      }
    }
    if (
      md.finalizers !== undefined &&
      (!Array.isArray(md.finalizers) || md.finalizers.some((f) => typeof f !== "string"))
    ) {
      causes.push({
        type: "FieldValueInvalid",
        field: "metadata.finalizers",
        message: "Invalid value: must be a list of strings",
      });
    }
    if (md.ownerReferences !== undefined) {
      const refs = md.ownerReferences;
      if (
        !Array.isArray(refs) ||
        refs.some((x) => !isPlainObject(x) || typeof x.uid !== "string" || typeof x.name !== "string")
      ) {
        causes.push({
          type: "FieldValueInvalid",
          field: "metadata.ownerReferences",
          message: "Invalid value: each reference needs uid and name",
        });
      }
    }
    if (causes.length) throw invalid({ group: r.group, kind: r.kind }, name, causes);
  }

  /** Checks and normalizes a body; copies it unless `owned` (the caller's fresh object, handed over). */
  #decodeBody(r: ServedResource, version: string, body: unknown, owned = false): KObj {
    if (!isPlainObject(body)) throw badRequest("the request body must be a JSON object");
    const o = (owned ? body : deepClone(body)) as KObj;
    if (o.metadata === undefined || o.metadata === null) o.metadata = {};
    if (!isPlainObject(o.metadata)) throw badRequest("metadata must be an object");
    if (o.kind !== undefined && o.kind !== r.kind) {
      throw badRequest(
        `the kind of the object (${String(o.kind)}) does not match the kind of the resource (${r.kind})`,
      );
    }
    if (
      o.apiVersion !== undefined &&
      o.apiVersion !== apiVersionOf(r, version) &&
      !r.versions.some((v) => o.apiVersion === apiVersionOf(r, v))
    ) {
      throw badRequest(
        `the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${apiVersionOf(r, version)})`,
      );
    }
    for (const k of ["name", "namespace", "generateName", "resourceVersion", "uid"] as const) {
      const v = o.metadata[k];
      if (v !== undefined && v !== null && typeof v !== "string") throw badRequest(`metadata.${k} must be a string`);
      if (v === null) delete o.metadata[k];
    }
    o.apiVersion = apiVersionOf(r, r.storageVersion);
    o.kind = r.kind;
    return o;
  }

  // ---------- create

  /** POST. `bodyOwned`: the body is the caller's fresh object (a decoded request), used without a copy. */
  async create(
    r: ServedResource,
    version: string,
    ns: string,
    body: unknown,
    opts: WriteOptions,
    bodyOwned = false,
  ): Promise<WriteResult> {
    if (r.virtual && r.kind === "UploadTokenRequest") {
      if (!this.#uploadTokenRequest) throw methodNotAllowed("this server issues no upload tokens");
      return this.#uploadTokenRequest(ns, body, opts.user);
    }
    if (r.virtual) return this.#accessReview(body, opts.user);
    const o = this.#decodeBody(r, version, body, bodyOwned);
    return this.#create(r, version, ns, o, opts, false);
  }

  async #create(
    r: ServedResource,
    version: string,
    ns: string,
    o: KObj,
    opts: WriteOptions,
    managedFieldsDone: boolean,
  ): Promise<WriteResult> {
    const md = o.metadata;
    if (r.namespaced) {
      if (md.namespace && md.namespace !== ns) {
        throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
      }
      md.namespace = ns;
    } else delete md.namespace;
    const warnings = this.#prune(r, version, o, opts.fieldValidation);
    if (!md.name && !md.generateName) {
      throw invalid({ group: r.group, kind: r.kind }, "", [
        {
          type: "FieldValueRequired",
          field: "metadata.name",
          message: "Required value: name or generateName is required",
        },
      ]);
    }
    this.#checkNamespace(r, ns, true);
    const gen = !md.name && typeof md.generateName === "string";
    if (gen) md.name = generateName(md.generateName as string);
    this.#validateMeta(r, o);
    md.uid = randomUUID();
    md.creationTimestamp = nowRfc3339();
    delete md.resourceVersion;
    delete md.deletionTimestamp;
    delete md.deletionGracePeriodSeconds;
    delete md.selfLink;
    const strategy = strategyFor(r);
    if (!r.builtin || strategy.generation) md.generation = 1;
    else delete md.generation;
    if (!r.builtin && r.status) delete o.status;
    strategy.prepareForCreate?.(o);
    strategy.validate?.(o, this.#strategyContext);
    const adm = await this.#admit(r, version, "CREATE", o, undefined, opts);
    const obj = adm.object ?? o;
    warnings.push(...adm.warnings);
    if (!managedFieldsDone)
      updateManagedFields(undefined, obj as Rec, {
        manager: opts.fieldManager,
        apiVersion: apiVersionOf(r, version),
        ignoreStatus: r.status,
      });
    if (opts.dryRun) return { object: obj, code: 201, warnings };
    for (let attempt = 0; ; attempt++) {
      try {
        const stored = (await this.store.createAsync(r.key, obj)) as KObj;
        if (strategy.servesDefinitions) this.onCrdChange?.();
        return { object: stored, code: 201, warnings };
      } catch (e) {
        if (e instanceof StoreError && e.code === "exists") {
          if (gen && attempt < 8) {
            obj.metadata.name = generateName(o.metadata.generateName as string);
            continue;
          }
          throw alreadyExists(gr(r), obj.metadata.name ?? "");
        }
        throw e;
      }
    }
  }

  /** What strategies may read. */
  get #strategyContext(): StrategyContext {
    return { registry: this.registry, store: this.store };
  }

  #accessReview(body: unknown, user: UserInfo): WriteResult {
    const o = isPlainObject(body) ? deepClone(body) : {};
    // the same decision every request of this caller gets (apiserver/auth's static table)
    const d = reviewAccess(user, o.spec);
    const out: KObj = {
      ...o,
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      metadata: {},
      status: d.allowed ? { allowed: true, reason: d.reason } : { allowed: false, reason: d.reason },
    };
    return { object: out, code: 201, warnings: [] };
  }

  // ---------- update / patch

  /**
   * PUT. A compare-and-swap conflict with a concurrent write that the client did not ask to guard against (no
   * resourceVersion, or one that was current when read) re-reads and tries again, as kube-apiserver's
   * GuaranteedUpdate does: the result is that of the write arriving just after the other one. A stale
   * resourceVersion the client sent is still a 409 (the re-read sees it).
   */
  async update(
    r: ServedResource,
    version: string,
    ns: string,
    name: string,
    sub: string | undefined,
    body: unknown,
    opts: WriteOptions,
  ): Promise<WriteResult> {
    return retryOnCas(() => this.#update(r, version, ns, name, sub, body, opts));
  }

  async #update(
    r: ServedResource,
    version: string,
    ns: string,
    name: string,
    sub: string | undefined,
    body: unknown,
    opts: WriteOptions,
  ): Promise<WriteResult> {
    if (sub === "scale") return this.#updateScale(r, version, ns, name, body, opts);
    const o = this.#decodeBody(r, version, body);
    if (o.metadata.name !== undefined && o.metadata.name !== name) {
      throw badRequest(`the name of the object (${o.metadata.name}) does not match the name on the URL (${name})`);
    }
    if (r.namespaced && o.metadata.namespace && o.metadata.namespace !== ns) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    const cur = this.getObject(r, ns, name);
    const rv = o.metadata.resourceVersion;
    if (rv === undefined || rv === "") {
      if (!r.builtin) {
        throw invalid({ group: r.group, kind: r.kind }, name, [
          {
            type: "FieldValueInvalid",
            field: "metadata.resourceVersion",
            message: "Invalid value: 0x0: must be specified for an update",
          },
        ]);
      }
    } else if (rv !== cur.metadata.resourceVersion) {
      throw conflict(
        gr(r),
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    let next: KObj;
    if (sub === "status") {
      next = { ...deepClone(cur), status: o.status };
      if (o.status === undefined) delete next.status;
    } else {
      next = o;
      next.metadata.name = name;
      if (r.namespaced) next.metadata.namespace = ns;
      if (next.metadata.managedFields === undefined && cur.metadata.managedFields) {
        next.metadata.managedFields = deepClone(cur.metadata.managedFields);
      }
      if (r.status) {
        if (cur.status === undefined) delete next.status;
        else next.status = deepClone(cur.status);
      }
    }
    return this.#commitUpdate(r, version, cur, next, opts, sub, false);
  }

  /** PATCH (every patch type); retried on a compare-and-swap conflict like update(). */
  async patch(
    r: ServedResource,
    version: string,
    ns: string,
    name: string,
    sub: string | undefined,
    contentType: string,
    body: Buffer,
    opts: WriteOptions,
  ): Promise<WriteResult> {
    return retryOnCas(() => this.#patch(r, version, ns, name, sub, contentType, body, opts));
  }

  async #patch(
    r: ServedResource,
    version: string,
    ns: string,
    name: string,
    sub: string | undefined,
    contentType: string,
    body: Buffer,
    opts: WriteOptions,
  ): Promise<WriteResult> {
    const ct = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
    const accepted = r.builtin
      ? [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.strategic, PATCH_TYPES.apply]
      : [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.apply];
    if (!(accepted as string[]).includes(ct)) {
      throw unsupportedMediaType(
        `${ct || "(none)"} is not supported by ${apiVersionOf(r, version)}, Kind=${r.kind}: the body of the request was in an unknown format - accepted media types include: ${accepted.join(", ")}`,
      );
    }
    if (ct === PATCH_TYPES.apply) return this.#apply(r, version, ns, name, sub, body, opts);
    let patch: unknown;
    try {
      patch = JSON.parse(body.toString("utf8"));
    } catch (e) {
      throw badRequest(`error decoding patch: ${(e as Error).message}`);
    }
    if (sub === "scale") {
      const scale = this.#scaleOf(r, version, this.getObject(r, ns, name));
      const patched = ct === PATCH_TYPES.json ? applyJsonPatch(scale, patch) : applyMergePatch(scale, patch);
      return this.#updateScale(r, version, ns, name, patched, opts);
    }
    const cur = this.getObject(r, ns, name);
    // (each patch function copies its target: the view need not be copied first)
    const view = atVersion(cur, r, version);
    let patched: unknown;
    if (ct === PATCH_TYPES.json) patched = applyJsonPatch(view, patch);
    else if (ct === PATCH_TYPES.merge) {
      if (!isPlainObject(patch)) throw badRequest("a merge patch must be a JSON object");
      patched = applyMergePatch(view, patch);
    } else {
      if (!isPlainObject(patch)) throw badRequest("a strategic merge patch must be a JSON object");
      patched = applyStrategicMergePatch(view, patch);
    }
    const o = this.#decodeBody(r, version, patched, true); // the patch functions built it from copies
    if (o.metadata.resourceVersion !== undefined && o.metadata.resourceVersion !== cur.metadata.resourceVersion) {
      throw conflict(
        gr(r),
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    if (o.metadata.name !== name)
      throw badRequest(
        `the name of the object (${String(o.metadata.name)}) does not match the name on the URL (${name})`,
      );
    let next: KObj;
    if (sub === "status") {
      next = { ...deepClone(cur), status: o.status };
      if (o.status === undefined) delete next.status;
      // kubectl and client-go may patch metadata.managedFields alongside status; keep only status changes
    } else {
      next = o;
      if (r.namespaced) next.metadata.namespace = ns;
      if (r.status) {
        if (cur.status === undefined) delete next.status;
        else next.status = deepClone(cur.status);
      }
    }
    return this.#commitUpdate(r, version, cur, next, opts, sub, false);
  }

  async #apply(
    r: ServedResource,
    version: string,
    ns: string,
    name: string,
    sub: string | undefined,
    body: Buffer,
    opts: WriteOptions,
  ): Promise<WriteResult> {
    if (!opts.fieldManagerExplicit) {
      throw badRequest(
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
      );
    }
    let config: unknown;
    try {
      config = YAML.parse(body.toString("utf8"), { maxAliasCount: 100 });
    } catch (e) {
      throw badRequest(`error decoding YAML: ${(e as Error).message}`);
    }
    if (!isPlainObject(config)) throw badRequest("an apply patch must be an object");
    const cfg = deepClone(config) as KObj;
    if (!isPlainObject(cfg.metadata)) cfg.metadata = {};
    if (cfg.metadata.name !== undefined && cfg.metadata.name !== name) {
      throw badRequest(
        `the name of the object (${String(cfg.metadata.name)}) does not match the name on the URL (${name})`,
      );
    }
    if (typeof cfg.apiVersion !== "string" || typeof cfg.kind !== "string") {
      throw badRequest("apiVersion and kind must be set in an apply patch");
    }
    this.#decodeBody(r, version, cfg); // checks kind / apiVersion / metadata types
    if (r.namespaced && cfg.metadata.namespace && cfg.metadata.namespace !== ns) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    const { apiVersion: _a, kind: _k, ...cfgBody } = cfg;
    const live = this.store.get(r.key, r.namespaced ? ns : "", name) as KObj | undefined;
    const precondition = cfg.metadata.resourceVersion;
    delete cfg.metadata.resourceVersion;
    if (live && precondition && precondition !== live.metadata.resourceVersion) {
      throw conflict(
        gr(r),
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    const applyOpts = {
      manager: opts.fieldManager,
      force: !!opts.force,
      apiVersion: apiVersionOf(r, version),
      ignoreStatus: r.status,
    };
    const appliedCfg = { ...cfgBody, apiVersion: apiVersionOf(r, version), kind: r.kind } as Rec;
    if (!live) {
      if (sub) throw notFound(gr(r), name);
      const created = serverSideApply(undefined, appliedCfg, applyOpts) as KObj;
      created.apiVersion = apiVersionOf(r, r.storageVersion);
      created.kind = r.kind;
      created.metadata.name = name;
      return this.#create(r, version, ns, created, opts, true);
    }
    const view = atVersion(deepClone(live), r, version);
    let next: KObj;
    if (sub === "status") {
      const applied = serverSideApply(
        view as Rec,
        { apiVersion: appliedCfg.apiVersion, kind: r.kind, metadata: { name }, status: rec(cfgBody).status ?? {} },
        { ...applyOpts, subresource: "status", ignoreStatus: false },
      ) as KObj;
      next = { ...deepClone(live), status: applied.status };
      next.metadata.managedFields = applied.metadata.managedFields;
    } else {
      next = serverSideApply(view as Rec, appliedCfg, applyOpts) as KObj;
      next.apiVersion = apiVersionOf(r, r.storageVersion);
      next.kind = r.kind;
      if (r.status) {
        if (live.status === undefined) delete next.status;
        else next.status = deepClone(live.status);
      }
    }
    return this.#commitUpdate(r, version, live, next, opts, sub, true);
  }

  async #commitUpdate(
    r: ServedResource,
    version: string,
    cur: KObj,
    next: KObj,
    opts: WriteOptions,
    sub: string | undefined,
    managedFieldsDone: boolean,
  ): Promise<WriteResult> {
    const md = next.metadata;
    const cm = cur.metadata;
    // server-owned metadata is never taken from a write
    md.name = cm.name;
    if (r.namespaced) md.namespace = cm.namespace;
    else delete md.namespace;
    md.uid = cm.uid;
    md.creationTimestamp = cm.creationTimestamp;
    md.resourceVersion = cm.resourceVersion;
    if (cm.generation !== undefined) md.generation = cm.generation;
    else delete md.generation;
    if (cm.deletionTimestamp) md.deletionTimestamp = cm.deletionTimestamp;
    else delete md.deletionTimestamp;
    if (cm.deletionGracePeriodSeconds !== undefined) md.deletionGracePeriodSeconds = cm.deletionGracePeriodSeconds;
    else delete md.deletionGracePeriodSeconds;
    delete md.generateName;
    if (cm.generateName) md.generateName = cm.generateName;
    next.apiVersion = apiVersionOf(r, r.storageVersion);
    next.kind = r.kind;
    const warnings = this.#prune(r, version, next, opts.fieldValidation);
    this.#validateMeta(r, next);
    const strategy = strategyFor(r);
    strategy.validateUpdate?.(cur, next, sub, this.#strategyContext);
    if (cm.deletionTimestamp) {
      const before = new Set(cm.finalizers ?? []);
      const added = (md.finalizers ?? []).filter((f) => !before.has(f));
      if (added.length) {
        throw invalid({ group: r.group, kind: r.kind }, cm.name ?? "", [
          {
            type: "FieldValueForbidden",
            field: "metadata.finalizers",
            message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`,
          },
        ]);
      }
    }
    strategy.validate?.(next, this.#strategyContext);
    const adm = await this.#admit(r, version, "UPDATE", next, cur, { ...opts, ...(sub ? { subresource: sub } : {}) });
    const obj = adm.object ?? next;
    warnings.push(...adm.warnings);
    if (
      md.generation !== undefined &&
      !deepEqual(specPart(withoutManagedFields(cur)), specPart(withoutManagedFields(obj)))
    ) {
      obj.metadata.generation = (cm.generation ?? 0) + 1;
    }
    // a write that changes nothing keeps the resourceVersion and emits no event
    if (deepEqual(withoutManagedFields(cur), withoutManagedFields(obj))) {
      const mfCur = cur.metadata.managedFields;
      const mfNew = obj.metadata.managedFields;
      const explicitMf = !managedFieldsDone && mfNew !== undefined && !deepEqual(mfCur, mfNew);
      if (!explicitMf) return { object: cur, code: 200, warnings };
    }
    if (!managedFieldsDone) {
      updateManagedFields(cur as Rec, obj as Rec, {
        manager: opts.fieldManager,
        apiVersion: apiVersionOf(r, version),
        ...(sub ? { subresource: sub } : { ignoreStatus: r.status }),
      });
    }
    const finalize =
      !!cm.deletionTimestamp &&
      !strategy.keepsFinalizedObject &&
      (obj.metadata.finalizers ?? []).length === 0 &&
      !strategy.terminating?.(obj);
    if (opts.dryRun) return { object: obj, code: 200, warnings };
    if (finalize) {
      const stored = await this.#storeUpdate(r, obj, cur);
      return { object: await this.#storeDelete(r, stored), code: 200, warnings };
    }
    const stored = await this.#storeUpdate(r, obj, cur);
    if (strategy.servesDefinitions) this.onCrdChange?.();
    return { object: stored, code: 200, warnings };
  }

  async #storeUpdate(r: ServedResource, obj: KObj, cur: KObj): Promise<KObj> {
    try {
      return (await this.store.updateAsync(r.key, obj, Number(cur.metadata.resourceVersion))) as KObj;
    } catch (e) {
      if (e instanceof StoreError) {
        if (e.code === "notfound") throw notFound(gr(r), cur.metadata.name ?? "");
        throw casConflict(gr(r), cur.metadata.name ?? "");
      }
      throw e;
    }
  }

  async #storeDelete(r: ServedResource, cur: KObj): Promise<KObj> {
    try {
      const last = (await this.store.deleteAsync(
        r.key,
        cur.metadata.namespace ?? "",
        cur.metadata.name ?? "",
        Number(cur.metadata.resourceVersion),
      )) as KObj;
      if (strategyFor(r).servesDefinitions) this.onCrdChange?.();
      return last;
    } catch (e) {
      if (e instanceof StoreError) {
        if (e.code === "notfound") throw notFound(gr(r), cur.metadata.name ?? "");
        throw casConflict(gr(r), cur.metadata.name ?? "");
      }
      throw e;
    }
  }

  // ---------- scale

  #scaleOf(r: ServedResource, _version: string, o: KObj): KObj {
    if (!r.scale) throw notFound(gr(r), o.metadata.name ?? "");
    const spec = evalSimple(o, r.scale.specReplicasPath);
    const status = evalSimple(o, r.scale.statusReplicasPath);
    const selector = r.scale.labelSelectorPath ? evalSimple(o, r.scale.labelSelectorPath) : undefined;
    const st: Rec = { replicas: typeof status === "number" ? status : 0 };
    if (typeof selector === "string") st.selector = selector;
    return {
      apiVersion: "autoscaling/v1",
      kind: "Scale",
      metadata: {
        name: o.metadata.name,
        namespace: o.metadata.namespace,
        uid: o.metadata.uid,
        resourceVersion: o.metadata.resourceVersion,
        creationTimestamp: o.metadata.creationTimestamp,
      },
      spec: { replicas: typeof spec === "number" ? spec : 0 },
      status: st,
    } as KObj;
  }

  getSubresource(r: ServedResource, version: string, ns: string, name: string, sub: string): KObj {
    const o = this.getObject(r, ns, name);
    if (sub === "scale") return this.#scaleOf(r, version, o);
    return o;
  }

  async #updateScale(
    r: ServedResource,
    version: string,
    ns: string,
    name: string,
    body: unknown,
    opts: WriteOptions,
  ): Promise<WriteResult> {
    if (!r.scale) throw notFound(gr(r), name);
    const cur = this.getObject(r, ns, name);
    const replicas = field(body, "spec.replicas");
    if (typeof replicas !== "number" || !Number.isInteger(replicas) || replicas < 0) {
      throw invalid({ group: "autoscaling", kind: "Scale" }, name, [
        { type: "FieldValueInvalid", field: "spec.replicas", message: "Invalid value: must be a non-negative integer" },
      ]);
    }
    const rv = field(body, "metadata.resourceVersion");
    if (typeof rv === "string" && rv && rv !== cur.metadata.resourceVersion) {
      throw conflict(
        gr(r),
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    const next = deepClone(cur);
    setSimple(next, r.scale.specReplicasPath, replicas);
    const res = await this.#commitUpdate(r, version, cur, next, opts, undefined, false);
    return { ...res, object: this.#scaleOf(r, version, res.object) };
  }

  // ---------- pods/binding

  async bind(ns: string, name: string, body: unknown, opts: WriteOptions): Promise<WriteResult> {
    const r = this.registry.byKey("/pods");
    if (!r) throw notFound({ group: "", resource: "pods" }, name);
    const target = field(body, "target.name");
    if (typeof target !== "string" || !target) {
      throw invalid({ group: "", kind: "Binding" }, name, [
        { type: "FieldValueRequired", field: "target.name", message: "Required value" },
      ]);
    }
    const bodyName = field(body, "metadata.name");
    if (bodyName !== undefined && bodyName !== name)
      throw badRequest(`the name of the binding (${String(bodyName)}) does not match the pod (${name})`);
    const cur = this.getObject(r, ns, name);
    if (cur.metadata.deletionTimestamp)
      throw conflict({ group: "", resource: "pods/binding" }, name, "pod is being deleted");
    const node = field(cur, "spec.nodeName");
    if (node)
      throw conflict(
        { group: "", resource: "pods/binding" },
        name,
        `pod ${name} is already assigned to node "${String(node)}"`,
      );
    const next = deepClone(cur);
    next.spec = { ...rec(next.spec), nodeName: target };
    const st = rec(next.status);
    const conds = (Array.isArray(st.conditions) ? st.conditions : []).filter((c) => rec(c).type !== "PodScheduled");
    conds.push({ type: "PodScheduled", status: "True", lastTransitionTime: nowRfc3339(), lastProbeTime: null });
    next.status = { ...st, conditions: conds };
    if (opts.dryRun)
      return {
        object: { apiVersion: "v1", kind: "Status", metadata: {}, status: "Success", code: 201 } as unknown as KObj,
        code: 201,
        warnings: [],
      };
    updateManagedFields(cur as Rec, next as Rec, {
      manager: opts.fieldManager,
      apiVersion: "v1",
      subresource: "binding",
    });
    await this.#storeUpdate(r, next, cur);
    return {
      object: { apiVersion: "v1", kind: "Status", metadata: {}, status: "Success", code: 201 } as unknown as KObj,
      code: 201,
      warnings: [],
    };
  }

  // ---------- pods/eviction

  /**
   * POST pods/NAME/eviction (policy/v1 or v1beta1 Eviction), kube-apiserver's eviction REST: the Eviction goes through
   * admission (CREATE on pods/eviction: KubeVirt's launcher-pod rules live there), then the pod is deleted with the
   * Eviction's deleteOptions. No PodDisruptionBudget kind is served, so no budget is checked.
   */
  async evict(ns: string, name: string, body: unknown, opts: WriteOptions): Promise<WriteResult> {
    const r = this.registry.byKey("/pods");
    if (!r) throw notFound({ group: "", resource: "pods" }, name);
    if (!isPlainObject(body)) throw badRequest("the request body must be an Eviction object");
    const apiVersion = body.apiVersion ?? "policy/v1";
    if (!(EVICTION_API_VERSIONS as readonly unknown[]).includes(apiVersion) || (body.kind ?? "Eviction") !== "Eviction")
      throw badRequest(
        `the body must be a policy/v1 Eviction (got ${String(apiVersion).slice(0, 60)}, Kind=${String(body.kind).slice(0, 60)})`,
      );
    const v = validateObject<Eviction>(Eviction, body);
    if (v.causes.length) throw invalid({ group: "policy", kind: "Eviction" }, name, v.causes);
    if (v.unknownFields.length && opts.fieldValidation === "Strict") throw strictDecodingError(v.unknownFields);
    const ev = v.object;
    const md = ev.metadata ?? {};
    if (md.name !== undefined && md.name !== name)
      throw badRequest("name in URL does not match name in Eviction object");
    if (md.namespace !== undefined && md.namespace !== ns)
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    const del = ev.deleteOptions ?? {};
    const dry = opts.dryRun || (del.dryRun ?? []).includes("All");
    const version = String(apiVersion).split("/")[1] ?? "v1";
    const req: AdmissionRequest = {
      uid: randomUUID(),
      kind: { group: "policy", version, kind: "Eviction" },
      resource: { group: "", version: "v1", resource: "pods" },
      subResource: "eviction",
      name,
      namespace: ns,
      operation: "CREATE",
      userInfo: { username: opts.user.username, groups: [...opts.user.groups] },
      object: { ...ev, apiVersion, kind: "Eviction", metadata: { ...md, name, namespace: ns } } as Rec,
      dryRun: dry,
    };
    const { warnings } = await runAdmission(this.admission, req);
    if (opts.fieldValidation === "Warn") warnings.unshift(...unknownFieldWarnings(v.unknownFields));
    const deleteOpts: DeleteOptions = { dryRun: dry };
    if (del.gracePeriodSeconds !== undefined) deleteOpts.gracePeriodSeconds = Math.max(0, del.gracePeriodSeconds);
    if (del.preconditions) deleteOpts.preconditions = { ...del.preconditions };
    if (del.propagationPolicy) deleteOpts.propagationPolicy = del.propagationPolicy;
    if (del.orphanDependents !== undefined) deleteOpts.orphanDependents = del.orphanDependents;
    // the pod's own 404 and precondition conflicts are the answer, as kube-apiserver gives them
    await this.delete(r, "v1", ns, name, deleteOpts, opts.user);
    return {
      object: { apiVersion: "v1", kind: "Status", metadata: {}, status: "Success", code: 201 } as unknown as KObj,
      code: 201,
      warnings,
    };
  }

  // ---------- delete

  /** DELETE; retried on a compare-and-swap conflict like update() (preconditions are checked again each time). */
  async delete(
    r: ServedResource,
    version: string,
    ns: string,
    name: string,
    o: DeleteOptions,
    user: UserInfo,
  ): Promise<WriteResult> {
    return retryOnCas(() => this.#delete(r, version, ns, name, o, user));
  }

  async #delete(
    r: ServedResource,
    version: string,
    ns: string,
    name: string,
    o: DeleteOptions,
    user: UserInfo,
  ): Promise<WriteResult> {
    const cur = this.getObject(r, ns, name);
    const pre = o.preconditions;
    if (pre?.uid && pre.uid !== cur.metadata.uid) {
      throw conflict(
        gr(r),
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cur.metadata.uid}`,
      );
    }
    if (pre?.resourceVersion && pre.resourceVersion !== cur.metadata.resourceVersion) {
      throw conflict(
        gr(r),
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${cur.metadata.resourceVersion}`,
      );
    }
    const strategy = strategyFor(r);
    strategy.checkDelete?.(cur);
    const dry = !!o.dryRun;
    await this.#admit(r, version, "DELETE", undefined, cur, { dryRun: dry, user });
    let policy = o.propagationPolicy;
    if (!policy && o.orphanDependents !== undefined) policy = o.orphanDependents ? "Orphan" : "Background";
    if (policy && !["Background", "Foreground", "Orphan"].includes(policy)) {
      throw invalid({ group: "meta.k8s.io", kind: "DeleteOptions" }, "", [
        {
          type: "FieldValueNotSupported",
          field: "propagationPolicy",
          message: `Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`,
        },
      ]);
    }
    const next = deepClone(cur);
    const md = next.metadata;
    const now = nowRfc3339();
    // the kind's own deletion first (graceful termination, Terminating namespaces)
    const step = strategy.prepareForDelete?.(cur, next, o);
    if (step === "keep") return { object: dry ? next : cur, code: 200, warnings: [] };
    if (step === "update") {
      if (dry) return { object: next, code: 200, warnings: [] };
      return { object: await this.#storeUpdate(r, next, cur), code: 200, warnings: [] };
    }
    const finalizers = [...(md.finalizers ?? [])];
    if (policy === "Orphan") {
      if (!dry) this.orphanDependents(cur.metadata.uid ?? "");
    } else if (policy === "Foreground" && this.store.dependents(cur.metadata.uid ?? "").length > 0) {
      if (!finalizers.includes("foregroundDeletion")) finalizers.push("foregroundDeletion");
    }
    if (finalizers.length > 0) {
      md.finalizers = finalizers;
      if (!md.deletionTimestamp) {
        md.deletionTimestamp = now;
        md.deletionGracePeriodSeconds = 0;
      }
      if (dry) return { object: next, code: 200, warnings: [] };
      if (deepEqual(next, cur)) return { object: cur, code: 200, warnings: [] };
      const stored = await this.#storeUpdate(r, next, cur);
      return { object: stored, code: 200, warnings: [] };
    }
    if (dry) return { object: cur, code: 200, warnings: [] };
    if (md.deletionGracePeriodSeconds === 0 && cur.metadata.deletionGracePeriodSeconds !== 0) {
      // record the forced grace period in the last state the DELETED event carries
      const stored = await this.#storeUpdate(r, next, cur);
      return { object: await this.#storeDelete(r, stored), code: 200, warnings: [] };
    }
    return { object: await this.#storeDelete(r, cur), code: 200, warnings: [] };
  }

  async deleteCollection(
    r: ServedResource,
    version: string,
    ns: string | undefined,
    q: URLSearchParams,
    o: DeleteOptions,
    user: UserInfo,
  ): Promise<KObj[]> {
    const { items } = this.list(r, ns, q);
    const out: KObj[] = [];
    for (const it of items) {
      try {
        out.push((await this.delete(r, version, it.metadata.namespace ?? "", it.metadata.name ?? "", o, user)).object);
      } catch (e) {
        if (!(isStatusError(e) && e.code === 404)) throw e;
      }
    }
    return out;
  }

  /** Removes the ownerReference to `uid` from every dependent (propagationPolicy=Orphan). */
  orphanDependents(uid: string): void {
    for (const d of this.store.dependents(uid)) {
      const r = this.registry.byKey(d.resource);
      const cur = this.store.get(d.resource, d.namespace, d.name) as KObj | undefined;
      if (!r || !cur) continue;
      const next = deepClone(cur);
      next.metadata.ownerReferences = (next.metadata.ownerReferences ?? []).filter((ref) => ref.uid !== uid);
      if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
      try {
        this.store.update(d.resource, next, Number(cur.metadata.resourceVersion));
      } catch {
        // raced with another write: the garbage collector's next pass sees the new state
      }
    }
  }

  /** Deletes an object as the system (garbage collector, namespace controller); ignores NotFound and conflicts. */
  async systemDelete(
    resourceKey: string,
    ns: string,
    name: string,
    policy: DeleteOptions["propagationPolicy"] = "Background",
  ): Promise<void> {
    const r = this.registry.byKey(resourceKey);
    if (!r) {
      const cur = this.store.get(resourceKey, ns, name);
      if (cur) {
        try {
          this.store.delete(resourceKey, ns, name, Number(meta(cur).resourceVersion));
        } catch {
          // gone or changed meanwhile
        }
      }
      return;
    }
    try {
      await this.delete(r, r.storageVersion, ns, name, { propagationPolicy: policy }, GARBAGE_COLLECTOR);
    } catch (e) {
      if (isStatusError(e) && (e.code === 404 || e.code === 409)) return;
      throw e;
    }
  }

  /** Drops a finalizer as the system (foregroundDeletion); ignores NotFound and conflicts. */
  removeFinalizer(resourceKey: string, ns: string, name: string, finalizer: string): void {
    const r = this.registry.byKey(resourceKey);
    const cur = this.store.get(resourceKey, ns, name) as KObj | undefined;
    if (!cur || !(cur.metadata.finalizers ?? []).includes(finalizer)) return;
    const next = deepClone(cur);
    next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    try {
      if (
        next.metadata.finalizers.length === 0 &&
        next.metadata.deletionTimestamp &&
        !(r && strategyFor(r).terminating?.(next))
      ) {
        delete next.metadata.finalizers;
        const stored = this.store.update(resourceKey, next, Number(cur.metadata.resourceVersion)) as KObj;
        this.store.delete(resourceKey, ns, name, Number(stored.metadata.resourceVersion));
      } else {
        if (next.metadata.finalizers.length === 0) delete next.metadata.finalizers;
        this.store.update(resourceKey, next, Number(cur.metadata.resourceVersion));
      }
    } catch (e) {
      if (!(e instanceof StoreError)) throw e;
    }
  }

  /** Loads a stored CRD into the served form. */
  static crdToDefinition(o: Obj): ResourceDefinition {
    const crd = deepClone(o) as unknown as CustomResourceDefinition;
    return { crd, builtin: false };
  }
}

/** 409s raised by the store's compare-and-swap (not by a client's precondition): update/patch retry these. */
const casConflicts = new WeakSet<object>();

function casConflict(g: { group: string; resource: string }, name: string): Error {
  const e = conflict(
    g,
    name,
    "the object has been modified; please apply your changes to the latest version and try again",
  );
  casConflicts.add(e);
  return e;
}

const CAS_ATTEMPTS = 5;

async function retryOnCas<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (e) {
      if (attempt >= CAS_ATTEMPTS || !(e instanceof Object) || !casConflicts.has(e)) throw e;
    }
  }
}

function evalSimple(o: unknown, path: string): unknown {
  return field(o, path.replace(/^\./, ""));
}

function setSimple(o: Rec, path: string, v: unknown): void {
  const segs = path.replace(/^\./, "").split(".");
  let cur: Rec = o;
  for (const s of segs.slice(0, -1)) {
    if (!isPlainObject(cur[s])) cur[s] = {};
    cur = cur[s] as Rec;
  }
  cur[segs[segs.length - 1] as string] = v;
}

export function deleteOptionsFrom(body: unknown, q: URLSearchParams): DeleteOptions {
  const o: DeleteOptions = {};
  const b = isPlainObject(body) ? body : {};
  const policy = b.propagationPolicy ?? q.get("propagationPolicy") ?? undefined;
  if (policy !== undefined && policy !== null) {
    if (typeof policy !== "string") throw badRequest("propagationPolicy must be a string");
    o.propagationPolicy = policy as DeleteOptions["propagationPolicy"];
  }
  const grace = b.gracePeriodSeconds ?? q.get("gracePeriodSeconds") ?? undefined;
  if (grace !== undefined && grace !== null) {
    const n = Number(grace);
    if (!Number.isInteger(n)) throw badRequest("gracePeriodSeconds must be an integer");
    o.gracePeriodSeconds = Math.max(0, n);
  }
  if (isPlainObject(b.preconditions)) {
    const p: DeleteOptions["preconditions"] = {};
    if (typeof b.preconditions.uid === "string") p.uid = b.preconditions.uid;
    if (typeof b.preconditions.resourceVersion === "string") p.resourceVersion = b.preconditions.resourceVersion;
    o.preconditions = p;
  }
  const dry = b.dryRun ?? q.getAll("dryRun");
  if (Array.isArray(dry) && dry.length) {
    if (dry.some((d) => d !== "All")) throw badRequest(`dryRun: Unsupported value: supported values: "All"`);
    o.dryRun = true;
  }
  const orphan = b.orphanDependents ?? q.get("orphanDependents") ?? undefined;
  if (orphan !== undefined && orphan !== null) o.orphanDependents = orphan === true || orphan === "true";
  return o;
}

export { methodNotAllowed };
