// The bench:storage test image: the test guest's bootable disk, made raw, grown to ~200 MiB and filled after the
// guest's own bytes with random data (nothing trivially sparse or compressible), then written as an uncompressed
// qcow2 (what containerDisks usually hold). Built at bench start; the guest still boots from it (its FAT superfloppy
// ends where the random data begins).
import { execFile } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const MiB = 2 ** 20;
/** Total virtual size of the image. */
export const IMAGE_BYTES = 200 * MiB;
/** Random data starts here (past the guest's ~12 MiB disk, aligned). */
export const RANDOM_OFFSET = 16 * MiB;

export interface BenchImage {
  /** The uncompressed qcow2 (imported, uploaded). */
  qcow2: string;
  /** Its raw form (what an import or upload must end up as in the volume). */
  raw: string;
  /** qcow2 file size in bytes. */
  fileBytes: number;
  virtualBytes: number;
  randomBytes: number;
}

/** Builds the image under `dir` from the guest's qcow2. */
export async function makeBenchImage(guestQcow2: string, dir: string): Promise<BenchImage> {
  const raw = join(dir, "bench-disk.img");
  const qcow2 = join(dir, "bench-disk.qcow2");
  await rm(raw, { force: true });
  await rm(qcow2, { force: true });
  await run("qemu-img", ["convert", "-O", "raw", guestQcow2, raw]);
  const guestBytes = (await stat(raw)).size;
  if (guestBytes > RANDOM_OFFSET) throw new Error(`the guest disk (${guestBytes} bytes) grew past ${RANDOM_OFFSET}`);
  const fh = await open(raw, "r+");
  try {
    await fh.truncate(IMAGE_BYTES);
    const buf = Buffer.alloc(4 * MiB);
    for (let off = RANDOM_OFFSET; off < IMAGE_BYTES; off += buf.length) {
      randomFillSync(buf);
      await fh.write(buf, 0, Math.min(buf.length, IMAGE_BYTES - off), off);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await run("qemu-img", ["convert", "-O", "qcow2", raw, qcow2]);
  const fileBytes = (await stat(qcow2)).size;
  const randomBytes = IMAGE_BYTES - RANDOM_OFFSET;
  // The qcow2 holds every random byte: a sanity check that nothing collapsed into holes.
  if (fileBytes < randomBytes) throw new Error(`the image's qcow2 is ${fileBytes} bytes, less than its random data`);
  return { qcow2, raw, fileBytes, virtualBytes: IMAGE_BYTES, randomBytes };
}
