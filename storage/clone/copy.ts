// The same-node clone of a Filesystem volume, done by the node agent itself (the provisioner's node half, as a CSI
// driver clones a volume): no worker pod. `cp --sparse=always` of the source's disk.img onto the target's: a reflink
// where the file system has them (coreutils' default), else the data extents only (SEEK_DATA/SEEK_HOLE) with zero
// blocks left as holes; the target grown back to its claim's size; one fsync. No end-to-end hash: the bytes go from
// page cache to page cache on one node with no wire between (cp checks every read and write); the cross-node stream
// keeps its sha256. Paths come from the node's own volume layout, never from a user, and reach cp as argv (after
// "--").
//
// cp is the one long-running process the agent starts itself (its others — losetup, blockdev, ip, iptables — end in
// milliseconds; worker pods are the pod runner's and outlive it on purpose). A kill -9 of the agent must not leave it
// copying into a target the restarted agent copies into again: it runs under `setpriv --pdeathsig KILL` (util-linux,
// always on Debian) so the kernel kills it with the agent, and the agent's start kills any left over anyway (a copy
// whose agent died before setpriv's prctl took, or started by an agent without it) before any copy of its own.
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { lstat, open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { cmdlineOf } from "../../lib/supervisor.js";
import { fatal, percent, transient } from "../importer/index.js";
import { isWithin, VOLUMES_DIR } from "../node/index.js";

export type CopyExec = (file: string, args: readonly string[]) => Promise<unknown>;

const run: CopyExec = (file, args) => promisify(execFile)(file, [...args]);

/** setpriv's prefix: the kernel sends the copy SIGKILL when its parent (the agent's main thread) dies. */
const WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"] as const;
const CP = ["cp", "--sparse=always", "--"] as const;

/** The argv of a same-node copy (pure): cp under setpriv, paths after "--". */
export function copyCommand(source: string, target: string): string[] {
  return [...WITH_PARENT, ...CP, source, target];
}

const startsWith = (argv: readonly string[], prefix: readonly string[]) => prefix.every((a, i) => argv[i] === a);

/** The [source, target] of a copyCommand's command line (pure), before or after setpriv's exec; else undefined. */
export function copyPathsOf(argv: readonly string[]): [string, string] | undefined {
  const rest = startsWith(argv, WITH_PARENT) ? argv.slice(WITH_PARENT.length) : argv;
  if (rest.length !== CP.length + 2 || !startsWith(rest, CP)) return undefined;
  return [rest[CP.length] ?? "", rest[CP.length + 1] ?? ""];
}

/**
 * Whether a command line is a same-node copy of THIS node (pure): copyCommand's shape, both paths below
 * <dataDir>/volumes. Another node's data dir (`--nodes 2` share a file system) is never this one's.
 */
export function isNodeCopy(argv: readonly string[], dataDir: string): boolean {
  const paths = copyPathsOf(argv);
  const root = join(dataDir, VOLUMES_DIR);
  return paths?.every((p) => p.startsWith("/") && isWithin(root, p) && p !== root) === true;
}

/**
 * Agent start, before its first copy: kills (SIGKILL) every same-node copy of this node's volumes still running —
 * a previous agent's, which nobody owns now (its clone is unanswered, so it is copied again from the start) — and
 * waits (bounded) until they are gone, so no two writers share a target. Returns the pids killed.
 */
export async function killOrphanCopies(dataDir: string, timeoutMs = 5_000): Promise<number[]> {
  const killed: number[] = [];
  for (const d of await readdir("/proc")) {
    const pid = Number(d);
    if (!/^\d+$/.test(d) || pid === process.pid) continue;
    const argv = await cmdlineOf(pid);
    if (!argv || !isNodeCopy(argv, dataDir)) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (const pid of killed) {
    // (a zombie counts as gone: cmdlineOf says undefined for it)
    while ((await cmdlineOf(pid)) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }
  return killed;
}

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
      const [file = "", ...args] = copyCommand(source, target);
      await (o.exec ?? run)(file, args);
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
