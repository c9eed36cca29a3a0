// The node half of tsvirt-local: what the node agent does for a PV pinned to its node. A Filesystem volume is
// <data dir>/volumes/<pv>/disk.img, a sparse file of the PV's size; a Block volume is the same file behind a loop
// device (the kernel here has neither nbd nor device-mapper). Everything is idempotent (crash-only: the agent calls
// it again after a restart) and nothing outside <data dir>/volumes is touched. losetup runs with argv arrays.
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { chown, lstat, mkdir, open, rm } from "node:fs/promises";
import { promisify } from "node:util";
import { isWithin, VolumePathError, volumeOfPath, volumePaths } from "./paths.js";

export type Exec = (file: string, args: readonly string[]) => Promise<string>;

const run: Exec = async (file, args) => (await promisify(execFile)(file, [...args], { encoding: "utf8" })).stdout;

export interface VolumeRequest {
  /** The node's data dir (absolute). */
  dataDir: string;
  /** The PV's name. */
  name: string;
  sizeBytes: number;
  mode: "Filesystem" | "Block";
  /** QEMU's user: owner of the directory, the image and (Block) the loop device. */
  owner?: { uid: number; gid: number };
}

export interface VolumeResult {
  image: string;
  /** What the guest would see: the image's size (Filesystem) or the loop device's (Block). */
  bytes: number;
  /** Block: the loop device (/dev/loopN). */
  device?: string;
}

/** Refuses a symlink where a directory or file of ours must be (it could point outside the data dir). */
async function refuseSymlink(path: string): Promise<boolean> {
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink()) throw new VolumePathError(`${path} is a symbolic link; refusing to follow it`);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Creates (or finds) the volume: directory, sparse image of at least sizeBytes, and for Block its loop device. */
export async function ensureVolume(req: VolumeRequest, exec: Exec = run): Promise<VolumeResult> {
  if (!Number.isSafeInteger(req.sizeBytes) || req.sizeBytes <= 0) {
    throw new VolumePathError(`volume ${req.name}: size ${req.sizeBytes} is not a positive number of bytes`);
  }
  const p = volumePaths(req.dataDir, req.name);
  await refuseSymlink(p.root);
  await mkdir(p.root, { recursive: true, mode: 0o711 });
  await refuseSymlink(p.dir);
  await mkdir(p.dir, { recursive: true, mode: 0o750 });
  await refuseSymlink(p.image);
  const fh = await open(p.image, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o660);
  let size: number;
  try {
    // Grow only: a shorter file becomes the PV's size (sparse); a longer one is never cut (that would lose data).
    size = (await fh.stat()).size;
    if (size < req.sizeBytes) {
      await fh.truncate(req.sizeBytes);
      size = req.sizeBytes;
    }
  } finally {
    await fh.close();
  }
  if (req.owner) {
    await chown(p.dir, req.owner.uid, req.owner.gid);
    await chown(p.image, req.owner.uid, req.owner.gid);
  }
  if (req.mode === "Filesystem") return { image: p.image, bytes: size };
  const device = await attachLoop(p.image, exec);
  if (req.owner) await chown(device, req.owner.uid, req.owner.gid);
  // Compared, not remembered: a grown file whose device was not told (a crash in between) is caught up here.
  let bytes = await deviceBytes(device, exec);
  if (bytes < size) {
    await exec("losetup", ["--set-capacity", device]);
    bytes = await deviceBytes(device, exec);
  }
  return { image: p.image, device, bytes };
}

/** A block device's size in bytes (`blockdev --getsize64`). */
export async function deviceBytes(device: string, exec: Exec = run): Promise<number> {
  const out = (await exec("blockdev", ["--getsize64", device])).trim();
  const n = Number(out);
  if (!/^\d+$/.test(out) || !Number.isSafeInteger(n))
    throw new Error(`blockdev printed ${JSON.stringify(out)} for ${device}`);
  return n;
}

/** The loop devices backed by the file (`losetup -j`), e.g. ["/dev/loop3"]. */
export async function loopDevicesOf(image: string, exec: Exec = run): Promise<string[]> {
  const out = await exec("losetup", ["-j", image]);
  return parseAssociated(out);
}

/** `losetup -j` lines: "/dev/loop0: [2049]:1234 (/path/disk.img)". */
export function parseAssociated(out: string): string[] {
  return out
    .split("\n")
    .map((l) => /^(\/dev\/loop\d+):/.exec(l.trim())?.[1])
    .filter((d): d is string => d !== undefined);
}

/** The file's loop device, attached once (a second call finds the first device). */
export async function attachLoop(image: string, exec: Exec = run): Promise<string> {
  const existing = await loopDevicesOf(image, exec);
  if (existing[0]) return existing[0];
  // --nooverlap: if another attach raced us, losetup hands back that device instead of a second one.
  const dev = (await exec("losetup", ["--find", "--show", "--nooverlap", image])).trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new Error(`losetup printed ${JSON.stringify(dev)}, not a loop device`);
  return dev;
}

/** Grows the volume to sizeBytes (never shrinks); a Block volume's loop device learns the new size (`losetup -c`,
 * which ensureVolume runs whenever the device is smaller than its file). */
export function resizeVolume(req: VolumeRequest, exec: Exec = run): Promise<VolumeResult> {
  return ensureVolume(req, exec);
}

/** Removes the volume: its loop devices are detached, then its directory goes. Absent: nothing to do. */
export async function deleteVolume(dataDir: string, name: string, exec: Exec = run): Promise<void> {
  const p = volumePaths(dataDir, name);
  if (!(await refuseSymlink(p.dir))) return;
  if (await refuseSymlink(p.image)) {
    for (const dev of await loopDevicesOf(p.image, exec)) await exec("losetup", ["--detach", dev]);
  }
  await rm(p.dir, { recursive: true, force: true });
}

interface LoopEntry {
  name: string;
  "back-file": string | null;
}

/**
 * At agent start: detaches the loop devices over files below <data dir>/volumes whose PV is not in `keep` (their
 * claims are gone) or whose file was deleted, so no loop device outlives its volume. Returns the detached devices.
 */
export async function reconcileLoopDevices(
  dataDir: string,
  keep: ReadonlySet<string>,
  exec: Exec = run,
): Promise<string[]> {
  const out = await exec("losetup", ["--list", "--json", "--output", "NAME,BACK-FILE"]);
  const list = out.trim() ? ((JSON.parse(out) as { loopdevices?: LoopEntry[] }).loopdevices ?? []) : [];
  const detached: string[] = [];
  for (const d of list) {
    const raw = d["back-file"] ?? "";
    const deleted = raw.endsWith(" (deleted)");
    const file = deleted ? raw.slice(0, -" (deleted)".length) : raw;
    const { root } = volumePaths(dataDir, "x");
    if (!file || !isWithin(root, file)) continue;
    const pv = volumeOfPath(dataDir, file);
    if (pv && keep.has(pv) && !deleted) continue;
    await exec("losetup", ["--detach", d.name]);
    detached.push(d.name);
  }
  return detached;
}
