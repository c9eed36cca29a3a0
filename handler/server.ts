// The node agent's HTTP endpoint, published in its Node (status.addresses InternalIP +
// status.daemonEndpoints.kubeletEndpoint.Port), which the API server proxies to:
//   GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&limitBytes=   (kubelet's path: pods/log)
//   GET /v1/namespaces/{namespace}/virtualmachineinstances/{name}/{console|vnc}      (WebSocket, plain.kubevirt.io)
//   PUT /v1/namespaces/{namespace}/virtualmachineinstances/{name}/{pause|unpause|softreboot|reset}   (virt-api's verbs)
//   POST /upload/{namespace}/{pod}?ticket=  (CDI's upload proxy → the pod's upload server on <podDir>/sockets/upload.sock;
//                                          only with the one-time ticket the API server opened, lib/upload-ticket.ts)
//   GET /healthz
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { isStatusError, statusError } from "../lib/errors.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { UPLOAD_TICKET_PARAM } from "../lib/upload-ticket.js";
import { logPath } from "./processes.js";
import { bridgeUnixSocket, refuseNotFound, streamServer } from "./stream.js";

export interface ServerOptions {
  host: string;
  port: number;
  /** Pod dir of a pod (by namespace/name) that runs or ran on this node. */
  podDir: (namespace: string, name: string) => string | undefined;
  /** Runs a running-VM verb on the VMI's launcher; rejects with a StatusError. */
  vmiCommand?: (namespace: string, name: string, verb: string) => Promise<void>;
  /**
   * Consumes the one-time upload ticket of a pod (lib/upload-ticket.ts); rejects with a StatusError when it is not
   * good. Without it, uploads are refused.
   */
  claimUploadTicket?: (namespace: string, pod: string, ticket: string | null) => Promise<void>;
  /** Pod dir of the running launcher of a VMI (by namespace/name). */
  vmiPodDir: (namespace: string, name: string) => string | undefined;
  log?: Logger;
}

const SEG = "([a-z0-9][a-z0-9.-]{0,252})";
const LOGS = new RegExp(`^/containerLogs/${SEG}/${SEG}/${SEG}$`);
const VERB = new RegExp(`^/v1/namespaces/${SEG}/virtualmachineinstances/${SEG}/(pause|unpause|softreboot|reset)$`);
const STREAM = new RegExp(`^/v1/namespaces/${SEG}/virtualmachineinstances/${SEG}/(console|vnc)$`);
const UPLOAD = new RegExp(`^/upload/${SEG}/${SEG}$`);

/** The upload server's socket in an upload pod's directory (storage/upload serves it). */
export function uploadSocket(podDir: string): string {
  return join(podDir, "sockets", "upload.sock");
}

/**
 * Streams an upload's body to the pod's upload server over its unix socket and its answer back, at the pace the
 * server reads (pipe's backpressure both ways); a client that goes away aborts the server's request.
 */
function bridgeUpload(req: IncomingMessage, res: ServerResponse, podDir: string): void {
  const headers: Record<string, string> = { "content-type": "application/octet-stream" };
  const len = req.headers["content-length"];
  if (len !== undefined && /^\d+$/.test(len)) headers["content-length"] = len;
  else headers["transfer-encoding"] = "chunked";
  const up = request({ socketPath: uploadSocket(podDir), path: "/v1beta1/upload", method: "POST", headers }, (ur) => {
    res.writeHead(ur.statusCode ?? 502, { "content-type": ur.headers["content-type"] ?? "application/json" });
    ur.pipe(res);
  });
  up.on("error", (e) => {
    req.resume();
    if (!res.headersSent) status(res, 503, "ServiceUnavailable", `the upload server is not answering: ${e.message}`);
    else res.destroy();
  });
  res.on("close", () => {
    if (!res.writableFinished) up.destroy();
  });
  req.pipe(up);
}

/**
 * The unix socket in a launcher pod's directory that serves a stream: the launcher's console proxy, or QEMU's VNC
 * socket (launcher/prepare.ts puts it in the pod's qemu dir; the converter names it in the domain's <graphics>).
 */
export function streamSocket(podDir: string, kind: "console" | "vnc"): string {
  return kind === "console" ? join(podDir, "sockets", "console.sock") : join(podDir, "qemu", "vnc");
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code }));
}

async function tailStart(path: string, tailLines: number | undefined): Promise<number> {
  if (tailLines === undefined) return 0;
  const size = (await stat(path)).size;
  if (tailLines === 0) return size;
  const fh = await open(path, "r");
  try {
    const chunk = Math.min(size, 1 << 20);
    const buf = Buffer.alloc(chunk);
    await fh.read(buf, 0, chunk, size - chunk);
    let pos = chunk;
    let lines = 0;
    if (pos > 0 && buf[pos - 1] === 10) pos--;
    while (pos > 0) {
      if (buf[pos - 1] === 10 && ++lines === tailLines) break;
      pos--;
    }
    return size - chunk + pos;
  } finally {
    await fh.close();
  }
}

async function serveLogs(req: IncomingMessage, res: ServerResponse, url: URL, dir: string): Promise<void> {
  const path = logPath(dir);
  try {
    await stat(path);
  } catch {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end();
    return;
  }
  const tl = url.searchParams.get("tailLines");
  const lim = url.searchParams.get("limitBytes");
  const follow = url.searchParams.get("follow") === "true";
  let pos = await tailStart(path, tl !== null && /^\d+$/.test(tl) ? Number(tl) : undefined);
  let remaining = lim !== null && /^\d+$/.test(lim) ? Number(lim) : Number.POSITIVE_INFINITY;
  res.writeHead(200, { "content-type": "text/plain", "transfer-encoding": "chunked" });
  res.flushHeaders();
  const pump = async (): Promise<void> => {
    const size = (await stat(path).catch(() => ({ size: pos }))).size;
    if (size <= pos || remaining <= 0) return;
    const end = Math.min(size, pos + remaining) - 1;
    await new Promise<void>((resolve, reject) => {
      const s = createReadStream(path, { start: pos, end });
      s.on("data", (d) => res.write(d));
      s.on("end", resolve);
      s.on("error", reject);
    });
    remaining -= end + 1 - pos;
    pos = end + 1;
  };
  await pump();
  if (!follow || remaining <= 0) {
    res.end();
    return;
  }
  // Follow: poll the file's size (the launcher writes it from another process; fs.watch misses appends on some fs).
  let closed = false;
  req.on("close", () => {
    closed = true;
  });
  while (!closed && remaining > 0) {
    await new Promise((r) => setTimeout(r, 250));
    try {
      await stat(dir);
    } catch {
      break;
    }
    await pump();
  }
  res.end();
}

export function startServer(o: ServerOptions): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const log = (o.log ?? nullLogger).child({ component: "handler-server" });
  const wss = streamServer();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://node");
    const verb = VERB.exec(url.pathname);
    if (verb && req.method === "PUT" && o.vmiCommand) {
      req.resume();
      o.vmiCommand(verb[1] ?? "", verb[2] ?? "", verb[3] ?? "").then(
        () => {
          res.writeHead(202);
          res.end();
        },
        (e: unknown) => {
          const s = (e as { status?: { code?: number; reason?: string } }).status;
          status(res, s?.code ?? 500, s?.reason ?? "InternalError", (e as Error).message);
        },
      );
      return;
    }
    const upload = UPLOAD.exec(url.pathname);
    if (upload && req.method === "POST") {
      const [, ns = "", pod = ""] = upload;
      const dir = o.podDir(ns, pod);
      if (!dir) {
        req.resume();
        return status(res, 404, "NotFound", `pod "${pod}" not found on this node`);
      }
      const claim = o.claimUploadTicket
        ? o.claimUploadTicket(ns, pod, url.searchParams.get(UPLOAD_TICKET_PARAM))
        : Promise.reject(statusError(403, "Forbidden", "this node agent takes no uploads"));
      claim.then(
        () => bridgeUpload(req, res, dir),
        (e: unknown) => {
          req.resume();
          const s = isStatusError(e) ? e.status : undefined;
          log.warn("upload refused", { ns, pod, err: (e as Error).message });
          status(res, s?.code ?? 503, s?.reason ?? "ServiceUnavailable", (e as Error).message);
        },
      );
      return;
    }
    if (req.method !== "GET") return status(res, 405, "MethodNotAllowed", "only GET is served here");
    if (url.pathname === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
      return;
    }
    const m = LOGS.exec(url.pathname);
    if (m) {
      const [, ns, pod] = m as unknown as [string, string, string, string];
      const dir = o.podDir(ns, pod);
      if (!dir) return status(res, 404, "NotFound", `pod "${pod}" not found on this node`);
      serveLogs(req, res, url, dir).catch((err: unknown) => {
        log.warn("log streaming failed", { err });
        res.destroy();
      });
      return;
    }
    status(res, 404, "NotFound", `no handler for ${url.pathname}`);
  });
  // an upload's body may take longer than Node's default 5 minutes to arrive
  server.requestTimeout = 0;
  server.on("upgrade", (req, socket, head) => {
    socket.on("error", () => socket.destroy());
    const url = new URL(req.url ?? "/", "http://node");
    const m = STREAM.exec(url.pathname);
    if (!m) return refuseNotFound(socket, `no handler for ${url.pathname}`);
    const [, ns, name, kind] = m as unknown as [string, string, string, "console" | "vnc"];
    const dir = o.vmiPodDir(ns, name);
    if (!dir) return refuseNotFound(socket, `VMI "${name}" has no running launcher on this node`);
    void bridgeUnixSocket(wss, req, socket, head, streamSocket(dir, kind), kind, log);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : o.port;
      resolve({
        server,
        port,
        close: () =>
          new Promise<void>((r) => {
            for (const c of wss.clients) c.terminate();
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
