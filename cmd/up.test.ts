// `tsvirt up` and its output: a closed stdout/stderr (`tsvirt up 2>&1 | head -1`) does not kill it; and when it dies
// anyway (kill -9), the API server, controller and node agents keep running and the next `tsvirt up` on the same
// data dir adopts them (no duplicates), then stops them. Needs root (node network namespaces): run under the lock.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { freePort } from "../images/testing/registry.js";
import { alive } from "../lib/supervisor.js";
import { CLUSTER, requirePrereqs } from "../tests/lib/prereqs.js";
import { collect, run, TSVIRT, until, waitOutput } from "../tests/lib/up.js";

const COMPONENTS = ["api", "controller"];

test("tsvirt up survives a closed output; after kill -9 the next tsvirt up adopts its children", {
  timeout: 300_000,
}, async (t) => {
  requirePrereqs(...CLUSTER);
  const dir = await mkdtemp(join(tmpdir(), "tsv-upcli-"));
  const port = await freePort();
  const prefix = `upc${process.pid % 100000}n`;
  const node = `${prefix}01`;
  const components = [...COMPONENTS, `handler-${node}`];
  const argv = [TSVIRT, "up", "--listen", `127.0.0.1:${port}`, "--data-dir", dir, "--node-prefix", prefix];
  const pidOf = async (c: string) => Number((await readFile(join(dir, "run", `${c}.pid`), "utf8")).trim());
  const started: number[] = [];
  t.after(async () => {
    // whatever is left of this test's processes (by pid, all started here)
    for (const pid of started) if (alive(pid)) process.kill(pid, "SIGINT");
    await until("tsvirt up stopped", 120_000, async () => started.every((p) => !alive(p)) || undefined, 200).catch(
      () => undefined,
    );
    for (const c of components) {
      const pid = await pidOf(c).catch(() => 0);
      if (pid > 1 && alive(pid)) process.kill(-pid, "SIGKILL");
    }
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }); // the SIGKILLed may still exit
  });

  // 1. `tsvirt up 2>&1 | head -1`: read one line, close both pipes, and it keeps going
  const first = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] });
  if (first.pid) started.push(first.pid);
  const out = collect(first, true);
  await waitOutput(out, first, /\n/, 60_000);
  first.stdout?.destroy();
  first.stderr?.destroy();
  const env = { ...process.env, KUBECONFIG: join(dir, "kubeconfig") };
  await until(`node ${node} registered`, 120_000, () => run("kubectl", ["get", "node", node], env).then(() => true));
  await run("kubectl", ["wait", "--for=condition=Ready", `node/${node}`, "--timeout=120s"], env);
  assert.equal(first.exitCode, null, "tsvirt up still runs with its output closed");
  assert.ok(alive(first.pid ?? 0));

  // 2. kill -9 of tsvirt up: its children keep serving
  const pids = await Promise.all(components.map(pidOf));
  const exited = new Promise((r) => first.once("exit", r));
  first.kill("SIGKILL");
  await exited;
  for (const [i, pid] of pids.entries()) assert.ok(alive(pid), `${components[i]} (${pid}) outlived tsvirt up`);

  // 3. the next tsvirt up adopts them: same pids, no second copy
  const second = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] });
  if (second.pid) started.push(second.pid);
  const out2 = collect(second, true);
  await waitOutput(out2, second, /tsvirt is up/, 120_000);
  assert.deepEqual(await Promise.all(components.map(pidOf)), pids);
  for (const c of components) assert.match(out2.text, new RegExp(`"adopting running child","child":"${c}"`));
  await run("kubectl", ["get", "node", node], env);

  // 4. Ctrl+C of the adopting tsvirt up stops what it adopted
  const done = new Promise((r) => second.once("exit", r));
  second.kill("SIGINT");
  await done;
  await until("adopted children stopped", 60_000, async () => pids.every((p) => !alive(p)) || undefined, 200);
});
