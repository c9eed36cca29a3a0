// One HTTP(S) request with a connect timeout and a stall timeout (no bytes for N ms), on node:http(s). The
// response body is handed back as a stream; the stall timer keeps watching it until it ends.
import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { RegistryError } from "./errors.js";

export interface TlsOptions {
  /** PEM CA bundle to trust (in addition to nothing: replaces the default roots when given). */
  ca?: string | Buffer;
  /** false only for hosts configured insecure. */
  rejectUnauthorized?: boolean;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal | undefined;
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  tls?: TlsOptions;
  agent?: http.Agent;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

/** Issues one request and resolves with the response headers; the body stays a live stream. */
export function httpRequest(url: URL, opts: HttpOptions = {}): Promise<HttpResponse> {
  const connectMs = opts.connectTimeoutMs ?? 10_000;
  const stallMs = opts.stallTimeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const isHttps = url.protocol === "https:";
    const mod = isHttps ? https : http;
    const reqOpts: https.RequestOptions = {
      method: opts.method ?? "GET",
      headers: opts.headers ?? {},
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port || (isHttps ? 443 : 80),
      path: `${url.pathname}${url.search}`,
    };
    if (opts.agent) reqOpts.agent = opts.agent;
    if (isHttps && opts.tls) {
      if (opts.tls.ca !== undefined) reqOpts.ca = opts.tls.ca;
      if (opts.tls.rejectUnauthorized === false) reqOpts.rejectUnauthorized = false;
    }
    let settled = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const req = mod.request(reqOpts);
    const fail = (err: Error): void => {
      if (connectTimer) clearTimeout(connectTimer);
      req.destroy(err);
      if (!settled) {
        settled = true;
        reject(err);
      }
    };
    const onAbort = (): void =>
      fail(Object.assign(new Error("request aborted"), { name: "AbortError", code: "ABORT_ERR" }));
    if (opts.signal) {
      if (opts.signal.aborted) return onAbort();
      opts.signal.addEventListener("abort", onAbort, { once: true });
    }
    req.on("socket", (sock) => {
      if ((sock as { connecting?: boolean }).connecting) {
        connectTimer = setTimeout(
          () => fail(new RegistryError("timeout", `connect to ${url.host} timed out after ${connectMs} ms`)),
          connectMs,
        );
        sock.once("connect", () => clearTimeout(connectTimer));
      }
    });
    req.setTimeout(stallMs, () => fail(new RegistryError("stalled", `no data from ${url.host} for ${stallMs} ms`)));
    req.on("error", (err) => {
      if (!settled) {
        settled = true;
        if (connectTimer) clearTimeout(connectTimer);
        reject(err);
      }
    });
    req.on("response", (res) => {
      if (connectTimer) clearTimeout(connectTimer);
      settled = true;
      const cleanup = (): void => opts.signal?.removeEventListener("abort", onAbort);
      res.once("end", cleanup);
      res.once("close", cleanup);
      // The request's timeout stays armed on the socket while the body streams: a stalled body errors `res`.
      req.on("error", (err) => res.destroy(err));
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
    });
    if (opts.body === undefined) req.end();
    else if (Buffer.isBuffer(opts.body)) req.end(opts.body);
    else {
      opts.body.on("error", (e) => fail(e));
      opts.body.pipe(req);
    }
  });
}

/** Reads a whole (small) body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit = 4 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      res.body.destroy();
      throw new RegistryError("protocol", `response body larger than ${limit} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Drains and discards a body so the connection can be reused. */
export function discard(res: HttpResponse): void {
  res.body.resume();
  res.body.on("error", () => {});
}
