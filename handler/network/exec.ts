// Running the network tools: always an argument array through execFile, never a shell.
import { execFile } from "node:child_process";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv[0] with the remaining arguments; resolves with the exit code (127 when the program is missing). */
export type RunCommand = (argv: readonly string[]) => Promise<CommandResult>;

export const runCommand: RunCommand = (argv) =>
  new Promise((resolve) => {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error("empty command");
    execFile(file, args, { timeout: 30_000, maxBuffer: 4 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: unknown };
      const code = typeof e.code === "number" ? e.code : e.code === "ENOENT" ? 127 : 1;
      resolve({ code, stdout: stdout ?? "", stderr: stderr || String(err.message) });
    });
  });

export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly result: CommandResult;
  constructor(argv: readonly string[], result: CommandResult) {
    super(`${argv.join(" ")}: exit ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = "CommandError";
    this.argv = argv;
    this.result = result;
  }
}

/** `ip` errors that mean "already there" and "already gone": creating and deleting stay idempotent. */
export const EXISTS = /File exists|Device or resource busy/;
export const MISSING = /No such file|Cannot find device|does not exist|No such device|Cannot open network namespace/;

/** Runs argv and throws a CommandError unless it succeeds (or fails with stderr matching `tolerate`). */
export async function mustRun(run: RunCommand, argv: readonly string[], tolerate?: RegExp): Promise<void> {
  const r = await run(argv);
  if (r.code === 0) return;
  if (tolerate?.test(r.stderr)) return;
  throw new CommandError(argv, r);
}

/** argv prefix that runs a program inside a named network namespace (no mount-namespace changes, unlike `ip netns exec`). */
export function inNetns(netns: string, argv: readonly string[]): string[] {
  return ["nsenter", `--net=/run/netns/${netns}`, "--", ...argv];
}
