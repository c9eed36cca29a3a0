// The same-node clone of a Filesystem volume, done by the node agent itself (the provisioner's node half, as a CSI
// driver clones a volume): no worker pod, no process of ours to start. `cp --sparse=always` of the source's disk.img
// onto the target's: a reflink where the file system has them (coreutils' default), else the data extents only
// (SEEK_DATA/SEEK_HOLE) with zero blocks left as holes; the target grown back to its claim's size; one fsync. No
// end-to-end hash: the bytes go from page cache to page cache on one node with no wire between (cp checks every
// read and write); the cross-node stream keeps its sha256. Paths come from the node's own volume layout, never from
// a user, and reach cp as argv (after "--").
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { lstat, open } from "node:fs/promises";
import { promisify } from "node:util";
import { fatal, percent, transient } from "../importer/index.js";

export type CopyExec = (file: string, args: readonly string[]) => Promise<unknown>;

const run: CopyExec = (file, args) => promisify(execFile)(file, [...args]);

export interface FileCopyResult {
  /** The source's size (the bytes cloned, holes included). */
  bytes: number;
  /** The target's allocated bytes (what the copy wrote). */
  allocated: number;
  /** Wall time of cp and of the fsync (logged: where a clone's time goes). */
  copyMs: number;
  syncMs: number;
}

/** A regular file of ours (never a symbolic link, which could point anywhere). */
async function regularFile(path: string, what: string) {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isFile()) throw transient("VolumeNotReady", `the ${what} volume's file ${path} is not there yet`);
  return st;
}

/**
 * Copies `source` onto `target` (both disk.img files of this node), grows the target back to `sizeBytes` and fsyncs
 * it. A source larger than the target's claim is fatal (ImageTooLarge). While cp runs, `onProgress` gets "NN.N%"
 * (the target's allocated bytes against the source's) once a second.
 */
export async function copyVolumeFile(
  source: string,
  target: string,
  sizeBytes: number,
  o: { onProgress?: (progress: string) => void; exec?: CopyExec } = {},
): Promise<FileCopyResult> {
  const src = await regularFile(source, "source");
  if (src.size > sizeBytes) {
    throw fatal("ImageTooLarge", `the source volume holds ${src.size} bytes, the target only ${sizeBytes}`);
  }
  await regularFile(target, "target");
  // Opened before cp runs (cp truncates and writes this same file): while cp copies, the pages it has written are
  // flushed (fdatasync after fdatasync), so the disk writes overlap the copy and the last fsync has little left.
  const fh = await open(target, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    const total = src.blocks * 512;
    const timer = o.onProgress
      ? setInterval(() => {
          lstat(target)
            .then((st) => o.onProgress?.(percent(Math.min(st.blocks * 512, total), total)))
            .catch(() => {});
        }, 1000)
      : undefined;
    const t0 = performance.now();
    let copying = true;
    const flushing = (async () => {
      while (copying) {
        await fh.datasync();
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      // cp truncates the target first: every attempt starts over on a clean one.
      await (o.exec ?? run)("cp", ["--sparse=always", "--", source, target]);
    } catch (e) {
      throw transient("CopyFailed", `copying ${source} failed: ${(e as Error).message}`);
    } finally {
      copying = false;
      if (timer) clearInterval(timer);
      await flushing.catch(() => {}); // the fsync below reports what matters
    }
    const t1 = performance.now();
    const size = (await fh.stat()).size;
    if (size !== src.size) throw transient("CopyFailed", `the copy of ${source} is ${size} bytes, not ${src.size}`);
    if (src.size < sizeBytes) await fh.truncate(sizeBytes);
    await fh.sync();
    const ms = (a: number) => Math.round(performance.now() - a);
    return { bytes: src.size, allocated: (await fh.stat()).blocks * 512, copyMs: Math.round(t1 - t0), syncMs: ms(t1) };
  } finally {
    await fh.close();
  }
}
