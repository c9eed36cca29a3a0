// The shared end-to-end harness: a real `tsvirt up` (API server, controller, node agents as separate processes),
// a real docker-registry on loopback holding the test guest as a containerDisk, stock kubectl and our virtctl.
// Every wait is bounded and polls state a user could observe; nothing here sleeps in place of synchronization.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, readlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { freePort, startRegistry, type TestRegistry } from "../../images/testing/registry.js";
import { ensureGuest, type Guest } from "../guest/index.js";
import { CLUSTER, requirePrereqs } from "./prereqs.js";

export const ROOT = join(import.meta.dirname, "..", "..");
export const TSVIRT = join(ROOT, "dist", "cmd", "tsvirt.js");
export const VIRTCTL = join(ROOT, "dist", "cmd", "virtctl.js");

export function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeout = 120_000) {
  return new Promise<string>((resolve, reject) =>
    execFile(file, args, { env, timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(" ")}: ${stderr || err.message}`)) : resolve(stdout),
    ),
  );
}

export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Text seen so far on a child's stdout (and stderr when asked). */
export interface Output {
  text: string;
}

export function collect(child: ChildProcess, stderr = false): Output {
  const out: Output = { text: "" };
  child.stdout?.on("data", (d: Buffer) => {
    out.text += d.toString();
  });
  if (stderr)
    child.stderr?.on("data", (d: Buffer) => {
      out.text += d.toString();
    });
  return out;
}

/** Waits (bounded) until `re` matches the text seen so far on the child's stdout. */
export function waitOutput(buf: Output, child: ChildProcess, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = re.exec(buf.text);
      if (!m) return false;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      resolve(m[0]);
      return true;
    };
    const onData = (): void => {
      // Let collect()'s listener append first.
      setImmediate(check);
    };
    const timer = setTimeout(() => {
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      reject(new Error(`timed out waiting for ${re}; got:\n${buf.text.slice(-2000)}`));
    }, timeoutMs);
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    check();
  });
}

/** Polls `probe` (bounded) until it returns a value other than undefined. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    assert.ok(Date.now() < deadline, `timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

/** The network-namespace link of a named netns, as /proc/PID/ns/net shows it. */
export async function netnsLink(name: string): Promise<string> {
  return `net:[${(await stat(`/run/netns/${name}`)).ino}]`;
}

/** QEMU processes of a VMI: its uid in the command line, or (when given) running in the pod's network namespace. */
export async function qemuFor(uid: string, netns = ""): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, "utf8").catch(() => "");
    if (!cmd.includes("qemu-system")) continue;
    const ns = netns === "" ? "" : await readlink(`/proc/${d}/ns/net`).catch(() => "");
    if (cmd.includes(uid) || (netns !== "" && ns === netns)) out.push(Number(d));
  }
  return out;
}

/** A `virtctl console` session. */
export interface Console {
  readonly child: ChildProcess;
  readonly out: Output;
  send(text: string): void;
  expect(re: RegExp, timeoutMs?: number): Promise<string>;
  close(): void;
}

export interface VmOptions {
  runStrategy?: string;
  memory?: string;
  cpu?: string;
  image?: string;
  nodeSelector?: Record<string, string>;
  labels?: Record<string, string>;
  namespace?: string;
}

export interface Cluster {
  readonly dir: string;
  readonly port: number;
  readonly env: NodeJS.ProcessEnv;
  /** DIR/kubeconfig, for kubectl and virtctl. */
  readonly kubeconfig: string;
  /** Node names, in order (PREFIX01, PREFIX02, ...). */
  readonly nodes: string[];
  readonly guest: Guest;
  readonly registry: TestRegistry;
  /** The guest as a containerDisk in the loopback registry. */
  readonly image: string;
  /** `tsvirt up`'s combined output so far. */
  readonly upOut: Output;
  readonly up: ChildProcess;
  kubectl(...args: string[]): Promise<string>;
  virtctl(...args: string[]): Promise<string>;
  /** `kubectl apply -f -` of one object. */
  apply(obj: unknown): Promise<void>;
  /** `kubectl get -o json`, parsed. */
  getJson<T = Record<string, unknown>>(...args: string[]): Promise<T>;
  /** Polls `kubectl get OBJ -o jsonpath=PATH` until it prints `want` (bounded). */
  waitFor(obj: string, jsonpath: string, want: string | RegExp, timeoutMs: number): Promise<string>;
  /** A VirtualMachine running the test guest. */
  vm(name: string, opts?: VmOptions): Record<string, unknown>;
  console(vmi: string, namespace?: string): Console;
  /** Pid of a supervised component from DIR/run (api, controller, handler-NODE). */
  pid(component: string): Promise<number>;
  /** Pushes the guest under another reference (e.g. an image first missing). */
  pushGuest(ref: string): Promise<void>;
}

export interface ClusterOptions {
  nodes?: number;
  /** Extra `tsvirt up` arguments. */
  args?: string[];
  /** Name for the temp dir and the node prefix (short, lowercase). */
  name?: string;
  /** Mode of the data directory; default 0755 (0700 is what mktemp -d makes: tsvirt up must cope with it). */
  dataDirMode?: number;
}

/** A VMI's launcher pod as the migration tests look at it. */
export interface VmiPod {
  name: string;
  uid: string;
  node: string;
  ip: string;
  phase: string;
  deleting: boolean;
}

/** The launcher pods of a VMI (source and target during a migration), as `kubectl get pods -l` lists them. */
export async function vmiPods(c: Cluster, vmiUid: string): Promise<VmiPod[]> {
  const l = await c.getJson<{
    items: {
      metadata: { name: string; uid: string; deletionTimestamp?: string };
      spec?: { nodeName?: string };
      status?: { podIP?: string; phase?: string };
    }[];
  }>("pods", "-l", `kubevirt.io/created-by=${vmiUid}`);
  return l.items.map((p) => ({
    name: p.metadata.name,
    uid: p.metadata.uid,
    node: p.spec?.nodeName ?? "",
    ip: p.status?.podIP ?? "",
    phase: p.status?.phase ?? "",
    deleting: Boolean(p.metadata.deletionTimestamp),
  }));
}

/** Starts a counter in the guest's memory (/dev/shm/count, +1 every 100 ms): a reset or a second guest shows. */
export const START_COUNTER =
  "mkdir -p /dev/shm; (i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.1; done) >/dev/null 2>&1 &\n";

let asked = 0;
/** Runs a shell line in the guest on `con` and returns what it printed between unique markers. */
export async function askGuest(con: Console, cmd: string): Promise<string> {
  const n = ++asked;
  // The quotes split the markers in the echoed command line: only the output carries them whole.
  con.send(`echo Q${n}""B-$(${cmd})-Q${n}""E\n`);
  const m = await con.expect(new RegExp(`Q${n}B-([^\\r\\n]*)-Q${n}E`), 60_000);
  return m.replace(`Q${n}B-`, "").replace(`-Q${n}E`, "");
}

/**
 * Waits for the guest on `con` to boot, then has it count in memory (/dev/shm/count, every 0.1 s): its boot id and
 * the first count (a migration must keep both going: same boot, the counter continues).
 */
export async function startCounting(c: Cluster, con: Console): Promise<{ bootId: string; count: number }> {
  await con.expect(new RegExp(c.guest.marker), 300_000);
  con.send("\n");
  const bootId = await askGuest(con, "cat /proc/sys/kernel/random/boot_id");
  assert.match(bootId, /^[0-9a-f-]{36}$/);
  con.send(START_COUNTER);
  const count = await until("the counter runs", 30_000, async () => {
    const v = Number(await askGuest(con, "cat /dev/shm/count"));
    return v > 0 ? v : undefined;
  });
  return { bootId, count };
}

/**
 * The guest booted and answers on its serial console (`virtctl console`): the ready marker (the console replays
 * what the guest printed before), then an echo round trip. A session that ends or stays silent is retried (bounded):
 * the console may not be reachable at the very moment the VMI turns Running. A booted guest also handles the ACPI
 * power button, so a delete that follows is graceful and prompt instead of running out its grace period.
 */
export async function guestAnswers(
  c: Cluster,
  vmi: string,
  tag: string,
  timeoutMs = 600_000,
  namespace = "default",
): Promise<void> {
  await until(
    `${vmi}'s console answers`,
    timeoutMs,
    async () => {
      const con = c.console(vmi, namespace);
      try {
        const exited = new Promise<never>((_, reject) =>
          con.child.once("exit", () => reject(new Error("virtctl console ended"))),
        );
        await Promise.race([con.expect(new RegExp(c.guest.marker), 60_000), exited]);
        con.send(`\necho ${tag}-$((6*7))\n`);
        await Promise.race([con.expect(new RegExp(`${tag}-42`), 30_000), exited]);
        return true;
      } finally {
        con.close();
      }
    },
    2000,
  );
}

/** `virtctl stop` then `start` of a VM; resolves with a console on the booted guest (prompt reached). */
export async function stopStart(c: Cluster, vm: string): Promise<Console> {
  await c.virtctl("stop", vm);
  await c.waitFor(`vm/${vm}`, "{.status.printableStatus}", "Stopped", 120_000);
  await c.kubectl("wait", "--for=delete", `vmi/${vm}`, "--timeout=60s");
  await c.virtctl("start", vm);
  await c.waitFor(`vmi/${vm}`, "{.status.phase}", "Running", 300_000);
  const con = c.console(vm);
  await con.expect(new RegExp(c.guest.marker), 300_000);
  con.send("\n");
  return con;
}

/**
 * Starts a registry holding the guest and a `tsvirt up` with `nodes` node agents; waits until every node is Ready.
 * A missing prerequisite (tests/lib/prereqs.ts CLUSTER) throws at once, naming it.
 * Everything is torn down by `t.after` (SIGINT to the supervisor: VMs stopped gracefully, then every process).
 */
export async function startCluster(t: TestContext, opts: ClusterOptions = {}): Promise<Cluster> {
  requirePrereqs(...CLUSTER);
  const n = opts.nodes ?? 1;
  const name = opts.name ?? "e2e";
  const guest = await ensureGuest();
  const dir = await mkdtemp(join(tmpdir(), `tsv-${name}-`));
  await chmod(dir, opts.dataDirMode ?? 0o755); // QEMU runs as libvirt-qemu and must reach the pod's disks below it
  const registry = await startRegistry();
  t.after(() => registry.stop());
  const image = `${registry.host}/tsvirt/guest:e2e`;
  const pushGuest = async (ref: string): Promise<void> => {
    await run(process.execPath, [
      TSVIRT,
      "image",
      "build",
      "--cache-dir",
      join(dir, "build-cache"),
      "--disk",
      guest.qcow2,
      "--push",
      ref,
    ]);
  };
  await pushGuest(image);

  const port = await freePort();
  // Node names stay unique per test process: bridges and namespaces are named after them.
  const prefix = `${name.replace(/[^a-z]/g, "").slice(0, 4) || "e"}${process.pid % 100000}n`;
  const nodes = Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(2, "0")}`);
  const up = spawn(
    process.execPath,
    [
      TSVIRT,
      "up",
      "--listen",
      `127.0.0.1:${port}`,
      "--data-dir",
      dir,
      "--node-prefix",
      prefix,
      "--nodes",
      String(n),
      ...(opts.args ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const upOut = collect(up, true);
  const upExited = new Promise<void>((r) => up.once("exit", () => r()));
  t.after(async () => {
    await run("cp", ["-r", join(dir, "logs"), join(tmpdir(), `tsv-${name}-last-logs`)]).catch(() => "");
    if (up.exitCode === null && up.signalCode === null) {
      up.kill("SIGINT");
      await upExited;
    }
    // (retried: a pod process killed on the way out may still close a file in it; ENOTEMPTY would fail the test)
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });

  const kubeconfig = join(dir, "kubeconfig");
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  const kubectl = (...args: string[]) => run("kubectl", args, env);
  const virtctl = (...args: string[]) => run(process.execPath, [VIRTCTL, ...args], env);
  await waitOutput(upOut, up, /tsvirt is up/, 120_000);
  for (const node of nodes) {
    // kubectl wait needs the object to exist: wait for the node agent's registration first.
    await until(`node ${node} registered`, 120_000, () => kubectl("get", "node", node).then(() => true));
    await kubectl("wait", "--for=condition=Ready", `node/${node}`, "--timeout=120s");
  }

  const cluster: Cluster = {
    dir,
    port,
    env,
    kubeconfig,
    nodes,
    guest,
    registry,
    image,
    upOut,
    up,
    kubectl,
    virtctl,
    pushGuest,
    async apply(obj) {
      const p = spawn("kubectl", ["apply", "-f", "-"], { env, stdio: ["pipe", "pipe", "pipe"] });
      const err = collect(p, true);
      p.stdin.end(JSON.stringify(obj));
      const code = await new Promise<number | null>((r) => p.once("exit", r));
      assert.equal(code, 0, `kubectl apply: ${err.text}`);
    },
    async getJson<T>(...args: string[]) {
      return JSON.parse(await kubectl("get", ...args, "-o", "json")) as T;
    },
    async waitFor(obj, jsonpath, want, timeoutMs) {
      let last = "";
      return until(
        `${obj} ${jsonpath} = ${want}`,
        timeoutMs,
        async () => {
          last = await kubectl("get", obj, "-o", `jsonpath=${jsonpath}`).catch((e: Error) => e.message);
          return (typeof want === "string" ? last === want : want.test(last)) ? last : undefined;
        },
        300,
      ).catch((e: Error) => {
        // (the message is made when the wait starts: the last value seen is added at its end)
        e.message += ` (last: ${last})`;
        throw e;
      });
    },
    vm(vmName, o = {}) {
      return {
        apiVersion: "kubevirt.io/v1",
        kind: "VirtualMachine",
        metadata: { name: vmName, namespace: o.namespace ?? "default" },
        spec: {
          runStrategy: o.runStrategy ?? "Halted",
          template: {
            metadata: { labels: { "kubevirt.io/vm": vmName, ...o.labels } },
            spec: {
              ...(o.nodeSelector ? { nodeSelector: o.nodeSelector } : {}),
              domain: {
                ...(o.cpu ? { cpu: { cores: Number(o.cpu) } } : {}),
                devices: {
                  disks: [{ name: "containerdisk", disk: { bus: "virtio" } }],
                  interfaces: [{ name: "default", masquerade: {} }],
                },
                resources: { requests: { memory: o.memory ?? "128Mi" } },
              },
              networks: [{ name: "default", pod: {} }],
              volumes: [{ name: "containerdisk", containerDisk: { image: o.image ?? image } }],
            },
          },
        },
      };
    },
    console(vmi, namespace = "default") {
      const child = spawn(process.execPath, [VIRTCTL, "console", vmi, "-n", namespace], {
        env,
        stdio: ["pipe", "pipe", "pipe"],
      });
      const out = collect(child);
      t.after(() => child.kill("SIGKILL"));
      return {
        child,
        out,
        send: (text) => child.stdin?.write(text),
        expect: (re, timeoutMs = 120_000) => waitOutput(out, child, re, timeoutMs),
        close: () => child.kill("SIGKILL"),
      };
    },
    async pid(component) {
      return Number((await readFile(join(dir, "run", `${component}.pid`), "utf8")).trim());
    },
  };
  return cluster;
}
