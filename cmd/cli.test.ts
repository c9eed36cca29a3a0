// Every tsvirt/virtctl command answers a bad flag or a refused setting with one line on stderr and a non-zero exit
// code, never a stack trace. Runs the built CLI (dist/).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { oneLine } from "./cli.js";

const DIST = join(import.meta.dirname, "..", "dist", "cmd");

function cli(bin: "tsvirt" | "virtctl", args: string[]): { code: number | null; stderr: string; stdout: string } {
  const file = join(DIST, `${bin}.js`);
  assert.ok(existsSync(file), `${file} is missing: build first (npx tsc -p tsconfig.build.json)`);
  const r = spawnSync(process.execPath, [file, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

test("bad flags and refused settings: one line, exit code non-zero, no stack trace", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "tsvirt-cli-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const cases: [bin: "tsvirt" | "virtctl", args: string[], want: RegExp][] = [
    [
      "tsvirt",
      ["api", "--listen", "0.0.0.0:16443", "--data-dir", dir],
      /^tsvirt: Cannot listen on 0\.0\.0\.0: .*--tls-cert-file/,
    ],
    ["tsvirt", ["api", "--listen", "nonsense", "--data-dir", dir], /^tsvirt: Cannot parse --listen/],
    ["tsvirt", ["up", "--nodes", "99", "--data-dir", dir], /^tsvirt: --nodes must be between 1 and 16, not 99$/],
    ["tsvirt", ["up", "--nodes", "two", "--data-dir", dir], /^tsvirt: --nodes must be between 1 and 16/],
    [
      "tsvirt",
      ["up", "--listen", "0.0.0.0:6443", "--data-dir", dir],
      /^tsvirt: --listen 0\.0\.0\.0:6443: .*loopback only/,
    ],
    ["tsvirt", ["up", "--accel", "fast", "--data-dir", dir], /^tsvirt: --accel must be auto, kvm or tcg/],
    ["tsvirt", ["up", "--node-prefix", "Bad_Prefix", "--data-dir", dir], /^tsvirt: --node-prefix must be/],
    ["tsvirt", ["up", "--bogus"], /^error: unknown option '--bogus'/],
    ["tsvirt", ["handler"], /^error: required option '--node <name>'/],
    ["tsvirt", ["controller", "--kubeconfig", join(dir, "none")], /^tsvirt: ENOENT: no such file or directory/],
    ["tsvirt", ["image", "bogus"], /^error: unknown command 'bogus'/],
    ["tsvirt", ["launcher"], /^error: required option '--uid <uid>'/],
    ["virtctl", ["bogus"], /^error: unknown command 'bogus'/],
    ["virtctl", ["start"], /^error: missing required argument 'vm'/],
    ["virtctl", ["start", "vm", "--kubeconfig", join(dir, "none")], /ENOENT: no such file or directory/],
  ];
  for (const [bin, args, want] of cases) {
    const r = cli(bin, args);
    const what = `${bin} ${args.join(" ")}`;
    assert.notEqual(r.code, 0, what);
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    assert.equal(lines.length, 1, `${what}: one line, got:\n${r.stderr}`);
    assert.match(lines[0] ?? "", want, what);
    assert.doesNotMatch(r.stderr, /^\s+at /m, what);
  }
});

test("oneLine keeps the first non-empty line of a message", () => {
  assert.equal(oneLine(new Error("\nfirst\nsecond")), "first");
  assert.equal(oneLine("plain"), "plain");
});
