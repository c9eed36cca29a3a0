// The external conformance probe (stock kubectl) against a freshly started `tsvirt api`.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { removeDir, startApiProcess, tempDir } from "../../apiserver/testutil.js";

const run = promisify(execFile);
// shared/ sits beside the project root (in CI: a copy beside the clone).
const probe = fileURLToPath(new URL("../../../shared/conformance/kubectl-probe.sh", import.meta.url));

async function which(bin: string): Promise<boolean> {
  try {
    await run("sh", ["-c", 'command -v "$1"', "sh", bin]);
    return true;
  } catch {
    return false;
  }
}

test("kubectl probe: 56 passed, 0 failed against tsvirt api", { timeout: 240_000 }, async (t) => {
  const probePath = process.env.KUBECTL_PROBE ?? probe;
  if (!(await which("kubectl"))) return t.skip("kubectl is not installed");
  if (!existsSync(probePath)) return t.skip(`probe script not found at ${probePath}`);
  const dir = tempDir("tsvirt-probe-");
  const api = await startApiProcess(dir);
  t.after(async () => {
    await api.kill();
    removeDir(dir);
  });
  const { stdout } = await run("bash", [probePath, api.url], { timeout: 200_000, maxBuffer: 10 * 1024 * 1024 }).catch(
    (e: { stdout?: string; stderr?: string }) => {
      assert.fail(`probe failed:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
    },
  );
  assert.match(stdout, /probe: 56 passed, 0 failed/);
});
