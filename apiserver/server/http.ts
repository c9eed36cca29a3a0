// The HTTP layer: routing of Kubernetes REST paths, body decoding, content negotiation (JSON, Table, aggregated
// discovery), watch streams, metrics, request logs and authentication. Every failure is answered with a Status.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import YAML from "yaml";
import type { UnstructuredObject as KObj } from "../../api/index.js";
import {
  badRequest,
  forbidden,
  isStatusError,
  methodNotAllowed,
  notFound,
  type Status,
  statusError,
  tooLarge,
  unauthorized,
  unsupportedMediaType,
} from "../../lib/errors.js";
import { isObject as isPlainObject } from "../../lib/json.js";
import type { Logger } from "../../lib/log.js";
import { selectionEvent } from "../../lib/selectors.js";
import {
  type Authenticator,
  authorize,
  forbiddenMessage,
  type ResourceAttributes,
  type UserInfo,
} from "../auth/index.js";
import { decodeProtobuf } from "../protobuf/index.js";
import type { ServedResource } from "../registry/resources.js";
import { buildTable, partialObjectMetadata } from "../registry/table.js";
import type { StoreEvent } from "../storage/store.js";
import { strategyFor } from "../strategy/index.js";
import {
  AGGREGATED_CT,
  AGGREGATED_CT_BETA,
  aggregatedDiscovery,
  apiGroupDoc,
  apiGroupList,
  apiResourceList,
  apiVersions,
} from "./discovery.js";
import type { Metrics, RequestLabels } from "./metrics.js";
import type { OpenApiCache } from "./openapi.js";
import type { WriteOptions, WriteResult } from "./options.js";
import { proxyPodLog } from "./podlog.js";
import { apiVersionOf, atVersion, deleteOptionsFrom, type Rest } from "./rest.js";
import { replaySelected } from "./watch-replay.js";

export interface HttpOptions {
  rest: Rest;
  metrics: Metrics;
  openapi: OpenApiCache;
  log: Logger;
  /** bearer tokens → callers (health checks and /version need none) */
  auth: Authenticator;
  maxBodyBytes: number;
  bookmarkIntervalMs: number;
  maxWatchSeconds: number;
  ready: () => boolean;
  /** virt-api's subresources (subresources.kubevirt.io), mounted once the server knows its own URL */
  subresources?: () => SubresourceMount | undefined;
  /** CDI's upload proxy (/v1beta1/upload...): authenticated by its own upload token, not a user's */
  upload?: {
    handles(pathname: string): boolean;
    handle(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void>;
  };
}

/** What the HTTP layer needs from apiserver/subresources (kept structural: that module uses only the typed client). */
export interface SubresourceMount {
  handles(pathname: string): boolean;
  handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void>;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
}

export const VERSION_INFO = {
  major: "1",
  minor: "32",
  gitVersion: "v1.32.0+tsvirt",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2026-01-01T00:00:00Z",
  goVersion: `node${process.versions.node}`,
  compiler: "tsc",
  platform: "linux/amd64",
};

interface Route {
  group: string;
  version: string;
  r: ServedResource;
  ns: string | undefined;
  name: string | undefined;
  sub: string | undefined;
}

function clientOf(ua: string | undefined): string {
  if (!ua) return "unknown";
  const p = ua.split("/")[0]?.trim() ?? "unknown";
  return p.slice(0, 64) || "unknown";
}

function wantsTable(accept: string): boolean {
  return /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

function sendBody(
  res: ServerResponse,
  code: number,
  contentType: string,
  body: string | Buffer,
  headers: Record<string, string | string[]> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(code, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(body), ...headers });
  // Warning values are UTF-8 bytes spelled as latin1; with a string body Node would send the header block
  // as UTF-8 too (it joins them into one write), encoding them twice.
  res.end(headers.Warning !== undefined && typeof body === "string" ? Buffer.from(body) : body);
}

function sendJson(
  res: ServerResponse,
  code: number,
  obj: unknown,
  headers: Record<string, string | string[]> = {},
): void {
  sendBody(res, code, "application/json", JSON.stringify(obj), headers);
}

/**
 * `Warning: 299 - "<text>"`, as kube-apiserver sends it: control characters become spaces and the text goes out
 * as UTF-8 bytes (Node writes header strings as latin1, so the bytes are spelled as latin1 characters; a field
 * name with non-ASCII characters would otherwise make the response fail).
 */
export function warningHeaderValue(text: string): string {
  const clean = JSON.stringify(text.replace(/[\u0000-\u001f\u007f]/g, " "));
  return Buffer.from(`299 - ${clean}`, "utf8").toString("latin1");
}

function warningHeaders(warnings: string[]): Record<string, string[]> {
  if (warnings.length === 0) return {};
  return { Warning: warnings.map(warningHeaderValue) };
}

export class HttpApi {
  readonly #o: HttpOptions;
  readonly #watches = new Set<() => void>();

  constructor(o: HttpOptions) {
    this.#o = o;
  }

  /** Ends every open watch (server shutdown). */
  closeWatches(): void {
    for (const end of [...this.#watches]) end();
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const start = performance.now();
    const labels: RequestLabels = {
      verb: req.method ?? "",
      group: "",
      resource: "",
      subresource: "",
      code: "",
      client: clientOf(req.headers["user-agent"]),
    };
    let logged = false;
    const done = (): void => {
      if (logged) return;
      logged = true;
      labels.code = String(res.statusCode);
      const secs = (performance.now() - start) / 1000;
      this.#o.metrics.observe(labels, secs);
      const fields = {
        method: req.method,
        path: (req.url ?? "").slice(0, 300),
        code: res.statusCode,
        ms: Math.round(secs * 1000),
        client: labels.client,
      };
      if (res.statusCode >= 500) this.#o.log.error("request", fields);
      else this.#o.log.debug("request", fields);
    };
    res.on("finish", done);
    res.on("close", done);
    this.#route(req, res, labels).catch((e: unknown) => this.#fail(res, e));
  };

  /** WebSocket upgrades: console and VNC streams of virt-api's subresources. */
  handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const reject = (code: number, reason: string, message: string): void => {
      const body = JSON.stringify(statusError(code, reason, message).status);
      socket.end(
        `HTTP/1.1 ${code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    };
    socket.on("error", () => socket.destroy());
    const user = this.#o.auth.authenticate(req.headers.authorization);
    if (!user) {
      reject(401, "Unauthorized", "Unauthorized");
      return;
    }
    let pathname: string;
    try {
      pathname = new URL(req.url ?? "/", "http://localhost").pathname;
    } catch {
      reject(400, "BadRequest", "malformed request URL");
      return;
    }
    const sub = this.#o.subresources?.();
    if (!sub?.handles(pathname)) {
      reject(404, "NotFound", "the server could not find the requested resource");
      return;
    }
    const attrs = subresourceAttributes("GET", pathname);
    if (attrs && !authorize(user, attrs).allowed) {
      reject(403, "Forbidden", forbiddenMessage(user, attrs));
      return;
    }
    sub.handleUpgrade(req, socket, head).catch((e: unknown) => {
      this.#o.log.error("upgrade failed", { err: e });
      socket.destroy();
    });
  };

  #fail(res: ServerResponse, e: unknown): void {
    let status: Status;
    if (isStatusError(e)) status = e.status;
    else {
      this.#o.log.error("internal error", { err: e });
      status = statusError(
        500,
        "InternalError",
        `Internal error occurred: ${(e as Error)?.message ?? String(e)}`,
      ).status;
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    // as kube-apiserver: a Status that asks the caller to wait says how long in Retry-After too
    const retry = status.details?.retryAfterSeconds;
    sendJson(res, status.code, status, retry && retry > 0 ? { "Retry-After": String(retry) } : {});
  }

  async #readBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.#o.maxBodyBytes;
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > max) {
      req.resume();
      throw tooLarge(`the request body is larger than the limit of ${max} bytes`);
    }
    return await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > max) {
          over = true;
          chunks.length = 0;
          return;
        }
        if (!over) chunks.push(c);
      });
      req.on("end", () =>
        over
          ? reject(tooLarge(`the request body is larger than the limit of ${max} bytes`))
          : resolve(Buffer.concat(chunks)),
      );
      req.on("error", (e) => reject(badRequest(`error reading the request body: ${e.message}`)));
    });
  }

  #decode(req: IncomingMessage, body: Buffer): unknown {
    checkNesting(body);
    const ct = (req.headers["content-type"] ?? "application/json").split(";")[0]?.trim().toLowerCase() ?? "";
    if (ct === "application/vnd.kubernetes.protobuf") return decodeProtobuf(body).object;
    const text = body.toString("utf8");
    if (ct === "application/yaml" || ct === "application/apply-patch+yaml") {
      try {
        return YAML.parse(text, { maxAliasCount: 100 });
      } catch (e) {
        throw badRequest(`error decoding YAML: ${(e as Error).message}`);
      }
    }
    if (ct !== "application/json" && ct !== "" && ct !== "*/*" && !ct.endsWith("+json")) {
      throw unsupportedMediaType(
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`,
      );
    }
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw badRequest(`couldn't get version/kind; json parse error: ${(e as Error).message}`);
    }
  }

  #writeOptions(q: URLSearchParams, req: IncomingMessage, user: UserInfo): WriteOptions {
    const dry = q.getAll("dryRun");
    if (dry.some((d) => d !== "All"))
      throw badRequest(`dryRun: Unsupported value: "${dry.find((d) => d !== "All")}": supported values: "All"`);
    const fv = q.get("fieldValidation") ?? "Warn";
    if (fv !== "Strict" && fv !== "Warn" && fv !== "Ignore") {
      throw badRequest(`fieldValidation: Unsupported value: "${fv}": supported values: "Ignore", "Strict", "Warn"`);
    }
    const fm = q.get("fieldManager");
    if (fm !== null && fm.length > 128) throw badRequest("fieldManager: Too long: may not be more than 128 bytes");
    const force = q.get("force");
    if (force !== null && force !== "true" && force !== "false") throw badRequest(`force: Invalid value: "${force}"`);
    return {
      dryRun: dry.length > 0,
      fieldManager: fm ?? clientOf(req.headers["user-agent"]),
      fieldManagerExplicit: !!fm,
      fieldValidation: fv,
      force: force === "true",
      user,
    };
  }

  async #route(req: IncomingMessage, res: ServerResponse, labels: RequestLabels): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      throw badRequest("malformed request URL");
    }
    let segs: string[];
    try {
      segs = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    } catch {
      throw badRequest("malformed request path");
    }
    const method = req.method ?? "GET";
    const q = url.searchParams;
    const head = segs[0] ?? "";
    // health and version are public, as kube-apiserver's system:public-info-viewer makes them
    if (head === "healthz" || head === "livez" || head === "readyz") {
      labels.verb = "GET";
      if (head === "readyz" && !this.#o.ready())
        return sendBody(res, 500, "text/plain; charset=utf-8", "[-]storage not ready\nreadyz check failed\n");
      return sendBody(res, 200, "text/plain; charset=utf-8", "ok");
    }
    if (head === "version" && segs.length === 1) return sendJson(res, 200, VERSION_INFO);
    if (this.#o.upload?.handles(url.pathname)) {
      labels.group = "upload.cdi.kubevirt.io";
      labels.resource = "upload";
      return await this.#o.upload.handle(req, res, url.pathname);
    }
    const user = this.#o.auth.authenticate(req.headers.authorization);
    if (!user) {
      req.resume();
      throw unauthorized();
    }
    const sub = this.#o.subresources?.();
    if (sub?.handles(url.pathname)) {
      const attrs = subresourceAttributes(method, url.pathname);
      if (attrs && !authorize(user, attrs).allowed) {
        req.resume();
        throw forbidden(forbiddenMessage(user, attrs));
      }
      labels.group = "subresources.kubevirt.io";
      labels.resource = segs[5] ?? "";
      labels.subresource = segs[7] ?? "";
      return await sub.handleRequest(req, res);
    }
    if (head === "metrics" && segs.length === 1) {
      return sendBody(
        res,
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        this.#o.metrics.render([
          "# TYPE apiserver_watch_count gauge",
          `apiserver_watch_count ${this.#watches.size}`,
          "# TYPE apiserver_storage_revision gauge",
          `apiserver_storage_revision ${this.#o.rest.store.revision}`,
          "# HELP apiserver_storage_group_commits_total SQLite transactions that committed queued request writes.",
          "# TYPE apiserver_storage_group_commits_total counter",
          `apiserver_storage_group_commits_total ${this.#o.rest.store.groupCommits.batches}`,
          "# HELP apiserver_storage_group_commit_writes_total Request writes committed by those transactions.",
          "# TYPE apiserver_storage_group_commit_writes_total counter",
          `apiserver_storage_group_commit_writes_total ${this.#o.rest.store.groupCommits.writes}`,
        ]),
      );
    }
    if (head === "openapi") return this.#openapi(segs, q, res);
    if (head !== "api" && head !== "apis") throw notFound({ group: "", resource: "" }, url.pathname);
    const accept = String(req.headers.accept ?? "");
    const reg = this.#o.rest.registry;
    // discovery
    if (head === "api" && segs.length === 1) {
      if (accept.includes("as=APIGroupDiscoveryList")) return this.#aggregated(res, accept, true);
      return sendJson(res, 200, apiVersions());
    }
    if (head === "apis" && segs.length === 1) {
      if (accept.includes("as=APIGroupDiscoveryList")) return this.#aggregated(res, accept, false);
      return sendJson(res, 200, apiGroupList(reg));
    }
    if (head === "apis" && segs.length === 2) {
      const g = apiGroupDoc(reg, segs[1] ?? "");
      if (!g) throw notFound({ group: "", resource: "" }, url.pathname);
      return sendJson(res, 200, g);
    }
    const group = head === "api" ? "" : (segs[1] ?? "");
    const version = head === "api" ? (segs[1] ?? "") : (segs[2] ?? "");
    let rest = segs.slice(head === "api" ? 2 : 3);
    if (rest.length === 0) {
      const list = apiResourceList(reg, group, version);
      if (!list) throw notFound({ group: "", resource: "" }, url.pathname);
      return sendJson(res, 200, list);
    }
    let ns: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      const cand = reg.lookup(group, version, rest[2] ?? "");
      if (cand?.namespaced) {
        ns = rest[1];
        rest = rest.slice(2);
      } else if (group !== "" || !["status", "finalize"].includes(rest[2] ?? "")) {
        throw notFound({ group: "", resource: "" }, url.pathname);
      }
    }
    const r = reg.lookup(group, version, rest[0] ?? "");
    if (!r || rest.length > 3) throw notFound({ group: "", resource: "" }, url.pathname);
    const route: Route = { group, version, r, ns, name: rest[1], sub: rest[2] };
    labels.group = group;
    labels.resource = r.plural;
    labels.subresource = route.sub ?? "";
    if (r.namespaced && route.name !== undefined && ns === undefined)
      throw notFound({ group: "", resource: "" }, url.pathname);
    if (!r.namespaced && ns !== undefined) throw notFound({ group: "", resource: "" }, url.pathname);
    if (ns !== undefined && ns === "") throw notFound({ group: "", resource: "" }, url.pathname);
    if (route.name === "") throw notFound({ group: "", resource: "" }, url.pathname);
    if (route.sub !== undefined) {
      const ok =
        (route.sub === "status" && r.status) || (route.sub === "scale" && !!r.scale) || r.extra.includes(route.sub);
      if (!ok) throw notFound({ group: "", resource: "" }, url.pathname);
    }
    if (r.virtual && !(method === "POST" && route.name === undefined)) {
      throw methodNotAllowed(`the server does not allow this method on the requested resource`);
    }
    const attrs = requestAttributes(method, route, q);
    if (!authorize(user, attrs).allowed) {
      req.resume();
      // a component refused by the static table is a missing rule: say so where an operator looks
      this.#o.log.warn("forbidden", { user: user.username, ...attrs });
      throw forbidden(forbiddenMessage(user, attrs));
    }
    return this.#resource(req, res, route, q, method, labels, user);
  }

  #aggregated(res: ServerResponse, accept: string, core: boolean): void {
    const v2 = /v=v2(?![a-z0-9])/.test(accept) || !accept.includes("v=v2beta1");
    const ct = v2 ? AGGREGATED_CT : AGGREGATED_CT_BETA;
    const body = aggregatedDiscovery(
      this.#o.rest.registry,
      core,
      v2 ? "apidiscovery.k8s.io/v2" : "apidiscovery.k8s.io/v2beta1",
    );
    sendBody(res, 200, ct, JSON.stringify(body), { Vary: "Accept" });
  }

  #openapi(segs: string[], q: URLSearchParams, res: ServerResponse): void {
    if (segs[1] !== "v3") throw notFound({ group: "", resource: "" }, `/${segs.join("/")}`);
    if (segs.length === 2) {
      sendJson(res, 200, this.#o.openapi.index(), { "Cache-Control": "no-cache, private" });
      return;
    }
    const key = segs.slice(2).join("/");
    const doc = this.#o.openapi.doc(key);
    if (!doc) throw notFound({ group: "", resource: "" }, `/${segs.join("/")}`);
    const hash = q.get("hash");
    const headers: Record<string, string> =
      hash && hash === doc.hash
        ? { "Cache-Control": "public, immutable", Expires: new Date(Date.now() + 365 * 86400_000).toUTCString() }
        : { "Cache-Control": "no-cache, private", Etag: `"${doc.hash}"` };
    sendBody(res, 200, "application/json", doc.body, headers);
  }

  #encode(r: ServedResource, version: string, o: KObj, accept: string, q: URLSearchParams): unknown {
    if (wantsTable(accept))
      return buildTable(r, version, [o], { resourceVersion: o.metadata.resourceVersion ?? "" }, tableOpts(q));
    return atVersion(o, r, version);
  }

  async #resource(
    req: IncomingMessage,
    res: ServerResponse,
    rt: Route,
    q: URLSearchParams,
    method: string,
    labels: RequestLabels,
    user: UserInfo,
  ): Promise<void> {
    const { r, version, name, sub } = rt;
    const rest = this.#o.rest;
    const ns = rt.ns ?? "";
    const accept = String(req.headers.accept ?? "");
    const reply = (w: WriteResult): void => {
      if (w.object.kind === "Status" || w.object.kind === "Scale" || r.virtual) {
        sendJson(res, w.code, w.object, warningHeaders(w.warnings));
        return;
      }
      // the object as just written: its JSON text is the store's, when the request's apiVersion is the stored one
      const text = wantsTable(accept) ? undefined : rest.store.serialized(w.object);
      if (text !== undefined && w.object.apiVersion === apiVersionOf(r, version))
        sendBody(res, w.code, "application/json", text, warningHeaders(w.warnings));
      else sendJson(res, w.code, this.#encode(r, version, w.object, accept, q), warningHeaders(w.warnings));
    };
    switch (method) {
      case "GET": {
        // a GET carries no meaningful body; drain it so the connection stays in sync
        req.resume();
        if (name === undefined) {
          const watch = q.get("watch");
          if (watch === "true" || watch === "1") {
            labels.verb = "WATCH";
            return this.#watch(req, res, rt, q);
          }
          labels.verb = "LIST";
          const list = rest.list(r, rt.ns, q);
          const listMeta: Record<string, unknown> = { resourceVersion: list.resourceVersion };
          if (list.continue) listMeta.continue = list.continue;
          if (wantsTable(accept)) return sendJson(res, 200, buildTable(r, version, list.items, listMeta, tableOpts(q)));
          const av = apiVersionOf(r, version);
          // stringify items as stored, with the requested apiVersion
          const parts = list.items.map(
            (o) =>
              (o.apiVersion === av ? rest.store.serialized(o) : undefined) ?? JSON.stringify({ ...o, apiVersion: av }),
          );
          const head = JSON.stringify({ kind: r.listKind, apiVersion: av, metadata: listMeta });
          return sendBody(res, 200, "application/json", `${head.slice(0, -1)},"items":[${parts.join(",")}]}`);
        }
        labels.verb = "GET";
        if (sub === "log") return proxyPodLog(rest, ns, name, q, req, res);
        if (sub === "binding" || sub === "finalize" || sub === "eviction")
          throw methodNotAllowed("the server does not allow this method on the requested resource");
        if (!sub && !wantsTable(accept)) {
          // the stored text as it is, when it already starts with the requested apiVersion
          const text = rest.getText(r, ns, name);
          if (text?.startsWith(`{"apiVersion":${JSON.stringify(apiVersionOf(r, version))},`))
            return sendBody(res, 200, "application/json", text);
        }
        const o = sub ? rest.getSubresource(r, version, ns, name, sub) : rest.getObject(r, ns, name);
        if (o.kind === "Scale") return sendJson(res, 200, o);
        return sendJson(res, 200, this.#encode(r, version, o, accept, q));
      }
      case "POST": {
        labels.verb = "POST";
        const body = this.#decode(req, await this.#readBody(req));
        const opts = this.#writeOptions(q, req, user);
        if (name === undefined) {
          if (r.namespaced && rt.ns === undefined)
            throw methodNotAllowed("POST requires a namespace in the path for a namespaced resource");
          if (rt.ns === undefined && isPlainObject(body) && r.namespaced) throw badRequest("namespace required");
          return reply(await rest.create(r, version, ns, body, opts, true));
        }
        if (sub === "binding") return reply(await rest.bind(ns, name, body, opts));
        if (sub === "eviction") return reply(await rest.evict(ns, name, body, opts));
        throw methodNotAllowed("the server does not allow this method on the requested resource");
      }
      case "PUT": {
        labels.verb = "PUT";
        if (name === undefined)
          throw methodNotAllowed("the server does not allow this method on the requested resource");
        const body = this.#decode(req, await this.#readBody(req));
        const opts = this.#writeOptions(q, req, user);
        if (sub === "binding" || sub === "log" || sub === "eviction")
          throw methodNotAllowed("the server does not allow this method on the requested resource");
        if (sub === "finalize") return reply(await this.#finalizeNamespace(r, version, name, body, opts));
        return reply(await rest.update(r, version, ns, name, sub, body, opts));
      }
      case "PATCH": {
        labels.verb = "PATCH";
        if (name === undefined)
          throw methodNotAllowed("the server does not allow this method on the requested resource");
        if (sub === "binding" || sub === "log" || sub === "finalize" || sub === "eviction")
          throw methodNotAllowed("the server does not allow this method on the requested resource");
        const body = await this.#readBody(req);
        checkNesting(body);
        const ct = String(req.headers["content-type"] ?? "");
        if (ct.startsWith("application/apply-patch")) labels.verb = "APPLY";
        const opts = this.#writeOptions(q, req, user);
        return reply(await rest.patch(r, version, ns, name, sub, ct, body, opts));
      }
      case "DELETE": {
        const raw = await this.#readBody(req);
        let body: unknown;
        if (raw.length && raw.toString("utf8").trim()) {
          body = this.#decode(req, raw);
          if (body !== undefined && !isPlainObject(body)) throw badRequest("the DeleteOptions body must be an object");
        }
        const opts = deleteOptionsFrom(body, q);
        if (name === undefined) {
          labels.verb = "DELETECOLLECTION";
          // as kube-apiserver: no deletecollection of namespaces, and across namespaces only list and watch
          if (strategyFor(r).noDeleteCollection || (r.namespaced && rt.ns === undefined)) {
            throw methodNotAllowed("the server does not allow this method on the requested resource");
          }
          const items = await rest.deleteCollection(r, version, rt.ns, q, opts, user);
          const av = apiVersionOf(r, version);
          return sendJson(res, 200, {
            kind: r.listKind,
            apiVersion: av,
            metadata: { resourceVersion: String(rest.store.revision) },
            items: items.map((o) => atVersion(o, r, version)),
          });
        }
        labels.verb = "DELETE";
        if (sub) throw methodNotAllowed("the server does not allow this method on the requested resource");
        return reply(await rest.delete(r, version, ns, name, opts, user));
      }
      default:
        req.resume();
        throw methodNotAllowed(`the server does not allow the method ${method.slice(0, 20)}`);
    }
  }

  async #finalizeNamespace(
    r: ServedResource,
    version: string,
    name: string,
    body: unknown,
    opts: WriteOptions,
  ): Promise<WriteResult> {
    const rest = this.#o.rest;
    const cur = rest.getObject(r, "", name);
    const fin = isPlainObject(body) && isPlainObject(body.spec) ? body.spec.finalizers : undefined;
    const next = {
      ...cur,
      spec: { ...(isPlainObject(cur.spec) ? cur.spec : {}), finalizers: Array.isArray(fin) ? fin : [] },
    };
    const res = await rest.update(r, version, "", name, undefined, { ...next, metadata: { ...cur.metadata } }, opts);
    return res;
  }

  #watch(req: IncomingMessage, res: ServerResponse, rt: Route, q: URLSearchParams): void {
    const rest = this.#o.rest;
    const { r, version } = rt;
    const sel = rest.parseSelectors(r, q);
    const accept = String(req.headers.accept ?? "");
    const table = wantsTable(accept);
    const tOpts = tableOpts(q);
    const rvParam = q.get("resourceVersion") ?? "";
    if (rvParam !== "" && !/^\d+$/.test(rvParam))
      throw badRequest(`resourceVersion: Invalid value: "${rvParam.slice(0, 40)}": must be a number`);
    const timeoutRaw = q.get("timeoutSeconds");
    let timeout = this.#o.maxWatchSeconds;
    if (timeoutRaw !== null) {
      if (!/^\d+$/.test(timeoutRaw)) throw badRequest(`timeoutSeconds: Invalid value: "${timeoutRaw.slice(0, 40)}"`);
      timeout = Math.min(Number(timeoutRaw) || this.#o.maxWatchSeconds, this.#o.maxWatchSeconds);
    }
    const bookmarks = q.get("allowWatchBookmarks") === "true";
    const initial = q.get("sendInitialEvents") === "true";
    const nsFilter = r.namespaced ? rt.ns : undefined;
    const av = apiVersionOf(r, version);
    const store = rest.store;
    // without selectors an update cannot move an object in or out of the watch (its namespace never changes)
    const selective = !!(q.get("labelSelector") || q.get("fieldSelector"));
    const match = (o: KObj | undefined): boolean => {
      if (!o) return false;
      if (nsFilter !== undefined && o.metadata.namespace !== nsFilter) return false;
      return rest.matches(o, sel);
    };
    // A line goes out as one pre-framed HTTP chunk written straight to the socket. One live event reaches every
    // watcher with the same object, so its chunk is built once per type and apiVersion (from the store's own text
    // when the apiVersion is the stored one) and the same bytes are handed to every socket.
    const line = (type: string, o: KObj): Buffer => {
      if (table) {
        const object = buildTable(r, version, [o], { resourceVersion: o.metadata.resourceVersion ?? "" }, tOpts);
        return chunk(`${JSON.stringify({ type, object })}\n`);
      }
      const key = type === "ADDED" ? av : `${type} ${av}`;
      let cache = encodedEvents.get(o);
      const hit = cache?.get(key);
      if (hit !== undefined) return hit;
      const stored = o.apiVersion === av ? store.serialized(o) : undefined;
      const framed = chunk(
        stored !== undefined
          ? `{"type":${JSON.stringify(type)},"object":${stored}}\n`
          : `${JSON.stringify({ type, object: { ...o, apiVersion: av } })}\n`,
      );
      if (!cache) {
        cache = new Map();
        encodedEvents.set(o, cache);
      }
      cache.set(key, framed);
      return framed;
    };
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Cache-Control": "no-cache, private",
      "Transfer-Encoding": "chunked",
    });
    res.flushHeaders();
    req.socket.setKeepAlive(true, 30_000);
    req.socket.setNoDelay(true);
    let closed = false;
    let last = 0;
    const timers: NodeJS.Timeout[] = [];
    let unsub: () => void = () => {};
    const end = (): void => {
      if (closed) return;
      closed = true;
      unsub();
      for (const t of timers) clearTimeout(t);
      this.#watches.delete(end);
      res.end();
    };
    this.#watches.add(end);
    const socket = req.socket;
    const write = (data: string | Buffer): void => {
      if (closed) return;
      socket.write(typeof data === "string" ? chunk(data) : data);
      // a consumer that stops reading must not grow our memory without bound: drop it, it will re-watch
      if (socket.writableLength > 32 * 1024 * 1024) end();
    };
    const sendStatusError = (status: Status): void => {
      write(`${JSON.stringify({ type: "ERROR", object: status })}\n`);
      end();
    };
    if (rvParam === "" || rvParam === "0" || initial) {
      const { items, resourceVersion } = rest.list(
        r,
        rt.ns,
        new URLSearchParams(
          q.has("labelSelector") || q.has("fieldSelector")
            ? { labelSelector: q.get("labelSelector") ?? "", fieldSelector: q.get("fieldSelector") ?? "" }
            : {},
        ),
      );
      for (const o of items) if (match(o)) write(line("ADDED", o));
      last = Number(resourceVersion);
      if (initial) {
        write(
          `${JSON.stringify({ type: "BOOKMARK", object: { kind: r.kind, apiVersion: av, metadata: { resourceVersion: String(last), annotations: { "k8s.io/initial-events-end": "true" } } } })}\n`,
        );
      }
    } else {
      const n = Number(rvParam);
      if (n < store.compactedRevision) {
        sendStatusError(
          statusError(410, "Expired", `too old resource version: ${n} (${store.compactedRevision + 1})`).status,
        );
        return;
      }
      const events = store.eventsSince(r.key, n);
      if (selective) {
        // objects may have come to match or stopped matching meanwhile: ADDED and DELETED, not a silent skip
        const sent = replaySelected(
          events,
          (o) => match(o as KObj),
          (keys) => store.statesAt(r.key, keys, n),
        );
        if (sent === "expired") {
          sendStatusError(
            statusError(410, "Expired", `too old resource version: ${n}: the log no longer tells what matched there`)
              .status,
          );
          return;
        }
        for (const e of sent) write(line(e.type, e.object as KObj));
      } else for (const e of events) if (match(e.object as KObj)) write(line(e.type, e.object as KObj));
      last = Math.max(events.at(-1)?.rv ?? 0, n, store.revision);
    }
    if (closed) return;
    unsub = store.subscribe((e: StoreEvent) => {
      if (e.resource !== r.key || e.rv <= last) return;
      last = e.rv;
      const o = e.object as KObj;
      const now = match(o);
      if (selective && e.type === "MODIFIED" && e.prev) {
        const type = selectionEvent("MODIFIED", match(e.prev as KObj), now);
        if (type) write(line(type, o));
        return;
      }
      if (now) write(line(e.type, o));
    });
    if (bookmarks) {
      const tick = (): void => {
        if (closed) return;
        write(
          `${JSON.stringify({ type: "BOOKMARK", object: { kind: r.kind, apiVersion: av, metadata: { resourceVersion: String(Math.max(last, store.revision)) } } })}\n`,
        );
        timers[0] = setTimeout(tick, this.#o.bookmarkIntervalMs);
      };
      timers[0] = setTimeout(tick, this.#o.bookmarkIntervalMs);
    }
    timers.push(setTimeout(end, timeout * 1000));
    // (not req "close": since Node 16 it fires once the request body is consumed, not when the client goes away)
    res.on("close", end);
    res.on("error", end);
  }
}

/** The authorization attributes of a REST request (kube-apiserver's RequestInfo: verb from method and shape). */
function requestAttributes(method: string, rt: Route, q: URLSearchParams): ResourceAttributes {
  let verb: string;
  if (method === "GET" || method === "HEAD") {
    const watch = q.get("watch");
    verb = rt.name !== undefined ? "get" : watch === "true" || watch === "1" ? "watch" : "list";
  } else if (method === "POST") verb = "create";
  else if (method === "PUT") verb = "update";
  else if (method === "PATCH") verb = "patch";
  else if (method === "DELETE") verb = rt.name === undefined ? "deletecollection" : "delete";
  else verb = method.toLowerCase().slice(0, 20);
  const a: ResourceAttributes = {
    verb,
    group: rt.r.group,
    resource: rt.sub ? `${rt.r.plural}/${rt.sub}` : rt.r.plural,
  };
  if (rt.ns !== undefined) a.namespace = rt.ns;
  if (rt.name !== undefined) a.name = rt.name;
  return a;
}

/**
 * virt-api's subresources: /apis/subresources.kubevirt.io/v1/namespaces/NS/RESOURCE/NAME/VERB; undefined for its
 * non-resource paths (version, healthz), open to every user.
 */
function subresourceAttributes(method: string, pathname: string): ResourceAttributes | undefined {
  const segs = pathname.split("/").filter(Boolean);
  if (segs[3] !== "namespaces") return undefined;
  const verb = method === "GET" ? "get" : method === "PUT" ? "update" : method === "POST" ? "create" : "patch";
  const a: ResourceAttributes = {
    verb,
    group: "subresources.kubevirt.io",
    resource: segs[7] ? `${segs[5] ?? ""}/${segs[7]}` : (segs[5] ?? ""),
  };
  if (segs[4]) a.namespace = segs[4];
  if (segs[6]) a.name = segs[6];
  return a;
}

/** Framed watch lines per event object (shared by every watcher of that event; collected with the object). */
const encodedEvents = new WeakMap<object, Map<string, Buffer>>();

/** One HTTP/1.1 chunk (the watch response is chunked; its headers are flushed before the first line). */
function chunk(text: string): Buffer {
  const n = Buffer.byteLength(text);
  const head = `${n.toString(16)}\r\n`;
  const buf = Buffer.allocUnsafe(head.length + n + 2);
  buf.write(head, 0, "latin1");
  buf.write(text, head.length, "utf8");
  buf.write("\r\n", head.length + n, "latin1");
  return buf;
}

/** Deepest nesting a request body may have; JSON and YAML parsers (and everything after them) recurse. */
export const MAX_NESTING = 200;

/**
 * Rejects bodies nested deeper than MAX_NESTING before any parser sees them: counts brackets outside
 * double-quoted strings, and YAML block indentation.
 */
export function checkNesting(body: Buffer): void {
  let depth = 0;
  let inStr = false;
  let lineStart = true;
  let indent = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as number;
    if (inStr) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inStr = false;
      continue;
    }
    if (lineStart) {
      if (c === 0x20) {
        indent++;
        if (indent > MAX_NESTING * 4) throw badRequest(`the request body is nested too deeply (limit ${MAX_NESTING})`);
        continue;
      }
      lineStart = false;
      indent = 0;
    }
    if (c === 0x0a) lineStart = true;
    else if (c === 0x22) inStr = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_NESTING) throw badRequest(`the request body is nested too deeply (limit ${MAX_NESTING})`);
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
}

function tableOpts(q: URLSearchParams): { includeObject?: string } {
  const inc = q.get("includeObject");
  return inc ? { includeObject: inc } : {};
}

export { partialObjectMetadata };
