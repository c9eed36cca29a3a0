// containerDisk images against real registries: two Debian docker-registry instances on loopback, each behind a
// fault proxy the test controls; skopeo as an independent client; qemu-img for disks.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { promisify } from "node:util";
import {
  buildContainerDisk,
  createOverlay,
  nodeImagePuller,
  type PullOptions,
  parseRegistriesConf,
  pullContainerDisk,
  pushImage,
  RegistryHealth,
  unpinImage,
} from "../../images/index.js";
import { type FaultProxy, startFaultProxy } from "../../images/testing/fault-proxy.js";
import { startRegistry, type TestRegistry } from "../../images/testing/registry.js";
import { isStatusError } from "../../lib/errors.js";
import { requirePrereqs } from "../lib/prereqs.js";

const run = promisify(execFile);
const TSVIRT = join(import.meta.dirname, "..", "..", "dist", "cmd", "tsvirt.js");

async function sha256File(p: string): Promise<string> {
  return `sha256:${createHash("sha256")
    .update(await readFile(p))
    .digest("hex")}`;
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

requirePrereqs("docker-registry", "skopeo", "qemu-img", "qemu-io", "zstd");

describe("containerDisk images against real registries", { timeout: 600_000 }, () => {
  let work: string;
  let A: TestRegistry;
  let B: TestRegistry;
  let pA: FaultProxy;
  let pB: FaultProxy;
  let rawDisk: string;
  let rawBytes: Buffer;
  let manifestDigest: string;
  let layer: string;
  let layerSize: number;
  let confText: string;
  let n = 0;

  const fresh = async (): Promise<string> => mkdtemp(join(work, `cache-${n++}-`));
  const opts = async (extra: Partial<PullOptions> = {}): Promise<PullOptions> => ({
    cacheDir: await fresh(),
    registries: parseRegistriesConf(confText),
    health: new RegistryHealth({ baseMs: 60_000 }),
    connectTimeoutMs: 5_000,
    stallTimeoutMs: 5_000,
    ...extra,
  });
  const srcA = (): string => `${pA.host}/vm/disk`;
  const srcB = (): string => `${pB.host}/vm/disk`;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "tsvirt-images-e2e-"));
    [A, B] = await Promise.all([startRegistry(), startRegistry()]);
    [pA, pB] = await Promise.all([startFaultProxy(A.host), startFaultProxy(B.host)]);
    rawDisk = join(work, "random.img");
    rawBytes = randomBytes(6 * 1024 * 1024);
    await writeFile(rawDisk, rawBytes);
    const built = await buildContainerDisk(rawDisk, { cacheDir: join(work, "build") });
    manifestDigest = built.manifestDigest;
    layer = built.layerDigest;
    layerSize = built.manifest.layers[0]!.size;
    await pushImage(manifestDigest, [`${A.host}/vm/disk:v1`, `${B.host}/vm/disk:v1`], {
      cacheDir: join(work, "build"),
    });
    // Priority: the mirror (A, through its proxy) first, then the location (B, through its proxy).
    confText = [
      "[[registry]]",
      'prefix = "images.test/vm"',
      `location = "${pB.host}/vm"`,
      "[[registry.mirror]]",
      `location = "${pA.host}/vm"`,
      "",
    ].join("\n");
  });
  after(async () => {
    await Promise.allSettled([pA?.close(), pB?.close()]);
    await Promise.allSettled([A?.stop(), B?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    for (const p of [pA, pB]) {
      p.fault = { mode: "pass" };
      p.onBlobBytes = undefined;
      p.reset();
    }
  });

  it("pulls from the first registry, verified and extracted, format from the header", async () => {
    const res = await pullContainerDisk("images.test/vm/disk:v1", await opts());
    assert.equal(res.manifestDigest, manifestDigest);
    assert.equal(res.source, srcA());
    assert.equal(res.format, "raw");
    assert.equal(res.virtualSize, rawBytes.length);
    assert.deepEqual(await readFile(res.diskPath), rawBytes);
    assert.equal(pB.requests, 0, "the second registry is not contacted");
  });

  it("fails over to B when A is down (its process killed: connection refused)", async () => {
    const direct = `[[registry]]\nprefix = "images.test/vm"\nlocation = "${pB.host}/vm"\n[[registry.mirror]]\nlocation = "${A.host}/vm"\n`;
    await A.kill();
    try {
      const res = await pullContainerDisk("images.test/vm/disk:v1", {
        ...(await opts()),
        registries: parseRegistriesConf(direct),
      });
      assert.equal(res.source, srcB());
      assert.deepEqual(await readFile(res.diskPath), rawBytes);
    } finally {
      await A.restart();
    }
  });

  it("fails over to B when A dies mid-blob, resuming the blob where A stopped", async () => {
    let killed = false;
    pA.onBlobBytes = (d, sent) => {
      if (d !== layer || killed || sent < 1024 * 1024) return false;
      killed = true;
      void A.kill();
      return true;
    };
    try {
      const res = await pullContainerDisk("images.test/vm/disk:v1", await opts());
      assert.ok(killed, "registry A was killed mid-blob");
      assert.equal(res.source, srcB());
      assert.deepEqual(await readFile(res.diskPath), rawBytes);
      const fromB = pB.blobs.get(layer);
      assert.ok(
        fromB && fromB.bytes > 0 && fromB.bytes < layerSize,
        `B sent only the rest (${fromB?.bytes} of ${layerSize})`,
      );
    } finally {
      await A.restart();
    }
  });

  it("fails over to B when A serves a corrupted blob; the corrupt bytes never reach the cache", async () => {
    const onDisk = A.blobDataPath(layer);
    const original = await readFile(onDisk);
    const marker = Buffer.from("CORRUPTED-BY-THE-TEST-".repeat(4));
    const bad = Buffer.from(original);
    marker.copy(bad, Math.floor(bad.length / 2));
    await writeFile(onDisk, bad);
    try {
      const o = await opts();
      const res = await pullContainerDisk("images.test/vm/disk:v1", o);
      assert.equal(res.source, srcB());
      assert.equal(pA.blobs.get(layer)?.bytes, layerSize, "A served the whole (corrupt) blob");
      assert.equal(pB.blobs.get(layer)?.bytes, layerSize, "B served it whole again");
      assert.deepEqual(await readFile(res.diskPath), rawBytes);
      for (const f of await walk(o.cacheDir)) {
        assert.ok(!(await readFile(f)).includes(marker), `${f} holds corrupt bytes`);
      }
      assert.equal(await sha256File(join(o.cacheDir, "blobs", "sha256", layer.slice(7))), layer);
      assert.deepEqual(await readdir(join(o.cacheDir, "tmp")), []);
    } finally {
      await writeFile(onDisk, original);
    }
  });

  it("after A failed, the next pull skips A until its back-off ends, then probes A again", async () => {
    let now = 1_000_000; // the breaker's clock, moved by the test (no sleeping)
    const health = new RegistryHealth({ baseMs: 30_000, now: () => now });
    pA.fault = { mode: "status", status: 500 };
    const first = await pullContainerDisk("images.test/vm/disk:v1", { ...(await opts()), health });
    assert.equal(first.source, srcB());
    assert.ok(pA.requests >= 1);
    pA.fault = { mode: "pass" };
    pA.reset();
    now += 29_000;
    const second = await pullContainerDisk("images.test/vm/disk:v1", { ...(await opts()), health });
    assert.equal(second.source, srcB());
    assert.equal(pA.requests, 0, "A is skipped while in back-off");
    assert.equal(health.remainingMs(pA.host), 1_000);
    now += 1_000;
    const third = await pullContainerDisk("images.test/vm/disk:v1", { ...(await opts()), health });
    assert.equal(third.source, srcA(), "A is probed again and used once healthy");
    assert.ok(pA.requests >= 1);
    assert.equal(health.state(pA.host).state, "closed");
  });

  it("fails over on a hanging registry (stall timeout) and on 429 with Retry-After", async () => {
    pA.fault = { mode: "hang" };
    const hung = await pullContainerDisk("images.test/vm/disk:v1", await opts({ stallTimeoutMs: 1000 }));
    assert.equal(hung.source, srcB());
    pA.fault = { mode: "status", status: 429, headers: { "retry-after": "40" } };
    const o = await opts();
    const throttled = await pullContainerDisk("images.test/vm/disk:v1", o);
    assert.equal(throttled.source, srcB());
    const left = o.health!.remainingMs(pA.host);
    assert.ok(left > 35_000 && left <= 40_000, `back-off follows Retry-After (${left} ms)`);
  });

  it("an image in none of the registries is ErrImagePull naming each registry and why", async () => {
    await assert.rejects(pullContainerDisk("images.test/vm/nothere:v1", await opts()), (e: unknown) => {
      assert.ok(isStatusError(e));
      assert.equal(e.reason, "ErrImagePull");
      assert.deepEqual(
        e.status.details?.causes?.map((c) => [c.field, c.type]),
        [
          [`${pA.host}/vm/nothere`, "notFound"],
          [`${pB.host}/vm/nothere`, "notFound"],
        ],
      );
      return true;
    });
    pA.fault = { mode: "status", status: 503 };
    await assert.rejects(pullContainerDisk("images.test/vm/nothere:v1", await opts()), (e: unknown) => {
      assert.ok(isStatusError(e));
      assert.deepEqual(
        e.status.details?.causes?.map((c) => c.type),
        ["serverError", "notFound"],
      );
      assert.match(e.message, /server error \(503\)/);
      return true;
    });
  });

  it("ten concurrent pulls download each blob once (counted at the proxy)", async () => {
    const o = await opts();
    const refs = Array.from({ length: 10 }, (_, i) =>
      i % 2 ? "images.test/vm/disk:v1" : `images.test/vm/disk@${manifestDigest}`,
    );
    const results = await Promise.all(refs.map((r) => pullContainerDisk(r, o)));
    assert.equal(new Set(results.map((r) => r.diskPath)).size, 1);
    const manifest = JSON.parse(await readFile(join(o.cacheDir, "manifests", manifestDigest.slice(7)), "utf8"));
    for (const d of [manifest.config, ...manifest.layers]) {
      assert.deepEqual(pA.blobs.get(d.digest), { requests: 1, bytes: d.size }, `blob ${d.digest}`);
    }
    assert.equal(pB.requests, 0);
  });

  it("a cached IfNotPresent pull makes no network request; Always re-resolves the tag but moves no blob", async () => {
    const o = await opts();
    await pullContainerDisk("images.test/vm/disk:v1", o);
    pA.reset();
    const again = await pullContainerDisk("images.test/vm/disk:v1", o);
    assert.equal(pA.requests + pB.requests, 0);
    assert.equal(again.downloadedBytes, 0);
    const always = await pullContainerDisk("images.test/vm/disk:v1", { ...o, pullPolicy: "Always" });
    assert.equal(always.manifestDigest, manifestDigest);
    assert.ok(pA.requests >= 1);
    assert.equal(pA.blobBytes() + pB.blobBytes(), 0);
  });

  it("a built image is reproducible, pushes chunked and by mount, and pulls with skopeo and with our client", async () => {
    const src = join(work, "src.raw");
    await writeFile(src, randomBytes(2 * 1024 * 1024));
    const qcow = join(work, "disk.qcow2");
    await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", src, qcow]);
    const one = await buildContainerDisk(qcow, { cacheDir: join(work, "b1") });
    const two = await buildContainerDisk(qcow, { cacheDir: join(work, "b2") });
    assert.equal(one.manifestDigest, two.manifestDigest, "same disk, same digest");
    const pushed = await pushImage(one.manifestDigest, [`${A.host}/push/one:v1`, `${A.host}/push/two:v1`], {
      cacheDir: join(work, "b1"),
      chunkSize: 256 * 1024,
    });
    assert.deepEqual(
      pushed.map((p) => [p.uploaded, p.mounted]),
      [
        [2, 0],
        [0, 2],
      ],
    );
    const out = join(work, "skopeo-out");
    await run("skopeo", ["copy", "--src-tls-verify=false", `docker://${A.host}/push/two:v1`, `dir:${out}`]);
    const { stdout } = await run("skopeo", ["inspect", "--tls-verify=false", `docker://${A.host}/push/one:v1`]);
    assert.equal(JSON.parse(stdout).Digest, one.manifestDigest);
    assert.equal(await sha256File(join(out, one.layerDigest.slice(7))), one.layerDigest);
    const res = await pullContainerDisk(`${A.host}/push/two:v1`, await opts());
    assert.equal(res.format, "qcow2");
    await run("qemu-img", ["compare", "-q", qcow, res.diskPath]);
    // the layer holds /disk/disk.qcow2 owned by 107:107, mode 0440
    const { stdout: listing } = await run("tar", [
      "-tvzf",
      join(work, "b1", "blobs", "sha256", one.layerDigest.slice(7)),
    ]);
    assert.match(listing, /-r--r----- 107\/107 .* disk\/disk\.qcow2/);
  });

  it("pulls a zstd layer (decoded by the zstd binary)", async () => {
    const built = await buildContainerDisk(rawDisk, { cacheDir: join(work, "bz"), compression: "zstd" });
    await pushImage(built.manifestDigest, [`${B.host}/vm/zdisk:v1`], { cacheDir: join(work, "bz") });
    const res = await pullContainerDisk("images.test/vm/zdisk:v1", await opts());
    assert.equal(res.source, `${pB.host}/vm/zdisk`);
    assert.deepEqual(await readFile(res.diskPath), rawBytes);
  });

  it("an overlay over the cached base takes the VM's writes; the base stays untouched", async () => {
    const res = await pullContainerDisk("images.test/vm/disk:v1", await opts());
    const before = await sha256File(res.diskPath);
    const overlay = join(work, "vm-overlay.qcow2");
    await createOverlay(res.diskPath, overlay);
    const { stdout } = await run("qemu-img", ["info", "--output=json", overlay]);
    const info = JSON.parse(stdout);
    assert.equal(info.format, "qcow2");
    assert.equal(info["backing-filename"], res.diskPath);
    assert.equal(info["backing-filename-format"], "raw");
    await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 0 1M", overlay]);
    assert.equal(await sha256File(res.diskPath), before);
    const { stdout: read } = await run("qemu-io", ["-f", "qcow2", "-c", "read -P 0x5a 0 1M", overlay]);
    assert.match(read, /read 1048576\/1048576 bytes/);
  });

  it("pins survive a restart: GC in a new process keeps every pinned image until its last VMI releases it", async () => {
    const o = await opts();
    const puller = nodeImagePuller({ cacheDir: o.cacheDir, registries: () => parseRegistriesConf(confText) });
    const other = join(work, "other.qcow2");
    await writeFile(join(work, "other.raw"), randomBytes(256 * 1024));
    await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", join(work, "other.raw"), other]);
    const built = await buildContainerDisk(other, { cacheDir: join(work, "b-other") });
    await pushImage(built.manifestDigest, [`${B.host}/vm/other:v1`], { cacheDir: join(work, "b-other") });
    const x = await puller.pull("images.test/vm/disk:v1", "vmi-uid-1");
    const y = await puller.pull("images.test/vm/other:v1", "vmi-uid-1"); // one VMI, two containerDisks
    await puller.pull("images.test/vm/disk:v1", "vmi-uid-2"); // a second VMI on the same base
    const gc = async () =>
      JSON.parse(
        (await run(process.execPath, [TSVIRT, "image", "gc", "--cache-dir", o.cacheDir, "--max-bytes", "0"])).stdout,
      );
    assert.deepEqual((await gc()).removed, [], "everything is pinned");
    await puller.release("vmi-uid-1");
    assert.deepEqual((await gc()).removed, [y.digest], "only the image no VMI uses any more");
    assert.ok((await stat(x.path)).isFile());
    await assert.rejects(stat(y.path), { code: "ENOENT" });
    await unpinImage(o.cacheDir, "vmi-uid-2", x.digest);
    assert.deepEqual((await gc()).removed, [x.digest]);
    await assert.rejects(stat(x.path), { code: "ENOENT" });
    await assert.rejects(puller.pull("images.test/vm/disk:v1", "../escape"), /invalid pin owner/);
  });

  it("an aborted pull stops, keeps nothing unverified, and a later pull completes", async () => {
    const o = await opts();
    const ac = new AbortController();
    pA.onBlobBytes = (d, sent) => {
      if (d === layer && sent >= 1024 * 1024) ac.abort();
      return false;
    };
    await assert.rejects(pullContainerDisk("images.test/vm/disk:v1", { ...o, signal: ac.signal }), {
      name: "AbortError",
    });
    pA.onBlobBytes = undefined;
    await assert.rejects(stat(join(o.cacheDir, "blobs", "sha256", layer.slice(7))), { code: "ENOENT" });
    const res = await pullContainerDisk("images.test/vm/disk:v1", o);
    assert.deepEqual(await readFile(res.diskPath), rawBytes);
  });

  it("tsvirt image build/push/pull work from the command line, with progress lines off a terminal", async () => {
    const cache = await fresh();
    const conf = join(work, "registries.conf");
    await writeFile(conf, confText);
    const b = await run(process.execPath, [
      TSVIRT,
      "image",
      "build",
      "--disk",
      rawDisk,
      "--cache-dir",
      cache,
      "--push",
      `${B.host}/vm/cli:v1`,
    ]);
    const built = JSON.parse(b.stdout);
    assert.equal(built.pushed[0].ref, `${B.host}/vm/cli:v1`);
    const p = await run(process.execPath, [
      TSVIRT,
      "image",
      "push",
      built.manifestDigest,
      `${A.host}/vm/cli:v1`,
      "--cache-dir",
      cache,
    ]);
    assert.equal(JSON.parse(p.stdout).pushed[0].uploaded, 2);
    const pull = await run(process.execPath, [
      TSVIRT,
      "image",
      "pull",
      "images.test/vm/cli:v1",
      "--cache-dir",
      await fresh(),
      "--registries-conf",
      conf,
    ]);
    const res = JSON.parse(pull.stdout);
    assert.equal(res.manifestDigest, built.manifestDigest);
    assert.deepEqual(await readFile(res.diskPath), rawBytes);
    const lines = pull.stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.ok(
      lines.some((l) => l.msg === "transfer done" && l.completedBytes === l.totalBytes && l.totalBytes > layerSize),
    );
    await assert.rejects(
      run(process.execPath, [
        TSVIRT,
        "image",
        "pull",
        "images.test/vm/nothere:v1",
        "--cache-dir",
        cache,
        "--registries-conf",
        conf,
      ]),
      (e: { code?: number; stderr?: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr ?? "", /Error: Failed to pull image "images.test\/vm\/nothere:v1"/);
        assert.match(e.stderr ?? "", new RegExp(`${pA.host}/vm/nothere: notFound`));
        return true;
      },
    );
  });
});
