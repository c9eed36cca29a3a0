// The importer's sources end to end against real servers on loopback: an HTTP server (qcow2.gz, raw.xz, checksums,
// a 404, a server that drops mid-way) and a real docker-registry behind a registry list whose first entry is down.
// (The registry half needs docker-registry: run under the e2e lock.)
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { buildContainerDisk, parseRegistriesConf, pushImage } from "../../images/index.js";
import { freePort, startRegistry, type TestRegistry } from "../../images/testing/registry.js";
import type { JobSource, WorkerJob } from "./job.js";
import { runImport } from "./main.js";

const run = promisify(execFile);
const MiB = 1 << 20;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("importer sources", () => {
  let dir = "";
  let raw: Buffer;
  let server: http.Server;
  let base = "";
  let reg: TestRegistry | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "importer-src-"));
    raw = Buffer.concat([randomBytes(MiB), Buffer.alloc(2 * MiB), randomBytes(MiB)]);
    await writeFile(join(dir, "disk.raw"), raw);
    await run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", join(dir, "disk.raw"), join(dir, "disk.qcow2")]);
    await run("sh", [
      "-c",
      `gzip -kc ${dir}/disk.qcow2 > ${dir}/disk.qcow2.gz && xz -kc ${dir}/disk.raw > ${dir}/disk.raw.xz`,
    ]);
    server = http.createServer(async (req, res) => {
      const name = (req.url ?? "/").slice(1);
      if (name === "drop") {
        // announces the whole file, sends a quarter, then drops the connection
        res.writeHead(200, { "content-length": String(raw.length) });
        res.write(raw.subarray(0, raw.length / 4), () => res.socket?.destroy());
        return;
      }
      const file = join(dir, name);
      const st = await stat(file).catch(() => undefined);
      if (!st || !/^[a-z.0-9]+$/.test(name)) {
        res.writeHead(404).end("not found");
        return;
      }
      res.writeHead(200, { "content-length": String(st.size) });
      createReadStream(file).pipe(res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.close();
    await reg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function job(source: JobSource, size = 8 * MiB): Promise<WorkerJob> {
    const id = randomBytes(4).toString("hex");
    const target = join(dir, `t-${id}.img`);
    await writeFile(target, Buffer.alloc(size, 0x55)); // dirty: a run starts clean
    return {
      version: 1,
      owner: { namespace: "default", name: `dv-${id}`, uid: id },
      target: { path: target, block: false, sizeBytes: size },
      source,
      progressFile: join(dir, `progress-${id}`),
      terminationLog: join(dir, `termination-${id}`),
      scratchDir: join(dir, `scratch-${id}`),
    };
  }

  async function checkSucceeded(j: WorkerJob): Promise<void> {
    const line = JSON.parse(await readFile(j.terminationLog, "utf8"));
    assert.equal(line.outcome, "Succeeded", JSON.stringify(line));
    assert.equal(line.bytes, raw.length);
    assert.equal(line.sha256, sha256(raw));
    const img = await readFile(j.target.path);
    assert.ok(img.subarray(0, raw.length).equals(raw), "the volume holds the image's bytes");
    assert.ok(img.subarray(raw.length).every((b) => b === 0));
    assert.equal(await readFile(j.progressFile, "utf8"), "100.0%");
  }

  for (const f of ["disk.qcow2.gz", "disk.raw.xz"]) {
    it(`http: ${f} with its checksum → Succeeded with the image's bytes`, async () => {
      const cs = `sha256:${sha256(await readFile(join(dir, f)))}`;
      const j = await job({ kind: "http", url: `${base}/${f}`, checksum: cs });
      const out = await runImport(j);
      assert.equal(out.outcome, "Succeeded", JSON.stringify(out));
      await checkSucceeded(j);
    });
  }

  it("http: a wrong checksum → Failed, fatal ChecksumMismatch naming both sums", async () => {
    const j = await job({ kind: "http", url: `${base}/disk.raw.xz`, checksum: `sha256:${"ab".repeat(32)}` });
    const out = await runImport(j);
    assert.equal(out.outcome, "Failed");
    assert.ok(out.outcome === "Failed" && out.fatal && out.reason === "ChecksumMismatch", JSON.stringify(out));
    assert.match(out.message, /expected abab/);
  });

  it("http: 404 → SourceNotFound (fatal); a server that drops mid-way → transient", async () => {
    const nf = await runImport(await job({ kind: "http", url: `${base}/nothing.img` }));
    assert.ok(nf.outcome === "Failed" && nf.fatal && nf.reason === "SourceNotFound", JSON.stringify(nf));
    const dropped = await runImport(await job({ kind: "http", url: `${base}/drop` }));
    assert.ok(dropped.outcome === "Failed" && !dropped.fatal, JSON.stringify(dropped));
    const refused = await runImport(await job({ kind: "http", url: `http://127.0.0.1:${await freePort()}/x` }));
    assert.ok(refused.outcome === "Failed" && !refused.fatal, JSON.stringify(refused));
  });

  it("http: larger than the claim → ImageTooLarge (fatal); an invalid job source → InvalidSource (fatal)", async () => {
    const big = await runImport(await job({ kind: "http", url: `${base}/disk.qcow2.gz` }, 2 * MiB));
    assert.ok(big.outcome === "Failed" && big.fatal && big.reason === "ImageTooLarge", JSON.stringify(big));
    const inv = await runImport(await job({ kind: "invalid", message: "spec.source.s3 is not imported" }));
    assert.ok(inv.outcome === "Failed" && inv.fatal && inv.reason === "InvalidSource", JSON.stringify(inv));
  });

  it("blank: a clean target of the claim's size", async () => {
    const j = await job({ kind: "blank" });
    assert.equal((await runImport(j)).outcome, "Succeeded");
    const img = await readFile(j.target.path);
    assert.equal(img.length, 8 * MiB);
    assert.ok(img.every((b) => b === 0));
  });

  it("registry: the first registry of the list down, the second serving → Succeeded (qcow2 and raw)", async () => {
    reg = await startRegistry();
    const dead = `127.0.0.1:${await freePort()}`;
    for (const f of ["disk.qcow2", "disk.raw"]) {
      const built = await buildContainerDisk(join(dir, f), { cacheDir: join(dir, "build") });
      await pushImage(built.manifestDigest, [`${reg.host}/vm/${f.replace(".", "-")}:v1`], {
        cacheDir: join(dir, "build"),
      });
      const registries = parseRegistriesConf(
        [
          "[[registry]]",
          'prefix = "images.test/vm"',
          `location = "${reg.host}/vm"`,
          "[[registry.mirror]]",
          `location = "${dead}/vm"`,
          "",
        ].join("\n"),
      );
      const j = await job({ kind: "registry", image: `images.test/vm/${f.replace(".", "-")}:v1`, registries });
      const out = await runImport(j);
      assert.equal(out.outcome, "Succeeded", JSON.stringify(out));
      await checkSucceeded(j);
    }
    const registries = parseRegistriesConf(`[[registry]]\nprefix = "images.test/vm"\nlocation = "${reg.host}/vm"\n`);
    const missing = await runImport(await job({ kind: "registry", image: "images.test/vm/none:v1", registries }));
    assert.ok(
      missing.outcome === "Failed" && missing.fatal && missing.reason === "SourceNotFound",
      JSON.stringify(missing),
    );
  });
});
