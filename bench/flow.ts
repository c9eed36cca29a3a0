// npm run bench:flow — the creation flow through the whole system, each figure beside its baseline from the same run.
// (a) create of a VirtualMachine (runStrategy: Always, the test guest as a containerDisk already cached on the node)
//     → the guest's ready marker on `virtctl console` (virtctl's own session code, in process), through `tsvirt up`
//     (API server, controller + scheduler, node agent, launcher, libvirt, QEMU), against the launcher-only spawn →
//     marker of the same guest (bench/launcher-boot.ts, what bench:launcher reports as ready_ms_launcher);
//     alternating runs, medians; create → VMI Running too, and a timeline of what the bench's watches saw.
// (b) API writes per VM started, from the API server's /metrics (apiserver_request_total by verb, resource and
//     client) between just before the create and the moment the flow's writes stop (the VM Running and Ready,
//     the marker seen): writes_per_vmi = PUT/PATCH of pods and VMIs by tsvirt's components (KubeVirt's ≈ 8.4 is
//     counted this way); all_writes_per_vmi = every mutating request of the components (creates, bindings, status,
//     events), except the per-node Lease renewals and Node heartbeats that run whether or not a VM starts;
//     events_per_vmi = Event writes.
// (c) the creation path's steps (bench/timeline.ts), medians in ms after the create, beside the launcher-only run's
//     own steps after its spawn: where the whole system spends what QEMU alone does not.
// Last line: one JSON object (timeline_ms, launcher_only_timeline_ms: the steps' medians).
import { rm } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import type { TestContext } from "node:test";
import {
  type ClientConfig,
  type KObject,
  loadConfig,
  type ResourceRef,
  RestClient,
  resources,
  type WatchHandle,
} from "../client/index.js";
import { podDirOf } from "../handler/index.js";
import type { Pod as LauncherPod } from "../tests/e2e/launcher-lib.js";
import { type Cluster, qemuFor, startCluster, until } from "../tests/lib/up.js";
import { consoleSession } from "../virtctl/index.js";
import { launcherBoot } from "./launcher-boot.js";
import {
  consoleSteps,
  median as medianOf,
  medianTimeline,
  networkReady,
  readLauncherSteps,
  type Timeline,
  timelineTable,
} from "./timeline.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const NS = "default";
const BENCH_CLIENT = "flow-bench";
const MEMORY = "256Mi"; // as the launcher-only VMI (bench/launcher-boot.ts)
const nodeDir = "/tmp/tsv-bench-flow/node";
// KubeVirt v1.8 CI perf job (reference/kubevirt-api.md §3.1): PATCH pods ≈ 2.2 + UPDATE VMIs ≈ 5.5 + PATCH VMIs ≈ 0.7
// per VMI; VM creation → Running p50 ≈ 15–19 s (a kubevirtci cluster, KVM, cirros, 100 VMs in a batch).
const KUBEVIRT = { writesPerVmi: 8.4, createToRunningMs: 17_000 };
const TARGET = { ratio: 1.1, writesPerVmi: 5 };

function median(xs: number[]): number {
  return medianOf(xs) ?? Number.NaN;
}
const r2 = (x: number): number => Math.round(x * 100) / 100;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const ms = (x: number): string => `${Math.round(x)} ms`;

// ---- /metrics ----

type Counts = Map<string, number>;

async function metrics(client: RestClient): Promise<Counts> {
  const text = await client.getPath<string>("/metrics");
  const m: Counts = new Map();
  for (const line of String(text).split("\n")) {
    const r = /^apiserver_request_total\{(.*)\} (\d+)$/.exec(line);
    if (r) m.set(r[1] ?? "", Number(r[2]));
  }
  return m;
}

interface Labels {
  verb: string;
  resource: string;
  subresource: string;
  client: string;
}

function labels(key: string): Labels {
  const get = (k: string): string => new RegExp(`${k}="([^"]*)"`).exec(key)?.[1] ?? "";
  return { verb: get("verb"), resource: get("resource"), subresource: get("subresource"), client: get("client") };
}

/** Per-label deltas of the requests made by anything but the bench itself. */
function delta(a: Counts, b: Counts): { l: Labels; n: number }[] {
  const out: { l: Labels; n: number }[] = [];
  for (const [k, v] of b) {
    const n = v - (a.get(k) ?? 0);
    const l = labels(k);
    if (n > 0 && l.client !== BENCH_CLIENT) out.push({ l, n });
  }
  return out;
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE", "APPLY"]);
/** Writes every node makes on a timer, VM or not: its Lease and its Node object (status, heartbeat). */
const perNode = (l: Labels): boolean => l.resource === "leases" || l.resource === "nodes";
const isPutPatchPodVmi = (l: Labels): boolean =>
  (l.verb === "PUT" || l.verb === "PATCH") && (l.resource === "pods" || l.resource === "virtualmachineinstances");
const isFlowWrite = (l: Labels): boolean => MUTATING.has(l.verb) && !perNode(l);
const isEvent = (l: Labels): boolean => MUTATING.has(l.verb) && l.resource === "events";
const sum = (d: { l: Labels; n: number }[], f: (l: Labels) => boolean): number =>
  d.reduce((acc, x) => acc + (f(x.l) ? x.n : 0), 0);

/** Waits (bounded) until the flow's writes stop: no new component write for `quietMs` (per-node timers excluded). */
async function quiescent(client: RestClient, from: Counts, quietMs: number, timeoutMs: number): Promise<Counts> {
  const deadline = performance.now() + timeoutMs;
  let last = await metrics(client);
  let lastCount = sum(delta(from, last), isFlowWrite);
  let since = performance.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const now = await metrics(client);
    const n = sum(delta(from, now), isFlowWrite);
    if (n !== lastCount) {
      lastCount = n;
      since = performance.now();
    }
    last = now;
    if (performance.now() - since >= quietMs) return last;
    if (performance.now() > deadline) throw new Error(`writes did not settle within ${timeoutMs} ms`);
  }
}

// ---- one flow run ----

interface Obj extends KObject {
  spec?: { nodeName?: string; [k: string]: unknown };
  status?: {
    phase?: string;
    printableStatus?: string;
    conditions?: { type: string; status: string }[];
    [k: string]: unknown;
  };
}

interface FlowRun {
  markerMs: number;
  runningMs: number;
  /** Milliseconds after the create at which the bench's watches first saw each step. */
  marks: Record<string, number>;
  writes: { l: Labels; n: number }[];
  replayed: boolean;
  steps: Timeline;
}

const ready = (o: Obj): boolean =>
  o.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;

/** Runs `virtctl console` (its session code) until the marker shows; resolves with the time it arrived. */
async function consoleMarker(
  cfg: ClientConfig,
  name: string,
  marker: string,
  timeoutMs: number,
): Promise<{ at: number; replayed: boolean; chunks: { at: number; data: string }[] }> {
  const deadline = performance.now() + timeoutMs;
  const chunks: { at: number; data: string }[] = [];
  let text = "";
  let found: { at: number; replayed: boolean; chunks: { at: number; data: string }[] } | undefined;
  const stdin = new PassThrough();
  const stdout = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const at = performance.now();
      const data = chunk.toString("latin1");
      chunks.push({ at, data });
      text += data;
      if (!found && text.includes(marker)) {
        // In the first chunk: the launcher replayed it, so it was printed before the console connected.
        found = { at, replayed: chunks.length === 1, chunks };
        stdin.end();
      }
      cb();
    },
  });
  const io = { out: () => {}, err: () => {} };
  while (!found) {
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`no marker on the console of ${name} within ${timeoutMs} ms`);
    try {
      await consoleSession(cfg, NS, name, { stdin, stdout, io }, { timeoutMs: left, retryMs: 100 });
    } catch (e) {
      // The VMI's phase went Running, but the API server's informer may lag a moment (400: not Running yet).
      const code = (e as { code?: number }).code;
      if (code !== 400 && code !== 404 && code !== 409) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return found;
}

async function flowRun(c: Cluster, cfg: ClientConfig, client: RestClient, name: string): Promise<FlowRun> {
  const marks: Record<string, number> = {};
  let t0 = 0;
  let wall0 = 0;
  let podUid = "";
  const mark = (k: string): void => {
    if (t0 > 0 && marks[k] === undefined) marks[k] = performance.now() - t0;
  };
  let uid = "";
  const watches: WatchHandle[] = [];
  const watch = (ref: ResourceRef, on: (o: Obj, type: string) => void): void => {
    const w = client.watch<Obj>(ref, NS, {}, (ev) => {
      if (ev.type === "ADDED" || ev.type === "MODIFIED" || ev.type === "DELETED") on(ev.object as Obj, ev.type);
    });
    w.done.catch(() => {});
    watches.push(w);
  };
  let running: () => void = () => {};
  const vmiRunning = new Promise<void>((r) => {
    running = r;
  });
  let settled: () => void = () => {};
  const vmReady = new Promise<void>((r) => {
    settled = r;
  });
  watch(resources.vms, (o) => {
    if (o.metadata.name !== name) return;
    if (o.status?.printableStatus) mark(`VM ${o.status.printableStatus}`);
    if (ready(o)) {
      mark("VM Ready");
      if (o.status?.printableStatus === "Running") settled();
    }
  });
  watch(resources.vmis, (o) => {
    if (o.metadata.name !== name) return;
    uid = o.metadata.uid ?? uid;
    mark("VMI created");
    if (o.status?.phase) mark(`VMI ${o.status.phase}`);
    if (o.status?.phase === "Running") running();
    if (ready(o)) mark("VMI Ready");
  });
  watch(resources.pods, (o) => {
    if (!o.metadata.ownerReferences?.some((r) => r.kind === "VirtualMachineInstance" && r.name === name)) return;
    podUid = o.metadata.uid ?? podUid;
    mark("pod created");
    if (o.spec?.nodeName) mark("pod bound");
    if (o.status?.phase) mark(`pod ${o.status.phase}`);
    if (ready(o)) mark("pod Ready");
  });
  // The watches' initial lists come first; then the counters, then the create.
  await new Promise((r) => setTimeout(r, 300));
  const before = await metrics(client);
  t0 = performance.now();
  wall0 = Date.now();
  const vm = c.vm(name, { image: c.image, runStrategy: "Always", memory: MEMORY }) as unknown as KObject;
  await client.create(resources.vms, NS, vm);
  mark("VM created");
  try {
    // The console opens once the VMI is Running (virt-api refuses it before); the launcher replays what the guest
    // printed before the connection, so a marker printed earlier is still seen (and flagged).
    await Promise.race([
      vmiRunning,
      new Promise((_, rej) => setTimeout(() => rej(new Error("VMI not Running")), 300_000).unref()),
    ]);
    const con = await consoleMarker(cfg, name, c.guest.marker, 300_000);
    marks.marker = con.at - t0;
    const steps = await flowSteps(c, podUid, wall0);
    Object.assign(steps, consoleSteps(con.chunks, t0));
    if (marks["pod bound"] !== undefined) steps.pod_bound = marks["pod bound"];
    steps.marker = con.at - t0;
    await Promise.race([
      vmReady,
      new Promise((_, rej) => setTimeout(() => rej(new Error("VM not Running and Ready")), 120_000).unref()),
    ]);
    const after = await quiescent(client, before, 2_000, 60_000);
    return {
      markerMs: con.at - t0,
      runningMs: marks["VMI Running"] ?? Number.NaN,
      marks,
      writes: delta(before, after),
      replayed: con.replayed,
      steps,
    };
  } finally {
    for (const w of watches) w.stop();
    await client.delete(resources.vms, NS, name).catch(() => {});
    await until(`VM ${name}: VMI and launcher pod gone, no QEMU left`, 180_000, async () => {
      const vmis = await client.list<Obj>(resources.vmis, NS);
      const pods = await client.list<Obj>(resources.pods, NS, { labelSelector: "kubevirt.io=virt-launcher" });
      const qemu = uid ? await qemuFor(uid) : [];
      return vmis.items.length === 0 && pods.items.length === 0 && qemu.length === 0 ? true : undefined;
    });
  }
}

/** The node-side steps of a flow run: the launcher's log in its pod dir, the pod network's files. */
async function flowSteps(c: Cluster, podUid: string, wall0: number): Promise<Timeline> {
  const node = join(c.dir, "nodes", c.nodes[0] ?? "");
  if (!podUid) return {};
  const steps = await readLauncherSteps(join(podDirOf(node, podUid), "launcher.log"), wall0);
  const net = await networkReady(join(node, "network", "pods", podUid), wall0);
  if (net !== undefined) steps.network_ready = net;
  return steps;
}

async function launcherOnly(c: Cluster, name: string): Promise<{ ms: number; steps: Timeline }> {
  let pod: LauncherPod | undefined;
  try {
    const r = await launcherBoot(c.guest, nodeDir, name);
    pod = r.pod;
    const steps = await readLauncherSteps(r.pod.paths.logFile, r.wall0);
    Object.assign(steps, consoleSteps(r.chunks, r.t0));
    steps.marker = r.ms;
    return { ms: r.ms, steps };
  } finally {
    if (pod) {
      pod.client.close();
      pod.kill();
      await rm(pod.paths.podDir, { recursive: true, force: true }).catch(() => {});
    }
  }
}

// ---- main ----

async function main(): Promise<void> {
  const cleanups: (() => unknown)[] = [];
  // The e2e harness registers its teardown through t.after; the bench runs them in reverse order at the end.
  const t = { after: (fn: () => unknown) => void cleanups.push(fn) } as unknown as TestContext;
  try {
    await rm(nodeDir, { recursive: true, force: true });
    const c = await startCluster(t, { name: "bench" });
    const cfg = loadConfig({ kubeconfig: c.kubeconfig });
    const client = new RestClient({ ...cfg, userAgent: BENCH_CLIENT });
    cleanups.push(() => client.close());

    // Warm-up, not counted: the image pulled and cached on the node; the launcher node dir's capability cache.
    console.log("warm-up: one flow run (pulls the image) and one launcher-only run (golden capability cache)");
    await flowRun(c, cfg, client, "warmup");
    await launcherOnly(c, "warmup");

    const flows: FlowRun[] = [];
    const only: number[] = [];
    const onlySteps: Timeline[] = [];
    for (let i = 0; i < RUNS; i++) {
      const f = await flowRun(c, cfg, client, `flow${i}`);
      flows.push(f);
      const o = await launcherOnly(c, `only${i}`);
      only.push(o.ms);
      onlySteps.push(o.steps);
      console.log(
        `run ${i + 1}/${RUNS}: create → marker ${ms(f.markerMs)}${f.replayed ? " (replayed)" : ""}, create → Running ${ms(f.runningMs)}, launcher-only ${ms(o.ms)}; writes: PUT/PATCH pods+VMIs ${sum(f.writes, isPutPatchPodVmi)}, all ${sum(f.writes, isFlowWrite)}, events ${sum(f.writes, isEvent)}; load ${loadavg()[0]?.toFixed(2)}`,
      );
    }
    const flowTimeline = medianTimeline(flows.map((f) => f.steps));
    const onlyTimeline = medianTimeline(onlySteps);

    const marker = median(flows.map((f) => f.markerMs));
    const launcher = median(only);
    const running = median(flows.map((f) => f.runningMs));
    const perVmi = (f: (l: Labels) => boolean): number => median(flows.map((r) => sum(r.writes, f)));
    const writes = perVmi(isPutPatchPodVmi);
    const allWrites = perVmi(isFlowWrite);
    const events = perVmi(isEvent);

    console.log("");
    console.log(`timeline (median ms after the create, as the bench's watches saw it; ${RUNS} runs):`);
    const keys = new Set(flows.flatMap((f) => Object.keys(f.marks)));
    const rows = [...keys]
      .map((k) => ({ k, v: median(flows.map((f) => f.marks[k]).filter((x): x is number => x !== undefined)) }))
      .sort((a, b) => a.v - b.v);
    for (const { k, v } of rows) console.log(`  ${k.padEnd(16)} ${String(Math.round(v)).padStart(7)}`);
    console.log("");
    console.log("writes per VM started (mean over runs; client verb resource/subresource):");
    const table = new Map<string, number>();
    for (const f of flows)
      for (const { l, n } of f.writes) {
        if (!MUTATING.has(l.verb)) continue;
        const k = `${l.client} ${l.verb} ${l.resource}${l.subresource ? `/${l.subresource}` : ""}`;
        table.set(k, (table.get(k) ?? 0) + n);
      }
    for (const [k, n] of [...table].sort((a, b) => b[1] - a[1]))
      console.log(
        `  ${r2(n / flows.length)
          .toString()
          .padStart(
            5,
          )}  ${k}${perNode(labels(`resource="${k.split(" ")[2]?.split("/")[0]}"`)) ? " (per node, excluded)" : ""}`,
      );
    console.log("");
    console.log(`creation path (median ms after the create / after the launcher-only spawn; ${RUNS} runs):`);
    for (const row of timelineTable(flowTimeline, onlyTimeline)) console.log(row);
    const replayed = flows.filter((f) => f.replayed).length;
    if (replayed > 0) console.log(`note: ${replayed} run(s) saw the marker replayed (an upper bound for those runs)`);

    console.log("");
    console.log(
      `(a) create → ready marker, whole system: median ${ms(marker)}  runs ${flows.map((f) => Math.round(f.markerMs)).join(", ")}`,
    );
    console.log(
      `    launcher-only spawn → marker:       median ${ms(launcher)}  runs ${only.map(Math.round).join(", ")}`,
    );
    console.log(`    ratio ${r2(marker / launcher)} (target ≤ ${TARGET.ratio})`);
    console.log(
      `    create → VMI Running: median ${ms(running)}; KubeVirt CI VM p50 ≈ ${ms(KUBEVIRT.createToRunningMs)} (ratio ${r2(running / KUBEVIRT.createToRunningMs)}; KVM cluster, other hardware)`,
    );
    console.log(
      `(b) PUT/PATCH of pods and VMIs per VM started: ${writes}; KubeVirt ≈ ${KUBEVIRT.writesPerVmi} (ratio ${r2(writes / KUBEVIRT.writesPerVmi)}; target ≤ ${TARGET.writesPerVmi})`,
    );
    console.log(
      `    every mutating request per VM started: ${allWrites} (ratio to PUT/PATCH of pods and VMIs ${r2(allWrites / writes)}); events ${events} (ratio ${r2(events / allWrites)} of all writes)`,
    );
    console.log(
      JSON.stringify({
        bench: "flow",
        marker_ms: Math.round(marker),
        launcher_only_ms: Math.round(launcher),
        ratio: r2(marker / launcher),
        create_to_running_ms: Math.round(running),
        writes_per_vmi: r1(writes),
        all_writes_per_vmi: r1(allWrites),
        events_per_vmi: r1(events),
        timeline_ms: flowTimeline,
        launcher_only_timeline_ms: onlyTimeline,
      }),
    );
  } finally {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
    await rm(nodeDir, { recursive: true, force: true }).catch(() => {});
  }
}

await main();
process.exit(0);
