// Block volumes with the real losetup (root; run under the shared lock: flock /tmp/tsvirt-e2e.lock). A missing
// prerequisite fails with a line naming it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { it } from "node:test";
import { deleteVolume, ensureVolume, loopDevicesOf, reconcileLoopDevices, resizeVolume } from "./volumes.js";

function sectors(dev: string): number {
  return Number(readFileSync(`/sys/block/${basename(dev)}/size`, "utf8").trim());
}

it("a Block volume is a loop device over a sparse disk.img: attached once, resized, reconciled, detached", async (t) => {
  assert.equal(process.getuid?.(), 0, "loop devices need root (run as root under the shared lock)");
  assert.doesNotThrow(() => execFileSync("losetup", ["--version"]), "losetup (util-linux) is required");
  const dir = mkdtempSync(join(tmpdir(), "tsvirt-loop-"));
  t.after(async () => {
    await reconcileLoopDevices(dir, new Set()).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const req = { dataDir: dir, name: "pvc-blk", sizeBytes: 16 * 2 ** 20, mode: "Block" as const };
  const { device, image } = await ensureVolume({ ...req, owner: { uid: 64055, gid: 993 } });
  assert.ok(device);
  assert.equal(sectors(device), (16 * 2 ** 20) / 512);
  assert.deepEqual(await loopDevicesOf(image), [device]);
  assert.equal((await ensureVolume(req)).device, device, "a second call finds the same device");
  await resizeVolume({ ...req, sizeBytes: 32 * 2 ** 20 });
  assert.equal(sectors(device), (32 * 2 ** 20) / 512, "the loop device sees the new size");
  assert.deepEqual(await reconcileLoopDevices(dir, new Set(["pvc-blk"])), [], "a kept volume keeps its device");
  assert.deepEqual(await reconcileLoopDevices(dir, new Set()), [device], "an orphan's device is detached");
  assert.deepEqual(await loopDevicesOf(image), []);
  await ensureVolume(req);
  await deleteVolume(dir, "pvc-blk");
  assert.deepEqual(await loopDevicesOf(image), [], "delete detaches");
});
