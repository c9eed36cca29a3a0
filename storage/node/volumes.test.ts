// The node library on a temp dir: paths never leave <data dir>/volumes, images are sparse and grow only, symlinks
// are refused, and Block/loop handling is driven through a fake losetup (loop.test.ts uses the real one).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { VolumePathError, volumeOfPath, volumePaths } from "./paths.js";
import { fakeLosetup } from "./testing.js";
import { deleteVolume, ensureVolume, parseAssociated, reconcileLoopDevices, resizeVolume } from "./volumes.js";

function tmp(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), "tsvirt-vol-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

describe("volume paths", () => {
  it("are <data dir>/volumes/<pv>/disk.img, and nothing else", () => {
    assert.deepEqual(volumePaths("/var/lib/tsvirt/node01", "pvc-1"), {
      root: "/var/lib/tsvirt/node01/volumes",
      dir: "/var/lib/tsvirt/node01/volumes/pvc-1",
      image: "/var/lib/tsvirt/node01/volumes/pvc-1/disk.img",
    });
    for (const bad of ["..", "../x", "a/b", ".", "", "/etc", "A", "x..y/..", `${"a".repeat(254)}`]) {
      assert.throws(() => volumePaths("/d", bad), VolumePathError, bad);
    }
    assert.throws(() => volumePaths("relative", "pvc-1"), VolumePathError);
    assert.equal(volumeOfPath("/d", "/d/volumes/pvc-1/disk.img"), "pvc-1");
    assert.equal(volumeOfPath("/d", "/d/other/pvc-1/disk.img"), undefined);
    assert.equal(volumeOfPath("/d", "/d/volumes/../x"), undefined);
  });
});

describe("filesystem volumes", () => {
  it("create a sparse disk.img of the size, idempotently; grow only; delete removes the directory", async (t) => {
    const dir = tmp(t);
    const req = { dataDir: dir, name: "pvc-a", sizeBytes: 64 * 2 ** 20, mode: "Filesystem" as const };
    const { image } = await ensureVolume(req);
    assert.equal(image, join(dir, "volumes", "pvc-a", "disk.img"));
    let st = statSync(image);
    assert.equal(st.size, 64 * 2 ** 20);
    assert.ok(st.blocks * 512 < 2 ** 20, "sparse: no data blocks written");
    writeFileSync(image, "data", { flag: "r+" });
    await ensureVolume(req); // again: same file, data kept
    await resizeVolume({ ...req, sizeBytes: 128 * 2 ** 20 });
    st = statSync(image);
    assert.equal(st.size, 128 * 2 ** 20);
    await resizeVolume({ ...req, sizeBytes: 2 ** 20 });
    assert.equal(statSync(image).size, 128 * 2 ** 20, "never shrinks");
    await deleteVolume(dir, "pvc-a");
    assert.throws(() => statSync(join(dir, "volumes", "pvc-a")));
    await deleteVolume(dir, "pvc-a"); // gone already: fine
  });

  it("refuse a symlink in place of the volume's directory or image, and a bad size", async (t) => {
    const dir = tmp(t);
    const outside = tmp(t);
    mkdirSync(join(dir, "volumes"));
    symlinkSync(outside, join(dir, "volumes", "pvc-link"));
    await assert.rejects(
      ensureVolume({ dataDir: dir, name: "pvc-link", sizeBytes: 1024, mode: "Filesystem" }),
      VolumePathError,
    );
    await assert.rejects(deleteVolume(dir, "pvc-link"), VolumePathError);
    assert.ok(statSync(outside).isDirectory(), "the link's target is untouched");
    mkdirSync(join(dir, "volumes", "pvc-img"));
    symlinkSync("/etc/hostname", join(dir, "volumes", "pvc-img", "disk.img"));
    await assert.rejects(
      ensureVolume({ dataDir: dir, name: "pvc-img", sizeBytes: 1024, mode: "Filesystem" }),
      VolumePathError,
    );
    await assert.rejects(
      ensureVolume({ dataDir: dir, name: "pvc-z", sizeBytes: 0, mode: "Filesystem" }),
      VolumePathError,
    );
  });
});

describe("block volumes (fake losetup)", () => {
  it("attach one loop device per image, reuse it, detach on delete; reconcile detaches only orphans below the data dir", async (t) => {
    const dir = tmp(t);
    const { exec, attached, calls } = fakeLosetup();
    const a = await ensureVolume({ dataDir: dir, name: "pvc-a", sizeBytes: 4096, mode: "Block" }, exec);
    const again = await ensureVolume({ dataDir: dir, name: "pvc-a", sizeBytes: 4096, mode: "Block" }, exec);
    assert.equal(a.device, "/dev/loop10");
    assert.equal(again.device, a.device);
    await ensureVolume({ dataDir: dir, name: "pvc-b", sizeBytes: 4096, mode: "Block" }, exec);
    attached.set("/dev/loop99", "/elsewhere/disk.img");
    attached.set("/dev/loop98", `${join(dir, "volumes", "pvc-c", "disk.img")} (deleted)`);
    const detached = await reconcileLoopDevices(dir, new Set(["pvc-a"]), exec);
    assert.deepEqual(detached.sort(), ["/dev/loop11", "/dev/loop98"]);
    assert.ok(attached.has("/dev/loop99"), "a loop device of another file is not ours");
    const grown = await resizeVolume({ dataDir: dir, name: "pvc-a", sizeBytes: 8192, mode: "Block" }, exec);
    assert.ok(calls.some((c) => c.join(" ") === "losetup --set-capacity /dev/loop10"));
    assert.equal(grown.bytes, 8192, "the loop device learned the new size");
    // The file grew but the agent died before `losetup -c`: the next ensure compares and catches up.
    truncateSync(join(dir, "volumes", "pvc-a", "disk.img"), 16384);
    assert.equal(
      (await ensureVolume({ dataDir: dir, name: "pvc-a", sizeBytes: 16384, mode: "Block" }, exec)).bytes,
      16384,
    );
    const n = calls.length;
    await ensureVolume({ dataDir: dir, name: "pvc-a", sizeBytes: 16384, mode: "Block" }, exec);
    assert.ok(!calls.slice(n).some((c) => c[1] === "--set-capacity"), "no refresh when the sizes agree");
    await deleteVolume(dir, "pvc-a", exec);
    assert.ok(!attached.has("/dev/loop10"));
    assert.deepEqual(parseAssociated("/dev/loop0: [2049]:1 (/x)\n/dev/loop12: []: (/y)\n"), [
      "/dev/loop0",
      "/dev/loop12",
    ]);
  });
});
