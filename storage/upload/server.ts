// The upload server (CDI's cdi-upload-server): one per upload DataVolume, on its node, with no API access. It serves
// HTTP on the unix socket <podDir>/sockets/upload.sock (the node agent bridges CDI's upload proxy to it), takes one
// upload at a time and writes it through the importer's sink (format detection, gz/xz, qcow2 → raw, sparse write,
// fsync, verify). A body that is not a disk image is refused (400) and the server keeps waiting; an interrupted upload
// marks nothing, and the next one starts over on a clean target (the sink truncates/discards it first). Only once the
// volume is written and verified does the termination message say Succeeded, and the process exits 0.
// The node agent may also hand it a client's connection itself (adopt(): over the worker's IPC channel, with the
// bytes the agent read of it): its request is then served here with no relay in between, and the connection closed
// after the answer (it may be the API server's, whose next requests are for the agent).
import { mkdir, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type net from "node:net";
import { dirname } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { type Logger, nullLogger } from "../../lib/log.js";
import { ImportError } from "../importer/index.js";

/** The IPC messages between the upload server and the node agent (worker → agent: listening; agent → worker: a
 * connection, the socket as the message's handle, `head` the bytes the agent read of it, base64). */
export const UPLOAD_LISTENING = "tsvirt.upload.listening";
export const UPLOAD_CONNECTION = "tsvirt.upload.connection";
export type UploadConnectionMessage = { type: typeof UPLOAD_CONNECTION; head: string };

/** What a finished write reports (the contract's Succeeded line carries it). */
export interface UploadResult {
  bytes: number;
  sha256: string;
}

/**
 * Writes one upload's bytes into the target (the importer's sink, storage/importer/sink.ts): rejects with a fatal
 * ImportError for content it will not write (NotADiskImage, ImageTooLarge, BackingFile), with anything else for I/O
 * trouble or a body that ended early.
 */
export type UploadSink = (body: Readable, opts: { expectedBytes?: number }) => Promise<UploadResult>;

export interface UploadServerOptions {
  socketPath: string;
  sink: UploadSink;
  /** Marks the volume done (the contract's Succeeded termination message); called after the sink verified it. */
  markSucceeded: (r: UploadResult) => Promise<void>;
  log?: Logger;
}

/** The paths served: CDI's upload server's own and its proxy's (the node agent posts to /v1beta1/upload). */
const UPLOAD_PATHS = new Set([
  "/v1beta1/upload",
  "/v1beta1/upload-async",
  "/v1alpha1/upload",
  "/v1alpha1/upload-async",
  "/upload",
]);

function send(res: ServerResponse, code: number, reason: string, message: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = JSON.stringify({
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: code < 400 ? "Success" : "Failure",
    message,
    reason,
    code,
  });
  res.writeHead(code, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

export interface RunningUploadServer {
  server: Server;
  /** Settles once an upload succeeded and its answer was sent (the process then exits 0). */
  done: Promise<UploadResult>;
  /** Serves a connection the node agent handed over: `head` is what it read of it (the request's head, maybe more). */
  adopt(socket: net.Socket, head: Buffer): void;
  close(): Promise<void>;
}

/** Serves uploads until one succeeds. Readiness = the socket answers GET /healthz. */
export async function startUploadServer(o: UploadServerOptions): Promise<RunningUploadServer> {
  const log = o.log ?? nullLogger;
  let busy = false;
  let attempts = 0;
  let finished: ((r: UploadResult) => void) | undefined;
  const done = new Promise<UploadResult>((r) => {
    finished = r;
  });
  const handed = new WeakSet<object>();
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? "/", "http://upload").pathname;
    const adopted = handed.has(req.socket);
    if (adopted) res.shouldKeepAlive = false;
    if (path === "/healthz" && req.method === "GET") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
      return;
    }
    // (the agent hands over only its own /upload/{ns}/{pod} requests)
    if (!UPLOAD_PATHS.has(path) && !(adopted && path.startsWith("/upload/"))) {
      req.resume();
      send(res, 404, "NotFound", `no handler for ${path}`);
      return;
    }
    if (req.method !== "POST" && req.method !== "PUT") {
      req.resume();
      send(res, 405, "MethodNotAllowed", "an upload is a POST (or PUT) of the image");
      return;
    }
    if (busy) {
      req.resume();
      send(res, 409, "Conflict", "an upload is already in progress: one at a time");
      return;
    }
    busy = true;
    attempts++;
    const attempt = attempts;
    const ac = new AbortController();
    // The sink reads a stream of its own: a sink that gives up (and destroys its source) leaves the connection
    // alive, so the refusal still reaches the client while the rest of its body is drained.
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    // An interruption destroys it with an error, maybe before the sink reads it (writeImage cleans the target
    // first): unheard, that error killed the process. The sink still gets it (a destroyed stream's reads throw it),
    // and the attempt fails on ac.signal either way.
    body.on("error", () => {});
    req.pipe(body);
    // the client (or the proxy in between) went away before the end: the write is abandoned, nothing is marked
    const abandon = (): void => {
      if (req.complete) return;
      const why = new Error("the upload was interrupted before its end");
      ac.abort(why);
      body.destroy(why);
    };
    req.on("close", abandon);
    res.on("close", abandon);
    const len = req.headers["content-length"];
    const expectedBytes = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
    log.info(attempt > 1 ? "upload started: starting over on a clean target" : "upload started", {
      attempt,
      expectedBytes: expectedBytes ?? null,
    });
    void (async () => {
      try {
        const r = await o.sink(body, expectedBytes !== undefined ? { expectedBytes } : {});
        if (ac.signal.aborted) throw ac.signal.reason;
        await o.markSucceeded(r);
        log.info("upload complete", { bytes: r.bytes, sha256: r.sha256 });
        send(res, 200, "UploadComplete", `Upload Complete: ${r.bytes} bytes written and verified`);
        res.on("finish", () => finished?.(r));
        res.on("close", () => finished?.(r));
      } catch (e) {
        busy = false;
        req.unpipe(body);
        req.resume();
        if (e instanceof ImportError && e.fatal) {
          // the content is wrong, not the server: the user may send another file
          log.warn("upload refused; waiting for another", { reason: e.reason, message: e.message });
          send(res, 400, e.reason, e.message);
          return;
        }
        const msg = (e as Error)?.message ?? String(e);
        log.warn("upload failed; nothing is marked, the next upload starts over on a clean target", { err: msg });
        send(
          res,
          503,
          "ServiceUnavailable",
          `upload failed (${msg}); nothing is marked: retry the upload, it starts over`,
        );
      }
    })();
  };
  await mkdir(dirname(o.socketPath), { recursive: true });
  await rm(o.socketPath, { force: true });
  const server = createServer(handle);
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  log.info("upload server ready", { socket: o.socketPath });
  return {
    server,
    done,
    adopt(socket, head) {
      handed.add(socket);
      socket.pause();
      if (head.length) socket.unshift(head);
      server.emit("connection", socket);
      socket.resume();
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
