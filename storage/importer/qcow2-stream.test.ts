// The streaming qcow2 → raw converter against `qemu-img convert -O raw`, byte for byte, on images made here with
// qemu-img / qemu-io in the layouts that matter (tables before data: no scratch; tables after data: the spill).
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
import { parseQcow2Header } from "./qcow2-stream.js";
import { pushSource, type SinkResult, writeImage } from "./sink.js";

const run = promisify(execFile);
const KiB = 1 << 10;
const MiB = 1 << 20;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** 8 MiB: random, compressible text, zeros, more random near the end. */
function sampleRaw(): Buffer {
  const text = Buffer.from("tsvirt streams qcow2 into raw volumes. ".repeat(30_000)).subarray(0, MiB);
  return Buffer.concat([
    randomBytes(MiB + 3 * KiB),
    text,
    Buffer.alloc(3 * MiB - 3 * KiB),
    randomBytes(512 * KiB),
    text,
    Buffer.alloc(1536 * KiB),
  ]);
}

describe("qcow2 stream", () => {
  let dir = "";
  let raw: Buffer;
  const p = (name: string) => join(dir, name);
  const qimg = (...args: string[]) => run("qemu-img", args);
  const qio = (img: string, ...cmds: string[]) =>
    run("qemu-io", ["-f", "qcow2", ...cmds.flatMap((c) => ["-c", c]), img]);

  before(async () => {
    await run("qemu-img", ["--version"]).catch(() => {
      throw new Error("qemu-img is not installed (apt-get install qemu-utils)");
    });
    dir = await mkdtemp(join(tmpdir(), "qcow2s-"));
    raw = sampleRaw();
    await writeFile(p("disk.raw"), raw);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Feeds the file in `chunk`-byte pieces (default: the file stream's own). */
  function input(file: string, chunk?: number): AsyncIterable<Buffer> {
    if (!chunk) return createReadStream(file);
    return (async function* () {
      const b = await readFile(file);
      for (let i = 0; i < b.length; i += chunk) yield b.subarray(i, i + chunk);
    })();
  }

  /** Imports `img` and checks the volume against `qemu-img convert -O raw` byte for byte; returns the result. */
  async function check(img: string, o: { chunk?: number; claim?: number } = {}): Promise<SinkResult> {
    const ref = `${img}.ref.raw`;
    await qimg("convert", "-f", "qcow2", "-O", "raw", img, ref);
    const want = await readFile(ref);
    const claim = o.claim ?? want.length + MiB;
    const target = `${img}.target`;
    await writeFile(target, Buffer.alloc(claim, 0xaa)); // dirty: the sink cleans it
    const r = await writeImage(input(img, o.chunk), {
      target: { path: target, block: false, sizeBytes: claim },
      scratchDir: p("scratch"),
    });
    const got = await readFile(target);
    assert.equal(r.format, "qcow2");
    assert.equal(r.bytes, want.length);
    assert.ok(got.subarray(0, want.length).equals(want), `${img}: the volume equals qemu-img convert's output`);
    assert.ok(
      got.subarray(want.length).every((b) => b === 0),
      "past the image the volume reads zeros",
    );
    assert.equal(r.sha256, sha256(want));
    await rm(p("scratch"), { recursive: true, force: true }).catch(() => {});
    return r;
  }

  for (const cs of [4 * KiB, 64 * KiB, 2 * MiB]) {
    it(`streams a qemu-img-made image (cluster ${cs / KiB} KiB) with no scratch`, async () => {
      const img = p(`c${cs}.qcow2`);
      await qimg("convert", "-f", "raw", "-O", "qcow2", "-o", `cluster_size=${cs}`, p("disk.raw"), img);
      const r = await check(img);
      assert.equal(r.scratchBytes, 0, "no byte spilled");
      assert.equal(r.fallback, undefined);
      assert.ok(r.bytes === raw.length);
    });
  }

  for (const cs of [4 * KiB, 64 * KiB]) {
    it(`inflates compressed clusters (convert -c, cluster ${cs / KiB} KiB)`, async () => {
      const img = p(`comp${cs}.qcow2`);
      await qimg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", `cluster_size=${cs}`, p("disk.raw"), img);
      assert.ok((await stat(img)).size < raw.length / 2, "the image holds compressed clusters");
      const r = await check(img);
      // only a compressed cluster's last sector (it may hold the next one's start) while a later L2 table is ahead
      assert.ok((r.scratchBytes ?? 0) < raw.length / 100, `little spilled (${r.scratchBytes})`);
    });
  }

  it("leaves zero clusters (the zero flag over allocated data) and unallocated ones as zeros", async () => {
    const img = p("zero.qcow2");
    await qimg("create", "-q", "-f", "qcow2", img, "16M");
    await qio(img, "write -P 0x55 0 4M", "write -z 1M 1M", "write -z 3M 64k", "write -P 0x66 12M 64k");
    const map = (await qimg("map", "--output=json", img)).stdout;
    assert.match(map, /"zero": true, "data": false/, "the image has zero clusters");
    await check(img);
  });

  it("streams preallocation=metadata, a sparse image and a v2 (compat=0.10) image", async () => {
    const pre = p("prealloc.qcow2");
    await qimg("create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", pre, "8M");
    await qio(pre, "write -P 0x77 1M 300k");
    assert.equal((await check(pre)).scratchBytes, 0);
    const sparse = p("sparse.qcow2");
    await qimg("create", "-q", "-f", "qcow2", sparse, "128M");
    await qio(sparse, "write -P 0x01 0 64k", "write -P 0x02 100M 4k", "write -P 0x03 127M 1M");
    await check(sparse, { claim: 128 * MiB });
    const v2 = p("v2.qcow2");
    await qimg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compat=0.10", p("disk.raw"), v2);
    assert.equal((await qimg("info", "--output=json", v2)).stdout.includes('"compat": "0.10"'), true);
    await check(v2);
  });

  it("spills what arrives before its table: an L1 table after data (a grown image), an L2 after its data (a snapshot)", async () => {
    // a resize moves the L1 table after the data; freed clusters get later L2 tables; later data follows the L1
    const grown = p("grown.qcow2");
    await qimg("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", grown, "1M");
    await qio(grown, "write -P 0x11 0 512k");
    await qimg("resize", "-q", grown, "64M");
    await qio(grown, "write -P 0x22 32M 256k", "write -P 0x33 600k 100k");
    const a = await check(grown);
    assert.ok((a.scratchBytes ?? 0) >= 512 * KiB, `the data before the L1 table was spilled (${a.scratchBytes})`);
    // after an internal snapshot, a write copies the active L2 table to the file's end, after the data it maps
    const snap = p("snap.qcow2");
    await qimg("create", "-q", "-f", "qcow2", snap, "8M");
    await qio(snap, "write -P 0x11 0 1M", "write -P 0x12 4M 512k");
    await qimg("snapshot", "-c", "s1", snap);
    await qio(snap, "write -P 0x13 128k 64k");
    const b = await check(snap);
    assert.ok((b.scratchBytes ?? 0) >= MiB, `the data before its L2 table was spilled (${b.scratchBytes})`);
    // the same, fed a byte (and an odd count of bytes) at a time
    await check(grown, { chunk: 4099 });
    await check(snap, { chunk: 65537 });
  });

  it("takes the stream in 1-byte and odd-sized chunks", async () => {
    const small = p("small.raw");
    await writeFile(
      small,
      Buffer.concat([randomBytes(40 * KiB), sampleRaw().subarray(MiB, MiB + 100 * KiB), Buffer.alloc(16 * KiB)]),
    );
    for (const c of ["", "-c"]) {
      const img = p(`small${c}.qcow2`);
      await qimg("convert", ...(c ? [c] : []), "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", small, img);
      await check(img, { chunk: 1 });
      await check(img, { chunk: 7 });
    }
    const img = p("c65536.qcow2");
    await check(img, { chunk: 65535 });
    await check(img, { chunk: 1000003 });
  });

  it("leaves extended L2, zstd and encrypted images to qemu-img (the scratch path), with the same result", async () => {
    const ext = p("ext.qcow2");
    await qimg("convert", "-f", "raw", "-O", "qcow2", "-o", "extended_l2=on", p("disk.raw"), ext);
    const r = await check(ext);
    assert.match(r.fallback ?? "", /incompatible features/);
    assert.ok((r.scratchBytes ?? 0) > 0, "the fallback goes through the scratch file");
    const zstd = p("zstd.qcow2");
    await qimg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd", p("disk.raw"), zstd);
    assert.match((await check(zstd)).fallback ?? "", /compression type 1/);
    // encrypted: qemu-img has no key either, it fails as it always did (ConvertFailed)
    const enc = p("enc.qcow2");
    await run("qemu-img", [
      "create",
      "-q",
      "--object",
      "secret,id=sec0,data=abc",
      "-f",
      "qcow2",
      "-o",
      "encrypt.format=luks,encrypt.key-secret=sec0",
      enc,
      "1M",
    ]);
    await writeFile(p("t.img"), "");
    await assert.rejects(
      writeImage(input(enc), {
        target: { path: p("t.img"), block: false, sizeBytes: 4 * MiB },
        scratchDir: p("scratch"),
      }),
      (e: ImportError) => e.reason === "ConvertFailed",
    );
  });

  it("refuses a backing file and an external data file (BackingFile), and an image larger than the claim", async () => {
    const base = p("c65536.qcow2");
    const ov = p("overlay.qcow2");
    await qimg("create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", ov);
    const o = (size: number) => ({
      target: { path: p("t.img"), block: false, sizeBytes: size },
      scratchDir: p("scratch"),
    });
    await writeFile(p("t.img"), "");
    await assert.rejects(writeImage(input(ov), o(16 * MiB)), (e: ImportError) => e.reason === "BackingFile" && e.fatal);
    const df = p("datafile.qcow2");
    await qimg("create", "-q", "-f", "qcow2", "-o", `data_file=${p("datafile.raw")}`, df, "4M");
    await assert.rejects(writeImage(input(df), o(16 * MiB)), (e: ImportError) => e.reason === "BackingFile" && e.fatal);
    await assert.rejects(
      writeImage(input(base), o(4 * MiB)),
      (e: ImportError) => e.reason === "ImageTooLarge" && e.fatal,
    );
  });

  it("fails a truncated or corrupt image with NotADiskImage (fatal), never a success", async () => {
    const img = await readFile(p("c65536.qcow2"));
    const cases: [string, Buffer][] = [
      ["cut inside the data", img.subarray(0, img.length - 100_000)],
      ["cut inside the header", img.subarray(0, 50)],
      ["cut before the L1 table", img.subarray(0, 65536)],
    ];
    // an L2 table offset that is not cluster-aligned
    const h = parseQcow2Header(img);
    assert.ok("header" in h);
    const bad = Buffer.from(img);
    bad.writeBigUInt64BE(bad.readBigUInt64BE(h.header.l1Offset) + 512n, h.header.l1Offset);
    cases.push(["an unaligned L2 table", bad]);
    // a compressed cluster that does not inflate
    const comp = Buffer.from(await readFile(p("comp65536.qcow2")));
    const hc = parseQcow2Header(comp);
    assert.ok("header" in hc);
    const l2 = Number(comp.readBigUInt64BE(hc.header.l1Offset) & 0x00fffffffffffe00n);
    const e = comp.readBigUInt64BE(l2 + 8 * 20); // guest cluster 20: compressed text
    assert.ok(e & (1n << 62n), "cluster 20 is compressed");
    const coff = Number(e & ((1n << 54n) - 1n));
    comp.fill(0xff, coff, coff + 64);
    cases.push(["a compressed cluster that does not inflate", comp]);
    for (const [what, bytes] of cases) {
      const t = p("t.img");
      await writeFile(t, "");
      const src = pushSource();
      const done = writeImage(src.input, {
        target: { path: t, block: false, sizeBytes: 16 * MiB },
        scratchDir: p("scratch"),
      });
      for (let i = 0; i < bytes.length; i += 65536) await src.write(bytes.subarray(i, i + 65536));
      src.end();
      await assert.rejects(done, (e: ImportError) => {
        assert.equal(e.reason, "NotADiskImage", `${what}: ${e.message}`);
        assert.ok(e.fatal);
        return true;
      });
    }
  });

  it("a volume that does not read zeros where the image has none is VerifyFailed (in guest order or not)", async () => {
    for (const img of ["c65536.qcow2", "grown.qcow2"]) {
      const t = p("dirty.img");
      await writeFile(t, Buffer.alloc(80 * MiB, 0xaa));
      await assert.rejects(
        writeImage(input(p(img)), {
          target: { path: t, block: false, sizeBytes: 80 * MiB },
          scratchDir: p("scratch"),
          targetClean: true, // (it is not)
        }),
        (e: ImportError) => e.reason === "VerifyFailed" && !e.fatal,
      );
    }
  });
});
