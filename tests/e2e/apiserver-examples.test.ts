// Every KubeVirt example manifest applies unchanged with stock kubectl against `tsvirt api`, and
// `kubectl get vm,vmi,vmirs` prints KubeVirt's printer columns. Unknown fields: Strict → 400, Warn → pruned.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { type ApiProcess, removeDir, startApiProcess, tempDir } from "../../apiserver/testutil.js";
import { EXAMPLES, requirePrereqs } from "../lib/prereqs.js";

const run = promisify(execFile);

requirePrereqs("kubectl", "shared");

test("KubeVirt examples apply unchanged and show KubeVirt's columns", { timeout: 240_000 }, async (t) => {
  const dir = tempDir("tsvirt-ex-");
  const api: ApiProcess = await startApiProcess(dir);
  t.after(async () => {
    await api.kill();
    removeDir(dir);
  });
  const env = { ...process.env, KUBECONFIG: join(dir, "kubeconfig"), KUBECACHEDIR: join(dir, "cache") };
  const kubectl = async (...args: string[]): Promise<{ out: string; ok: boolean }> => {
    try {
      const r = await run("kubectl", args, { env, timeout: 60_000 });
      return { out: r.stdout + r.stderr, ok: true };
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string };
      return { out: (x.stdout ?? "") + (x.stderr ?? ""), ok: false };
    }
  };
  const files = readdirSync(EXAMPLES)
    .filter((f) => f.endsWith(".yaml"))
    .sort((a, b) => Number(a === "migration-job.yaml") - Number(b === "migration-job.yaml"));
  assert.ok(files.length >= 5);
  for (const f of files) {
    if (f === "migration-job.yaml") {
      // it migrates a VMI named vmi-migratable, which must exist first
      writeFileSync(
        join(dir, "vmi-migratable.yaml"),
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachineInstance\nmetadata:\n  name: vmi-migratable\nspec:\n  domain:\n    devices: {}\n    resources:\n      requests:\n        memory: 64Mi\n",
      );
      const mk = await kubectl("apply", "-f", join(dir, "vmi-migratable.yaml"));
      assert.ok(mk.ok, mk.out);
    }
    const r = await kubectl("apply", "-f", join(EXAMPLES, f));
    assert.ok(r.ok, `${f}: ${r.out}`);
    assert.match(r.out, / created/, f);
  }
  const get = await kubectl("get", "vm,vmi,vmirs");
  assert.ok(get.ok, get.out);
  assert.match(get.out, /^NAME +AGE +STATUS +READY$/m);
  assert.match(get.out, /^NAME +AGE +PHASE +IP +NODENAME +READY$/m);
  assert.match(get.out, /^NAME +DESIRED +CURRENT +READY +AGE$/m);
  assert.match(get.out, /virtualmachine\.kubevirt\.io\/vm-cirros +\d+s/);
  const wide = await kubectl("get", "vmi", "-o", "wide");
  assert.match(wide.out, /LIVE-MIGRATABLE +PAUSED/);
  const vmim = await kubectl("get", "vmim");
  assert.match(vmim.out, /^NAME +PHASE +VMI$/m);
  assert.match(vmim.out, /migration-job +vmi-migratable/);

  // unknown fields: Strict (kubectl's default) is a 400 strict decoding error; Warn prunes and stores the rest
  const bad = join(dir, "bad.yaml");
  writeFileSync(
    bad,
    "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\n  name: bad\nspec:\n  runStrategy: Halted\n  bogus: 1\n  template:\n    spec:\n      domain:\n        devices: {}\n",
  );
  const strict = await kubectl("apply", "-f", bad);
  assert.equal(strict.ok, false);
  assert.match(strict.out, /BadRequest.*strict decoding error: unknown field "spec\.bogus"/);
  const warn = await kubectl("apply", "--validate=warn", "-f", bad);
  assert.ok(warn.ok, warn.out);
  assert.match(warn.out, /unknown field "spec\.bogus"/);
  const stored = await kubectl("get", "vm", "bad", "-o", "jsonpath={.spec}");
  assert.doesNotMatch(stored.out, /bogus/);
});
