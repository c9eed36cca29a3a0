// A Docker Registry HTTP API v2 / OCI distribution client: manifests (by tag or digest; index/list with platform
// selection), blobs (with Range resume and redirects), uploads (monolithic, chunked, cross-repository mount) and
// the auth flows (Bearer token, anonymous or with credentials; Basic). Plain HTTP only where allowed.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import http from "node:http";
import https from "node:https";
import { RegistryError } from "./errors.js";
import { discard, type HttpOptions, type HttpResponse, httpRequest, readBody, type TlsOptions } from "./http.js";
import { isDigest, isLoopbackHost } from "./reference.js";

export const MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
export const MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
export const MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar";
const MANIFEST_ACCEPT = [MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST].join(", ");

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture?: string; os?: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  raw: Buffer;
  manifest: ImageManifest;
}

/** Credentials for one registry host: user and password (or an identity token), as in a docker config. */
export interface RegistryCredential {
  username?: string;
  password?: string;
  identityToken?: string;
}
export type Credentials = Record<string, RegistryCredential>;

/** Parses a `.dockerconfigjson` / `~/.docker/config.json` / containers auth.json into per-host credentials. */
export function parseDockerConfigJson(text: string): Credentials {
  const doc = JSON.parse(text) as {
    auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  };
  const out: Credentials = {};
  for (const [k, v] of Object.entries(doc.auths ?? {})) {
    const host = k.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
    const c: RegistryCredential = {};
    if (v.auth) {
      const dec = Buffer.from(v.auth, "base64").toString("utf8");
      const i = dec.indexOf(":");
      if (i > 0) {
        c.username = dec.slice(0, i);
        c.password = dec.slice(i + 1);
      }
    }
    if (v.username) c.username = v.username;
    if (v.password) c.password = v.password;
    if (v.identitytoken) c.identityToken = v.identitytoken;
    out[host === "index.docker.io" ? "docker.io" : host] = c;
  }
  return out;
}

export interface RegistryClientOptions {
  /** Host[:port] of the registry as named in the image reference or registries.conf. */
  registry: string;
  /** Plain HTTP allowed (loopback or configured insecure); also skips certificate verification off loopback. */
  insecure?: boolean;
  credential?: RegistryCredential | undefined;
  tls?: TlsOptions;
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  /** Platform to pick from an image index. Default linux/amd64. */
  platform?: { os: string; architecture: string };
  /** Makes the connection agents (default: node's): a DataVolume import reaches registries through a proxy. */
  agent?: (scheme: "http:" | "https:", opts: https.AgentOptions) => http.Agent;
}

const schemeMemo = new Map<string, "https:" | "http:">();

function parseChallenge(h: string | undefined): { scheme: string; params: Record<string, string> } | undefined {
  if (!h) return undefined;
  const m = /^(\w+)\s*(.*)$/s.exec(h.trim());
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (let p = re.exec(m[2] ?? ""); p; p = re.exec(m[2] ?? "")) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? "";
  return { scheme: m[1]!.toLowerCase(), params };
}

function retryAfterMs(h: string | string[] | undefined): number | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

/** Classifies a non-2xx response as a RegistryError (drains the body). */
export function statusFailure(res: HttpResponse, what: string): RegistryError {
  discard(res);
  const s = res.status;
  if (s === 404) return new RegistryError("notFound", `${what}: not found (404)`);
  if (s === 401 || s === 403)
    return new RegistryError("unauthorized", `${what}: ${s === 401 ? "unauthorized (401)" : "denied (403)"}`);
  if (s === 429)
    return new RegistryError("throttled", `${what}: too many requests (429)`, retryAfterMs(res.headers["retry-after"]));
  if (s >= 500) return new RegistryError("serverError", `${what}: server error (${s})`);
  return new RegistryError("protocol", `${what}: unexpected status ${s}`);
}

export class RegistryClient {
  readonly registry: string;
  private readonly opts: RegistryClientOptions;
  private readonly tokens = new Map<string, string>();
  private basic: string | undefined;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: http.Agent;

  constructor(opts: RegistryClientOptions) {
    this.registry = opts.registry;
    this.opts = opts;
    const tlsOpts: https.AgentOptions = { keepAlive: true, maxSockets: 16 };
    if (opts.tls?.ca !== undefined) tlsOpts.ca = opts.tls.ca;
    if (opts.tls?.rejectUnauthorized === false || (opts.insecure && !isLoopbackHost(opts.registry)))
      tlsOpts.rejectUnauthorized = false;
    const make = opts.agent;
    this.httpAgent = make
      ? make("http:", { keepAlive: true, maxSockets: 16 })
      : new http.Agent({ keepAlive: true, maxSockets: 16 });
    this.httpsAgent = make ? make("https:", tlsOpts) : new https.Agent(tlsOpts);
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private plainAllowed(host: string): boolean {
    return this.opts.insecure === true || isLoopbackHost(host);
  }

  private async baseUrl(signal?: AbortSignal): Promise<string> {
    const known = schemeMemo.get(this.registry);
    if (known) return `${known}//${this.registry}`;
    if (!this.plainAllowed(this.registry)) return `https://${this.registry}`;
    // Loopback or insecure: HTTPS first, plain HTTP when the server does not speak TLS.
    try {
      const res = await this.raw(new URL(`https://${this.registry}/v2/`), { method: "GET", signal });
      discard(res);
      schemeMemo.set(this.registry, "https:");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "";
      if (!/^(EPROTO|ERR_SSL|ERR_TLS|ECONNRESET)/.test(code) && !/wrong version|packet length/i.test(String(e)))
        throw e;
      schemeMemo.set(this.registry, "http:");
    }
    return `${schemeMemo.get(this.registry)}//${this.registry}`;
  }

  private raw(url: URL, o: HttpOptions): Promise<HttpResponse> {
    const ho: HttpOptions = {
      ...o,
      agent: url.protocol === "https:" ? this.httpsAgent : this.httpAgent,
      connectTimeoutMs: this.opts.connectTimeoutMs ?? 10_000,
      stallTimeoutMs: this.opts.stallTimeoutMs ?? 30_000,
    };
    return httpRequest(url, ho);
  }

  private async fetchToken(ch: Record<string, string>, scope: string, signal?: AbortSignal): Promise<string> {
    const realm = ch["realm"];
    if (!realm) throw new RegistryError("unauthorized", "token challenge without realm");
    const url = new URL(realm);
    if (url.protocol !== "https:" && !(url.protocol === "http:" && this.plainAllowed(url.host))) {
      throw new RegistryError("protocol", `refusing token realm ${realm} over plain HTTP`);
    }
    if (ch["service"]) url.searchParams.set("service", ch["service"]);
    url.searchParams.set("scope", ch["scope"] ?? scope);
    const headers: Record<string, string> = { accept: "application/json" };
    const cred = this.opts.credential;
    if (cred?.username !== undefined && cred.password !== undefined) {
      headers["authorization"] = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString("base64")}`;
    }
    const res = await this.raw(url, { headers, signal });
    if (res.status !== 200) throw statusFailure(res, `token from ${url.host}`);
    const doc = JSON.parse((await readBody(res, 1 << 20)).toString("utf8")) as {
      token?: string;
      access_token?: string;
    };
    const tok = doc.token ?? doc.access_token;
    if (!tok) throw new RegistryError("unauthorized", "token endpoint returned no token");
    return tok;
  }

  /**
   * Sends a request to the registry with auth (answering one 401 challenge) and redirects (dropping credentials
   * when the origin changes). `scope` is the token scope, e.g. `repository:a/b:pull`.
   */
  async request(path: string, scope: string, o: HttpOptions & { okStatuses?: number[] } = {}): Promise<HttpResponse> {
    let url = new URL(path, await this.baseUrl(o.signal));
    const origin = url.origin;
    for (let attempt = 0, redirects = 0; ; ) {
      const headers = { ...(o.headers ?? {}) };
      if (url.origin === origin) {
        const tok = this.tokens.get(scope);
        if (tok) headers["authorization"] = `Bearer ${tok}`;
        else if (this.basic) headers["authorization"] = this.basic;
      }
      const res = await this.raw(url, { ...o, headers });
      if (res.status === 401 && attempt === 0 && url.origin === origin && !(o.body && !Buffer.isBuffer(o.body))) {
        attempt++;
        const ch = parseChallenge(res.headers["www-authenticate"]);
        discard(res);
        if (ch?.scheme === "bearer") {
          this.tokens.set(scope, await this.fetchToken(ch.params, scope, o.signal));
          continue;
        }
        const cred = this.opts.credential;
        if (ch?.scheme === "basic" && cred?.username !== undefined && cred.password !== undefined) {
          if (url.protocol !== "https:" && !isLoopbackHost(url.host)) {
            throw new RegistryError("protocol", "refusing to send a password over plain HTTP");
          }
          this.basic = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString("base64")}`;
          continue;
        }
        throw new RegistryError("unauthorized", `${this.registry}: unauthorized (401)`);
      }
      if ([301, 302, 303, 307, 308].includes(res.status) && res.headers.location) {
        discard(res);
        if (++redirects > 5) throw new RegistryError("protocol", "too many redirects");
        const next = new URL(res.headers.location, url);
        if (next.protocol !== "https:" && !(next.protocol === "http:" && this.plainAllowed(next.host))) {
          throw new RegistryError("protocol", `refusing redirect to ${next.protocol}//${next.host}`);
        }
        url = next;
        if (res.status === 303) o = { ...o, method: "GET" };
        continue;
      }
      return res;
    }
  }

  /** Fetches a manifest by tag or digest, resolving an index/list to the configured platform. Verifies digests. */
  async getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const scope = `repository:${repository}:pull`;
    const what = `manifest ${this.registry}/${repository}:${reference}`;
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, scope, {
      headers: { accept: MANIFEST_ACCEPT },
      signal,
    });
    if (res.status !== 200) throw statusFailure(res, what);
    const raw = await readBody(res);
    const digest = `sha256:${createHash("sha256").update(raw).digest("hex")}`;
    if (isDigest(reference) && digest !== reference) {
      throw new RegistryError("digestMismatch", `${what}: content has digest ${digest}`);
    }
    let doc: {
      mediaType?: string;
      schemaVersion?: number;
      manifests?: Descriptor[];
      config?: Descriptor;
      layers?: Descriptor[];
    };
    try {
      doc = JSON.parse(raw.toString("utf8"));
    } catch {
      throw new RegistryError("protocol", `${what}: not JSON`);
    }
    const ct = String(res.headers["content-type"] ?? "")
      .split(";")[0]!
      .trim();
    const mediaType = doc.mediaType ?? ct;
    if (mediaType === MT_OCI_INDEX || mediaType === MT_DOCKER_LIST || Array.isArray(doc.manifests)) {
      const want = this.opts.platform ?? { os: "linux", architecture: "amd64" };
      const pick = (doc.manifests ?? []).find(
        (m) => m.platform?.os === want.os && m.platform?.architecture === want.architecture,
      );
      if (!pick) throw new RegistryError("notFound", `${what}: no ${want.os}/${want.architecture} image in the index`);
      return this.getManifest(repository, pick.digest, signal);
    }
    if (doc.schemaVersion !== 2 || !doc.config || !Array.isArray(doc.layers)) {
      throw new RegistryError("protocol", `${what}: unsupported manifest (${mediaType || "no media type"})`);
    }
    for (const d of [doc.config, ...doc.layers]) {
      if (!isDigest(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0) {
        throw new RegistryError("protocol", `${what}: bad descriptor`);
      }
    }
    return { digest, mediaType, raw, manifest: doc as ImageManifest };
  }

  /** Opens a blob for reading (optionally from byte `start`, answered by 206 when the registry supports ranges). */
  async openBlob(repository: string, digest: string, start = 0, signal?: AbortSignal): Promise<HttpResponse> {
    const headers: Record<string, string> = {};
    if (start > 0) headers["range"] = `bytes=${start}-`;
    const res = await this.request(`/v2/${repository}/blobs/${digest}`, `repository:${repository}:pull`, {
      headers,
      signal,
    });
    if (res.status === 200 || (start > 0 && res.status === 206)) return res;
    throw statusFailure(res, `blob ${this.registry}/${repository}@${digest.slice(0, 19)}`);
  }

  async blobExists(repository: string, digest: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.request(`/v2/${repository}/blobs/${digest}`, `repository:${repository}:pull,push`, {
      method: "HEAD",
      signal,
    });
    discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw statusFailure(res, `HEAD blob ${digest}`);
  }

  /** Tries a cross-repository mount; returns true if mounted, false if an upload is needed. */
  async mountBlob(repository: string, digest: string, from: string, signal?: AbortSignal): Promise<boolean> {
    const q = new URLSearchParams({ mount: digest, from });
    const res = await this.request(`/v2/${repository}/blobs/uploads/?${q}`, `repository:${repository}:pull,push`, {
      method: "POST",
      headers: { "content-length": "0" },
      signal,
    });
    discard(res);
    if (res.status === 201) return true;
    if (res.status === 202) {
      // An upload session was opened instead; cancel it (best effort) and upload normally.
      const loc = res.headers.location;
      if (loc) {
        const del = await this.request(loc, `repository:${repository}:pull,push`, { method: "DELETE", signal }).catch(
          () => undefined,
        );
        if (del) discard(del);
      }
      return false;
    }
    throw statusFailure(res, `mount ${digest}`);
  }

  /** Uploads a blob from a file: monolithic when it fits in one chunk, otherwise chunked PATCHes then PUT. */
  async uploadBlob(
    repository: string,
    digest: string,
    file: string,
    size: number,
    o: { chunkSize?: number; signal?: AbortSignal; onBytes?: (n: number) => void } = {},
  ): Promise<void> {
    const scope = `repository:${repository}:pull,push`;
    const chunk = o.chunkSize ?? 64 * 1024 * 1024;
    const start = await this.request(`/v2/${repository}/blobs/uploads/`, scope, {
      method: "POST",
      headers: { "content-length": "0" },
      signal: o.signal,
    });
    discard(start);
    if (start.status !== 202 || !start.headers.location) throw statusFailure(start, `start upload ${digest}`);
    let loc = start.headers.location;
    const stream = (from: number, to: number) => {
      const s = createReadStream(file, { start: from, end: to - 1, highWaterMark: 1 << 20 });
      if (o.onBytes) s.on("data", (c) => o.onBytes!((c as Buffer).length));
      return s;
    };
    const withDigest = (l: string): string => {
      const u = new URL(l, "http://x");
      u.searchParams.set("digest", digest);
      return /^https?:/.test(l) ? u.toString() : `${u.pathname}${u.search}`;
    };
    if (size <= chunk) {
      const put = await this.request(withDigest(loc), scope, {
        method: "PUT",
        headers: { "content-type": "application/octet-stream", "content-length": String(size) },
        body: stream(0, size),
        signal: o.signal,
      });
      discard(put);
      if (put.status !== 201) throw statusFailure(put, `upload ${digest}`);
      return;
    }
    for (let off = 0; off < size; off += chunk) {
      const end = Math.min(size, off + chunk);
      const res = await this.request(loc, scope, {
        method: "PATCH",
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(end - off),
          "content-range": `${off}-${end - 1}`,
        },
        body: stream(off, end),
        signal: o.signal,
      });
      discard(res);
      if (res.status !== 202 || !res.headers.location) throw statusFailure(res, `upload chunk ${off} of ${digest}`);
      loc = res.headers.location;
    }
    const put = await this.request(withDigest(loc), scope, {
      method: "PUT",
      headers: { "content-length": "0" },
      signal: o.signal,
    });
    discard(put);
    if (put.status !== 201) throw statusFailure(put, `finish upload ${digest}`);
  }

  /** PUTs a manifest under a tag (or digest); returns its digest. */
  async putManifest(
    repository: string,
    reference: string,
    raw: Buffer,
    mediaType: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, `repository:${repository}:pull,push`, {
      method: "PUT",
      headers: { "content-type": mediaType, "content-length": String(raw.length) },
      body: raw,
      signal,
    });
    discard(res);
    if (res.status !== 201) throw statusFailure(res, `put manifest ${repository}:${reference}`);
    return `sha256:${createHash("sha256").update(raw).digest("hex")}`;
  }
}
