// Test harness: a tiny reverse proxy on 127.0.0.1 in front of one registry, controlled by the test. It counts
// requests and body bytes per blob digest and can answer 500, hang, cut a blob mid-body, or call a hook when a
// blob has streamed N bytes (e.g. to SIGKILL the registry behind it).
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";

export type FaultMode =
  | { mode: "pass" }
  | { mode: "status"; status: number; headers?: Record<string, string> }
  | { mode: "hang" }
  | { mode: "cutBlob"; afterBytes: number }
  | { mode: "down" };

/** Registry auth the proxy enforces in front of the (auth-less) registry. */
export type ProxyAuth =
  | { kind: "bearer"; user?: string; password?: string; token: string }
  | { kind: "basic"; user: string; password: string };

export interface ProxyOptions {
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string; cert: string };
}

export interface BlobCount {
  requests: number;
  bytes: number;
}

export interface FaultProxy {
  host: string;
  port: number;
  fault: FaultMode;
  /** Requests seen (all paths). */
  requests: number;
  /** Per blob digest: GET requests and body bytes sent to clients. */
  blobs: Map<string, BlobCount>;
  /** Total body bytes of blob GETs sent to clients. */
  blobBytes(): number;
  /** Auth to demand (undefined: none). */
  auth: ProxyAuth | undefined;
  /** Token requests served (bearer auth). */
  tokenRequests: number;
  /** Authorization headers seen on blob GETs (to check credentials are not sent to a redirect target). */
  blobAuthHeaders: string[];
  /** Answer blob GETs with a 307 redirect to this base URL (e.g. another proxy), like blob storage does. */
  redirectBlobsTo: string | undefined;
  /** Called as blob bytes stream to the client (digest, bytes so far); returning true cuts the connection there. */
  onBlobBytes: ((digest: string, sent: number) => boolean | undefined) | undefined;
  reset(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string, opts: ProxyOptions = {}): Promise<FaultProxy> {
  const [uhost, uport] = upstream.split(":");
  const hung = new Set<http.ServerResponse>();
  const proxy: FaultProxy = {
    host: "",
    port: 0,
    fault: { mode: "pass" },
    requests: 0,
    blobs: new Map(),
    blobBytes: () => [...proxy.blobs.values()].reduce((s, b) => s + b.bytes, 0),
    onBlobBytes: undefined,
    auth: undefined,
    tokenRequests: 0,
    blobAuthHeaders: [],
    redirectBlobsTo: undefined,
    reset() {
      proxy.requests = 0;
      proxy.tokenRequests = 0;
      proxy.blobs.clear();
      proxy.blobAuthHeaders = [];
    },
    close: () =>
      new Promise<void>((r) => {
        for (const res of hung) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    proxy.requests++;
    const scheme = opts.tls ? "https" : "http";
    const a = proxy.auth;
    const authz = req.headers.authorization ?? "";
    const basicOk = (user: string | undefined, password: string | undefined): boolean =>
      user === undefined || authz === `Basic ${Buffer.from(`${user}:${password ?? ""}`).toString("base64")}`;
    if (a?.kind === "bearer" && (req.url ?? "").startsWith("/token")) {
      proxy.tokenRequests++;
      if (!basicOk(a.user, a.password)) {
        res.writeHead(401, { "content-type": "application/json" }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: a.token }));
      return;
    }
    if (a && (req.url ?? "").startsWith("/v2/")) {
      const ok = a.kind === "bearer" ? authz === `Bearer ${a.token}` : basicOk(a.user, a.password);
      if (!ok) {
        const repo = /^\/v2\/(.+?)\/(?:manifests|blobs)\//.exec(req.url ?? "")?.[1];
        const challenge =
          a.kind === "bearer"
            ? `Bearer realm="${scheme}://${proxy.host}/token",service="tsvirt-test"${repo ? `,scope="repository:${repo}:pull"` : ""}`
            : 'Basic realm="tsvirt-test"';
        res.writeHead(401, { "www-authenticate": challenge, "content-type": "application/json" });
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
    }
    const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec((req.url ?? "").split("?")[0] ?? "");
    const digest = req.method === "GET" ? m?.[1] : undefined;
    let count: BlobCount | undefined;
    if (digest) {
      proxy.blobAuthHeaders.push(authz);
      if (proxy.redirectBlobsTo) {
        res.writeHead(307, { location: `${proxy.redirectBlobsTo}${req.url}` }).end();
        return;
      }
      count = proxy.blobs.get(digest) ?? { requests: 0, bytes: 0 };
      count.requests++;
      proxy.blobs.set(digest, count);
    }
    const f = proxy.fault;
    if (f.mode === "down") {
      req.socket.destroy();
      return;
    }
    if (f.mode === "status") {
      res.writeHead(f.status, { "content-type": "text/plain", ...(f.headers ?? {}) });
      res.end("fault injected\n");
      return;
    }
    if (f.mode === "hang") {
      hung.add(res);
      res.on("close", () => hung.delete(res));
      return;
    }
    const upHeaders: http.OutgoingHttpHeaders = { ...req.headers, host: upstream };
    delete upHeaders.authorization; // the registry behind us has no auth of its own
    const up = http.request(
      {
        host: uhost,
        port: Number(uport),
        method: req.method,
        path: req.url,
        headers: upHeaders,
      },
      (ures) => {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        let sent = 0;
        ures.on("data", (c: Buffer) => {
          if (count && f.mode === "cutBlob" && sent + c.length > f.afterBytes) {
            const keep = c.subarray(0, Math.max(0, f.afterBytes - sent));
            count.bytes += keep.length;
            res.write(keep, () => res.destroy());
            ures.destroy();
            return;
          }
          sent += c.length;
          if (count) count.bytes += c.length;
          if (!res.write(c)) {
            ures.pause();
            res.once("drain", () => ures.resume());
          }
          if (count && digest && proxy.onBlobBytes?.(digest, sent) === true) {
            ures.destroy();
            res.destroy();
          }
        });
        ures.on("end", () => res.end());
        ures.on("error", () => res.destroy());
        ures.on("aborted", () => res.destroy());
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(up);
  };
  const server = opts.tls
    ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, handler)
    : http.createServer(handler);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  proxy.port = (server.address() as AddressInfo).port;
  proxy.host = `127.0.0.1:${proxy.port}`;
  return proxy;
}
