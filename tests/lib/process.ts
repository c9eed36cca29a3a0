// Helpers for tests that run tsvirt's compiled processes against an in-memory API server: where the CLI is, the
// server with a kubeconfig, polling with a deadline, kill -9.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApiServer, writeKubeconfig } from "../../apiserver/index.js";
import { RestClient } from "../../client/index.js";
import { nullLogger } from "../../lib/log.js";

/** The compiled CLI (build with `npx tsc -p tsconfig.build.json` first). */
export const TSVIRT = join(import.meta.dirname, "..", "..", "dist", "cmd", "tsvirt.js");

/** Polls fn until it returns a value (errors count as "not yet"); fails naming `what` after ms. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGKILL, resolved once the process has exited. */
export function kill9(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once("exit", () => resolve());
    p.kill("SIGKILL");
  });
}

/** An in-memory API server, a kubeconfig for it in a temp dir, and a client; all closed after the test. */
export async function startTestApi(t: { after: (fn: () => unknown) => void }, prefix = "tsvirt-test-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const api = await startApiServer({ memory: true, logger: nullLogger });
  t.after(() => api.close());
  const kc = join(dir, "kubeconfig");
  writeKubeconfig(kc, api.url);
  const client = new RestClient({ server: api.url, namespace: "default" });
  t.after(() => client.close());
  return { dir, kc, client };
}
