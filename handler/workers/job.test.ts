import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { writeJob, writePrivate } from "./job.js";

test("writePrivate: the file 0600 in a 0700 pod dir; the node's pods/ dir above keeps the usual mode", async (t) => {
  const base = await mkdtemp(join(tmpdir(), "tsv-writeprivate-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  const pods = join(base, "node", "pods");
  const file = join(pods, "uid1", "job.json");
  await writePrivate(file, "{}\n");
  assert.equal(await readFile(file, "utf8"), "{}\n");
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal((await stat(join(pods, "uid1"))).mode & 0o777, 0o700);
  assert.equal((await stat(pods)).mode & 0o077, 0o055 & ~process.umask(), "pods/ is not private (QEMU traverses it)");
});

test("writeJob as a node's first pod: the pod dir and its scratch/sockets 0700, the node's pods/ dir not private", async (t) => {
  const base = await mkdtemp(join(tmpdir(), "tsv-writejob-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  const pods = join(base, "node", "pods");
  const podDir = join(pods, "uid1");
  await writeJob(podDir, { version: 1 } as unknown as Parameters<typeof writeJob>[1]);
  for (const d of [podDir, join(podDir, "scratch"), join(podDir, "sockets")])
    assert.equal((await stat(d)).mode & 0o777, 0o700, d);
  assert.equal((await stat(pods)).mode & 0o077, 0o055 & ~process.umask(), "pods/ is not private (QEMU traverses it)");
});
