// The sink: ONE module that turns a byte stream into a verified raw target (the importer's http and registry
// sources and the upload server use it). It detects compression (gzip/xz/zstd) and the disk format by magic bytes,
// never by name, and then:
// - raw: streams straight into the target, skipping all-zero blocks (the target starts clean, so they are holes) —
//   no scratch copy, one pass;
// - qcow2: converted as it streams (qcow2-stream.ts): each data cluster goes to its guest offset once the tables
//   mapping it are known; only bytes arriving before the table that maps them are spilled to a scratch file;
// - another qemu-img format, or a qcow2 the streamer leaves alone (encryption, extended L2, zstd): a qcow2's tables
//   may come after its data, so it cannot be converted in one sequential pass in general. The decompressed stream
//   goes to a scratch file in the pod's own directory (sparse: zero blocks skipped there too), `qemu-img info`
//   refuses a backing file and a virtual size larger than the claim, `qemu-img convert -n --target-is-zero -O raw`
//   writes the target (it skips zeros), then the scratch goes.
// Write, verify, fsync: only then the caller marks Succeeded. Raw reads each 4 MiB batch back from the target right
// after writing it, holes included, and compares it with the batch still in memory (a full second pass hashing the
// re-read cost as much CPU as the hashing of the stream: the page cache serves the same bytes before and after the
// fsync, so reading them back at once proves as much), then one fsync (background fdatasyncs every 32 MiB while it
// streams leave it only the tail to wait for); the sha256 reported is the stream's, of bytes
// each seen read back equal. The streamed qcow2 reads back each batch too (see writeQcow2); the scratch path runs
// `qemu-img compare` (scratch vs target) before hashing the target. A source
// checksum (CDI's `checksum`, over the bytes as served) is checked once the stream ends.
import { execFile } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import { toolDecode } from "../../images/index.js";
import { hashPrefix, isZero, readExactly, writeSparse } from "./blocks.js";
import type { JobTarget } from "./job.js";
import { fatal, type ImportError, transient } from "./outcome.js";
import {
  parseQcow2Header,
  QCOW2_HEADER_MIN,
  type Qcow2StreamResult,
  qcow2ClusterSize,
  streamQcow2,
} from "./qcow2-stream.js";
import { cleanTarget, openTarget } from "./target.js";

export { hashPrefix } from "./blocks.js";

const run = promisify(execFile);

export type SinkCompression = "gzip" | "xz" | "zstd" | "none";
export type SinkFormat = "raw" | "qcow2" | "vmdk" | "vhdx" | "vpc" | "vdi";

export interface SinkOptions {
  target: JobTarget;
  /** The pod's own directory for the qcow2 scratch file (deleted before the sink returns). */
  scratchDir: string;
  /** "<md5|sha1|sha256|sha512>:<hex>" of the bytes as they arrive (before decompression). */
  checksum?: string;
  /** Bytes the source will send (Content-Length, layer size), for progress. */
  sourceBytes?: number;
  /** Called as source bytes arrive. */
  onProgress?: (done: number, total: number) => void;
  /**
   * The target is already clean (skip the clean-up), or is being cleaned (awaited first); default false: every run
   * starts on a clean target.
   */
  targetClean?: boolean | Promise<void>;
}

export interface SinkResult {
  /** The image's size (raw length / qcow2 virtual size): the target's first `bytes` bytes are the data. */
  bytes: number;
  /** sha256 of the target's first `bytes` bytes, re-read after fsync. */
  sha256: string;
  format: SinkFormat;
  compression: SinkCompression;
  /** Source bytes received. */
  sourceBytes: number;
  /** Where the sink's time went (ms): streaming+writing, fsync, verifying (for the log line). */
  timings?: { writeMs: number; syncMs: number; verifyMs: number };
  /** qcow2: bytes that went through a scratch file (the streamer's spill, or the whole image on the fallback). */
  scratchBytes?: number;
  /** qcow2: why the streamer left the image to the scratch path (qemu-img), if it did. */
  fallback?: string;
}

const SECTOR = 512;
const HEAD = 4096;
/** The raw path's write (and read-back) unit. */
const BATCH = 4 << 20;
/**
 * While the raw path streams, an fdatasync starts (in the background) whenever this much more was written since the
 * last one began: the disk writes back as the data arrives, and the final fsync waits only for the tail.
 */
const EARLY_SYNC = 32 << 20;

/** Pure: compression by magic bytes. */
export function detectCompression(head: Buffer): SinkCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return "xz";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  return "none";
}

/** Pure: the disk format by magic bytes ("raw" when none), or "text" for what is plainly not a disk. */
export function detectFormat(head: Buffer): SinkFormat | "text" {
  const at = (s: string, off = 0) =>
    head.length >= off + s.length && head.toString("latin1", off, off + s.length) === s;
  if (at("QFI\xfb")) return "qcow2";
  if (at("KDMV")) return "vmdk";
  if (at("vhdxfile")) return "vhdx";
  if (at("conectix")) return "vpc";
  if (at("<<< ") && head.length >= 68 && head.readUInt32LE(64) === 0xbeda107f) return "vdi";
  if (looksLikeText(head)) return "text";
  return "raw";
}

/** Printable text (HTML error pages, READMEs, checksum files) with no NUL byte: no disk starts like that. */
function looksLikeText(head: Buffer): boolean {
  if (head.length === 0) return false;
  let printable = 0;
  for (const b of head) {
    if (b === 0) return false;
    if (b === 9 || b === 10 || b === 13 || (b >= 0x20 && b < 0x7f) || b >= 0x80) printable++;
  }
  return printable === head.length;
}

/** Pure: "<algo>:<hex>" → a hash and the expected hex, or an InvalidSource error. */
export function parseChecksum(cs: string): { algorithm: string; hex: string } {
  const m = /^(md5|sha1|sha256|sha512):([0-9a-fA-F]+)$/.exec(cs.trim());
  const lens: Record<string, number> = { md5: 32, sha1: 40, sha256: 64, sha512: 128 };
  if (!m || m[2]?.length !== lens[m[1] ?? ""]) {
    throw fatal("InvalidSource", `checksum "${cs}" is not <md5|sha1|sha256|sha512>:<hex of the right length>`);
  }
  return { algorithm: m[1] ?? "", hex: (m[2] ?? "").toLowerCase() };
}

/** Reads the first `n` bytes of an async byte source without losing them: returns them and the whole stream. */
async function peek(src: AsyncIterable<Buffer>, n: number): Promise<{ head: Buffer; stream: AsyncIterable<Buffer> }> {
  const it = src[Symbol.asyncIterator]();
  const got: Buffer[] = [];
  let len = 0;
  let ended = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    got.push(r.value);
    len += r.value.length;
  }
  const head = Buffer.concat(got, len);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { head: head.subarray(0, n), stream: rest() };
}

function decompress(src: AsyncIterable<Buffer>, c: SinkCompression): AsyncIterable<Buffer> {
  if (c === "none") return src;
  const readable = Readable.from(src, { objectMode: false });
  if (c === "gzip") return readable.pipe(createGunzip({ chunkSize: 1 << 20 })).on("error", () => {});
  return toolDecode(c, readable);
}

/**
 * Batches a byte stream into `size`-byte buffers (fewer syscalls, whole zero blocks; `size` is a multiple of
 * ZERO_BLOCK). `buffers` staging buffers are reused in turn: a yielded buffer is valid until `buffers` more were
 * asked for (a fresh 4 MiB allocation per batch cost more in page faults than the copy itself).
 */
async function* batched(src: AsyncIterable<Buffer>, size: number, buffers = 1): AsyncGenerator<Buffer> {
  const bufs = Array.from({ length: buffers }, () => Buffer.allocUnsafe(size));
  let turn = 0;
  let buf = bufs[0] as Buffer;
  let n = 0;
  for await (const c of src) {
    let off = 0;
    while (off < c.length) {
      const k = Math.min(c.length - off, size - n);
      c.copy(buf, n, off, off + k);
      n += k;
      off += k;
      if (n === size) {
        yield buf;
        turn = (turn + 1) % buffers;
        buf = bufs[turn] as Buffer;
        n = 0;
      }
    }
  }
  if (n) yield buf.subarray(0, n);
}

/** Counts and hashes the source bytes as they pass. */
function metered(
  src: AsyncIterable<Buffer>,
  hash: Hash | undefined,
  onBytes: (n: number) => void,
): AsyncIterable<Buffer> {
  return (async function* () {
    for await (const c of src) {
      hash?.update(c);
      onBytes(c.length);
      yield c;
    }
  })();
}

function tooLarge(size: number, claim: number): ImportError {
  return fatal("ImageTooLarge", `the image (${size} bytes) is larger than the volume (${claim} bytes)`);
}

/**
 * Writes a byte stream into the target as a verified raw disk (see the file's head). Throws ImportError: fatal
 * for ChecksumMismatch / NotADiskImage / BackingFile / ImageTooLarge / InvalidSource, transient otherwise (a
 * source that ends early surfaces as the source's own error).
 */
export async function writeImage(input: AsyncIterable<Buffer>, o: SinkOptions): Promise<SinkResult> {
  // (not fsynced here: the sink's own fsync at the end makes the clean-up durable with the data)
  if (o.targetClean === undefined || o.targetClean === false) await cleanTarget(o.target, { durable: false });
  else await o.targetClean;
  const expected = o.checksum ? parseChecksum(o.checksum) : undefined;
  const srcHash = expected ? createHash(expected.algorithm) : undefined;
  let received = 0;
  const total = o.sourceBytes ?? 0;
  const src = metered(input, srcHash, (n) => {
    received += n;
    o.onProgress?.(received, total);
  });
  const first = await peek(src, 8);
  const compression = detectCompression(first.head);
  const body = await peek(decompress(first.stream, compression), HEAD);
  const format = detectFormat(body.head);
  if (format === "text") throw fatal("NotADiskImage", "the source is text, not a disk image (raw or qcow2)");
  const checkSource = (): void => {
    if (!expected || !srcHash) return;
    const got = srcHash.digest("hex");
    if (got !== expected.hex) {
      throw fatal("ChecksumMismatch", `${expected.algorithm} checksum mismatch: expected ${expected.hex}, got ${got}`);
    }
  };
  const result =
    format === "raw"
      ? await writeRaw(body.stream, o.target, checkSource)
      : format === "qcow2"
        ? await writeQcow2(body.stream, o, checkSource)
        : await writeViaScratch(body.stream, o, format, checkSource);
  return { ...result, format, compression, sourceBytes: received };
}

async function writeRaw(
  data: AsyncIterable<Buffer>,
  target: JobTarget,
  checkSource: () => void,
): Promise<{ bytes: number; sha256: string; timings: NonNullable<SinkResult["timings"]> }> {
  const fh = await openTarget(target);
  const h = createHash("sha256");
  const back = Buffer.allocUnsafe(BATCH);
  let pos = 0;
  let verifyMs = 0;
  // The background fdatasyncs only shorten the last one; a failure of one fails the import like the last one's.
  let syncing: Promise<void> | undefined;
  let syncedUpTo = 0;
  let syncError: unknown;
  const earlySync = (): void => {
    if (syncing || pos - syncedUpTo < EARLY_SYNC) return;
    syncedUpTo = pos;
    syncing = fh.datasync().then(
      () => {
        syncing = undefined;
      },
      (e: unknown) => {
        syncError ??= e;
        syncing = undefined;
      },
    );
  };
  const t0 = performance.now();
  let t1 = t0;
  let t2 = t0;
  // Two checks, each for its own failure: the read-back compare proves the volume holds what was written (a short or
  // failed write, a target left dirty under a skipped hole, the wrong file or device); the sha256 of the stream is the
  // digest the Succeeded line reports (the contract's; clones and later checks compare against it), which by itself
  // proves nothing about the volume. Neither replaces the other; both stay off the receive path's critical section.
  // One batch's write, read-back and compare (libuv's threads, then a memcmp here) run while the next batch is
  // received and hashed on this thread: two staging buffers in turn, one batch in flight.
  let inflight: Promise<void> | undefined;
  const writeBatch = async (buf: Buffer, at: number): Promise<void> => {
    await writeSparse(fh, buf, at);
    const got = await readExactly(fh, back, buf.length, at);
    const v0 = performance.now();
    if (!got.equals(buf)) {
      throw transient("VerifyFailed", `the volume does not read back what was written at byte ${at}`);
    }
    verifyMs += performance.now() - v0;
  };
  try {
    for await (const buf of batched(data, BATCH, 2)) {
      if (pos + buf.length > target.sizeBytes) throw tooLarge(pos + buf.length, target.sizeBytes);
      h.update(buf);
      // (the previous batch is done before this one is written: its staging buffer is the next one filled)
      await inflight;
      earlySync();
      inflight = writeBatch(buf, pos);
      inflight.catch(() => {}); // awaited next round or below
      pos += buf.length;
    }
    await inflight;
    earlySync();
    checkSource();
    if (pos === 0) throw fatal("NotADiskImage", "the source is empty");
    if (pos % SECTOR !== 0) {
      throw fatal("NotADiskImage", `the source is ${pos} bytes, not a whole number of ${SECTOR}-byte sectors`);
    }
    t1 = performance.now();
    await syncing;
    if (syncError) throw syncError;
    await fh.sync();
    t2 = performance.now();
  } finally {
    await inflight?.catch(() => {}); // (a failed import: the handle stays open until its last batch is done with it)
    await syncing; // (never rejects) the handle stays open until the background fdatasync is done with it
    await fh.close();
  }
  const ms = (x: number) => Math.round(x);
  return {
    bytes: pos,
    sha256: h.digest("hex"),
    timings: { writeMs: ms(t1 - t0), syncMs: ms(t2 - t1), verifyMs: ms(verifyMs) },
  };
}

/**
 * qcow2: streamed into the target in one pass (qcow2-stream.ts; it spills to a scratch file only what arrives before
 * the table that maps it), or left to the scratch path for what the streamer does not handle. Verified like raw:
 * each batch read back as written, then one fsync, then every block nothing was written to re-read (it must read
 * zeros); the digest is the stream's when the data came in guest order, else the re-read volume's.
 */
async function writeQcow2(
  data: AsyncIterable<Buffer>,
  o: SinkOptions,
  checkSource: () => void,
): Promise<Omit<SinkResult, "format" | "compression" | "sourceBytes">> {
  const fixed = await peek(data, QCOW2_HEADER_MIN);
  const first = await peek(fixed.stream, Math.max(QCOW2_HEADER_MIN, qcow2ClusterSize(fixed.head)));
  const parsed = parseQcow2Header(first.head);
  if ("fallback" in parsed) {
    const r = await writeViaScratch(first.stream, o, "qcow2", checkSource);
    return { ...r, fallback: parsed.fallback };
  }
  const h = parsed.header;
  if (h.size > o.target.sizeBytes) throw tooLarge(h.size, o.target.sizeBytes);
  const scratch = join(o.scratchDir, "spill.qcow2");
  const fh = await openTarget(o.target);
  const t0 = performance.now();
  let t1 = t0;
  let t2 = t0;
  let s: Qcow2StreamResult;
  try {
    s = await streamQcow2(first.stream, h, {
      target: fh,
      openScratch: async () => {
        await mkdir(o.scratchDir, { recursive: true, mode: 0o700 });
        return open(scratch, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
      },
    });
    checkSource();
    t1 = performance.now();
    await fh.sync();
    t2 = performance.now();
  } finally {
    await fh.close();
    await rm(scratch, { force: true });
  }
  // the blocks nothing was written to must read zeros (the clean target's holes); the written ones were read back
  const { written, granularity: g } = s;
  const unwritten = (b: number): boolean => ((written[b >> 3] ?? 0) & (1 << (b & 7))) === 0;
  const notZero = (at: number, to: number) =>
    transient("VerifyFailed", `the volume is not zero in bytes ${at}..${to}, where the image has none`);
  let sha256 = s.sha256;
  if (sha256 === undefined) {
    // out of guest order: the digest from a re-read of the volume, checking the holes on the way
    sha256 = await hashPrefix(o.target.path, h.size, (buf, pos) => {
      for (let b = Math.floor(pos / g); b * g < pos + buf.length; b++) {
        if (!unwritten(b)) continue;
        const from = Math.max(b * g, pos) - pos;
        const to = Math.min((b + 1) * g, pos + buf.length) - pos;
        if (!isZero(buf.subarray(from, to))) throw notZero(pos + from, pos + to);
      }
    });
  } else {
    const rf = await open(o.target.path, constants.O_RDONLY);
    try {
      const buf = Buffer.allocUnsafe(4 << 20);
      const blocks = Math.ceil(h.size / g);
      for (let b = 0; b < blocks; ) {
        if (!unwritten(b)) {
          b++;
          continue;
        }
        let e = b + 1;
        while (e < blocks && unwritten(e)) e++;
        // (a hole of a sparse file reads without touching the disk)
        for (let at = b * g, to = Math.min(e * g, h.size); at < to; ) {
          const got = await readExactly(rf, buf, Math.min(buf.length, to - at), at);
          if (!isZero(got)) throw notZero(at, at + got.length);
          at += got.length;
        }
        b = e;
      }
    } finally {
      await rf.close();
    }
  }
  const t3 = performance.now();
  const ms = (x: number) => Math.round(x);
  return {
    bytes: h.size,
    sha256,
    scratchBytes: s.spilledBytes,
    timings: { writeMs: ms(t1 - t0), syncMs: ms(t2 - t1), verifyMs: ms(t3 - t2) },
  };
}

interface QemuInfo {
  format?: string;
  "virtual-size"?: number;
  "backing-filename"?: string;
  "full-backing-filename"?: string;
  "format-specific"?: { data?: { "data-file"?: string } };
}

async function writeViaScratch(
  data: AsyncIterable<Buffer>,
  o: SinkOptions,
  format: SinkFormat,
  checkSource: () => void,
): Promise<{ bytes: number; sha256: string; scratchBytes: number }> {
  await mkdir(o.scratchDir, { recursive: true, mode: 0o700 });
  const scratch = join(o.scratchDir, `image.${format}`);
  try {
    const fh = await open(
      scratch,
      constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      0o600,
    );
    let pos = 0;
    try {
      for await (const buf of batched(data, 4 << 20)) {
        await writeSparse(fh, buf, pos);
        pos += buf.length;
      }
      await fh.truncate(pos); // a trailing hole still counts in the file's length
    } finally {
      await fh.close();
    }
    checkSource();
    let info: QemuInfo;
    try {
      const { stdout } = await run("qemu-img", ["info", "--output=json", "-f", format, "--", scratch], {
        maxBuffer: 1 << 20,
      });
      info = JSON.parse(stdout) as QemuInfo;
    } catch (e) {
      throw fatal("NotADiskImage", `not a valid ${format} image: ${firstLine(e)}`);
    }
    if (info["backing-filename"] !== undefined || info["full-backing-filename"] !== undefined) {
      throw fatal(
        "BackingFile",
        `the ${format} image refers to a backing file (${info["backing-filename"] ?? ""}); only self-contained images can be imported`,
      );
    }
    if (info["format-specific"]?.data?.["data-file"]) {
      throw fatal("BackingFile", `the ${format} image keeps its data in an external data file`);
    }
    const size = info["virtual-size"] ?? 0;
    if (size > o.target.sizeBytes) throw tooLarge(size, o.target.sizeBytes);
    try {
      await run(
        "qemu-img",
        [
          "convert",
          "-n",
          "--target-is-zero",
          "-f",
          format,
          "-O",
          "raw",
          "-t",
          "none",
          "-T",
          "none",
          "--",
          scratch,
          o.target.path,
        ],
        { maxBuffer: 1 << 20 },
      ).catch(() =>
        // O_DIRECT is not there on every file system (tmpfs): the page cache then, and the fsync below
        run(
          "qemu-img",
          ["convert", "-n", "--target-is-zero", "-f", format, "-O", "raw", "--", scratch, o.target.path],
          {
            maxBuffer: 1 << 20,
          },
        ),
      );
    } catch (e) {
      throw transient("ConvertFailed", `qemu-img convert: ${firstLine(e)}`);
    }
    const fh2 = await openTarget(o.target);
    try {
      await fh2.sync();
    } finally {
      await fh2.close();
    }
    try {
      await run("qemu-img", ["compare", "-q", "-f", format, "-F", "raw", "--", scratch, o.target.path], {
        maxBuffer: 1 << 20,
      });
    } catch (e) {
      throw transient("VerifyFailed", `the volume does not match the image (qemu-img compare): ${firstLine(e)}`);
    }
    return { bytes: size, sha256: await hashPrefix(o.target.path, size), scratchBytes: pos };
  } finally {
    await rm(scratch, { force: true });
  }
}

function firstLine(e: unknown): string {
  const err = e as { stderr?: string; message?: string };
  return (err.stderr?.trim() || err.message || String(e)).split("\n")[0] ?? "";
}

/** Adapts push-style writes (a tar entry's data, an upload's request) to the sink's input, with back-pressure. */
export function pushSource(): {
  input: AsyncIterable<Buffer>;
  write(b: Buffer): Promise<void>;
  end(): void;
  fail(e: Error): void;
} {
  const pt = new PassThrough({ highWaterMark: 4 << 20 });
  return {
    input: pt,
    write: (b) =>
      new Promise<void>((resolve, reject) => {
        if (pt.destroyed) return reject(new Error("the sink stopped reading"));
        if (pt.write(b)) resolve();
        else {
          const done = (): void => {
            pt.off("drain", done);
            pt.off("close", done);
            resolve();
          };
          pt.once("drain", done);
          pt.once("close", done);
        }
      }),
    end: () => pt.end(),
    fail: (e) => pt.destroy(e),
  };
}
