// A private throwaway libvirtd for tests (tests/guest/libvirtd.sh in its own mount namespace) and virsh against it.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { LIBVIRT, requirePrereqs } from "../lib/prereqs.js";

const run = promisify(execFile);

export interface PrivateLibvirtd {
  uri: string;
  dir: string;
  virsh(...args: string[]): Promise<string>;
  /** Runs a program inside the daemon's network namespace (netns mode). */
  nsenter(...argv: string[]): Promise<string>;
  /** Destroys every running domain, stops the daemon, and kills any QEMU it leaves behind. */
  stop(): Promise<void>;
}

/**
 * Starts the daemon in its own mount namespace (and, with `netns`, its own network namespace: QEMU's taps then
 * live there, isolated from the host's network). `nsenter(...)` runs a command in that network namespace.
 * A missing prerequisite (root, libvirtd, virsh, QEMU…) throws at once, naming it.
 */
export async function startLibvirtd(
  dir: string,
  opts: { netns?: boolean; timeoutMs?: number } = {},
): Promise<PrivateLibvirtd> {
  requirePrereqs(...LIBVIRT);
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const script = join(import.meta.dirname, "libvirtd.sh");
  let stderr = "";
  const proc: ChildProcess = spawn(
    "unshare",
    ["-m", ...(opts.netns ? ["-n"] : []), "--propagation", "private", "bash", script, dir, randomUUID()],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  proc.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((r) => proc.on("exit", () => r()));
  const uri = `qemu:///system?socket=${join(dir, "run", "libvirt-sock")}`;
  const virsh = async (...args: string[]): Promise<string> => {
    const { stdout } = await run("virsh", ["-q", "-c", uri, ...args], { timeout: 60_000 });
    return stdout;
  };
  const killLeftovers = (): void => {
    const pidDir = join(dir, "run", "qemu");
    if (!existsSync(pidDir)) return;
    for (const f of readdirSync(pidDir).filter((n) => n.endsWith(".pid"))) {
      const pid = Number(readFileSync(join(pidDir, f), "utf8").trim());
      if (pid > 1) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
  };
  const stop = async (): Promise<void> => {
    try {
      const names = (await virsh("list", "--name")).split("\n").filter((n) => n.trim() !== "");
      for (const n of names) await virsh("destroy", n).catch(() => "");
    } catch {}
    killLeftovers();
    if (proc.exitCode === null) proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`libvirtd exited early:\n${stderr}`);
    try {
      await virsh("version");
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`libvirtd not ready after ${timeoutMs} ms: ${String(e)}\n${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const nsenter = async (...argv: string[]): Promise<string> => {
    const { stdout } = await run("nsenter", ["-t", String(proc.pid), "-n", "--", ...argv], { timeout: 30_000 });
    return stdout;
  };
  return { uri, dir, virsh, nsenter, stop };
}
