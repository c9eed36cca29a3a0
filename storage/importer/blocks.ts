// Block I/O the sink's paths share: sparse writes (zero blocks left as holes: the target starts clean), exact
// reads for the read-back checks, and the re-read hash of a written prefix.

import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { transient } from "./outcome.js";

/** Zero detection granularity: 64 KiB runs of zeros are left as holes. */
export const ZERO_BLOCK = 64 << 10;
const ZEROS = Buffer.alloc(ZERO_BLOCK);

/** Whether `buf` holds only zero bytes (compared a ZERO_BLOCK at a time: memcmp, not a loop here). */
export function isZero(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i += ZERO_BLOCK) {
    const part = buf.subarray(i, i + ZERO_BLOCK);
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

/** Writes `buf` at `pos`, skipping its all-zero ZERO_BLOCKs (the file/device reads zeros there already). */
export async function writeSparse(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  let i = 0;
  while (i < buf.length) {
    const end = Math.min(i + ZERO_BLOCK, buf.length);
    if (isZero(buf.subarray(i, end))) {
      i = end;
      continue;
    }
    // extend the run over following non-zero blocks: one write
    let j = end;
    while (j < buf.length) {
      const e = Math.min(j + ZERO_BLOCK, buf.length);
      if (isZero(buf.subarray(j, e))) break;
      j = e;
    }
    let off = i;
    while (off < j) {
      const { bytesWritten } = await fh.write(buf, off, j - off, pos + off);
      off += bytesWritten;
    }
    i = j;
  }
}

/** Reads `n` bytes at `pos` into `buf` (the target holds them: fewer is a VerifyFailed). */
export async function readExactly(fh: FileHandle, buf: Buffer, n: number, pos: number): Promise<Buffer> {
  let off = 0;
  while (off < n) {
    const { bytesRead } = await fh.read(buf, off, n - off, pos + off);
    if (bytesRead === 0)
      throw transient("VerifyFailed", `the volume ended at byte ${pos + off}, short of what was written`);
    off += bytesRead;
  }
  return buf.subarray(0, n);
}

/**
 * sha256 of a file's/device's first `bytes` bytes, re-read (4 MiB at a time, the next read under the hashing);
 * `check` sees each buffer read (and may throw) before it is hashed.
 */
export async function hashPrefix(
  path: string,
  bytes: number,
  check?: (buf: Buffer, pos: number) => void,
): Promise<string> {
  const fh = await open(path, constants.O_RDONLY);
  const h = createHash("sha256");
  const bufs = [Buffer.allocUnsafe(4 << 20), Buffer.allocUnsafe(4 << 20)] as const;
  const readAt = async (i: number, pos: number): Promise<Buffer> => {
    const buf = bufs[i % 2] as Buffer;
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, bytes - pos), pos);
    if (bytesRead === 0) throw transient("VerifyFailed", `${path} ended at ${pos} of ${bytes} bytes`);
    return buf.subarray(0, bytesRead);
  };
  try {
    let pos = 0;
    let next = bytes > 0 ? readAt(0, 0) : undefined;
    for (let i = 1; next; i++) {
      const got = await next;
      check?.(got, pos);
      pos += got.length;
      next = pos < bytes ? readAt(i, pos) : undefined;
      next?.catch(() => {}); // awaited next round; a failure while hashing must not go unhandled
      h.update(got);
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}
