// npm run bench:scale — control-plane scale against KubeVirt's density figures. Real API server and real controller
// (VM/VMI controllers + embedded scheduler) each as their own process (`node dist/cmd/tsvirt.js api|controller`),
// plus ONE process running 10 FAKE node agents (fake pod runner + fake launcher, tests/lib/fake-node/) that talk
// HTTP to the API like virt-handler. Bursts of 100 (BENCH_RUNS times, median) and 1,000 VMIs created directly
// (90Mi, 100m). Latency: from just before each VMI's POST to the moment the bench's watch sees phase Running.
// Writes: apiserver_request_total deltas. Memory: summed RSS of the three processes after a forced GC (SIGUSR2 →
// bench/scale/gc-hook.mjs, loaded only into these processes) at 0 and at 1,000 Running VMIs, each the median of several
// samples after an idle settle; heap used is printed beside it. Stage medians trace where a VMI's time goes.
// Last line: one JSON.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { freePort, removeDir, tempDir, tsvirtBin, waitReady } from "../apiserver/testutil.js";
import { type Node, type Pod, RestClient, resources, type VirtualMachineInstance } from "../client/index.js";

const TRACE = Boolean(process.env.BENCH_TRACE);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const RUNS_1000 = Number(process.env.BENCH_RUNS_1000 ?? 1);
const NODES = 10;
const CONCURRENCY = 32;
const root = join(fileURLToPath(import.meta.url), "..", "..");
const hook = join(root, "bench", "scale", "gc-hook.mjs");
const fakeSrc = join(root, "tests", "lib", "fake-node");
const fakeOut = join(root, "dist", "tests", "lib", "fake-node");

/**
 * The fake node agents run as plain compiled JavaScript beside the real components in dist/ (their imports of
 * client/ and handler/ resolve to dist/), not under the tsx loader: tsx's loader thread and caches made the process's
 * memory shrink during the run and hid the agents' real per-VMI growth.
 */
function compileFakeNode(): string {
  mkdirSync(fakeOut, { recursive: true });
  for (const f of ["fake-node", "main"]) {
    const src = readFileSync(join(fakeSrc, `${f}.ts`), "utf8");
    const out = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
      fileName: `${f}.ts`,
    });
    writeFileSync(join(fakeOut, `${f}.js`), out.outputText);
  }
  return join(fakeOut, "main.js");
}
// KubeVirt v1.8 perf job (reference §3.1): p50 ≈ 17–19 s, p95 ≈ 27–28 s for 100 VMIs; PATCH pods ≈ 2.2 + UPDATE VMIs
// ≈ 5.5 + PATCH VMIs ≈ 0.7 per VMI; virt-controller ≈ 173 KB per VMI (100 → 8,000 VMIs).
const KUBEVIRT = { p50: 18_000, p95: 27_500, kbPerVmi: 173, writesPerVmi: 8.4 };

const procs: ChildProcess[] = [];
const gcDir = tempDir("tsvirt-bench-gc-");
const dataDir = tempDir("tsvirt-bench-scale-");

const PROF_DIR = process.env.BENCH_CPU_PROF_DIR;

function launch(name: string, args: string[]): ChildProcess {
  // BENCH_CPU_PROF_DIR=dir writes a V8 CPU profile of each process there on exit (for finding where time goes).
  const prof = PROF_DIR ? ["--cpu-prof", "--cpu-prof-dir", join(PROF_DIR, name)] : [];
  // Logs go to a file, not a pipe: a pipe to this (busy) process would block the measured processes' log writes.
  const logFile = join(gcDir, `${name}.log`);
  const fd = openSync(logFile, "w");
  const p = spawn(process.execPath, [...prof, "--expose-gc", "--import", hook, ...args], {
    stdio: ["ignore", "ignore", fd],
    env: { ...process.env, TSVIRT_BENCH_GC_DIR: gcDir },
  });
  closeSync(fd);
  p.once("exit", (code, sig) => {
    if (!stopping) console.error(`${name} exited (${code ?? sig}): ${readFileSync(logFile, "utf8").slice(-1500)}`);
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

interface Mem {
  rss: number;
  heapUsed: number;
  /** V8 heap committed (used + free pages V8 keeps). */
  heapTotal: number;
  /** Resident file-backed pages (binary, mapped files such as SQLite's WAL index), from /proc/PID/status. */
  rssFile: number;
}

function rssFileOf(pid: number | undefined): number {
  try {
    const m = /RssFile:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return Number(m?.[1] ?? Number.NaN) * 1024;
  } catch {
    return Number.NaN;
  }
}

async function memAfterGc(p: ChildProcess): Promise<Mem> {
  const file = join(gcDir, `${p.pid}.rss`);
  const before = existsSync(file) ? readFileSync(file, "utf8") : "";
  p.kill("SIGUSR2");
  const end = Date.now() + 30_000;
  for (;;) {
    const now = existsSync(file) ? readFileSync(file, "utf8") : "";
    if (now && now !== before) {
      const f = now.trim().split(" ").map(Number);
      return {
        rss: f[1] ?? Number.NaN,
        heapUsed: f[2] ?? Number.NaN,
        heapTotal: f[3] ?? Number.NaN,
        rssFile: rssFileOf(p.pid),
      };
    }
    if (Date.now() > end) throw new Error(`no GC answer from pid ${p.pid}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until no pod, VMI or event is written for 3 s (trailing event writes and status syncs done). */
async function quiesce(url: string): Promise<void> {
  const busy = (l: string) => isMutating(l) && /resource="(pods|virtualmachineinstances|events)"/.test(l);
  const end = Date.now() + 120_000;
  let m0 = await metrics(url);
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 3_000));
    const m1 = await metrics(url);
    if (delta(m0, m1, busy) === 0) return;
    m0 = m1;
  }
}

const MEM_SETTLE_MS = Number(process.env.BENCH_MEM_SETTLE_MS ?? 15_000);
const MEM_SAMPLES = Number(process.env.BENCH_MEM_SAMPLES ?? 5);

/**
 * Memory of each process after a forced GC, made stable: first a settle of MEM_SETTLE_MS with a forced GC every
 * second (V8 shrinks its young generation and gives free pages back only after several GCs that find little alive;
 * one GC alone leaves the burst's peak in RSS), then MEM_SAMPLES forced-GC readings 1 s apart; per process the
 * median RSS and the median heap used.
 */
async function sampleMem(ps: ChildProcess[]): Promise<Mem[]> {
  for (let t = 0; t < MEM_SETTLE_MS; t += 1_000) {
    await Promise.all(ps.map(memAfterGc));
    await new Promise((r) => setTimeout(r, 1_000));
  }
  const samples: Mem[][] = ps.map(() => []);
  for (let i = 0; i < MEM_SAMPLES; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 1_000));
    const got = await Promise.all(ps.map(memAfterGc));
    for (const [j, m] of got.entries()) samples[j]?.push(m);
  }
  if (process.env.BENCH_MEM_VERBOSE)
    console.log(
      `    memory samples (RSS/heap used MiB): ${samples.map((xs) => xs.map((m) => `${mib(m.rss)}/${mib(m.heapUsed)}`).join(" ")).join("  |  ")}`,
    );
  return samples.map((xs) => ({
    rss: median(xs.map((m) => m.rss)),
    heapUsed: median(xs.map((m) => m.heapUsed)),
    heapTotal: median(xs.map((m) => m.heapTotal)),
    rssFile: median(xs.map((m) => m.rssFile)),
  }));
}

/** Writes a heap snapshot of each process into $BENCH_HEAP_SNAPSHOT_DIR (for finding what holds memory). */
async function heapSnapshots(ps: ChildProcess[], names: string[]): Promise<void> {
  const out = process.env.BENCH_HEAP_SNAPSHOT_DIR ?? "";
  writeFileSync(join(gcDir, "snapshot"), "");
  for (const [i, p] of ps.entries()) {
    await memAfterGc(p);
    renameSync(join(gcDir, `${p.pid}.heapsnapshot`), join(out, `${names[i]}.heapsnapshot`));
    const [rss, heap] = readFileSync(join(gcDir, `${p.pid}.after-snapshot`), "utf8")
      .trim()
      .split(" ");
    console.log(
      `    ${names[i]} heap snapshot written; after it RSS ${mib(Number(rss))}, heap used ${mib(Number(heap))} MiB`,
    );
  }
  rmSync(join(gcDir, "snapshot"));
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
  /** Requests per VMI by client, verb, resource and subresource (code 2xx and others apart), reads included. */
  breakdown: [string, number][];
  /** Median and p95 of each stage of a VMI's path, as this bench's watches see it. */
  stages: [string, number, number][];
}

/** The stages of one VMI's path, each the moment the bench first saw it (performance.now()). */
const STAGES = [
  ["sent", "POST VMI sent"],
  ["created", "POST VMI answered"],
  ["podCreated", "launcher pod seen"],
  ["bound", "pod bound (spec.nodeName)"],
  ["podRunning", "pod Running (fake node)"],
  ["scheduled", "VMI Scheduled (controller)"],
  ["running", "VMI Running (fake node)"],
] as const;
type Stage = (typeof STAGES)[number][0];
const POD_STAGES: readonly Stage[] = ["podCreated", "bound", "podRunning"];
const stages = STAGES.filter(([st]) => TRACE || !POD_STAGES.includes(st));

async function burst(client: RestClient, url: string, ns: string, n: number): Promise<Burst> {
  await client
    .create(resources.namespaces, undefined, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } } as Node)
    .catch(() => {});
  const sent = new Map<string, number>();
  const running = new Map<string, number>();
  const seen = new Map<string, Partial<Record<Stage, number>>>();
  const mark = (name: string, st: Stage) => {
    let r = seen.get(name);
    if (!r) {
      r = {};
      seen.set(name, r);
    }
    if (r[st] === undefined) r[st] = performance.now();
  };
  let allRunning: () => void = () => {};
  const done = new Promise<void>((r) => {
    allRunning = r;
  });
  const watch = client.watch<VirtualMachineInstance>(resources.vmis, ns, {}, (ev) => {
    const v = ev.object;
    const name = v?.metadata?.name;
    if (name && v.status?.phase === "Scheduled") mark(name, "scheduled");
    if (!name || v.status?.phase !== "Running" || running.has(name)) return;
    mark(name, "running");
    running.set(name, performance.now());
    if (running.size === n) allRunning();
  });
  // BENCH_TRACE=1: a second watch (pods) times the middle stages; off by default as it adds API load.
  const podWatch = TRACE
    ? client.watch<Pod>(resources.pods, ns, {}, (ev) => {
        const p = ev.object;
        const vmi = p?.metadata?.ownerReferences?.find((r) => r.kind === "VirtualMachineInstance")?.name;
        if (!vmi || ev.type === "DELETED") return;
        mark(vmi, "podCreated");
        if (p.spec?.nodeName) mark(vmi, "bound");
        if (p.status?.phase === "Running") mark(vmi, "podRunning");
      })
    : undefined;
  const m0 = await metrics(url);
  const t0 = performance.now();
  const names = Array.from({ length: n }, (_, i) => `vmi-${String(i).padStart(4, "0")}`);
  await pool(names, CONCURRENCY, async (name) => {
    sent.set(name, performance.now());
    mark(name, "sent");
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
    mark(name, "created");
  });
  const timeout = setTimeout(() => allRunning(), 600_000);
  await done;
  clearTimeout(timeout);
  const wallMs = performance.now() - t0;
  watch.stop();
  podWatch?.stop();
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
      .filter((l) => COMPONENTS.test(l))
      .map((k): [string, number] => [
        k.replace(/group="[^"]*",|subresource="",/g, ""),
        ((m1.get(k) ?? 0) - (m0.get(k) ?? 0)) / n,
      ])
      .filter(([, v]) => v > 0.005)
      .sort((a, b) => b[1] - a[1]),
    stages: stages.slice(1).map(([st, label], i) => {
      const [prev, prevLabel] = stages[i] ?? STAGES[0];
      const d = [...seen.values()].map((r) => (r[st] ?? Number.NaN) - (r[prev] ?? Number.NaN)).filter(Number.isFinite);
      return [`${prevLabel} → ${label}`, median(d), pct(d, 95)];
    }),
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
const mib = (b: number | undefined) => ((b ?? 0) / 1048576).toFixed(1);

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
  const nodes = launch("fake-nodes", [compileFakeNode(), url, String(NODES)]);
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
    const mem0 = await sampleMem(three);
    const b100: Burst[] = [];
    for (let i = 0; i < RUNS; i++) {
      const b = await burst(client, url, `scale-100-${i}`, 100);
      console.log(
        `  burst 100 run ${i + 1}: p50 ${fmt(b.p50)} p95 ${fmt(b.p95)} all Running in ${fmt(b.wallMs)}; ` +
          `PUT/PATCH pods+VMIs per VMI ${b.writes.toFixed(2)}, all mutating ${b.mutating.toFixed(2)}`,
      );
      if (TRACE)
        for (const [k, p50, p95] of b.stages)
          console.log(`      ${fmt(p50).padStart(8)} / ${fmt(p95).padStart(8)}  ${k}`);
      b100.push(b);
      await drain(client, `scale-100-${i}`);
    }
    const b1000: Burst[] = [];
    let mem1: Mem[] = mem0;
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
      console.log("    stages (median / p95, as the bench's watches see them):");
      for (const [k, p50, p95] of b.stages)
        console.log(`      ${fmt(p50).padStart(8)} / ${fmt(p95).padStart(8)}  ${k}`);
      b1000.push(b);
      if (i === 0) {
        await quiesce(url);
        mem1 = await sampleMem(three);
      }
      if (i === 0 && process.env.BENCH_HEAP_SNAPSHOT_DIR)
        await heapSnapshots(three, ["api", "controller", "fake-nodes"]);
      if (i < RUNS_1000 - 1) await drain(client, `scale-1000-${i}`);
    }
    const names = ["api", "controller", "fake node agents"];
    const sum = (ms: Mem[], f: keyof Mem) => ms.reduce((a, m) => a + m[f], 0);
    const kb = (sum(mem1, "rss") - sum(mem0, "rss")) / 1024 / 1000;
    const heapKb = (sum(mem1, "heapUsed") - sum(mem0, "heapUsed")) / 1024 / 1000;
    const ctrlKb = ((mem1[1]?.rss ?? 0) - (mem0[1]?.rss ?? 0)) / 1024 / 1000;
    const ctrlHeapKb = ((mem1[1]?.heapUsed ?? 0) - (mem0[1]?.heapUsed ?? 0)) / 1024 / 1000;
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
        `  after GC ${names[i]}: RSS ${mib(mem0[i]?.rss)} → ${mib(mem1[i]?.rss)} MiB (file-backed ${mib(mem0[i]?.rssFile)} → ${mib(mem1[i]?.rssFile)}), heap used ${mib(mem0[i]?.heapUsed)} → ${mib(mem1[i]?.heapUsed)} of ${mib(mem0[i]?.heapTotal)} → ${mib(mem1[i]?.heapTotal)} MiB (0 → 1,000 Running)`,
      );
    console.log(
      `  kb_per_vmi (sum of 3) ${kb.toFixed(1)} KB vs KubeVirt controller ≈ 173 KB: ${ratio(kb, KUBEVIRT.kbPerVmi)}`,
    );
    console.log(`  controller alone ${ctrlKb.toFixed(1)} KB per VMI vs ≈ 173 KB: ${ratio(ctrlKb, KUBEVIRT.kbPerVmi)}`);
    console.log(
      `  heap used per VMI (sum of 3) ${heapKb.toFixed(1)} KB, controller alone ${ctrlHeapKb.toFixed(1)} KB (live JS objects; RSS also holds V8 and malloc slack)`,
    );
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
