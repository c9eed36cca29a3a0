// A small process supervisor (for `tsvirt up`): each child runs detached in its own process group with its pid in
// RUN/<name>.pid and its output appended to LOGS/<name>.log; a child that exits is restarted with back-off; a
// restarted supervisor adopts children still running from its previous life (pid file + command line) instead of
// starting duplicates.
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Logger, nullLogger } from "./log.js";

export interface ChildSpec {
  name: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
}

export interface SupervisorOptions {
  runDir: string;
  logDir: string;
  log?: Logger;
  /** First restart delay and cap, ms. */
  backoff?: { initial: number; max: number };
}

interface Child {
  spec: ChildSpec;
  pid?: number;
  startedAt: number;
  failures: number;
  exited?: Promise<void>;
  timer?: NodeJS.Timeout;
  poll?: NodeJS.Timeout;
  restarts: number;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export async function cmdlineOf(pid: number): Promise<string[] | undefined> {
  try {
    const st = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.[0];
    if (st === "Z" || st === "X") return undefined;
    return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
  } catch {
    return undefined;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class Supervisor {
  private readonly o: SupervisorOptions;
  private readonly children = new Map<string, Child>();
  private readonly log: Logger;
  private stopping = false;

  constructor(o: SupervisorOptions) {
    this.o = o;
    this.log = (o.log ?? nullLogger).child({ component: "supervisor" });
    mkdirSync(o.runDir, { recursive: true });
    mkdirSync(o.logDir, { recursive: true });
  }

  pidOf(name: string): number | undefined {
    return this.children.get(name)?.pid;
  }

  restartsOf(name: string): number {
    return this.children.get(name)?.restarts ?? 0;
  }

  private pidFile(name: string): string {
    return join(this.o.runDir, `${name}.pid`);
  }

  /** Starts (or adopts) a child and keeps it running until stop(). */
  async start(spec: ChildSpec): Promise<void> {
    if (!NAME.test(spec.name)) throw new Error(`invalid child name "${spec.name}"`);
    const child: Child = { spec, startedAt: Date.now(), failures: 0, restarts: 0 };
    this.children.set(spec.name, child);
    const old = Number((await readFile(this.pidFile(spec.name), "utf8").catch(() => "")).trim());
    if (Number.isInteger(old) && old > 1) {
      const cmd = await cmdlineOf(old);
      if (cmd && cmd.join("\0") === spec.argv.join("\0")) {
        this.log.info("adopting running child", { child: spec.name, pid: old });
        child.pid = old;
        this.watchAdopted(child);
        return;
      }
    }
    this.spawnChild(child);
  }

  private spawnChild(child: Child): void {
    const { spec } = child;
    const fd = openSync(join(this.o.logDir, `${spec.name}.log`), "a");
    let proc: ReturnType<typeof spawn>;
    try {
      const [file, ...args] = spec.argv as [string, ...string[]];
      proc = spawn(file, args, { detached: true, stdio: ["ignore", fd, fd], env: spec.env ?? process.env });
    } finally {
      closeSync(fd);
    }
    child.pid = proc.pid;
    child.startedAt = Date.now();
    if (proc.pid !== undefined) void writeFile(this.pidFile(spec.name), `${proc.pid}\n`);
    this.log.info("started", { child: spec.name, pid: proc.pid });
    child.exited = new Promise((resolve) => {
      proc.once("exit", (code, signal) => {
        resolve();
        this.onExit(child, code, signal);
      });
      proc.once("error", (err) => this.log.error("cannot start", { child: spec.name, err }));
    });
  }

  private watchAdopted(child: Child): void {
    child.exited = new Promise((resolve) => {
      child.poll = setInterval(() => {
        if (child.pid !== undefined && alive(child.pid)) return;
        clearInterval(child.poll);
        resolve();
        this.onExit(child, null, null);
      }, 500);
    });
  }

  private onExit(child: Child, code: number | null, signal: string | null): void {
    if (this.stopping || this.children.get(child.spec.name) !== child) return;
    const ranMs = Date.now() - child.startedAt;
    child.failures = ranMs > 60_000 ? 1 : child.failures + 1;
    const b = this.o.backoff ?? { initial: 1_000, max: 30_000 };
    const delay = Math.min(b.max, b.initial * 2 ** (child.failures - 1));
    this.log.warn("child exited; restarting", { child: child.spec.name, code, signal, restartInMs: delay });
    child.timer = setTimeout(() => {
      if (this.stopping) return;
      child.restarts++;
      this.spawnChild(child);
    }, delay);
  }

  /** Stops one child: `signal`, then SIGKILL after `timeoutMs`. It is not restarted. */
  async stop(name: string, timeoutMs = 15_000, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.children.get(name);
    if (!child) return;
    this.children.delete(name);
    if (child.timer) clearTimeout(child.timer);
    const pid = child.pid;
    if (pid !== undefined && alive(pid)) {
      try {
        process.kill(pid, signal);
      } catch {
        // gone
      }
      const gone = await Promise.race([
        (child.exited ?? Promise.resolve()).then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref()),
      ]);
      if (!gone) {
        this.log.warn("child did not stop in time; killing", { child: name, pid });
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
        await child.exited;
      }
    }
    if (child.poll) clearInterval(child.poll);
    await rm(this.pidFile(name), { force: true });
    this.log.info("stopped", { child: name });
  }

  /** Stops everything, in the given order (names not listed go last). */
  async stopAll(order: string[] = []): Promise<void> {
    this.stopping = true;
    const names = [
      ...order.filter((n) => this.children.has(n)),
      ...[...this.children.keys()].filter((n) => !order.includes(n)),
    ];
    for (const n of names) await this.stop(n);
  }
}
