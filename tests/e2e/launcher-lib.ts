// Helpers for the launcher e2e suites: start real launcher pods (compiled JavaScript), talk to their sockets,
// read their serial consoles, find their processes.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { after, before, describe } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  childPids,
  type DomainInfo,
  descendants,
  LauncherClient,
  type MigrateStartParams,
  type MigrateStatusResult,
  type SpawnedPod,
  spawnLauncherPod,
} from "../../launcher/index.js";
import { ensureGuest, GUEST_CMDLINE, type Guest, HEARTBEAT } from "../guest/index.js";
import { GUEST, LIBVIRT, requirePrereqs } from "../lib/prereqs.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const tsvirtJs = path.join(repoRoot, "dist", "cmd", "tsvirt.js");

/** A short base dir: every socket path must stay under 100 bytes. */
export const baseDir = "/tmp/tsv-e2e";

let seq = 0;
export function newUid(): string {
  return `e2e-${process.pid}-${Date.now().toString(36)}-${seq++}`;
}

export interface Pod extends SpawnedPod {
  uid: string;
  client: LauncherClient;
  /** Stop it however it is: SIGKILL to unshare (the kernel then kills the whole namespace). */
  kill(): void;
}

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A launcher pod on "node" `nodeDir`; `uid` (default: a fresh one) and a network namespace (default: the host's). */
export async function startPod(
  nodeDir: string,
  o: { uid?: string; netns?: string; podDir?: string; lockDir?: string } = {},
): Promise<Pod> {
  const uid = o.uid ?? newUid();
  const podDir = o.podDir ?? path.join(baseDir, uid.slice(-12));
  await rm(podDir, { recursive: true, force: true });
  await mkdir(podDir, { recursive: true });
  const pod = spawnLauncherPod({
    uid,
    podDir,
    lockDir: o.lockDir ?? path.join(baseDir, "locks"),
    nodeDir,
    accel: process.env.TSVIRT_ACCEL ?? "auto",
    tsvirtJs,
    ...(o.netns ? { netns: o.netns } : {}),
  });
  const kill = (): void => {
    try {
      process.kill(pod.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };
  try {
    const client = await waitFor(
      "the launcher's command socket",
      async () =>
        existsSync(pod.socket) ? await LauncherClient.connect(pod.socket).catch(() => undefined) : undefined,
      60_000,
    );
    return { ...pod, uid, client, kill };
  } catch (e) {
    const log = existsSync(pod.paths.logFile) ? readFileSync(pod.paths.logFile, "utf8").slice(-2000) : "";
    kill();
    throw new Error(`${String(e)}\nlauncher log:\n${log}`);
  }
}

export function vmiFor(uid: string, name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name, namespace: "default", uid },
    spec: { domain: { resources: { requests: { memory: "256Mi" } }, devices: {} }, ...spec },
  };
}

/** A client of the launcher's console socket that keeps everything it received, with arrival times. */
export class Console {
  readonly chunks: Array<{ at: number; data: string }> = [];
  private constructor(private readonly sock: net.Socket) {
    sock.on("data", (d: Buffer) => this.chunks.push({ at: performance.now(), data: d.toString("latin1") }));
    sock.on("error", () => {});
  }
  static connect(p: string): Promise<Console> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(p);
      s.once("connect", () => resolve(new Console(s)));
      s.once("error", reject);
    });
  }
  get text(): string {
    return this.chunks.map((c) => c.data).join("");
  }
  bytesBetween(from: number, to: number): string {
    return this.chunks
      .filter((c) => c.at >= from && c.at < to)
      .map((c) => c.data)
      .join("");
  }
  send(s: string): void {
    this.sock.write(s);
  }
  waitFor(re: RegExp, timeoutMs: number, fromIndex = 0): Promise<RegExpExecArray> {
    return waitFor(`console output ${re}`, () => re.exec(this.text.slice(fromIndex)) ?? undefined, timeoutMs);
  }
  close(): void {
    this.sock.destroy();
  }
}

export function nextState(
  client: LauncherClient,
  pred: (d: DomainInfo) => boolean,
  timeoutMs: number,
): Promise<DomainInfo> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      stop();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for a domain state`));
    }, timeoutMs);
    const stop = client.watch((d) => {
      if (pred(d)) {
        clearTimeout(t);
        stop();
        resolve(d);
      }
    });
  });
}

export function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** Host pids of the pod's processes by name: libvirtd, qemu-system-x86, node, bash. */
export function podProcesses(unsharePid: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const p of descendants(unsharePid)) {
    const c = comm(p);
    const list = out[c] ?? [];
    list.push(p);
    out[c] = list;
  }
  return out;
}

/** The launcher (node) process of a pod, as a host pid. */
export function launcherPid(unsharePid: number): number | undefined {
  const init = childPids(unsharePid)[0];
  return init === undefined ? undefined : childPids(init).find((p) => comm(p) === "node");
}

export function alive(pid: number): boolean {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(st);
  } catch {
    return false;
  }
}

const run = promisify(execFile);

/** The last 4000 characters of a file (a launcher's log in an assertion message); "" when there is none. */
export function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, "utf8").slice(-4000) : "";
}

/**
 * Two launcher "nodes" for migration tests: network namespaces `tsvirt-<name>s-<tag>` / `…d-<tag>` linked by a veth
 * pair (eth0 = 10.213.<octet>.1 / .2, as the node agent names a pod's interface), and the pods started in them.
 */
export class MigrationPair {
  readonly tag = String(process.pid % 100000);
  readonly ns: { src: string; dst: string };
  readonly ip: { src: string; dst: string };
  readonly pods: Pod[] = [];

  constructor(
    private readonly name: string,
    octet: number,
  ) {
    this.ns = { src: `tsvirt-${name}s-${this.tag}`, dst: `tsvirt-${name}d-${this.tag}` };
    this.ip = { src: `10.213.${octet}.1`, dst: `10.213.${octet}.2` };
  }

  async setUp(): Promise<void> {
    const ip = (...args: string[]) => run("ip", args);
    for (const n of Object.values(this.ns)) await ip("netns", "del", n).catch(() => {});
    await ip("netns", "add", this.ns.src);
    await ip("netns", "add", this.ns.dst);
    const dev = `t${this.name.slice(0, 4)}${this.tag}`;
    await ip("link", "add", `${dev}s`, "type", "veth", "peer", "name", `${dev}d`);
    for (const side of ["src", "dst"] as const) {
      const ns = this.ns[side];
      await ip("link", "set", `${dev}${side[0]}`, "netns", ns);
      await ip("-n", ns, "link", "set", `${dev}${side[0]}`, "name", "eth0");
      await ip("-n", ns, "addr", "add", `${this.ip[side]}/24`, "dev", "eth0");
      await ip("-n", ns, "link", "set", "eth0", "up");
      await ip("-n", ns, "link", "set", "lo", "up");
    }
  }

  /** A launcher pod of VMI `uid` on one side (as the node agent's pod runner starts it). */
  async startPod(side: "src" | "dst", uid: string): Promise<Pod> {
    const node = `${this.name}-${this.tag}-${side}`;
    const nodeDir = path.join(baseDir, node);
    const pod = await startPod(nodeDir, {
      uid,
      netns: this.ns[side],
      podDir: path.join(baseDir, `${node}-pod`),
      lockDir: path.join(nodeDir, "locks"),
    });
    this.pods.push(pod);
    return pod;
  }

  async tearDown(): Promise<void> {
    for (const p of this.pods) {
      p.client.close();
      p.kill();
    }
    for (const p of this.pods)
      await waitFor("the pod to end", () => !alive(p.pid) || undefined, 10_000).catch(() => {});
    for (const n of Object.values(this.ns)) await run("ip", ["netns", "del", n]).catch(() => {});
    for (const p of this.pods) await rm(p.paths.podDir, { recursive: true, force: true });
    for (const side of ["src", "dst"])
      await rm(path.join(baseDir, `${this.name}-${this.tag}-${side}`), { recursive: true, force: true });
  }
}

/**
 * A suite of migrations between two launcher pods: the prerequisites checked, the test guest built and a
 * MigrationPair set up before its tests, torn down after. `ctx.guest` is set once the suite's `before` has run.
 */
export function describeMigration(
  title: string,
  pairName: string,
  octet: number,
  body: (ctx: { pair: MigrationPair; guest: Guest }) => void,
): void {
  requirePrereqs(...LIBVIRT, ...GUEST, "ip");
  describe(title, () => {
    const ctx = { pair: new MigrationPair(pairName, octet), guest: undefined as unknown as Guest };
    before(async () => {
      ctx.guest = await ensureGuest();
      await ctx.pair.setUp();
    });
    after(() => ctx.pair.tearDown());
    body(ctx);
  });
}

/** The test guest as a migratable VMI: kernel boot with a heartbeat on the console, its containerDisk and a scratch emptyDisk. */
export function migratableVmi(uid: string, name: string, memory = "256Mi"): Record<string, unknown> {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name, namespace: "default", uid },
    spec: {
      domain: {
        resources: { requests: { memory } },
        firmware: {
          kernelBoot: {
            container: { image: "guest-kernel" },
            kernelArgs: `${GUEST_CMDLINE} ip=off tsvirt.heartbeat=1`,
          },
        },
        devices: {
          disks: [
            { name: "containerdisk", disk: { bus: "virtio" } },
            { name: "scratch", disk: { bus: "virtio" } },
          ],
        },
      },
      volumes: [
        { name: "containerdisk", containerDisk: { image: "registry.local/guest:latest" } },
        { name: "scratch", emptyDisk: { capacity: "64Mi" } },
      ],
    },
  };
}

/** What the node agent would have prepared for migratableVmi: the guest's kernel, initrd and disk. */
export function preparedFor(guest: Guest): Record<string, unknown> {
  return {
    kernelBoot: { kernel: guest.vmlinux, initrd: guest.initrd },
    baseImages: { containerdisk: guest.qcow2 },
  };
}

/** The source's migration job once it is no longer running. */
export function jobEnd(src: Pod, timeoutMs: number): Promise<MigrateStatusResult> {
  return waitFor(
    "the migration job to end",
    async () => {
      const s = await src.client.migrateStatus();
      return s.state === "running" ? undefined : s;
    },
    timeoutMs,
  );
}

/** A guest busy dirtying its memory on the source pod of a pair, the target pod prepared for it. */
export interface BusyGuest {
  src: Pod;
  dst: Pod;
  con: Console;
  /** The md5 of the random file the guest keeps copying. */
  sum: string;
  /** The last heartbeat seen on the source before the migration. */
  last: number;
  /** MigrateStart's parameters towards the prepared target (the caller adds its settings). */
  start: MigrateStartParams;
  /** The target's domain Running (the incoming guest resumed there). */
  running: Promise<DomainInfo>;
}

/**
 * Boots migratableVmi on the source pod; the guest keeps `ramValue` in RAM and copies a random file of `mib` MiB in
 * a loop (its memory never converges under a bandwidth cap); the target pod is prepared. Both disks are copied.
 */
export async function busyGuest(
  ctx: { pair: MigrationPair; guest: Guest },
  name: string,
  mib: number,
  ramValue: string,
): Promise<BusyGuest> {
  const { pair, guest } = ctx;
  const uid = randomUUID();
  const vmi = migratableVmi(uid, name);
  const prepared = preparedFor(guest);
  const [src, dst] = await Promise.all([pair.startPod("src", uid), pair.startPod("dst", uid)]);
  const synced = await src.client.call("Sync", { vmi, prepared });
  if (synced.status?.state !== "Running") throw new Error(`the source domain is ${JSON.stringify(synced.status)}`);
  const con = await Console.connect(src.paths.consoleSocket);
  await con.waitFor(new RegExp(guest.marker), 180_000);
  let mark = con.text.length;
  con.send(
    `echo ${ramValue} > /migval; head -c ${mib * 1048576} /dev/urandom > /busy.a; echo S-$(md5sum < /busy.a | cut -c1-32)-E\n`,
  );
  const sum = (await con.waitFor(/S-([0-9a-f]{32})-E/, 120_000, mark))[1] ?? "";
  mark = con.text.length;
  con.send("(while :; do cp /busy.a /busy.b; done) >/dev/null 2>&1 & echo B-$((6*7))\n");
  await con.waitFor(/B-42/, 30_000, mark);
  mark = con.text.length;
  const last = Number((await con.waitFor(new RegExp(`${HEARTBEAT} (\\d+)`), 30_000, mark))[1]);
  const target = await dst.client.prepareMigrationTarget({ vmi, prepared, sourceNodeAddress: pair.ip.src });
  const running = nextState(dst.client, (d) => d.status?.state === "Running", 300_000);
  const start: MigrateStartParams = {
    destinationUri: `qemu+tcp://${target.address}:${target.ports.libvirt}/system`,
    migrateUri: `tcp://${target.address}:${target.ports.qemu}`,
    disksUri: `tcp://${target.address}:${target.ports.nbd}`,
    domainXml: target.domainXml,
    copyStorage: ["vda", "vdb"],
  };
  return { src, dst, con, sum, last, start, running };
}

/** The same guest runs on the target, its memory intact: heartbeat continues and ticks, RAM value and file unchanged. */
export async function assertSameGuest(g: BusyGuest, ramValue: string): Promise<void> {
  const tc = await Console.connect(g.dst.paths.consoleSocket);
  try {
    const hb = Number((await tc.waitFor(new RegExp(`${HEARTBEAT} (\\d+)`), 30_000))[1]);
    if (!(hb > g.last)) throw new Error(`heartbeat ${hb} does not continue after ${g.last} (not the same boot)`);
    await tc.waitFor(new RegExp(`${HEARTBEAT} ${hb + 1}\\b`), 30_000); // it runs: its heartbeat ticks on the target
    const m = tc.text.length;
    tc.send("\necho R-$(cat /migval)-$(md5sum < /busy.a | cut -c1-32)-E\n");
    const r = await tc.waitFor(/R-([a-z0-9-]+)-([0-9a-f]{32})-E/, 60_000, m);
    if (r[1] !== ramValue || r[2] !== g.sum)
      throw new Error(`the guest's memory changed: ${r[1]}/${r[2]}, expected ${ramValue}/${g.sum}`);
  } finally {
    tc.close();
  }
}
