// Launcher pods as processes: each runs detached in its own session (so it outlives the handler), inside its pod's
// network namespace, with its output in a log file under the pod's directory. A restarted handler finds it again by
// pid file, command line and network namespace; stopping a pod ends every process left in its namespace.
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readdir, readFile, readlink, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { nowRfc3339 } from "../api/index.js";
import { inNetns } from "./network/index.js";

export interface PodRecord {
  podUid: string;
  vmiUid: string;
  namespace: string;
  name: string;
  netns: string;
  ip: string;
  pid: number;
  startedAt: string;
  /** Started without links (PodCommand.isolatedNetwork): a re-attached agent makes none either. */
  isolated?: boolean;
}

export interface ExitRecord {
  exitCode: number;
  signal?: string;
  finishedAt: string;
}

const UID = /^[0-9a-f-]{32,36}$/;

export function podDirOf(dataDir: string, podUid: string): string {
  if (!UID.test(podUid)) throw new Error(`invalid pod uid "${podUid}"`);
  // Short: the launcher's socket paths below it must stay under 108 bytes.
  return join(dataDir, "pods", podUid.replaceAll("-", "").slice(0, 16));
}

export function logPath(podDir: string): string {
  return join(podDir, "launcher.log");
}

async function writeJson(path: string, v: unknown): Promise<void> {
  await writeFile(`${path}.tmp`, `${JSON.stringify(v)}\n`);
  await rename(`${path}.tmp`, path);
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

export const readPodRecord = (podDir: string): Promise<PodRecord | undefined> => readJson(join(podDir, "pod.json"));
/**
 * How a launcher ended when nobody saw it exit (no exit.json: it ended while the node agent was down). One that left
 * its termination message went through its own shutdown, which writes it last and exits 0 (e.g. its domain
 * migrated away and nobody was there to read "completed"); without one it was killed.
 */
export function unwatchedExit(terminationMessage: string, now: string): ExitRecord & { reason: string } {
  return terminationMessage.trim() !== ""
    ? { exitCode: 0, finishedAt: now, reason: "Completed" }
    : { exitCode: 137, finishedAt: now, reason: "Error" };
}

export const readExitRecord = (podDir: string): Promise<ExitRecord | undefined> => readJson(join(podDir, "exit.json"));

async function netnsInode(netns: string): Promise<number | undefined> {
  try {
    return (await stat(`/run/netns/${netns}`)).ino;
  } catch {
    return undefined;
  }
}

/** Pure: does a command line belong to this pod's process? A launcher gets the pod dir, a worker its job file in it. */
export function argvNamesPodDir(argv: readonly string[], podDir: string): boolean {
  return argv.some((a) => a === podDir || a.startsWith(`${podDir}/`));
}

/** Is `pid` still the launcher of this pod (alive, not a zombie, our command line, in the pod's namespace)? */
export async function isLauncherAlive(rec: PodRecord, podDir: string): Promise<boolean> {
  try {
    const cmdline = (await readFile(`/proc/${rec.pid}/cmdline`, "utf8")).split("\0");
    if (!argvNamesPodDir(cmdline, podDir)) return false;
    const st = (await readFile(`/proc/${rec.pid}/stat`, "utf8")).split(") ")[1]?.[0];
    if (st === "Z" || st === "X") return false;
    const ino = await netnsInode(rec.netns);
    return ino !== undefined && (await readlink(`/proc/${rec.pid}/ns/net`)) === `net:[${ino}]`;
  } catch {
    return false;
  }
}

/** Every process whose network namespace is `netns` (the pod's whole process tree, and nothing else). */
export async function pidsInNetns(netns: string): Promise<number[]> {
  const ino = await netnsInode(netns);
  if (ino === undefined) return [];
  const want = `net:[${ino}]`;
  const out: number[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if ((await readlink(`/proc/${d}/ns/net`)) === want) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export interface SpawnedLauncher {
  record: PodRecord;
  /** Resolves when the process exits, if this handler spawned it (undefined for a re-attached one). */
  exited?: Promise<ExitRecord>;
}

/**
 * Starts the launcher (argv built by the caller, never from the pod spec) inside `netns`, detached, logging to
 * the pod's log file. Records pod.json before returning; exit.json when it exits while we watch.
 */
export async function spawnLauncher(
  podDir: string,
  meta: Omit<PodRecord, "pid" | "startedAt">,
  argv: readonly string[],
  env?: NodeJS.ProcessEnv,
  channel?: (child: ChildProcess) => void,
): Promise<SpawnedLauncher> {
  await mkdir(podDir, { recursive: true });
  const log = openSync(logPath(podDir), "a");
  let child: ChildProcess;
  try {
    const [file, ...args] = inNetns(meta.netns, argv) as [string, ...string[]];
    // (nsenter keeps the IPC channel's fd 3 and its env for the process it execs)
    const stdio: StdioOptions = channel ? ["ignore", log, log, "ipc"] : ["ignore", log, log];
    child = spawn(file, args, { detached: true, stdio, cwd: podDir, env: env ?? process.env });
  } finally {
    closeSync(log);
  }
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once("error", resolve));
    throw new Error(`cannot start the launcher: ${err.message}`);
  }
  child.unref();
  channel?.(child);
  const record: PodRecord = { ...meta, pid, startedAt: nowRfc3339() };
  await writeJson(join(podDir, "pod.json"), record);
  const exited = new Promise<ExitRecord>((resolve) => {
    child.once("exit", (code, signal) => {
      const rec: ExitRecord = {
        exitCode: code ?? (signal ? 128 + (signalNumbers[signal] ?? 1) : 1),
        finishedAt: nowRfc3339(),
      };
      if (signal) rec.signal = signal;
      writeJson(join(podDir, "exit.json"), rec).then(
        () => resolve(rec),
        () => resolve(rec),
      );
    });
  });
  // nsenter enters the namespace, then execs the launcher: wait (bounded) until it runs there, so a re-attach
  // right after a start recognises it.
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const deadline = Date.now() + 10_000;
  while (!gone && Date.now() < deadline && !(await isLauncherAlive(record, podDir))) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return { record, exited };
}

const signalNumbers: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGKILL: 9,
  SIGTERM: 15,
  SIGABRT: 6,
  SIGSEGV: 11,
};

/**
 * The process a pod's graceful stop signals (pure): a launcher pod's recorded process is `unshare`, which ignores
 * SIGTERM, so its first child (the pod's init) gets it; a worker pod (importer, upload server, clone source) runs
 * without that wrapper and is signalled itself. Undefined: nothing to signal.
 */
export function stopSignalTarget(pid: number, argv0: string, children: readonly number[]): number | undefined {
  return argv0.split("/").pop() === "unshare" ? children[0] : pid;
}

export function trySignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function waitGone(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await check())) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Stops a launcher pod: SIGTERM to the launcher (it shuts its guest down within its grace period and exits), then,
 * after `graceMs`, SIGKILL to every process still in the pod's network namespace.
 */
export async function stopLauncher(
  rec: PodRecord,
  podDir: string,
  graceMs: number,
  terminate: (pid: number) => void = (pid) => trySignal(pid, "SIGTERM"),
): Promise<void> {
  if (await isLauncherAlive(rec, podDir)) {
    terminate(rec.pid);
    await waitGone(() => isLauncherAlive(rec, podDir), graceMs);
  }
  await killNetns(rec.netns);
}

/** SIGKILL every process in the namespace and wait until none is left (bounded). */
export async function killNetns(netns: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const pids = (await pidsInNetns(netns)).filter((p) => p !== process.pid);
    if (pids.length === 0) return;
    for (const p of pids) trySignal(p, "SIGKILL");
    await waitGone(async () => (await pidsInNetns(netns)).some((p) => pids.includes(p)), 5_000);
  }
}
