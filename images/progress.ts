// Progress of long pulls and pushes: a bar on a terminal (bytes, rate, ETA), JSON log lines otherwise.
import type { Logger } from "../lib/log.js";

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "--";
  const t = Math.max(0, Math.round(s));
  return t >= 60 ? `${Math.floor(t / 60)}m${String(t % 60).padStart(2, "0")}s` : `${t}s`;
}

export interface ProgressFigures {
  completed: number;
  total: number;
  /** Bytes per second since the start. */
  rate: number;
  /** Seconds left at the current rate (Infinity when unknown). */
  etaSeconds: number;
}

/** Pure: rate and ETA from bytes done, total and elapsed time. */
export function progressFigures(completed: number, total: number, elapsedMs: number): ProgressFigures {
  const rate = elapsedMs > 0 ? (completed * 1000) / elapsedMs : 0;
  const left = Math.max(0, total - completed);
  return { completed, total, rate, etaSeconds: left === 0 ? 0 : rate > 0 ? left / rate : Number.POSITIVE_INFINITY };
}

/** Pure: one line of a progress bar of `width` cells. */
export function renderBar(label: string, f: ProgressFigures, width = 30): string {
  const frac = f.total > 0 ? Math.min(1, f.completed / f.total) : 0;
  const filled = Math.round(frac * width);
  const bar = `${"#".repeat(filled)}${".".repeat(width - filled)}`;
  return `${label} [${bar}] ${formatBytes(f.completed)} / ${formatBytes(f.total)}  ${formatBytes(f.rate)}/s  ETA ${formatDuration(f.etaSeconds)}`;
}

export interface ProgressSink {
  update(completed: number, total: number): void;
  finish(): void;
}

/** A progress display for `label`: a redrawn bar when `out` is a TTY, else a log line at most every `everyMs`. */
export function progressSink(
  label: string,
  out: NodeJS.WriteStream,
  log: Logger,
  opts: { everyMs?: number; now?: () => number } = {},
): ProgressSink {
  const now = opts.now ?? Date.now;
  const start = now();
  let last = 0;
  let lastCompleted = 0;
  let lastTotal = 0;
  const tty = out.isTTY === true;
  const every = opts.everyMs ?? (tty ? 100 : 2000);
  const draw = (final: boolean): void => {
    const f = progressFigures(lastCompleted, lastTotal, now() - start);
    if (tty)
      out.write(`\r${renderBar(label, f, Math.max(10, Math.min(40, (out.columns ?? 80) - 70)))}${final ? "\n" : ""}`);
    else
      log.info(final ? "transfer done" : "transfer progress", {
        what: label,
        completedBytes: f.completed,
        totalBytes: f.total,
        bytesPerSecond: Math.round(f.rate),
        etaSeconds: Number.isFinite(f.etaSeconds) ? Math.round(f.etaSeconds) : null,
      });
  };
  return {
    update(completed, total) {
      lastCompleted = completed;
      lastTotal = total;
      const t = now();
      if (t - last >= every) {
        last = t;
        draw(false);
      }
    },
    finish() {
      draw(true);
    },
  };
}
