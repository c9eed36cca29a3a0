// npm run bench:scale — control-plane scale against KubeVirt's density figures. Real API server and real controller
// (VM/VMI controllers + embedded scheduler) each as their own process (`node dist/cmd/tsvirt.js api|controller`),
// plus ONE process running 10 FAKE node agents (fake pod runner + fake launcher, tests/lib/fake-node/) that talk
// HTTP to the API like virt-handler. Bursts of 100 (BENCH_RUNS times, median) and 1,000 VMIs created directly
// (90Mi, 100m). Latency: from just before each VMI's POST to the moment the bench's watch sees phase Running.
// Writes: apiserver_request_total deltas. Memory: summed RSS of the three processes after a forced GC (SIGUSR2 →
// bench/scale/gc-hook.mjs, loaded only into these processes) at 0 and at 1,000 Running VMIs. Last line: one JSON.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, removeDir, tempDir, tsvirtBin, waitReady } from "../apiserver/testutil.js";
import { type Node, type Pod, RestClient, resources, type VirtualMachineInstance } from "../client/index.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const RUNS_1000 = Number(process.env.BENCH_RUNS_1000 ?? 1);
const NODES = 10;
const CONCURRENCY = 32;
const root = join(fileURLToPath(import.meta.url), "..", "..");
const hook = join(root, "bench", "scale", "gc-hook.mjs");
const fakeMain = join(root, "tests", "lib", "fake-node", "main.ts");
// KubeVirt v1.8 perf job (reference §3.1): p50 ≈ 17–19 s, p95 ≈ 27–28 s for 100 VMIs; PATCH pods ≈ 2.2 + UPDATE VMIs
// ≈ 5.5 + PATCH VMIs ≈ 0.7 per VMI; virt-controller ≈ 173 KB per VMI (100 → 8,000 VMIs).
const KUBEVIRT = { p50: 18_000, p95: 27_500, kbPerVmi: 173, writesPerVmi: 8.4 };

const procs: ChildProcess[] = [];
const gcDir = tempDir("tsvirt-bench-gc-");
const dataDir = tempDir("tsvirt-bench-scale-");

function launch(name: string, args: string[]): ChildProcess {
  const p = spawn(process.execPath, ["--expose-gc", "--import", hook, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, TSVIRT_BENCH_GC_DIR: gcDir },
  });
  let tail = "";
  p.stderr?.on("data", (c: Buffer) => {
    tail = (tail + c.toString()).slice(-4000);
  });
  p.once("exit", (code, sig) => {
    if (!stopping) console.error(`${name} exited (${code ?? sig}): ${tail.slice(-1500)}`);
  });
  procs.push(p);
  return p;
}

let stopping = false;
async function cleanup(): Promise<void> {
  stopping = true;
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve();
          p.once("exit", () => resolve());
          p.kill("SIGTERM");
          setTimeout(() => p.kill("SIGKILL"), 5_000).unref();
        }),
    ),
  );
  removeDir(gcDir);
  removeDir(dataDir);
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat (clock ticks of 10 ms). */
function cpuSeconds(p: ChildProcess): number {
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function rssAfterGc(p: ChildProcess): Promise<number> {
  const file = join(gcDir, `${p.pid}.rss`);
  const before = existsSync(file) ? readFileSync(file, "utf8") : "";
  p.kill("SIGUSR2");
  const end = Date.now() + 30_000;
  for (;;) {
    const now = existsSync(file) ? readFileSync(file, "utf8") : "";
    if (now && now !== before) return Number(now.trim().split(" ")[1]);
    if (Date.now() > end) throw new Error(`no GC answer from pid ${p.pid}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
}
function median(xs: number[]): number {
  return pct(xs, 50);
}

async function metrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split("\n")) {
    const r = /^apiserver_request_total\{(.*)\} (\d+)$/.exec(line);
    if (r) m.set(r[1] ?? "", Number(r[2]));
  }
  return m;
}

function delta(a: Map<string, number>, b: Map<string, number>, match: (l: string) => boolean): number {
  let n = 0;
  for (const [k, v] of b) if (match(k)) n += v - (a.get(k) ?? 0);
  return n;
}

const COMPONENTS = /client="(virt-controller|virt-handler)"/;
const isPutPatchPodVmi = (l: string) =>
  COMPONENTS.test(l) && /verb="(PUT|PATCH)"/.test(l) && /resource="(pods|virtualmachineinstances)"/.test(l);
const isMutating = (l: string) => COMPONENTS.test(l) && /verb="(POST|PUT|PATCH|DELETE|APPLY)"/.test(l);

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++] as T);
    }),
  );
}

async function waitUntil(what: string, fn: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Burst {
  p50: number;
  p95: number;
  wallMs: number;
  writes: number;
  mutating: number;
  /** Mutating requests per VMI by client, verb, resource and subresource (code 2xx and others apart). */
  breakdown: [string, number][];
}

async function burst(client: RestClient, url: string, ns: string, n: number): Promise<Burst> {
  await client
    .create(resources.namespaces, undefined, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } } as Node)
    .catch(() => {});
  const sent = new Map<string, number>();
  const running = new Map<string, number>();
  let allRunning: () => void = () => {};
  const done = new Promise<void>((r) => {
    allRunning = r;
  });
  const watch = client.watch<VirtualMachineInstance>(resources.vmis, ns, {}, (ev) => {
    const v = ev.object;
    const name = v?.metadata?.name;
    if (!name || v.status?.phase !== "Running" || running.has(name)) return;
    running.set(name, performance.now());
    if (running.size === n) allRunning();
  });
  const m0 = await metrics(url);
  const t0 = performance.now();
  const names = Array.from({ length: n }, (_, i) => `vmi-${String(i).padStart(4, "0")}`);
  await pool(names, CONCURRENCY, async (name) => {
    sent.set(name, performance.now());
    await client.create<VirtualMachineInstance>(resources.vmis, ns, {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstance",
      metadata: { name, namespace: ns, labels: { "kubevirt.io/bench": "scale" } },
      spec: {
        domain: {
          devices: { disks: [{ name: "containerdisk", disk: { bus: "virtio" } }] },
          resources: { requests: { memory: "90Mi", cpu: "100m" } },
        },
        volumes: [{ name: "containerdisk", containerDisk: { image: "quay.io/kubevirt/cirros-container-disk-demo" } }],
      },
    } as VirtualMachineInstance);
  });
  const timeout = setTimeout(() => allRunning(), 600_000);
  await done;
  clearTimeout(timeout);
  const wallMs = performance.now() - t0;
  watch.stop();
  if (running.size < n) throw new Error(`only ${running.size}/${n} VMIs Running after 600 s`);
  // Let trailing writes (no-op status PUTs, readiness-gate syncs) land before counting.
  await new Promise((r) => setTimeout(r, 2_000));
  const m1 = await metrics(url);
  const lat = names.map((x) => (running.get(x) ?? Number.NaN) - (sent.get(x) ?? 0));
  return {
    p50: median(lat),
    p95: pct(lat, 95),
    wallMs,
    writes: delta(m0, m1, isPutPatchPodVmi) / n,
    mutating: delta(m0, m1, isMutating) / n,
    breakdown: [...m1.keys()]
      .filter(isMutating)
      .map((k): [string, number] => [
        k.replace(/group="[^"]*",|subresource="",/g, ""),
        ((m1.get(k) ?? 0) - (m0.get(k) ?? 0)) / n,
      ])
      .filter(([, v]) => v > 0.005)
      .sort((a, b) => b[1] - a[1]),
  };
}

async function drain(client: RestClient, ns: string): Promise<void> {
  const l = await client.list<VirtualMachineInstance>(resources.vmis, ns);
  await pool(l.items, CONCURRENCY, async (v) => {
    await client.delete(resources.vmis, ns, v.metadata.name ?? "").catch(() => {});
  });
  await waitUntil(
    `namespace ${ns} empty`,
    async () =>
      (await client.list(resources.vmis, ns)).items.length === 0 &&
      (await client.list<Pod>(resources.pods, ns)).items.length === 0,
    300_000,
  );
}

const ratio = (x: number, base: number) => `${(x / base).toFixed(3)}x`;
const fmt = (ms: number) => `${Math.round(ms)} ms`;

async function main(): Promise<void> {
  console.log(
    `bench:scale — ${cpus().length} cores, load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  console.log(
    "processes: tsvirt api (real), tsvirt controller (real, embedded scheduler), 1 process with 10 FAKE node",
  );
  console.log("agents (fake pod runner + fake launcher, in-process; tests/lib/fake-node/)");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const api = launch("api", [tsvirtBin, "api", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir]);
  await waitReady(url, 60_000);
  const ctrl = launch("controller", [tsvirtBin, "controller", "--kubeconfig", join(dataDir, "kubeconfig")]);
  const nodes = launch("fake-nodes", ["--import", "tsx", fakeMain, url, String(NODES)]);
  const client = new RestClient({ server: url, namespace: "default", userAgent: "scale-bench" });
  try {
    await waitUntil(
      "10 fake nodes Ready with pod CIDRs",
      async () => {
        const l = await client.list<Node>(resources.nodes, undefined);
        return (
          l.items.filter(
            (n) => n.spec?.podCIDR && n.status?.conditions?.find((c) => c.type === "Ready")?.status === "True",
          ).length === NODES
        );
      },
      120_000,
    );
    const three = [api, ctrl, nodes];
    const rss0 = await Promise.all(three.map(rssAfterGc));
    const b100: Burst[] = [];
    for (let i = 0; i < RUNS; i++) {
      const b = await burst(client, url, `scale-100-${i}`, 100);
      console.log(
        `  burst 100 run ${i + 1}: p50 ${fmt(b.p50)} p95 ${fmt(b.p95)} all Running in ${fmt(b.wallMs)}; ` +
          `PUT/PATCH pods+VMIs per VMI ${b.writes.toFixed(2)}, all mutating ${b.mutating.toFixed(2)}`,
      );
      b100.push(b);
      await drain(client, `scale-100-${i}`);
    }
    const b1000: Burst[] = [];
    let rss1: number[] = rss0;
    for (let i = 0; i < RUNS_1000; i++) {
      const cpu0 = three.map(cpuSeconds);
      const b = await burst(client, url, `scale-1000-${i}`, 1000);
      const cpu = three.map((p, j) => cpuSeconds(p) - (cpu0[j] ?? 0));
      console.log(
        `  CPU seconds during the 1,000 burst: api ${cpu[0]?.toFixed(1)}, controller ${cpu[1]?.toFixed(1)}, fake node agents ${cpu[2]?.toFixed(1)} (wall ${(b.wallMs / 1000).toFixed(1)} s, 2 s settle included)`,
      );
      console.log(
        `  burst 1000 run ${i + 1}: p50 ${fmt(b.p50)} p95 ${fmt(b.p95)} all Running in ${fmt(b.wallMs)}; ` +
          `PUT/PATCH pods+VMIs per VMI ${b.writes.toFixed(2)}, all mutating ${b.mutating.toFixed(2)}`,
      );
      for (const [k, v] of b.breakdown) console.log(`    ${v.toFixed(2)} per VMI  ${k}`);
      b1000.push(b);
      if (i === 0) rss1 = await Promise.all(three.map(rssAfterGc));
      if (i < RUNS_1000 - 1) await drain(client, `scale-1000-${i}`);
    }
    const names = ["api", "controller", "fake node agents"];
    const kb = (rss1.reduce((a, b) => a + b, 0) - rss0.reduce((a, b) => a + b, 0)) / 1024 / 1000;
    const ctrlKb = ((rss1[1] ?? 0) - (rss0[1] ?? 0)) / 1024 / 1000;
    const r = {
      p50_100: median(b100.map((b) => b.p50)),
      p95_100: median(b100.map((b) => b.p95)),
      p50_1000: median(b1000.map((b) => b.p50)),
      p95_1000: median(b1000.map((b) => b.p95)),
      writes: median(b1000.map((b) => b.writes)),
      mutating: median(b1000.map((b) => b.mutating)),
    };
    console.log(`results (medians of ${RUNS} × 100 and ${RUNS_1000} × 1,000), KubeVirt baseline beside each:`);
    console.log(`  burst 100  p50 ${fmt(r.p50_100)}   vs KubeVirt ≈ 17–19 s: ${ratio(r.p50_100, KUBEVIRT.p50)}`);
    console.log(`  burst 100  p95 ${fmt(r.p95_100)}   vs KubeVirt ≈ 27–28 s: ${ratio(r.p95_100, KUBEVIRT.p95)}`);
    console.log(
      `  burst 1000 p50 ${fmt(r.p50_1000)}  vs KubeVirt 100-VMI p50 ≈ 18 s: ${ratio(r.p50_1000, KUBEVIRT.p50)}`,
    );
    console.log(
      `  burst 1000 p95 ${fmt(r.p95_1000)}  vs KubeVirt 100-VMI p95 ≈ 27.5 s: ${ratio(r.p95_1000, KUBEVIRT.p95)}`,
    );
    console.log(
      `  writes per VMI (PUT/PATCH of pods and VMIs by virt-controller + node agents) ${r.writes.toFixed(2)} vs KubeVirt ≈ 8.4 (PATCH pods 2.2 + UPDATE VMIs 5.5 + PATCH VMIs 0.7): ${ratio(r.writes, KUBEVIRT.writesPerVmi)}; all mutating requests per VMI ${r.mutating.toFixed(2)}`,
    );
    for (let i = 0; i < 3; i++)
      console.log(
        `  RSS after GC ${names[i]}: ${((rss0[i] ?? 0) / 1048576).toFixed(1)} MiB at 0 (fresh, nodes registered) → ${((rss1[i] ?? 0) / 1048576).toFixed(1)} MiB at 1,000 Running`,
      );
    console.log(
      `  kb_per_vmi (sum of 3) ${kb.toFixed(1)} KB vs KubeVirt controller ≈ 173 KB: ${ratio(kb, KUBEVIRT.kbPerVmi)}`,
    );
    console.log(`  controller alone ${ctrlKb.toFixed(1)} KB per VMI vs ≈ 173 KB: ${ratio(ctrlKb, KUBEVIRT.kbPerVmi)}`);
    console.log(
      `  targets: p95 < 3 s at 100 ${r.p95_100 < 3000 ? "met" : "MISSED"}; p95 < 15 s at 1,000 ${r.p95_1000 < 15_000 ? "met" : "MISSED"}; ≤ 50 KB per VMI ${kb <= 50 ? "met" : "MISSED"}`,
    );
    console.log(
      JSON.stringify({
        bench: "scale",
        burst100_p50_ms: Math.round(r.p50_100),
        burst100_p95_ms: Math.round(r.p95_100),
        burst1000_p50_ms: Math.round(r.p50_1000),
        burst1000_p95_ms: Math.round(r.p95_1000),
        writes_per_vmi: Number(r.writes.toFixed(2)),
        kb_per_vmi: Number(kb.toFixed(1)),
      }),
    );
  } finally {
    client.close();
    await cleanup();
  }
}

process.once("SIGINT", () => void cleanup().then(() => process.exit(130)));
main().catch(async (e) => {
  console.error(e);
  await cleanup();
  process.exit(1);
});
