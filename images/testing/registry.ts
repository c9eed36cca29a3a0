// Test harness: a real Debian `docker-registry` (Docker Distribution 2.8) on 127.0.0.1 with its own config and
// storage directory, started and stopped by the test. Not used outside tests.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestRegistry {
  /** host:port on loopback. */
  host: string;
  port: number;
  storageDir: string;
  process: ChildProcess;
  /** SIGKILLs the registry (a crash), waiting for it to exit. */
  kill(): Promise<void>;
  /** Restarts a killed registry on the same port and storage. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** Path of a blob's data file in this registry's storage (to corrupt it on disk). */
  blobDataPath(digest: string): string;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

async function waitReady(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("docker-registry did not become ready");
}

/** Starts a registry on a free loopback port with a fresh storage directory. */
export async function startRegistry(opts: { dir?: string } = {}): Promise<TestRegistry> {
  const base = opts.dir ?? (await mkdtemp(join(tmpdir(), "tsvirt-registry-")));
  await mkdir(base, { recursive: true });
  const storageDir = join(base, "storage");
  const port = await freePort();
  const config = [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(storageDir)}`,
    "  delete:",
    "    enabled: true",
    "  maintenance:",
    "    uploadpurging:",
    "      enabled: false",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    "",
  ].join("\n");
  const configPath = join(base, "config.yml");
  await writeFile(configPath, config);
  const launch = async (): Promise<ChildProcess> => {
    const child = spawn("docker-registry", ["serve", configPath], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.resume();
    await waitReady(port, child, 15_000);
    return child;
  };
  const reg: TestRegistry = {
    host: `127.0.0.1:${port}`,
    port,
    storageDir,
    process: await launch(),
    async kill() {
      const c = reg.process;
      if (c.exitCode !== null || c.signalCode !== null) return;
      await new Promise<void>((r) => {
        c.once("exit", () => r());
        c.kill("SIGKILL");
      });
    },
    async restart() {
      await reg.kill();
      reg.process = await launch();
    },
    async stop() {
      await reg.kill();
      if (!opts.dir) await rm(base, { recursive: true, force: true });
    },
    blobDataPath(digest: string) {
      const hex = digest.replace(/^sha256:/, "");
      return join(storageDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
    },
  };
  return reg;
}

/** Lists the repositories a registry's storage holds (sanity checks in tests). */
export async function storedRepositories(reg: TestRegistry): Promise<string[]> {
  return readdir(join(reg.storageDir, "docker", "registry", "v2", "repositories")).catch(() => []);
}
