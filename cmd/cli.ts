// What every tsvirt and virtctl command shares at its edge: a bad flag or a refused setting ends the process with
// one line on stderr and a non-zero exit code, never a stack trace; and a closed stdout or stderr (`tsvirt up |
// head -1`) is not fatal to a daemon.
import type { Command } from "commander";

/** The first line of an error's message (Status messages and our own errors are one line already). */
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split("\n").find((l) => l.trim() !== "") ?? msg).trim() || "failed";
}

/**
 * Output to a closed pipe: `keepRunning` ignores it (daemons: `tsvirt up`, api, controller, handler keep working,
 * their logs are in files anyway); otherwise the process ends quietly, as a filter would on SIGPIPE.
 */
export function onClosedOutput(keepRunning: boolean): void {
  for (const s of [process.stdout, process.stderr]) {
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (keepRunning) return;
      if (e.code === "EPIPE" || e.code === "ERR_STREAM_DESTROYED") process.exit(1);
    });
  }
}

/** Parses argv and runs the command; an error escaping it is printed as `NAME: message` and exits 1. */
export async function runCli(name: string, program: Command): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    process.stderr.write(`${name}: ${oneLine(e)}\n`);
    process.exit(1);
  }
}
