// bench:migration's by-hand side: two private libvirtds, each in a network namespace the bench creates (joined by a
// veth pair, addresses inside them only) and a private mount + UTS namespace, configured as a launcher's daemon
// (launcher/hypervisor/daemon.ts: QEMU-only driver dir, unique host_uuid, no cgroups, QEMU as libvirt-qemu); the
// destination's libvirtd listens on TCP on its namespace's address. The guest is the tsvirt VM's own domain XML
// (`virsh dumpxml --migratable` from its launcher's daemon), its pod paths moved under the bench's directories and its
// tap interfaces dropped (no tap exists in the bench's namespaces); then `virsh migrate --live --p2p` with the same
// flags, disks and settings the launcher uses, timed around the virsh process; QEMU's downtime from
// `virsh domjobinfo --completed` on the destination.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, copyFile, mkdir, open, readdir, rm } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { BOUND_DIRS, instanceLayout, prepareInstance } from "../launcher/index.js";
import { qemuUser } from "../lib/qemu-user.js";
import { until } from "../tests/lib/up.js";
import type { GuestShell } from "./storage-guest.js";

const exec = promisify(execFile);

/** Runs a command (argv only), returning stdout; the error names the command and its stderr. */
export async function sh(file: string, args: string[], timeout = 120_000): Promise<string> {
  try {
    return (await exec(file, args, { timeout, maxBuffer: 64 * 2 ** 20 })).stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`${file} ${args.join(" ")}: ${err.stderr?.trim() || err.message}`);
  }
}

export interface HandNet {
  a: { ns: string; ip: string };
  b: { ns: string; ip: string };
  remove(): Promise<void>;
}

/** Two network namespaces joined by a veth pair (10.251.0.1/30 ↔ .2): nothing reaches the host's interfaces. */
export async function handNet(prefix = "tsvbm"): Promise<HandNet> {
  const a = { ns: `${prefix}-a`, ip: "10.251.0.1" };
  const b = { ns: `${prefix}-b`, ip: "10.251.0.2" };
  const remove = async (): Promise<void> => {
    for (const n of [a.ns, b.ns]) await sh("ip", ["netns", "del", n]).catch(() => "");
  };
  await remove();
  await sh("ip", ["netns", "add", a.ns]);
  await sh("ip", ["netns", "add", b.ns]);
  await sh("ip", [
    "link",
    "add",
    `${prefix}a`,
    "netns",
    a.ns,
    "type",
    "veth",
    "peer",
    "name",
    `${prefix}b`,
    "netns",
    b.ns,
  ]);
  for (const [side, dev] of [
    [a, `${prefix}a`],
    [b, `${prefix}b`],
  ] as const) {
    await sh("ip", ["-n", side.ns, "addr", "add", `${side.ip}/30`, "dev", dev]);
    await sh("ip", ["-n", side.ns, "link", "set", dev, "up"]);
    await sh("ip", ["-n", side.ns, "link", "set", "lo", "up"]);
  }
  return { a, b, remove };
}

export interface HandDaemon {
  dir: string;
  uri: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

// Inside the daemon's namespaces: bind the instance's directories over the system's, then run libvirtd.
// Paths arrive as positional arguments ($1 instance dir, then "system sub" pairs), never inside the script's text.
const DAEMON_SCRIPT = [
  "set -e",
  'dir="$1"; listen="$2"; shift 2',
  "mount --make-rprivate /",
  'while [ $# -gt 0 ]; do mkdir -p "$1"; mount --bind "$dir/$2" "$1"; shift 2; done',
  "hostname tsvirt-bench-$$",
  'if [ "$listen" = 1 ]; then exec libvirtd --listen --pid-file "$dir/run/libvirtd.pid"; fi',
  'exec libvirtd --pid-file "$dir/run/libvirtd.pid"',
].join("\n");

/** A launcher-like private libvirtd in `netns`; with `listenIp` it also accepts qemu+tcp on that address. */
export async function handDaemon(dir: string, netns: string, listenIp?: string): Promise<HandDaemon> {
  const user = await qemuUser();
  const l = await prepareInstance(dir, { hostUuid: randomUUID(), qemuUser: user.name });
  if (listenIp) {
    const conf = join(dir, "etc", "libvirtd.conf");
    const f = await open(conf, "a");
    await f.write(
      [
        "listen_tls = 0",
        "listen_tcp = 1",
        'auth_tcp = "none"',
        `listen_addr = "${listenIp}"`,
        'tcp_port = "16509"',
        "",
      ].join("\n"),
    );
    await f.close();
  }
  const log = await open(join(dir, "libvirtd.log"), "a");
  const pairs = BOUND_DIRS.flatMap(([sys, sub]) => [sys, sub]);
  const proc = spawn(
    "ip",
    [
      "netns",
      "exec",
      netns,
      "unshare",
      "--mount",
      "--uts",
      "--",
      "sh",
      "-c",
      DAEMON_SCRIPT,
      "sh",
      dir,
      listenIp ? "1" : "0",
      ...pairs,
    ],
    { stdio: ["ignore", log.fd, log.fd], env: { ...process.env, LIBVIRT_DRIVER_DIR: l.driverDir } },
  );
  const uri = `qemu+unix:///system?socket=${l.socket}`;
  await until(
    `the hand libvirtd in ${netns}`,
    60_000,
    async () => {
      if (proc.exitCode !== null)
        throw new Error(`libvirtd in ${netns} exited (${proc.exitCode}); log ${dir}/libvirtd.log`);
      if (!existsSync(l.socket)) return undefined;
      return (await sh("virsh", ["-c", uri, "version"]).catch(() => "")) ? true : undefined;
    },
    100,
  );
  return {
    dir,
    uri,
    proc,
    async stop() {
      for (const d of (await sh("virsh", ["-c", uri, "list", "--all", "--name"]).catch(() => "")).split("\n")) {
        if (!d.trim()) continue;
        await sh("virsh", ["-c", uri, "destroy", d.trim()]).catch(() => "");
        await sh("virsh", ["-c", uri, "undefine", d.trim()]).catch(() => "");
      }
      if (proc.exitCode === null) proc.kill("SIGTERM");
      await until("the hand libvirtd to exit", 20_000, async () => (proc.exitCode !== null ? true : undefined)).catch(
        () => proc.kill("SIGKILL"),
      );
      await log.close();
    },
  };
}

/** The daemon socket of a tsvirt launcher pod (below `dataRoot`, whose pods dirs are named by the pod uid's head). */
export async function launcherSocket(dataRoot: string, podUid: string): Promise<string> {
  const short = podUid.replaceAll("-", "").slice(0, 16);
  const found: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > 4) return;
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory()) continue;
      if (e.name === short && d.endsWith("pods")) found.push(join(d, e.name));
      else await walk(join(d, e.name), depth + 1);
    }
  };
  await walk(dataRoot, 0);
  const dir = found[0];
  if (!dir) throw new Error(`no pod directory for pod ${podUid} below ${dataRoot}`);
  return instanceLayout(join(dir, "lv")).socket;
}

/**
 * The domain XML moved from `podDir` to `sideDir`: every path below the pod dir rewritten, tap interfaces dropped.
 * Pure.
 */
export function moveDomainXml(xml: string, podDir: string, sideDir: string): string {
  return xml
    .replace(/<interface type=['"]ethernet['"][\s\S]*?<\/interface>\s*/g, "")
    .split(podDir)
    .join(sideDir);
}

/** Absolute file paths in `<source file=…>` elements of a domain XML. Pure. */
export function sourceFiles(xml: string): string[] {
  return [...xml.matchAll(/<source file=['"]([^'"]+)['"]/g)].map((m) => m[1] as string);
}

/**
 * The disks a migration copies: writable disks whose file is below `podDir` (containerDisk overlays, emptyDisks), as
 * the node agent's copyStorageTargets picks node-local volumes; read-only ones (cloud-init) exist on both sides. Pure.
 */
export function copiedDisks(xml: string, podDir: string): { target: string; file: string }[] {
  const out: { target: string; file: string }[] = [];
  for (const m of xml.matchAll(/<disk\b[\s\S]*?<\/disk>/g)) {
    const disk = m[0].replace(/<backingStore\b[\s\S]*?<\/backingStore>/g, "");
    const file = /<source file=['"]([^'"]+)['"]/.exec(disk)?.[1];
    const target = /<target\s+[^>]*dev=['"]([^'"]+)['"]/.exec(disk)?.[1];
    if (file?.startsWith(`${podDir}/`) && target && !/<readonly\s*\/>/.test(disk)) out.push({ target, file });
  }
  return out;
}

/**
 * Prepares `sideDir` for the domain `podXml` moved there: every file the pod dir held is re-created there (qcow2 overlays as fresh
 * overlays over the same backing file and size; the files named in `fresh` as empty images of the same format and
 * size, as a migration target's launcher creates them; others copied), directories traversable and owned by QEMU's
 * user.
 */
export async function prepareSide(
  podDir: string,
  sideDir: string,
  podXml: string,
  fresh: readonly string[] = [],
): Promise<void> {
  const xml = moveDomainXml(podXml, podDir, sideDir);
  const user = await qemuUser();
  for (const f of sourceFiles(podXml)) {
    if (!f.startsWith(`${podDir}/`)) continue;
    const to = sideDir + f.slice(podDir.length);
    await mkdir(join(to, ".."), { recursive: true });
    const info = JSON.parse(await sh("qemu-img", ["info", "-U", "--output=json", f])) as {
      format: string;
      "virtual-size": number;
      "full-backing-filename"?: string;
      "backing-filename-format"?: string;
    };
    const backing = info["full-backing-filename"];
    if (fresh.includes(f) && !backing) {
      await rm(to, { force: true });
      await sh("qemu-img", ["create", "-q", "-f", info.format, to, String(info["virtual-size"])]);
    } else if (info.format === "qcow2" && backing) {
      await rm(to, { force: true });
      await sh("qemu-img", [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        info["backing-filename-format"] ?? "qcow2",
        "-b",
        backing,
        to,
        String(info["virtual-size"]),
      ]);
    } else await copyFile(f, to);
    await chown(to, user.uid, user.gid);
  }
  // socket and log directories named in the XML
  for (const m of xml.matchAll(/(?:path|file)=['"]([^'"]+)['"]/g)) {
    const p = m[1] as string;
    if (p.startsWith(`${sideDir}/`)) await mkdir(join(p, ".."), { recursive: true });
  }
  const chownTree = async (d: string): Promise<void> => {
    await chown(d, user.uid, user.gid);
    await chmod(d, 0o755);
    for (const e of await readdir(d, { withFileTypes: true })) if (e.isDirectory()) await chownTree(join(d, e.name));
  };
  await chownTree(sideDir);
}

/** The guest's serial console through the domain's unix socket (the launcher's serial0 socket, moved). */
export async function serialShell(path: string): Promise<GuestShell & { close(): void }> {
  const out = { text: "" };
  const s: Socket = await new Promise((resolve, reject) => {
    const c = createConnection(path);
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
  s.setEncoding("latin1");
  s.on("data", (d: string) => {
    out.text += d;
  });
  s.on("error", () => {});
  return { out, send: (text) => void s.write(text), close: () => s.destroy() };
}

/** `virsh domjobinfo --completed` fields we read (downtime and total time, ms). Pure. */
export function parseJobInfo(text: string): { downtimeMs?: number; totalMs?: number } {
  const num = (label: string): number | undefined => {
    const m = new RegExp(`^${label}:\\s+([0-9]+)\\s*ms`, "m").exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const out: { downtimeMs?: number; totalMs?: number } = {};
  const d = num("Total downtime");
  if (d !== undefined) out.downtimeMs = d;
  const t = num("Time elapsed");
  if (t !== undefined) out.totalMs = t;
  return out;
}
