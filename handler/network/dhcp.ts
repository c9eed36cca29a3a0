// The masquerade binding's DHCP answer: busybox udhcpd inside the pod namespace, serving exactly one lease
// (10.0.2.2/24, router 10.0.2.1) on k6t-eth0. Started detached with an argument array and a config file we write;
// re-running ensureDhcp after a crash finds the running server by pid file, command line and network namespace.
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile, readlink, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { formatIpv4 } from "./cidr.js";
import { inNetns } from "./exec.js";
import { MASQ_BRIDGE, MASQ_GATEWAY, MASQ_GUEST, MASQ_PREFIX } from "./names.js";

export interface DhcpConfig {
  /** Directory owned by this pod's network state (config, leases, pid, log). No whitespace. */
  dir: string;
  iface?: string;
  guestIp?: string;
  router?: string;
  prefix?: number;
  dns?: readonly string[];
  hostname?: string;
  leaseSeconds?: number;
}

const SAFE_VALUE = /^[A-Za-z0-9._:/+-]+$/;

function safe(v: string, what: string): string {
  if (!SAFE_VALUE.test(v)) throw new Error(`unsafe ${what} for the DHCP config: "${v}"`);
  return v;
}

/** The udhcpd configuration file (pure). */
export function renderUdhcpdConfig(c: DhcpConfig): string {
  const guest = c.guestIp ?? MASQ_GUEST;
  const prefix = c.prefix ?? MASQ_PREFIX;
  const mask = formatIpv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
  const lines = [
    `interface ${safe(c.iface ?? MASQ_BRIDGE, "interface")}`,
    `start ${safe(guest, "address")}`,
    `end ${safe(guest, "address")}`,
    "max_leases 1",
    "auto_time 0",
    `lease_file ${safe(join(c.dir, "udhcpd.leases"), "path")}`,
    `pidfile ${safe(join(c.dir, "udhcpd.pid"), "path")}`,
    `opt subnet ${mask}`,
    `opt router ${safe(c.router ?? MASQ_GATEWAY, "router")}`,
    `opt lease ${c.leaseSeconds ?? 86400}`,
  ];
  if (c.dns && c.dns.length > 0) lines.push(`opt dns ${c.dns.map((d) => safe(d, "dns server")).join(" ")}`);
  if (c.hostname) lines.push(`opt hostname ${safe(c.hostname, "hostname")}`);
  return `${lines.join("\n")}\n`;
}

export function confPath(dir: string): string {
  return join(dir, "udhcpd.conf");
}

function pidPath(dir: string): string {
  return join(dir, "dhcp.pid");
}

async function netnsInode(netns: string): Promise<number | undefined> {
  try {
    return (await stat(`/run/netns/${netns}`)).ino;
  } catch {
    return undefined;
  }
}

/** The pid of this pod's running DHCP server, or undefined. Checks command line and network namespace. */
export async function findDhcp(dir: string, netns: string): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await readFile(pidPath(dir), "utf8")).trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0");
    if (!cmdline.includes("udhcpd") || !cmdline.includes(confPath(dir))) return undefined;
    const ino = await netnsInode(netns);
    const link = await readlink(`/proc/${pid}/ns/net`);
    if (ino === undefined || link !== `net:[${ino}]`) return undefined;
    const st = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.[0];
    if (st === "Z") return undefined;
    return pid;
  } catch {
    return undefined;
  }
}

export interface EnsureDhcpOptions {
  busybox: string;
  nsenter?: string;
}

/** Writes the config and starts udhcpd in the pod namespace unless the right one already runs. Returns its pid. */
export async function ensureDhcp(netns: string, c: DhcpConfig, opts: EnsureDhcpOptions): Promise<number> {
  const conf = renderUdhcpdConfig(c);
  let current: string | undefined;
  try {
    current = await readFile(confPath(c.dir), "utf8");
  } catch {
    current = undefined;
  }
  const running = await findDhcp(c.dir, netns);
  if (running !== undefined && current === conf) return running;
  if (running !== undefined) await stopDhcp(c.dir, netns);
  const tmp = `${confPath(c.dir)}.tmp`;
  await writeFile(tmp, conf);
  await rename(tmp, confPath(c.dir));
  const log = openSync(join(c.dir, "udhcpd.log"), "a");
  try {
    // -a 0: no ARP probe before offering. The one address is the guest's, on a bridge only the guest is on; the
    // default probe (2 s waiting for a reply nobody sends) delayed every guest's first lease, and so its boot.
    const argv = inNetns(netns, [opts.busybox, "udhcpd", "-f", "-a", "0", confPath(c.dir)]);
    if (opts.nsenter) argv[0] = opts.nsenter;
    const [file, ...args] = argv as [string, ...string[]];
    const child = spawn(file, args, { detached: true, stdio: ["ignore", log, log] });
    const pid = child.pid;
    if (pid === undefined) {
      await new Promise<void>((resolve) => child.once("error", () => resolve()));
      throw new Error(`cannot start udhcpd in ${netns}`);
    }
    child.unref();
    await writeFile(pidPath(c.dir), `${pid}\n`);
    // nsenter enters the namespace, then execs udhcpd: wait until the process is the server in the pod namespace.
    let exited = false;
    child.once("exit", () => {
      exited = true;
    });
    const deadline = Date.now() + 10_000;
    while ((await findDhcp(c.dir, netns)) === undefined) {
      if (exited || Date.now() > deadline) {
        const log = await readFile(join(c.dir, "udhcpd.log"), "utf8").catch(() => "");
        throw new Error(`udhcpd did not start in ${netns}: ${log.trim().split("\n").slice(-3).join("; ")}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return pid;
  } finally {
    closeSync(log);
  }
}

/** Stops this pod's DHCP server if it runs (only the process our pid file names and that passes findDhcp's checks). */
export async function stopDhcp(dir: string, netns: string): Promise<void> {
  const pid = await findDhcp(dir, netns);
  if (pid !== undefined) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && (await findDhcp(dir, netns)) !== undefined) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  await rm(pidPath(dir), { force: true });
}
