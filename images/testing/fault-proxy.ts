// Test harness: a tiny reverse proxy on 127.0.0.1 in front of one registry, controlled by the test. It counts
// requests and body bytes per blob digest and can answer 500, hang, cut a blob mid-body, or call a hook when a
// blob has streamed N bytes (e.g. to SIGKILL the registry behind it).
import http from "node:http";
import type { AddressInfo } from "node:net";

export type FaultMode =
  | { mode: "pass" }
  | { mode: "status"; status: number; headers?: Record<string, string> }
  | { mode: "hang" }
  | { mode: "cutBlob"; afterBytes: number }
  | { mode: "down" };

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
  /** Called as blob bytes stream to the client (digest, bytes so far); returning true cuts the connection there. */
  onBlobBytes: ((digest: string, sent: number) => boolean | undefined) | undefined;
  reset(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
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
    reset() {
      proxy.requests = 0;
      proxy.blobs.clear();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const res of hung) res.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  const server = http.createServer((req, res) => {
    proxy.requests++;
    const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec((req.url ?? "").split("?")[0] ?? "");
    const digest = req.method === "GET" ? m?.[1] : undefined;
    let count: BlobCount | undefined;
    if (digest) {
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
    const up = http.request(
      {
        host: uhost,
        port: Number(uport),
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream },
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
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  proxy.port = (server.address() as AddressInfo).port;
  proxy.host = `127.0.0.1:${proxy.port}`;
  return proxy;
}
