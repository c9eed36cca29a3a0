// The external conformance probe (stock kubectl) against a freshly started `tsvirt api`.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { removeDir, startApiProcess, tempDir } from "../../apiserver/testutil.js";
import { PROBE, requirePrereqs } from "../lib/prereqs.js";

const run = promisify(execFile);

requirePrereqs("kubectl", "shared");

test("kubectl probe: 56 passed, 0 failed against tsvirt api", { timeout: 240_000 }, async (t) => {
  const dir = tempDir("tsvirt-probe-");
  const api = await startApiProcess(dir);
  t.after(async () => {
    await api.kill();
    removeDir(dir);
  });
  const { stdout } = await run("bash", [PROBE, api.url], { timeout: 200_000, maxBuffer: 10 * 1024 * 1024 }).catch(
    (e: { stdout?: string; stderr?: string }) => {
      assert.fail(`probe failed:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
    },
  );
  assert.match(stdout, /probe: 56 passed, 0 failed/);
});
