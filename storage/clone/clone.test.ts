import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ImportError } from "../importer/index.js";
import { BLOCK, CHUNK, cloneLocal, compareVolumes, dataRuns } from "./sparse.js";
import { HELLO, receiveVolume, serveVolume, type VolumeServer } from "./stream.js";

const MiB = 1 << 20;
let dir: string;

/** A sparse source: 8 MiB with random data at a few places (one unaligned, one spanning a chunk border). */
async function makeSource(path: string): Promise<Buffer> {
  await writeFile(path, "");
  await truncate(path, 8 * MiB);
  const fh = await open(path, "r+");
  try {
    await fh.write(randomBytes(3 * BLOCK), 0, 3 * BLOCK, 0);
    await fh.write(randomBytes(1000), 0, 1000, 2 * MiB + 123);
    await fh.write(randomBytes(2 * BLOCK), 0, 2 * BLOCK, CHUNK - BLOCK);
    await fh.write(Buffer.from("end"), 0, 3, 8 * MiB - 3);
  } finally {
    await fh.close();
  }
  return readFile(path);
}

const allocated = async (p: string) => (await stat(p)).blocks * 512;

async function emptyTarget(name: string, size: number): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, "");
  await truncate(p, size);
  return p;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tsvirt-clone-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("dataRuns", () => {
  test("finds the non-zero blocks of a chunk, coalesced", () => {
    const b = Buffer.alloc(6 * BLOCK);
    b[5] = 1;
    b[BLOCK + 7] = 1;
    b[4 * BLOCK] = 1;
    assert.deepEqual(dataRuns(b), [
      [0, 2 * BLOCK],
      [4 * BLOCK, 5 * BLOCK],
    ]);
    assert.deepEqual(dataRuns(Buffer.alloc(CHUNK)), []);
  });
  test("a short last block is data unless all zero", () => {
    const b = Buffer.alloc(BLOCK + 10);
    assert.deepEqual(dataRuns(b), []);
    b[BLOCK + 9] = 2;
    assert.deepEqual(dataRuns(b), [[BLOCK, BLOCK + 10]]);
  });
});

describe("same-node clone", () => {
  test("copies the bytes, leaves holes, verifies, and stays as sparse as cp --sparse=always", async () => {
    const src = join(dir, "local-src.img");
    const want = await makeSource(src);
    const dst = await emptyTarget("local-dst.img", 16 * MiB);
    // A dirty target: every run starts over on a clean one.
    await writeFile(dst, Buffer.alloc(MiB, 7));
    const seen: number[] = [];
    const r = await cloneLocal({ path: src, block: false }, { path: dst, block: false, sizeBytes: 16 * MiB }, (d) =>
      seen.push(d),
    );
    const got = await readFile(dst);
    assert.equal(got.length, 16 * MiB);
    assert.ok(got.subarray(0, 8 * MiB).equals(want));
    assert.ok(got.subarray(8 * MiB).equals(Buffer.alloc(8 * MiB)));
    assert.equal(r.bytes, 8 * MiB);
    assert.equal(seen.at(-1), 8 * MiB);
    const cp = join(dir, "cp.img");
    await promisify(execFile)("cp", ["--sparse=always", src, cp]);
    assert.ok(
      (await allocated(dst)) <= (await allocated(cp)) + 2 * BLOCK,
      `${await allocated(dst)} vs cp ${await allocated(cp)}`,
    );
    assert.ok((await allocated(dst)) < MiB);
  });
  test("verification compares the target with the source byte for byte", async () => {
    const src = join(dir, "cmp-src.img");
    const want = await makeSource(src);
    const dst = join(dir, "cmp-dst.img");
    const bad = Buffer.from(want);
    bad[2 * MiB + 500] = (bad[2 * MiB + 500] ?? 0) ^ 1;
    await writeFile(dst, bad);
    const fh = await open(src, "r");
    try {
      await assert.rejects(
        compareVolumes(fh, { path: dst, block: false, sizeBytes: 8 * MiB }, 8 * MiB),
        (e) => e instanceof ImportError && e.reason === "VerificationFailed" && !e.fatal,
      );
      await writeFile(dst, want);
      await compareVolumes(fh, { path: dst, block: false, sizeBytes: 8 * MiB }, 8 * MiB);
    } finally {
      await fh.close();
    }
  });
  test("a source larger than the target is fatal (ImageTooLarge)", async () => {
    const src = join(dir, "big-src.img");
    await makeSource(src);
    const dst = await emptyTarget("small-dst.img", 4 * MiB);
    await assert.rejects(
      cloneLocal({ path: src, block: false }, { path: dst, block: false, sizeBytes: 4 * MiB }),
      (e) => {
        assert.ok(e instanceof ImportError);
        assert.equal(e.reason, "ImageTooLarge");
        assert.equal(e.fatal, true);
        return true;
      },
    );
  });
});

describe("cross-node stream", () => {
  let src: string;
  let want: Buffer;
  let server: VolumeServer;
  let port: number;
  const token = "dv-uid-1";
  before(async () => {
    src = join(dir, "stream-src.img");
    want = await makeSource(src);
    server = await serveVolume({ source: { path: src, block: false }, token, host: "127.0.0.1", port: 0 });
    port = server.port;
  });
  after(() => server.close());

  test("the target receives the same bytes, sparse, verified", async () => {
    const dst = await emptyTarget("stream-dst.img", 10 * MiB);
    const r = await receiveVolume({
      host: "127.0.0.1",
      port,
      token,
      target: { path: dst, block: false, sizeBytes: 10 * MiB },
    });
    const got = await readFile(dst);
    assert.ok(got.subarray(0, 8 * MiB).equals(want));
    assert.ok(got.subarray(8 * MiB).equals(Buffer.alloc(2 * MiB)));
    assert.ok(r.written < MiB, `only data is sent: ${r.written}`);
    assert.ok((await allocated(dst)) < MiB);
    // A second connection (a retried target) is served again.
    const again = await receiveVolume({
      host: "127.0.0.1",
      port,
      token,
      target: { path: dst, block: false, sizeBytes: 10 * MiB },
    });
    assert.equal(again.sha256, r.sha256);
  });

  /** A connected client, once the server has surely accepted it (it answers nothing before a hello). */
  async function idleClient(p: number, hello?: string): Promise<Socket> {
    const s = connect({ host: "127.0.0.1", port: p });
    s.on("error", () => {});
    await new Promise((r) => s.once("connect", r));
    if (hello) s.write(hello);
    s.pause();
    await new Promise((r) => setTimeout(r, 50));
    return s;
  }

  /** A whole clone from the shared source into a fresh 10 MiB target file. */
  async function receiveInto(file: string) {
    const dst = await emptyTarget(file, 10 * MiB);
    return receiveVolume({ host: "127.0.0.1", port, token, target: { path: dst, block: false, sizeBytes: 10 * MiB } });
  }

  test("a client that never says hello (an importer gone half-open) does not keep a retried target out", async () => {
    const stale = await idleClient(port);
    try {
      assert.ok((await receiveInto("stream-stale.img")).sha256);
    } finally {
      stale.destroy();
    }
  });

  test("a newer target takes over from a transfer that stalled: the old one is dropped", async () => {
    const stalled = await idleClient(port, `${HELLO} ${token}\n`);
    const closed = new Promise((r) => stalled.once("close", r));
    assert.ok((await receiveInto("stream-takeover.img")).sha256);
    stalled.resume(); // (a closed socket's end is read only when flowing)
    await closed;
  });

  test("close drops open connections at once (SIGTERM ends the clone source without its grace period)", async () => {
    const s = await serveVolume({ source: { path: src, block: false }, token, host: "127.0.0.1", port: 0 });
    const quiet = await idleClient(s.port);
    const mid = await idleClient(s.port, `${HELLO} ${token}\n`);
    const gone = [quiet, mid].map((c) => new Promise((r) => c.once("close", r)));
    for (const c of [quiet, mid]) c.resume();
    const t0 = Date.now();
    await s.close(); // before: close waited for these clients for as long as they stayed connected
    await Promise.all(gone);
    assert.ok(Date.now() - t0 < 2_000, `closed in ${Date.now() - t0} ms`);
  });

  test("a long run of zeros sends scanned marks: the target sees progress, not silence, and still verifies", async () => {
    const s = await serveVolume({
      source: { path: src, block: false },
      token,
      host: "127.0.0.1",
      port: 0,
      markEveryMs: 0,
    });
    try {
      const dst = await emptyTarget("stream-marks.img", 10 * MiB);
      const seen: number[] = [];
      const r = await receiveVolume({
        host: "127.0.0.1",
        port: s.port,
        token,
        target: { path: dst, block: false, sizeBytes: 10 * MiB },
        onProgress: (done) => seen.push(done),
      });
      // chunks 3..7 hold no data (only chunk 8's last bytes do): each is marked as scanned
      for (const at of [4, 5, 6, 7]) assert.ok(seen.includes(at * CHUNK), `a mark at ${at} MiB: ${seen}`);
      assert.ok((await readFile(dst)).subarray(0, 8 * MiB).equals(want));
      assert.ok(r.sha256);
    } finally {
      await s.close();
    }
  });

  test("a wrong token gets nothing: a transient failure", async () => {
    const dst = await emptyTarget("stream-wrong.img", 10 * MiB);
    await assert.rejects(
      receiveVolume({
        host: "127.0.0.1",
        port,
        token: "other",
        target: { path: dst, block: false, sizeBytes: 10 * MiB },
      }),
      (e) => e instanceof ImportError && e.reason === "TransferInterrupted" && !e.fatal,
    );
  });

  /** The whole stream as the source sends it. */
  async function capture(): Promise<Buffer> {
    const s = connect({ host: "127.0.0.1", port });
    s.write(`${HELLO} ${token}\n`);
    const parts: Buffer[] = [];
    for await (const c of s) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }

  /** Receives from a fake source that sends `bytes` and closes; the receive must fail as `expect` says. */
  async function receiveFrom(bytes: Buffer, file: string, expect: (e: ImportError) => boolean): Promise<void> {
    const fake = createServer((sock) => {
      sock.once("data", () => sock.end(bytes));
    });
    await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
    try {
      const dst = await emptyTarget(file, 10 * MiB);
      const fakePort = (fake.address() as { port: number }).port;
      await assert.rejects(
        receiveVolume({
          host: "127.0.0.1",
          port: fakePort,
          token,
          target: { path: dst, block: false, sizeBytes: 10 * MiB },
        }),
        (e) => e instanceof ImportError && expect(e),
      );
    } finally {
      fake.close();
    }
  }

  test("a truncated stream is a transient failure", async () => {
    const full = await capture();
    await receiveFrom(
      full.subarray(0, Math.floor(full.length / 2)),
      "stream-trunc.img",
      (e) => e.reason === "TransferInterrupted" && !e.fatal,
    );
  });

  test("a corrupted byte fails the verification", async () => {
    const full = Buffer.from(await capture());
    const at = 16 + 13 + 100; // inside the first extent's data
    full[at] = (full[at] ?? 0) ^ 0xff;
    await receiveFrom(full, "stream-corrupt.img", (e) => e.reason === "VerificationFailed" && !e.fatal);
  });

  test("a target smaller than the source is fatal", async () => {
    const dst = await emptyTarget("stream-small.img", 4 * MiB);
    await assert.rejects(
      receiveVolume({ host: "127.0.0.1", port, token, target: { path: dst, block: false, sizeBytes: 4 * MiB } }),
      (e) => e instanceof ImportError && e.reason === "ImageTooLarge" && e.fatal,
    );
  });
});
