// The creation path's steps, in ms from the create request (or from the launcher-only spawn), read from what the
// components already log: the launcher's JSON lines in its pod's launcher.log, the pod network's files, and the
// guest's console as the bench received it. bench:flow prints them beside the launcher-only run's own.
import { readFile, stat } from "node:fs/promises";

/** The steps in the order the creation path takes them; a run may lack some (the baseline has no pod, no network). */
export const STEPS = [
  "pod_bound",
  "network_ready",
  "launcher_started",
  "libvirtd_ready",
  "launcher_ready",
  "image_ready",
  "domain_defined",
  "qemu_started",
  "console_attached",
  "guest_output",
  "kernel_started",
  "init_started",
  "marker",
] as const;
export type Step = (typeof STEPS)[number];
export type Timeline = Partial<Record<Step, number>>;

/** The launcher's log message that marks each step (first occurrence). image_ready: the node's Sync arrived. */
const LAUNCHER_LINES: Record<string, Step> = {
  "launcher starting": "launcher_started",
  "libvirtd ready": "libvirtd_ready",
  "launcher ready": "launcher_ready",
  "sync received": "image_ready",
  "domain defined": "domain_defined",
  "domain started": "qemu_started",
  "serial console attached": "console_attached",
  "guest output": "guest_output",
};

/** Steps from a launcher.log (libvirtd's own plain lines are skipped), in ms after `wall0` (epoch ms). Pure. */
export function launcherSteps(log: string, wall0: number): Timeline {
  const out: Timeline = {};
  for (const line of log.split("\n")) {
    if (!line.startsWith("{")) continue;
    let j: { msg?: unknown; time?: unknown };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      continue;
    }
    const step = typeof j.msg === "string" ? LAUNCHER_LINES[j.msg] : undefined;
    const t = typeof j.time === "string" ? Date.parse(j.time) : Number.NaN;
    if (step && out[step] === undefined && Number.isFinite(t)) out[step] = t - wall0;
  }
  return out;
}

export async function readLauncherSteps(logFile: string, wall0: number): Promise<Timeline> {
  return launcherSteps(await readFile(logFile, "utf8").catch(() => ""), wall0);
}

/** The guest's own milestones on its serial console (the test guest boots a Debian kernel, not quiet). */
const CONSOLE_MARKS: ReadonlyArray<readonly [RegExp, Step]> = [
  [/Linux version/, "kernel_started"],
  [/Run \/init|Freeing unused kernel/, "init_started"],
];

/** Steps from console chunks (arrival times in performance.now() ms), relative to `t0` (same clock). Pure. */
export function consoleSteps(chunks: ReadonlyArray<{ at: number; data: string }>, t0: number): Timeline {
  const out: Timeline = {};
  let text = "";
  for (const c of chunks) {
    text += c.data;
    for (const [re, step] of CONSOLE_MARKS) if (out[step] === undefined && re.test(text)) out[step] = c.at - t0;
  }
  return out;
}

/** When the pod's network was ready: its DHCP server's pid file is the last thing the pod network writes. */
export async function networkReady(podNetDir: string, wall0: number): Promise<number | undefined> {
  try {
    return (await stat(`${podNetDir}/dhcp.pid`)).mtimeMs - wall0;
  } catch {
    return undefined;
  }
}

export function median(xs: readonly number[]): number | undefined {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  if (s.length === 0) return undefined;
  return s.length % 2 ? s[m] : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

/** Median of each step over the runs that saw it, rounded to ms, in STEPS order. */
export function medianTimeline(runs: readonly Timeline[]): Timeline {
  const out: Timeline = {};
  for (const s of STEPS) {
    const m = median(runs.map((r) => r[s]).filter((x): x is number => x !== undefined));
    if (m !== undefined) out[s] = Math.round(m);
  }
  return out;
}

/** Two timelines side by side with each step's gap from the step above it in the same column. */
export function timelineTable(flow: Timeline, only: Timeline): string[] {
  const rows = [
    `  ${"step".padEnd(17)} ${"flow".padStart(7)} ${"(+gap)".padStart(8)} ${"launcher-only".padStart(14)} ${"(+gap)".padStart(8)}`,
  ];
  let pf: number | undefined;
  let po: number | undefined;
  const cell = (v: number | undefined, prev: number | undefined, w: number): string =>
    `${(v === undefined ? "-" : String(v)).padStart(w)} ${(v === undefined || prev === undefined ? "" : `+${v - prev}`).padStart(8)}`;
  // In the order the flow took them (steps that overlap, as the pod's network and its launcher, may swap).
  const order = STEPS.filter((s) => flow[s] !== undefined || only[s] !== undefined).sort(
    (a, b) => (flow[a] ?? only[a] ?? 0) - (flow[b] ?? only[b] ?? 0),
  );
  for (const s of order) {
    const f = flow[s];
    const o = only[s];
    rows.push(`  ${s.padEnd(17)} ${cell(f, pf, 7)} ${cell(o, po, 14)}`);
    if (f !== undefined) pf = f;
    if (o !== undefined) po = o;
  }
  return rows;
}
