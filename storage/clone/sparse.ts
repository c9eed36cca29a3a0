// The same-node clone: the source volume's bytes copied into the target volume with zero blocks left as holes (as
// `cp --sparse=always` does), fsynced, then verified by re-reading the target and comparing it with the source; the
// sha256 reported is computed in that comparing pass (of bytes the target was just seen to hold). Plain
// file I/O on paths the node agent resolved; block devices (loop devices of Block volumes) work the same way.
import { createHash, type Hash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, open, readFile, realpath } from "node:fs/promises";
import { basename } from "node:path";
import { cleanTarget, fatal, hashPrefix, type ImportError, type JobTarget, transient } from "../importer/index.js";

/** A hole is only worth leaving for whole file-system blocks. */
export const BLOCK = 4096;
/** Read/write unit: large enough to keep syscalls cheap, small enough to stream. */
export const CHUNK = 1 << 20;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const ZERO_CHUNK = Buffer.alloc(CHUNK);

/** A clone's source: disk.img (Filesystem) or the loop device (Block). Targets are the importer's JobTarget. */
export interface Volume {
  path: string;
  block: boolean;
}

export interface CopyResult {
  /** The source's size: the bytes cloned (holes included). */
  bytes: number;
  /** sha256 of those bytes. */
  sha256: string;
  /** Bytes actually written (the rest stayed holes). */
  written: number;
}

export type Progress = (done: number, total: number) => void;

/**
 * The non-zero runs of `buf` (block granularity), as [start, end) offsets within it. An all-zero buffer has none;
 * a partial last block counts as data unless it is all zero.
 */
export function dataRuns(buf: Buffer): [number, number][] {
  if (buf.length === CHUNK && buf.equals(ZERO_CHUNK)) return [];
  const runs: [number, number][] = [];
  let start = -1;
  for (let o = 0; o < buf.length; o += BLOCK) {
    const end = Math.min(o + BLOCK, buf.length);
    const zero =
      end - o === BLOCK
        ? buf.subarray(o, end).equals(ZERO_BLOCK)
        : buf.subarray(o, end).equals(ZERO_BLOCK.subarray(0, end - o));
    if (!zero && start < 0) start = o;
    if (zero && start >= 0) {
      runs.push([start, o]);
      start = -1;
    }
  }
  if (start >= 0) runs.push([start, buf.length]);
  return runs;
}

/** A volume's size: a file's length, or a block device's size from sysfs (fstat says 0 for devices). */
export async function volumeSize(v: Volume, fh?: FileHandle): Promise<number> {
  if (!v.block)
    return (fh ? await fh.stat() : await open(v.path, "r").then(async (f) => f.stat().finally(() => f.close()))).size;
  const dev = basename(await realpath(v.path));
  const sectors = Number((await readFile(`/sys/class/block/${dev}/size`, "utf8")).trim());
  if (!Number.isSafeInteger(sectors)) throw new Error(`cannot read the size of block device ${v.path}`);
  return sectors * 512;
}

/** Reads exactly `len` bytes at `pos` (short reads retried); fewer only at the end of the file. */
export async function readFully(fh: FileHandle, buf: Buffer, len: number, pos: number): Promise<number> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

export async function writeFully(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, pos + done);
    done += bytesWritten;
  }
}

/**
 * Reads the first `size` bytes of an open volume chunk by chunk, feeding each to the hash (if any) and `each` (which
 * may write it elsewhere). Reads one chunk ahead while `each` works on the last. A source shorter than `size` is an error.
 */
export async function scan(
  fh: FileHandle,
  size: number,
  hash: Hash | undefined,
  each: (chunk: Buffer, offset: number) => Promise<void> | void,
): Promise<void> {
  const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  const readAt = async (i: number, pos: number): Promise<Buffer> => {
    const len = Math.min(CHUNK, size - pos);
    const buf = bufs[i % 2] as Buffer;
    const got = await readFully(fh, buf, len, pos);
    if (got < len) throw transient("SourceShort", `the source ended at ${pos + got} of ${size} bytes`);
    return buf.subarray(0, len);
  };
  let i = 0;
  let next = size > 0 ? readAt(0, 0) : undefined;
  for (let pos = 0; pos < size; pos += CHUNK, i++) {
    const chunk = await (next as Promise<Buffer>);
    const after = pos + CHUNK;
    next = after < size ? readAt(i + 1, after) : undefined;
    hash?.update(chunk);
    await each(chunk, pos);
  }
}

/** Fails unless the target's first `bytes` hash to `sha256` (the write-verify-mark rule's verify). */
export async function verifyTarget(target: JobTarget, bytes: number, sha256: string): Promise<void> {
  const got = await hashPrefix(target.path, bytes);
  if (got !== sha256) {
    throw transient(
      "VerificationFailed",
      `the cloned volume does not match its source: sha256 ${got} read back, ${sha256} sent`,
    );
  }
}

/** A source larger than the target's claim: fatal (the planner checks sizes; this is the data path's own check). */
export function tooLarge(size: number, target: JobTarget): ImportError {
  return fatal("ImageTooLarge", `the source volume holds ${size} bytes, the target only ${target.sizeBytes}`);
}

/**
 * Same node: copies `source` into `target`, zero blocks left as holes, fsyncs and verifies. A source larger than the
 * target's claim is fatal (ImageTooLarge).
 */
export async function cloneLocal(
  source: Volume,
  target: JobTarget,
  onProgress: Progress = () => {},
): Promise<CopyResult> {
  const src = await open(source.path, "r");
  try {
    const size = await volumeSize(source, src);
    if (size > target.sizeBytes) throw tooLarge(size, target);
    await cleanTarget(target);
    const dst = await open(target.path, constants.O_WRONLY | (target.block ? 0 : constants.O_NOFOLLOW));
    let written = 0;
    try {
      // no hashing here: the verifying pass hashes (one sha256 pass of the volume, not two)
      await scan(src, size, undefined, async (chunk, pos) => {
        for (const [a, b] of dataRuns(chunk)) {
          await writeFully(dst, chunk.subarray(a, b), pos + a);
          written += b - a;
        }
        onProgress(pos + chunk.length, size);
      });
      await dst.sync();
    } finally {
      await dst.close();
    }
    const sha256 = await compareVolumes(src, target, size);
    return { bytes: size, sha256, written };
  } finally {
    await src.close();
  }
}

/**
 * Same node's verification: the target re-read and compared byte for byte with the source (as `qemu-img compare`
 * would); resolves with the sha256 of the bytes compared. The next pair of chunks is read while this one is hashed.
 */
export async function compareVolumes(src: FileHandle, target: JobTarget, size: number): Promise<string> {
  const dst = await open(target.path, "r");
  const hash = createHash("sha256");
  const bufs = [0, 1].map(() => [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)] as const);
  const readPair = async (i: number, pos: number): Promise<{ a: Buffer; same: boolean }> => {
    const len = Math.min(CHUNK, size - pos);
    const [a, b] = bufs[i % 2] as readonly [Buffer, Buffer];
    const [x, y] = await Promise.all([readFully(src, a, len, pos), readFully(dst, b, len, pos)]);
    const same = x === len && y === len && a.subarray(0, len).equals(b.subarray(0, len));
    return { a: a.subarray(0, len), same };
  };
  try {
    let next = size > 0 ? readPair(0, 0) : undefined;
    for (let pos = 0, i = 0; next; pos += CHUNK, i++) {
      const cur = await next;
      if (!cur.same)
        throw transient("VerificationFailed", `the cloned volume differs from its source in the MiB at ${pos}`);
      next = pos + CHUNK < size ? readPair(i + 1, pos + CHUNK) : undefined;
      next?.catch(() => {}); // awaited next round
      hash.update(cur.a);
    }
  } finally {
    await dst.close();
  }
  return hash.digest("hex");
}
