// A launcher pod: one process tree that dies as a whole, as a container does. `unshare` gives it its own PID and
// mount namespaces; its first process is a tiny init (bash, with a fixed script: user data only ever arrives as
// positional arguments) that takes the per-VMI lock, reaps orphans (libvirt's QEMU capability probes daemonize),
// forwards SIGTERM to the launcher and exits when the launcher does, whereupon the kernel kills every process left
// in the namespace (libvirtd, QEMU). Its stdout/stderr go to the pod's log file, never to a pipe of its parent.
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { type DomainStatus, LIFECYCLES } from "./hypervisor/types.js";

/** Exit status of a pod whose VMI already has a live launcher. */
export const EXIT_LOCKED = 75;

/**
 * The pod init. $1 = lock file; the rest is the launcher's argv. The lock (flock on fd 9) is inherited by every
 * process of the pod, so it is released by the kernel only when the whole tree is gone, however it died.
 */
export const POD_INIT = [
  'exec 9>>"$1" || exit 1',
  `flock -n 9 || { echo "another launcher holds $1" >&2; exit ${EXIT_LOCKED}; }`,
  "shift",
  "trap 'kill -TERM \"$c\" 2>/dev/null' TERM INT HUP",
  '"$@" & c=$!',
  'while :; do wait "$c"; rc=$?; kill -0 "$c" 2>/dev/null || exit "$rc"; done',
].join("\n");

const UID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function validUid(uid: string): boolean {
  return UID_RE.test(uid);
}

/** The node data directory a launcher uses when it is given none. */
export const DEFAULT_NODE_DIR = "/var/lib/tsvirt";

/** Unix socket paths must fit sockaddr_un.sun_path (108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * The launcher's command socket on its node, KubeVirt's /var/run/kubevirt/sockets/<uid>_sock: `<node dir>/sockets/
 * <vmi uid>_sock`. The one definition: the launcher is told this path on its command line, the node agent dials it
 * knowing only the VMI's uid, whoever started the launcher pod (the embedded pod runner or a kubelet).
 */
export function commandSocketPath(nodeDir: string, vmiUid: string): string {
  if (!validUid(vmiUid)) throw new Error(`invalid VMI uid "${vmiUid}"`);
  const p = path.join(path.resolve(nodeDir), "sockets", `${vmiUid}_sock`);
  if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
    throw new Error(`node dir too long for unix sockets (${p} is over ${MAX_SOCKET_PATH} bytes): ${nodeDir}`);
  }
  return p;
}

/** The directory of every launcher's command socket on a node. */
export function commandSocketsDir(nodeDir: string): string {
  return path.join(path.resolve(nodeDir), "sockets");
}

/** Paths private to one launcher pod (its command socket is per node: commandSocketPath). */
export interface PodPaths {
  podDir: string;
  socketsDir: string;
  consoleSocket: string;
  logFile: string;
  serialLog: string;
  /** The private libvirt instance (bound over /etc/libvirt, /run/libvirt, ...). */
  libvirtDir: string;
  /** Owned by QEMU's user: its sockets and the files it writes (overlays, emptyDisks, ISOs). */
  qemuDir: string;
  /** Serial port 0, VNC and guest agent sockets (QEMU listens). */
  serialSocket: string;
  vncSocket: string;
  guestAgentSocket: string;
  /** The serial console log libvirt writes when spec.domain.devices.logSerialConsole is set. */
  serialConsoleLog: string;
  /** Per volume: where the launcher creates its overlay / emptyDisk / ISO. */
  volumeDir: (volume: string) => string;
  /**
   * The domain's last state, written by a launcher that ends gracefully (Kubernetes' terminationMessagePath): the
   * node agent reads it once the pod is gone, so it knows how the guest ended even after its own restart.
   */
  terminationLog: string;
}

/** The one layout of a launcher pod's private directory (all socket paths stay < 108 bytes). */
export function podPaths(podDir: string): PodPaths {
  const socketsDir = path.join(podDir, "sockets");
  const qemuDir = path.join(podDir, "qemu");
  return {
    podDir,
    socketsDir,
    consoleSocket: path.join(socketsDir, "console.sock"),
    logFile: path.join(podDir, "launcher.log"),
    serialLog: path.join(podDir, "serial.log"),
    libvirtDir: path.join(podDir, "lv"),
    qemuDir,
    serialSocket: path.join(qemuDir, "serial0"),
    vncSocket: path.join(qemuDir, "vnc"),
    guestAgentSocket: path.join(qemuDir, "qga"),
    serialConsoleLog: path.join(qemuDir, "serial0.log"),
    volumeDir: (volume) => path.join(qemuDir, "disks", volume),
    terminationLog: path.join(podDir, "termination-log"),
  };
}

export interface PodOptions {
  uid: string;
  podDir: string;
  /** Directory of per-uid lock files (one launcher per VMI uid on this node). */
  lockDir: string;
  /** Node data directory: the golden QEMU capability cache and the command sockets live here. */
  nodeDir?: string;
  /** "auto" | "kvm" | "tcg" */
  accel?: string;
  /** The compiled CLI (dist/cmd/tsvirt.js). */
  tsvirtJs: string;
  nodeBinary?: string;
}

/** The argv that starts a launcher pod (also used by `tsvirt launcher` when started outside a pod). */
export function podCommand(o: PodOptions): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  if (!validUid(o.uid)) throw new Error(`invalid VMI uid "${o.uid}"`);
  const nodeDir = o.nodeDir ?? DEFAULT_NODE_DIR;
  if (podPaths(o.podDir).consoleSocket.length > MAX_SOCKET_PATH) {
    throw new Error(`pod dir too long for unix sockets: ${o.podDir}`);
  }
  const launcherArgv = [
    o.nodeBinary ?? process.execPath,
    o.tsvirtJs,
    "launcher",
    "--uid",
    o.uid,
    "--pod-dir",
    o.podDir,
    "--node-dir",
    nodeDir,
    "--socket",
    commandSocketPath(nodeDir, o.uid),
  ];
  if (o.accel) launcherArgv.push("--accel", o.accel);
  return {
    command: "unshare",
    args: [
      "--pid",
      "--fork",
      "--kill-child=SIGKILL",
      "--mount-proc",
      "--propagation",
      "private",
      "--",
      "bash",
      "-c",
      POD_INIT,
      "tsvirt-pod",
      path.join(o.lockDir, `${o.uid}.lock`),
      ...launcherArgv,
    ],
    env: { ...process.env, TSVIRT_LAUNCHER_POD: "1" },
  };
}

export interface SpawnedPod {
  /** The pid of `unshare`, the pod's outermost process (kill it and the whole pod dies). */
  pid: number;
  paths: PodPaths;
  /** The launcher's command socket (commandSocketPath). */
  socket: string;
}

/**
 * Start a launcher pod detached from the caller: its own session, output to the pod's log file; inside the network
 * namespace `netns` when given (`ip netns exec`, which execs: the pid is still unshare's).
 */
export function spawnLauncherPod(o: PodOptions & { netns?: string }): SpawnedPod {
  const paths = podPaths(o.podDir);
  const nodeDir = o.nodeDir ?? DEFAULT_NODE_DIR;
  mkdirSync(paths.socketsDir, { recursive: true });
  mkdirSync(commandSocketsDir(nodeDir), { recursive: true });
  mkdirSync(o.lockDir, { recursive: true });
  const cmd = podCommand(o);
  const fd = openSync(paths.logFile, "a");
  try {
    const [file, args] = o.netns
      ? ["ip", ["netns", "exec", o.netns, cmd.command, ...cmd.args]]
      : [cmd.command, cmd.args];
    const child = spawn(file, args, { detached: true, stdio: ["ignore", fd, fd], env: cmd.env });
    child.unref();
    if (child.pid === undefined) throw new Error("failed to spawn the launcher pod");
    return { pid: child.pid, paths, socket: commandSocketPath(nodeDir, o.uid) };
  } finally {
    closeSync(fd);
  }
}

/** The pids of a process's children (Linux /proc). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Every descendant of `pid` (host pids), depth first. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const c of childPids(pid)) out.push(c, ...descendants(c));
  return out;
}

/**
 * Ask a pod to stop gracefully: SIGTERM to its init (unshare itself ignores SIGTERM), which forwards it to the
 * launcher; the launcher shuts the guest down (grace period, then destroy) and exits, and the pod ends.
 */
export function terminatePod(unsharePid: number): boolean {
  const init = childPids(unsharePid)[0];
  if (init === undefined) return false;
  try {
    process.kill(init, "SIGTERM");
    return true;
  } catch {
    return false;
  }
}

/** The domain's last state from a pod's termination log (undefined: none written, or unreadable). */
export async function readTerminationLog(podDir: string): Promise<DomainStatus | undefined> {
  return parseTerminationLog(await readFile(podPaths(podDir).terminationLog, "utf8").catch(() => ""));
}

/**
 * The domain's last state from a termination log's text: the file itself, or the container's terminated message a
 * kubelet (or the embedded pod runner) reports in the pod's status. Undefined when it holds none.
 */
export function parseTerminationLog(text: string): DomainStatus | undefined {
  try {
    const v = JSON.parse(text) as { state?: unknown; reason?: unknown };
    const state = LIFECYCLES.find((l) => l === v.state);
    return state && typeof v.reason === "string" ? { state, reason: v.reason } : undefined;
  } catch {
    return undefined;
  }
}
