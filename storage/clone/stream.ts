// The cross-node clone: the clone-source pod serves its volume over one TCP connection on its pod IP; the target's
// importer connects, writes what it receives sparsely, verifies and only then reports success.
//
// Wire format (big-endian): the client sends one line `TSVCLONE/1 <token>\n` (the token is the target DV's uid: the
// source serves only the clone it was made for). The server answers with the header
//   "TSVCLN01" (8 bytes) | size u64
// then data extents (zero blocks are never sent)
//   0x01 | offset u64 | length u32 | length bytes
// with, in a long run of zeros, a mark at least every second (the target's idle timeout sees a live source)
//   0x02 | bytes scanned so far u64
// and the trailer
//   0x00 | sha256 of all `size` bytes (32 bytes)
// A stream that ends before the trailer is a transient failure (the target's DV retries).
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { cleanTarget, fatal, type JobTarget, transient } from "../importer/index.js";
import {
  type CopyResult,
  dataRuns,
  type Progress,
  scan,
  tooLarge,
  type Volume,
  verifyTarget,
  volumeSize,
  writeFully,
} from "./sparse.js";

export const MAGIC = Buffer.from("TSVCLN01");
export const HELLO = "TSVCLONE/1";
/** The clone source's port on its pod IP. */
export const CLONE_PORT = 8444;
const EXTENT = 1;
const END = 0;
const SCANNED = 2;
/** A source silent this long (scanning zeros) sends a SCANNED mark. */
export const MARK_EVERY_MS = 1_000;
const MAX_HELLO = 512;

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function extentHeader(offset: number, length: number): Buffer {
  const b = Buffer.alloc(13);
  b.writeUInt8(EXTENT, 0);
  b.writeBigUInt64BE(BigInt(offset), 1);
  b.writeUInt32BE(length, 9);
  return b;
}

/** Writes, waiting for the socket to drain when its buffer is full (backpressure). */
async function send(sock: Socket, buf: Buffer): Promise<void> {
  if (sock.destroyed) throw new Error("the connection closed");
  if (sock.write(buf)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      sock.off("drain", ok);
      sock.off("close", closed);
      if (err) reject(err);
      else resolve();
    };
    const ok = () => done();
    const closed = () => done(new Error("the connection closed"));
    sock.once("drain", ok);
    sock.once("close", closed);
  });
}

/** Streams the volume to one connected client (after its hello was accepted). */
export async function sendVolume(sock: Socket, source: Volume, markEveryMs = MARK_EVERY_MS): Promise<CopyResult> {
  const fh = await open(source.path, "r");
  try {
    const size = await volumeSize(source, fh);
    await send(sock, Buffer.concat([MAGIC, u64(size)]));
    const hash = createHash("sha256");
    let written = 0;
    let sentAt = Date.now();
    await scan(fh, size, hash, async (chunk, pos) => {
      for (const [a, b] of dataRuns(chunk)) {
        // A copy: the socket may hold the buffer past this call, and scan reuses it.
        await send(sock, Buffer.concat([extentHeader(pos + a, b - a), chunk.subarray(a, b)]));
        written += b - a;
        sentAt = Date.now();
      }
      if (Date.now() - sentAt >= markEveryMs) {
        const mark = Buffer.alloc(9);
        mark.writeUInt8(SCANNED, 0);
        mark.writeBigUInt64BE(BigInt(pos + chunk.length), 1);
        await send(sock, mark);
        sentAt = Date.now();
      }
    });
    const sha256 = hash.digest("hex");
    await send(sock, Buffer.concat([Buffer.from([END]), Buffer.from(sha256, "hex")]));
    await new Promise<void>((resolve) => sock.end(resolve));
    return { bytes: size, sha256, written };
  } finally {
    await fh.close();
  }
}

/** Reads the client's hello line (bounded), then leaves the socket paused. */
function readHello(sock: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let line = "";
    const done = (err?: Error) => {
      sock.off("data", onData);
      sock.off("end", onEnd);
      sock.off("error", onEnd);
      sock.pause();
      if (err) reject(err);
      else resolve(line.slice(0, line.indexOf("\n")));
    };
    const onData = (chunk: Buffer) => {
      line += chunk.toString("latin1");
      if (line.includes("\n")) done();
      else if (line.length > MAX_HELLO) done(new Error("the client's hello is too long"));
    };
    const onEnd = () => done(new Error("no hello from the client"));
    sock.on("data", onData);
    sock.once("end", onEnd);
    sock.once("error", onEnd);
  });
}

export interface ServeOptions {
  source: Volume;
  token: string;
  host?: string;
  port?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** A client that sends no hello for this long is dropped (default 10 s). */
  helloTimeoutMs?: number;
  /** A transfer whose client reads nothing for this long is dropped (default 30 s: a peer gone without a word). */
  stallTimeoutMs?: number;
  /** Silence (a run of zeros) after which a SCANNED mark goes out (default MARK_EVERY_MS). */
  markEveryMs?: number;
}

/** A listening clone source. */
export interface VolumeServer {
  port: number;
  /** Stops listening and drops every connection (a half-open one must not keep the process alive past SIGTERM). */
  close(): Promise<void>;
}

/**
 * Serves the source to clients with the right token. The newest client with the right hello is served and any
 * transfer still under way is dropped: only one target importer exists at a time, so an older connection is one
 * whose importer is gone (killed, its pod deleted) and whose socket may never close (no FIN from a deleted network
 * namespace). Resolves once listening.
 */
export async function serveVolume(o: ServeOptions): Promise<VolumeServer> {
  let current: Socket | undefined;
  const socks = new Set<Socket>();
  const log = o.log ?? (() => {});
  const server = createServer((sock) => {
    socks.add(sock);
    sock.once("close", () => {
      socks.delete(sock);
      if (current === sock) current = undefined;
    });
    sock.setNoDelay(true);
    sock.on("error", () => {}); // a client gone mid-stream: send() sees the close
    sock.setTimeout(o.helloTimeoutMs ?? 10_000, () => sock.destroy());
    const peer = `${sock.remoteAddress}:${sock.remotePort}`;
    (async () => {
      const hello = await readHello(sock);
      if (hello !== `${HELLO} ${o.token}`) {
        log("refused a client with a wrong hello", { peer });
        sock.destroy();
        return;
      }
      if (current) {
        log("a new client: dropping the previous transfer", { peer });
        current.destroy();
      }
      current = sock;
      sock.setTimeout(o.stallTimeoutMs ?? 30_000, () => sock.destroy());
      const r = await sendVolume(sock, o.source, o.markEveryMs);
      log("volume sent", { peer, bytes: r.bytes, written: r.written, sha256: r.sha256 });
    })().catch((e: unknown) => {
      log("sending the volume failed", { peer, err: (e as Error).message });
      sock.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? CLONE_PORT, o.host ?? "0.0.0.0", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of socks) s.destroy();
      }),
  };
}

/** Pulls exact byte counts out of a socket's chunks. */
class Reader {
  private chunks: Buffer[] = [];
  private have = 0;
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;
  constructor(sock: Socket) {
    this.it = sock[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }
  /** Exactly n bytes, or undefined when the stream ends first. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.have < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else {
        this.chunks.push(r.value);
        this.have += r.value.length;
      }
    }
    if (this.have < n) return undefined;
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }
}

export interface ReceiveOptions {
  host: string;
  port?: number;
  token: string;
  /** The target, cleaned to its claim's size first; a larger source is fatal. */
  target: JobTarget;
  onProgress?: Progress;
  /** Connect timeout (default 30 s). */
  timeoutMs?: number;
  /** No byte for this long ends the transfer (default 20 s: a stalled stream is retried sooner). */
  idleTimeoutMs?: number;
}

const truncated = (at: string) => transient("TransferInterrupted", `the clone source's stream ended early (${at})`);

/** Errors of a network not there yet: the pod's links are made while its process starts (handler/pod-runner.ts). */
const NOT_YET = new Set(["ENETUNREACH", "EHOSTUNREACH", "ECONNREFUSED", "EADDRNOTAVAIL"]);

function connectOnce(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => s.destroy(new Error(`no answer from ${host} in ${timeoutMs} ms`)), timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Connects, retrying (bounded by `timeoutMs`) while the pod's network is still being made. */
export async function connectRetrying(host: string, port: number, timeoutMs: number): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connectOnce(host, port, Math.max(1, deadline - Date.now()));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "";
      if (!NOT_YET.has(code) || Date.now() + 200 >= deadline) {
        throw transient(
          "SourceUnreachable",
          `cannot reach the clone source at ${host}:${port}: ${(e as Error).message}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Receives a volume from a clone source into the target: sparse writes, fsync, verification against its digest. */
export async function receiveVolume(o: ReceiveOptions): Promise<CopyResult> {
  const sock = await connectRetrying(o.host, o.port ?? CLONE_PORT, o.timeoutMs ?? 30_000);
  sock.on("error", () => {}); // surfaced as the stream's end
  // A source that stalls (stopped, network gone) must not hang the target forever.
  sock.setTimeout(o.idleTimeoutMs ?? 20_000, () => sock.destroy());
  try {
    sock.write(`${HELLO} ${o.token}\n`);
    const r = new Reader(sock);
    const head = await r.read(16);
    if (!head) throw truncated("no header");
    if (!head.subarray(0, 8).equals(MAGIC)) {
      throw fatal("InvalidSource", "the clone source does not speak the clone protocol");
    }
    const size = Number(head.readBigUInt64BE(8));
    if (size > o.target.sizeBytes) throw tooLarge(size, o.target);
    await cleanTarget(o.target);
    const fh = await open(o.target.path, constants.O_WRONLY | (o.target.block ? 0 : constants.O_NOFOLLOW));
    let written = 0;
    let sha256: string | undefined;
    try {
      for (;;) {
        const type = await r.read(1);
        if (!type) throw truncated(`after ${written} bytes of data`);
        if (type[0] === END) {
          const sum = await r.read(32);
          if (!sum) throw truncated("in the trailer");
          sha256 = sum.toString("hex");
          break;
        }
        if (type[0] === SCANNED) {
          const at = await r.read(8);
          if (!at) throw truncated(`after ${written} bytes of data`);
          const scanned = Number(at.readBigUInt64BE(0));
          if (scanned > size)
            throw transient("TransferCorrupt", `a mark at ${scanned} lies past the source's ${size} bytes`);
          o.onProgress?.(scanned, size);
          continue;
        }
        if (type[0] !== EXTENT) throw transient("TransferCorrupt", `unknown record type ${type[0]} in the stream`);
        const h = await r.read(12);
        if (!h) throw truncated(`after ${written} bytes of data`);
        const offset = Number(h.readBigUInt64BE(0));
        const length = h.readUInt32BE(8);
        if (offset + length > size) {
          throw transient("TransferCorrupt", `an extent at ${offset}+${length} lies past the source's ${size} bytes`);
        }
        const data = await r.read(length);
        if (!data) throw truncated(`after ${written} bytes of data`);
        await writeFully(fh, data, offset);
        written += length;
        o.onProgress?.(offset + length, size);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await verifyTarget(o.target, size, sha256);
    return { bytes: size, sha256, written };
  } finally {
    sock.destroy();
  }
}
