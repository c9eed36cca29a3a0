// Helpers for tests that run the real `tsvirt api` process (compiled, from dist/).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const distRoot = repoRoot.endsWith("dist") ? repoRoot : join(repoRoot, "dist");
export const tsvirtBin = join(distRoot.replace(/dist\/dist$/, "dist"), "cmd", "tsvirt.js");

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  // the store's checkpointer thread closes its connection after Store.close() returns and may still touch -wal/-shm
  rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
}

export interface ApiProcess {
  url: string;
  port: number;
  dataDir: string;
  proc: ChildProcess;
  stderr: () => string;
  /** SIGTERM and wait */
  stop(): Promise<void>;
  /** SIGKILL and wait */
  kill(): Promise<void>;
}

export async function waitReady(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`API server at ${url} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts `node dist/cmd/tsvirt.js api` on a free loopback port and waits for /readyz. `bin` runs another build's
 * entry point instead (benchmarks compare two builds in one run).
 */
export async function startApiProcess(dataDir: string, port?: number, bin = tsvirtBin): Promise<ApiProcess> {
  const p = port ?? (await freePort());
  const proc = spawn(process.execPath, [bin, "api", "--listen", `127.0.0.1:${p}`, "--data-dir", dataDir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  proc.stderr?.on("data", (c: Buffer) => {
    err += c.toString();
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${p}`;
  try {
    await Promise.race([
      waitReady(url),
      exited.then(() => {
        throw new Error(`tsvirt api exited early: ${err.slice(-2000)}`);
      }),
    ]);
  } catch (e) {
    proc.kill("SIGKILL");
    throw e;
  }
  const waitExit = async (sig: NodeJS.Signals): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(sig);
    await exited;
  };
  return {
    url,
    port: p,
    dataDir,
    proc,
    stderr: () => err,
    stop: () => waitExit("SIGTERM"),
    kill: () => waitExit("SIGKILL"),
  };
}
