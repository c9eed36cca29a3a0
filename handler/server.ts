// The node agent's HTTP endpoint, published in its Node (status.addresses InternalIP +
// status.daemonEndpoints.kubeletEndpoint.Port), which the API server proxies to:
//   GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&limitBytes=   (kubelet's path: pods/log)
//   GET /v1/namespaces/{namespace}/virtualmachineinstances/{name}/{console|vnc}      (WebSocket, plain.kubevirt.io)
//   PUT /v1/namespaces/{namespace}/virtualmachineinstances/{name}/{pause|unpause|softreboot|reset}   (virt-api's verbs)
//   POST /upload/{namespace}/{pod}?ticket=  (CDI's upload proxy → the pod's upload server; only with the one-time
//                                          ticket the API server opened, lib/upload-ticket.ts)
//   GET /healthz
// An upload whose server has an IPC channel to this agent is taken off the data path: the first request of a
// connection is read up to its head here (before Node's HTTP parser takes the socket), the ticket checked, and the
// connection itself handed to the upload server with the bytes read so far (it serves the request, 100-continue
// included, and closes the connection after its answer). Without a channel (an agent restarted since the worker
// started) the body is relayed to the server's unix socket, as is an upload that is not a connection's first request.
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import net from "node:net";
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
  /**
   * How to hand a connection to the upload server of the pod in `podDir` (its IPC channel: resolves false when it
   * could not), or undefined when that pod has none: then the body is relayed to its unix socket.
   */
  uploadHandoff?: (podDir: string) => ((socket: net.Socket, head: Buffer) => Promise<boolean>) | undefined;
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

function statusBody(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code });
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(statusBody(code, reason, message));
}

/** Answers a Status on a connection no HTTP server owns, and closes it once the client's bytes stop. */
function rawStatus(socket: net.Socket, code: number, reason: string, message: string): void {
  const body = statusBody(code, reason, message);
  socket.on("data", () => {}); // (the rest of the body is drained, so the client reads the answer)
  socket.resume();
  // (reads stopped by stopReading start again here: its read() left the stream thinking one is under way)
  const h = handleOf(socket);
  if (h && !h.reading) {
    h.reading = true;
    h.readStart?.();
  }
  socket.end(
    `HTTP/1.1 ${code} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

const UPLOAD_PREFIX = "POST /upload/";
/** The longest request head read before the HTTP server gets the connection (it answers 431 past its own limit). */
const MAX_HEAD = 16 << 10;

/**
 * Pure: what the start of a connection's bytes says: "more" (cannot tell yet), "http" (not an upload: the HTTP
 * server serves it), or an upload request's namespace, pod, ticket and where its head ends.
 */
export function uploadHead(
  buf: Buffer,
): "more" | "http" | { ns: string; pod: string; ticket: string | null; headEnd: number } {
  const n = Math.min(buf.length, UPLOAD_PREFIX.length);
  if (buf.toString("latin1", 0, n) !== UPLOAD_PREFIX.slice(0, n)) return "http";
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return buf.length > MAX_HEAD ? "http" : "more";
  const line = /^POST (\S+) HTTP\/1\.[01]$/.exec(buf.toString("latin1", 0, buf.indexOf("\r\n")));
  if (!line) return "http";
  const url = new URL(line[1] ?? "/", "http://node");
  const m = UPLOAD.exec(url.pathname);
  if (!m) return "http";
  return { ns: m[1] ?? "", pod: m[2] ?? "", ticket: url.searchParams.get(UPLOAD_TICKET_PARAM), headEnd: end + 4 };
}

/** The socket's libuv handle (Node's own pause/resume paths set `reading` with readStop/readStart). */
function handleOf(
  socket: net.Socket,
): { reading?: boolean; readStop?: () => number; readStart?: () => number } | undefined {
  return (socket as unknown as { _handle?: ReturnType<typeof handleOf> })._handle;
}

/**
 * Stops the socket's reads (not only its flow: a paused socket still reads into its buffer, and bytes read after a
 * handoff began would be lost with it) and returns what its buffer holds: chunks read with the head's, not yet given
 * to a "data" listener (pause() in a listener leaves them there). Node's own pause path stops reads the same way.
 */
function stopReading(socket: net.Socket): Buffer[] {
  socket.pause();
  const held: Buffer[] = [];
  // (read() may ask the handle to read again; nothing is read before this tick ends, and the reads stop below)
  for (let c = socket.read() as Buffer | null; c !== null; c = socket.read() as Buffer | null) held.push(c);
  const h = handleOf(socket);
  if (h?.reading && h.readStop) {
    h.reading = false;
    h.readStop();
  }
  return held;
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
  const claimed = new WeakSet<net.Socket>();
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
      // (a connection whose handoff failed after its ticket was taken here: relayed without asking again)
      const claim = claimed.has(req.socket)
        ? Promise.resolve()
        : o.claimUploadTicket
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
  // Every connection's first bytes are looked at here (see the file's head): an upload with a channel is handed over.
  const pending = new Set<net.Socket>();
  const toHttp = (socket: net.Socket, head: Buffer): void => {
    if (socket.destroyed) return;
    pending.delete(socket);
    socket.pause();
    if (head.length) socket.unshift(head);
    server.emit("connection", socket);
    socket.resume();
  };
  const takeUpload = (socket: net.Socket, head: Buffer, u: Exclude<ReturnType<typeof uploadHead>, "more" | "http">) => {
    const dir = o.podDir(u.ns, u.pod);
    const handoff = dir ? o.uploadHandoff?.(dir) : undefined;
    if (!handoff || !o.claimUploadTicket) return toHttp(socket, head);
    head = Buffer.concat([head, ...stopReading(socket)]);
    o.claimUploadTicket(u.ns, u.pod, u.ticket)
      .then(async () => {
        if (socket.destroyed) return;
        if (await handoff(socket, head)) return void pending.delete(socket);
        claimed.add(socket);
        toHttp(socket, head);
      })
      .catch((e: unknown) => {
        pending.delete(socket);
        const s = isStatusError(e) ? e.status : undefined;
        log.warn("upload refused", { ns: u.ns, pod: u.pod, err: (e as Error).message });
        rawStatus(socket, s?.code ?? 503, s?.reason ?? "ServiceUnavailable", (e as Error).message);
      });
  };
  const front = net.createServer((socket) => {
    pending.add(socket);
    socket.on("error", () => socket.destroy());
    // (the HTTP server bounds a silent client once it has the connection; until then this does)
    const silent = setTimeout(() => pending.has(socket) && socket.destroy(), 60_000);
    silent.unref();
    socket.once("close", () => clearTimeout(silent));
    socket.once("close", () => pending.delete(socket));
    let head: Buffer = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      head = head.length ? Buffer.concat([head, d]) : d;
      const u = uploadHead(head);
      if (u === "more") return;
      socket.off("data", onData);
      if (u === "http") toHttp(socket, head);
      else takeUpload(socket, head, u);
    };
    socket.on("data", onData);
  });
  return new Promise((resolve, reject) => {
    front.once("error", reject);
    front.listen(o.port, o.host, () => {
      const addr = front.address();
      const port = typeof addr === "object" && addr ? addr.port : o.port;
      resolve({
        server,
        port,
        close: () =>
          new Promise<void>((r) => {
            for (const c of wss.clients) c.terminate();
            for (const c of pending) c.destroy();
            server.closeAllConnections();
            front.close(() => r());
          }),
      });
    });
  });
}
