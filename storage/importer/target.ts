// The target volume: every (re)run starts on a clean one (contract §2) — a file is cut to 0 then set to the claim's
// size (all holes), a Block volume's loop device is discarded (blkdiscard punches the backing file's holes) — and it
// is never grown past the claim's size.
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { promisify } from "node:util";
import type { JobTarget } from "./job.js";

const run = promisify(execFile);

/** Opens the target for writing (no symlink followed for a file; a device must be a block device). */
export async function openTarget(t: JobTarget): Promise<FileHandle> {
  const fh = await open(t.path, constants.O_RDWR | (t.block ? 0 : constants.O_NOFOLLOW));
  const st = await fh.stat();
  if (t.block ? !st.isBlockDevice() : !st.isFile()) {
    await fh.close();
    throw new Error(`${t.path} is not a ${t.block ? "block device" : "regular file"}`);
  }
  return fh;
}

/**
 * Makes the target read all zeros, sized to the claim. `durable: false` leaves a file's truncation to the fsync
 * that follows the data (the sink's: it covers the file's size and freed blocks too); a blank import needs it here.
 */
export async function cleanTarget(t: JobTarget, o: { durable?: boolean } = {}): Promise<void> {
  if (t.block) {
    // discard first (fast, sparse); zero-out where the device cannot discard
    await run("blkdiscard", ["-f", "--", t.path]).catch(() => run("blkdiscard", ["-f", "-z", "--", t.path]));
    return;
  }
  const fh = await openTarget(t);
  try {
    await fh.truncate(0);
    await fh.truncate(t.sizeBytes);
    if (o.durable !== false) await fh.sync();
  } finally {
    await fh.close();
  }
}
