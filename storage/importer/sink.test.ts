import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { ImportError } from "./outcome.js";
import { detectCompression, detectFormat, hashPrefix, parseChecksum, pushSource, writeImage } from "./sink.js";
import { cleanTarget } from "./target.js";

const run = promisify(execFile);
const MiB = 1 << 20;

/** A raw disk: random data, a zero gap (left as a hole), more random data. */
export async function makeRaw(path: string, mib = 4): Promise<Buffer> {
  const data = Buffer.concat([randomBytes(MiB), Buffer.alloc((mib - 2) * MiB), randomBytes(MiB)]);
  await writeFile(path, data);
  return data;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("sink", () => {
  let dir = "";
  let raw: Buffer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sink-"));
    raw = await makeRaw(join(dir, "disk.raw"));
    await run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", join(dir, "disk.raw"), join(dir, "disk.qcow2")]);
    await run("sh", [
      "-c",
      `gzip -kc ${dir}/disk.qcow2 > ${dir}/disk.qcow2.gz && xz -kc ${dir}/disk.raw > ${dir}/disk.raw.xz`,
    ]);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function target(size = 8 * MiB) {
    const path = join(dir, `t-${randomBytes(4).toString("hex")}.img`);
    // a dirty target: every run must start clean
    await writeFile(path, Buffer.alloc(size, 0xaa));
    return { path, block: false, sizeBytes: size };
  }
  const opts = async (size?: number) => ({ target: await target(size), scratchDir: join(dir, "scratch") });

  it("detects compression and formats by magic bytes", () => {
    assert.equal(detectCompression(Buffer.from([0x1f, 0x8b, 8])), "gzip");
    assert.equal(detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0])), "xz");
    assert.equal(detectFormat(Buffer.from("QFI\xfb\0\0\0\x03", "latin1")), "qcow2");
    assert.equal(detectFormat(Buffer.from("<html>not found</html>\n")), "text");
    assert.equal(detectFormat(Buffer.alloc(512)), "raw");
    assert.throws(() => parseChecksum("sha256:abc"), /right length/);
  });

  for (const name of ["disk.raw", "disk.raw.xz", "disk.qcow2", "disk.qcow2.gz"]) {
    it(`imports ${name} into a clean, sparse, verified raw target`, async () => {
      const file = join(dir, name);
      const o = await opts();
      const cs = `sha256:${sha256(await readFile(file))}`;
      const t0 = Date.now();
      const r = await writeImage(createReadStream(file), { ...o, checksum: cs });
      const ms = Date.now() - t0;
      assert.equal(r.bytes, raw.length);
      assert.equal(r.sha256, sha256(raw));
      const img = await readFile(o.target.path);
      assert.equal(img.length, 8 * MiB, "the target keeps the claim's size");
      assert.ok(img.subarray(0, raw.length).equals(raw), "the volume holds the image");
      assert.ok(
        img.subarray(raw.length).every((b) => b === 0),
        "past the image the volume reads zeros",
      );
      const st = await stat(o.target.path);
      assert.ok(st.blocks * 512 < 4 * MiB, `zero blocks stay holes (${st.blocks * 512} bytes allocated)`);
      assert.equal(await hashPrefix(o.target.path, r.bytes), r.sha256);
      void ms;
    });
  }

  it("a wrong checksum is ChecksumMismatch (fatal)", async () => {
    const o = await opts();
    await assert.rejects(
      writeImage(createReadStream(join(dir, "disk.raw.xz")), { ...o, checksum: `sha256:${"0".repeat(64)}` }),
      (e: ImportError) => e.reason === "ChecksumMismatch" && e.fatal,
    );
  });

  it("a qcow2 with a backing file is BackingFile (fatal)", async () => {
    const ov = join(dir, "overlay.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", join(dir, "disk.qcow2"), "-F", "qcow2", ov]);
    await assert.rejects(
      writeImage(createReadStream(ov), await opts()),
      (e: ImportError) => e.reason === "BackingFile" && e.fatal,
    );
  });

  it("an image larger than the claim is ImageTooLarge (fatal), raw and qcow2", async () => {
    for (const f of ["disk.raw", "disk.qcow2.gz"]) {
      await assert.rejects(
        writeImage(createReadStream(join(dir, f)), await opts(2 * MiB)),
        (e: ImportError) => e.reason === "ImageTooLarge" && e.fatal,
      );
    }
  });

  it("a text file is NotADiskImage (fatal)", async () => {
    const txt = join(dir, "readme.txt");
    await writeFile(txt, "this is not a disk image\n".repeat(100));
    await assert.rejects(
      writeImage(createReadStream(txt), await opts()),
      (e: ImportError) => e.reason === "NotADiskImage" && e.fatal,
    );
  });

  it("a raw write that does not read back (a target left dirty under a skipped zero block) is VerifyFailed", async () => {
    const o = await opts();
    // targetClean claims a clean target the dirty one is not: the zero gap is skipped as a hole yet reads back 0xaa
    await assert.rejects(
      writeImage(createReadStream(join(dir, "disk.raw")), { ...o, targetClean: true }),
      (e: ImportError) => e.reason === "VerifyFailed" && !e.fatal,
    );
  });

  it("streams a raw image past the background fdatasyncs, the target's clean-up still under way, and verifies it", async () => {
    // 80 MiB: two background fdatasyncs (every 32 MiB) before the last fsync
    const big = Buffer.concat([randomBytes(40 * MiB), Buffer.alloc(8 * MiB), randomBytes(32 * MiB)]);
    const o = await opts(96 * MiB);
    const cleaning = cleanTarget(o.target, { durable: false });
    const p = pushSource();
    const done = writeImage(p.input, { ...o, targetClean: cleaning });
    for (let i = 0; i < big.length; i += 1 << 20) await p.write(big.subarray(i, i + (1 << 20)));
    p.end();
    const r = await done;
    assert.equal(r.bytes, big.length);
    assert.equal(r.sha256, sha256(big));
    assert.equal(await hashPrefix(o.target.path, r.bytes), r.sha256);
    const img = await readFile(o.target.path);
    assert.equal(img.length, 96 * MiB);
    assert.ok(
      img.subarray(big.length).every((b) => b === 0),
      "past the image the clean target reads zeros",
    );
  });

  it("takes pushed bytes (tar entries, uploads) with back-pressure", async () => {
    const o = await opts();
    const p = pushSource();
    const done = writeImage(p.input, o);
    for (let i = 0; i < raw.length; i += 100_000) await p.write(raw.subarray(i, i + 100_000));
    p.end();
    const r = await done;
    assert.equal(r.sha256, sha256(raw));
  });
});
