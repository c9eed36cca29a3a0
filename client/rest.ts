// The REST + watch client over node:http(s): Kubernetes wire protocol only (JSON bodies, Status errors, chunked
// newline-delimited watch streams). Every non-2xx answer becomes a StatusError built from the server's Status body.

import http from "node:http";
import https from "node:https";
import { type Status, StatusError, statusError } from "../lib/errors.js";
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
import type { ClientConfig } from "./kubeconfig.js";
import { apiVersionOf, collectionPath, objectPath, type ResourceRef, SUBRESOURCE_GROUP } from "./resources.js";
import type { KList, KObject, WatchEvent } from "./types.js";

const patchContentTypes: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  apply: "application/apply-patch+yaml",
  strategic: "application/strategic-merge-patch+json",
};

const reasonForCode: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  410: "Expired",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** Turns an error response into a StatusError: the server's Status if it sent one, else one built from the code. */
export function toStatusError(code: number, body: string): StatusError {
  try {
    const s = JSON.parse(body) as Partial<Status>;
    if (s && s.kind === "Status" && typeof s.message === "string") {
      return new StatusError({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: s.message,
        reason: s.reason ?? reasonForCode[code] ?? "Unknown",
        code: s.code ?? code,
        ...(s.details ? { details: s.details } : {}),
      });
    }
  } catch {
    /* not JSON */
  }
  const text = body.trim() || http.STATUS_CODES[code] || "unknown error";
  return statusError(
    code,
    reasonForCode[code] ?? "Unknown",
    `the server responded with ${code}: ${text.slice(0, 500)}`,
  );
}

function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

function writeQuery(opts?: WriteOptions & { force?: boolean }): string {
  return query({
    dryRun: opts?.dryRun ? "All" : undefined,
    fieldManager: opts?.fieldManager,
    fieldValidation: opts?.fieldValidation,
    force: opts?.force,
  });
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  /** Raw body text (YAML for apply); `body` is JSON-encoded otherwise. */
  rawBody?: string;
  timeoutMs?: number;
}

export class RestClient implements Client {
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly mod: typeof http | typeof https;

  constructor(readonly config: ClientConfig) {
    this.url = new URL(config.server);
    const tls = this.url.protocol === "https:";
    this.mod = tls ? https : http;
    this.agent = tls
      ? new https.Agent({
          keepAlive: true,
          ...(config.ca ? { ca: config.ca } : {}),
          ...(config.cert ? { cert: config.cert } : {}),
          ...(config.key ? { key: config.key } : {}),
          rejectUnauthorized: !config.insecureSkipTLSVerify,
        })
      : new http.Agent({ keepAlive: true });
  }

  /** Frees pooled connections. */
  close(): void {
    this.agent.destroy();
  }

  private options(method: string, path: string, headers: Record<string, string>): http.RequestOptions {
    const h: Record<string, string> = { Accept: "application/json", ...headers };
    if (this.config.token) h.Authorization = `Bearer ${this.config.token}`;
    h["User-Agent"] = this.config.userAgent ?? "tsvirt";
    const basePath = this.url.pathname.replace(/\/+$/, "");
    return {
      method,
      hostname: this.url.hostname.replace(/^\[|\]$/g, ""),
      port: this.url.port || (this.url.protocol === "https:" ? 443 : 80),
      path: basePath + path,
      headers: h,
      agent: this.agent,
    };
  }

  /**
   * One request; resolves with the parsed JSON body of a 2xx answer, rejects with a StatusError otherwise. A request
   * that fails with ECONNRESET/EPIPE on a reused keep-alive socket (the server closed it while idle; the request never
   * reached it) is sent once more on a fresh connection, as Node's documentation advises.
   */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    try {
      return await this.once<T>(method, path, opts);
    } catch (err) {
      if (!(err instanceof StaleSocketError)) throw err;
      return this.once<T>(method, path, opts);
    }
  }

  private once<T>(method: string, path: string, opts: RequestOptions): Promise<T> {
    const payload = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    const headers: Record<string, string> = {};
    if (payload !== undefined) {
      headers["Content-Type"] = opts.contentType ?? "application/json";
      headers["Content-Length"] = String(Buffer.byteLength(payload));
    }
    return new Promise<T>((resolve, reject) => {
      const req = this.mod.request(this.options(method, path, headers), (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const code = res.statusCode ?? 0;
          if (code < 200 || code >= 300) return reject(toStatusError(code, text));
          if (!text) return resolve(undefined as T);
          try {
            resolve(JSON.parse(text) as T);
          } catch {
            resolve(text as T);
          }
        });
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE"))
          reject(new StaleSocketError(err.message));
        else reject(connectionError(this.config.server, err));
      });
      if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(new Error("request timed out")));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  getPath<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  get<T extends KObject>(ref: ResourceRef, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>("GET", objectPath(ref, namespace, name));
  }

  list<T extends KObject>(ref: ResourceRef, namespace: string | undefined, opts: ListOptions = {}): Promise<KList<T>> {
    return this.request<KList<T>>(
      "GET",
      collectionPath(ref, namespace) +
        query({
          labelSelector: opts.labelSelector,
          fieldSelector: opts.fieldSelector,
          limit: opts.limit,
          continue: opts.continue,
          resourceVersion: opts.resourceVersion,
        }),
    );
  }

  create<T extends KObject>(ref: ResourceRef, namespace: string | undefined, obj: T, opts?: WriteOptions): Promise<T> {
    const ns = namespace ?? obj.metadata.namespace;
    const body = { apiVersion: apiVersionOf(ref), kind: ref.kind, ...obj };
    return this.request<T>("POST", collectionPath(ref, ns) + writeQuery(opts), { body });
  }

  update<T extends KObject>(ref: ResourceRef, obj: T, opts?: WriteOptions): Promise<T> {
    const body = { apiVersion: apiVersionOf(ref), kind: ref.kind, ...obj };
    const path = objectPath(ref, obj.metadata.namespace, obj.metadata.name ?? "");
    return this.request<T>("PUT", path + writeQuery(opts), { body });
  }

  updateStatus<T extends KObject>(ref: ResourceRef, obj: T, opts?: WriteOptions): Promise<T> {
    const body = { apiVersion: apiVersionOf(ref), kind: ref.kind, ...obj };
    const path = objectPath(ref, obj.metadata.namespace, obj.metadata.name ?? "", "status");
    return this.request<T>("PUT", path + writeQuery(opts), { body });
  }

  patch<T extends KObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    opts?: PatchOptions,
  ): Promise<T> {
    const path = objectPath(ref, namespace, name, opts?.subresource) + writeQuery(opts);
    const contentType = patchContentTypes[type];
    // Server-side apply takes YAML; JSON is YAML, so a JSON body is sent as is.
    return this.request<T>("PATCH", path, { body: patch, contentType });
  }

  async delete(ref: ResourceRef, namespace: string | undefined, name: string, opts?: DeleteOptions): Promise<void> {
    const body: Record<string, unknown> = { apiVersion: "v1", kind: "DeleteOptions" };
    if (opts?.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    if (opts?.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    if (opts?.preconditions) body.preconditions = opts.preconditions;
    if (opts?.dryRun) body.dryRun = ["All"];
    await this.request<unknown>("DELETE", objectPath(ref, namespace, name), { body });
  }

  createSubresource<T>(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<T> {
    return this.request<T>("POST", objectPath(ref, namespace, name, subresource), { body });
  }

  async putSubresource(
    ref: ResourceRef,
    namespace: string | undefined,
    name: string,
    subresource: string,
    body: unknown,
  ): Promise<void> {
    const sr = { ...ref, group: SUBRESOURCE_GROUP, version: "v1" };
    await this.request<unknown>("PUT", objectPath(sr, namespace, name, subresource), { body: body ?? {} });
  }

  watch<T extends KObject>(
    ref: ResourceRef,
    namespace: string | undefined,
    opts: WatchOptions,
    onEvent: WatchHandler<T>,
  ): WatchHandle {
    const path =
      collectionPath(ref, namespace) +
      query({
        watch: 1,
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        resourceVersion: opts.resourceVersion,
        allowWatchBookmarks: opts.allowWatchBookmarks ? "true" : undefined,
        timeoutSeconds: opts.timeoutSeconds,
      });
    let req: http.ClientRequest | undefined;
    let stopped = false;
    const done = new Promise<void>((resolve, reject) => {
      req = this.mod.request(this.options("GET", path, {}), (res) => {
        const code = res.statusCode ?? 0;
        if (code < 200 || code >= 300) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => reject(toStatusError(code, Buffer.concat(chunks).toString("utf8"))));
          res.on("error", reject);
          return;
        }
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line || stopped) continue;
            let ev: WatchEvent<T>;
            try {
              ev = JSON.parse(line) as WatchEvent<T>;
            } catch {
              req?.destroy(new Error(`watch: malformed event: ${line.slice(0, 200)}`));
              return;
            }
            onEvent(ev);
          }
        });
        res.on("end", () => resolve());
        res.on("error", (err) => (stopped ? resolve() : reject(err)));
        res.on("close", () => resolve());
      });
      req.on("error", (err) => (stopped ? resolve() : reject(connectionError(this.config.server, err))));
      req.end();
    });
    return {
      stop: () => {
        stopped = true;
        req?.destroy();
      },
      done,
    };
  }
}

class StaleSocketError extends Error {}

function connectionError(server: string, err: Error): Error {
  const e = new Error(`cannot reach the API server at ${server}: ${err.message}`);
  (e as Error & { cause?: unknown }).cause = err;
  return e;
}
