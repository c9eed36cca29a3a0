// A worker's outcome (contract §2): fatal reasons are CDI-style CamelCase words the DV controller shows as is;
// everything not marked fatal (connection refused, timeouts, 5xx, a kill) is transient and retried. The
// termination message is ONE JSON line, written last; the progress file is replaced atomically.
import { rename, writeFile } from "node:fs/promises";

export type FatalReason =
  | "BackingFile"
  | "ImageTooLarge"
  | "ChecksumMismatch"
  | "NotADiskImage"
  | "SourceNotFound"
  | "InvalidSource";

export class ImportError extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly fatal: boolean,
  ) {
    super(message);
  }
}

export function fatal(reason: FatalReason, message: string): ImportError {
  return new ImportError(reason, message, true);
}

export function transient(reason: string, message: string): ImportError {
  return new ImportError(reason, message, false);
}

export type Outcome =
  | { outcome: "Succeeded"; message: string; bytes: number; sha256: string }
  | { outcome: "Failed"; fatal: boolean; reason: string; message: string };

/** The Failed line for any error: ImportErrors as they are, anything else transient ("Error"). */
export function failedOutcome(e: unknown): Outcome {
  if (e instanceof ImportError) return { outcome: "Failed", fatal: e.fatal, reason: e.reason, message: e.message };
  return { outcome: "Failed", fatal: false, reason: "Error", message: (e as Error)?.message ?? String(e) };
}

/** Parses a termination message; undefined when it is not one of ours (e.g. a log tail after a crash). */
export function parseOutcome(text: string | undefined): Outcome | undefined {
  if (!text) return undefined;
  try {
    const o = JSON.parse(text.trim()) as Outcome;
    if (o.outcome === "Succeeded" && typeof o.bytes === "number" && typeof o.sha256 === "string") return o;
    if (o.outcome === "Failed" && typeof o.reason === "string") return { ...o, fatal: o.fatal === true };
  } catch {
    // not JSON
  }
  return undefined;
}

export async function writeOutcome(path: string, o: Outcome): Promise<void> {
  await writeFile(path, `${JSON.stringify(o)}\n`, { mode: 0o644 });
}

/** "NN.N%" as CDI shows it. */
export function percent(done: number, total: number): string {
  if (!(total > 0)) return "N/A";
  return `${Math.min(100, (100 * done) / total).toFixed(1)}%`;
}

/** Replaces the progress file atomically (the node agent may read it at any moment). */
export async function writeProgress(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

/** A throttled progress reporter: at most one write per `everyMs`, the last value always written on flush. */
export function progressReporter(
  path: string,
  everyMs = 500,
): { update(done: number, total: number): void; flush(): Promise<void> } {
  let last = 0;
  let pending: string | undefined;
  let writing: Promise<void> = Promise.resolve();
  const write = (text: string): void => {
    writing = writing.then(() => writeProgress(path, text)).catch(() => {});
  };
  return {
    update(done, total) {
      const text = percent(done, total);
      if (text === "N/A") return;
      pending = text;
      const now = Date.now();
      if (now - last < everyMs) return;
      last = now;
      write(text);
      pending = undefined;
    },
    async flush() {
      if (pending) write(pending);
      pending = undefined;
      await writing;
    },
  };
}
