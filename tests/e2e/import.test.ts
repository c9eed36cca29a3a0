// DataVolume imports end to end through `tsvirt up --node-storage` (the importer pod on the node, its egress proxy,
// the sink): http imports of a qcow2.gz and a raw.xz from a loopback HTTP server with CDI's checksums end Succeeded
// with the image's bytes on the node's volume; a wrong checksum fails the DV naming it; the test guest imported from
// the registry list whose first registry is down ends Succeeded with the guest's disk; and a kill -9 of the importer
// while it converts a qcow2 import still ends Succeeded with the right bytes (a crash cell).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { open, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { freePort } from "../../images/testing/registry.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { dv } from "../lib/storage.js";
import { run, startCluster, until } from "../lib/up.js";

const exec = promisify(execFile);
const MiB = 2 ** 20;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Serves files of `dir` on loopback; `/slow/NAME` at ~bytesPerSec (to catch an import mid-way). */
async function fileServer(dir: string, bytesPerSec: number) {
  const state = { requests: 0, slowSent: 0 };
  const server = createServer(async (req, res) => {
    state.requests++;
    const slow = req.url?.startsWith("/slow/") ?? false;
    const name = (req.url ?? "").replace(/^\/(slow\/)?/, "");
    const data = /^[a-z0-9.]+$/.test(name) ? await readFile(join(dir, name)).catch(() => undefined) : undefined;
    if (!data) return void res.writeHead(404).end();
    res.writeHead(200, { "content-length": String(data.length) });
    if (!slow) return void res.end(data);
    state.slowSent = 0;
    let off = 0;
    const tick = () => {
      if (res.destroyed) return;
      const end = Math.min(off + 64 * 1024, data.length);
      res.write(data.subarray(off, end));
      state.slowSent = end;
      off = end;
      if (off >= data.length) res.end();
      else setTimeout(tick, ((64 * 1024) / bytesPerSec) * 1000);
    };
    tick();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { state, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

describe("DataVolume imports through tsvirt up", () => {
  it("http qcow2.gz/raw.xz with checksums, a wrong checksum, the registry list's first registry down, kill -9", {
    timeout: 900_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "imp", args: ["--node-storage", "4Gi"] });
    const { kubectl } = c;
    const node = c.nodes[0] ?? "";
    const volume = async (name: string): Promise<string> => {
      const pv = await kubectl("get", "pvc", name, "-o", "jsonpath={.spec.volumeName}");
      return join(c.dir, "nodes", node, "volumes", pv, "disk.img");
    };
    const volumeHead = async (name: string, n: number): Promise<Buffer> => {
      const fh = await open(await volume(name));
      try {
        const b = Buffer.alloc(n);
        await fh.read(b, 0, n, 0);
        return b;
      } finally {
        await fh.close();
      }
    };

    // the image: random data, a zero gap, random data (raw 24 MiB)
    const raw = Buffer.concat([randomBytes(12 * MiB), Buffer.alloc(8 * MiB), randomBytes(4 * MiB)]);
    await writeFile(join(c.dir, "disk.raw"), raw);
    await exec("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", join(c.dir, "disk.raw"), join(c.dir, "disk.qcow2")]);
    const d = c.dir;
    await exec("sh", [
      "-c",
      `gzip -c "${d}/disk.qcow2" > "${d}/disk.qcow2.gz" && xz -T1 -c "${d}/disk.raw" > "${d}/disk.raw.xz"`,
    ]);
    const sumOf = async (f: string) => `sha256:${sha256(await readFile(join(c.dir, f)))}`;
    const srv = await fileServer(c.dir, 1 * MiB);
    t.after(() => srv.close());

    // ---- http: qcow2.gz and raw.xz with checksums; a wrong checksum ----
    await c.apply(
      dv("qgz", { http: { url: `${srv.base}/disk.qcow2.gz`, checksum: await sumOf("disk.qcow2.gz") } }, "64Mi"),
    );
    await c.apply(
      dv("rxz", { http: { url: `${srv.base}/disk.raw.xz`, checksum: await sumOf("disk.raw.xz") } }, "64Mi"),
    );
    const bad = `sha256:${"0".repeat(64)}`;
    await c.apply(dv("badsum", { http: { url: `${srv.base}/disk.raw.xz`, checksum: bad } }, "64Mi"));
    for (const name of ["qgz", "rxz"]) {
      await c.waitFor(`dv/${name}`, "{.status.phase}", "Succeeded", 240_000);
      assert.ok((await volumeHead(name, raw.length)).equals(raw), `dv ${name}: the volume holds the image's bytes`);
      assert.equal(await kubectl("get", "dv", name, "-o", "jsonpath={.status.progress}"), "100.0%");
    }
    await c.waitFor("dv/badsum", "{.status.phase}", "Failed", 240_000);
    const cond = await kubectl("get", "dv", "badsum", "-o", `jsonpath={.status.conditions[?(@.type=="Running")]}`);
    assert.match(cond, /ChecksumMismatch/, `the DV names the reason: ${cond}`);
    assert.match(cond, /checksum mismatch: expected 0{64}/, `the DV's message names the checksum: ${cond}`);

    // ---- registry: the test guest through the node's registry list, its first registry down ----
    const dead = `127.0.0.1:${await freePort()}`;
    await c.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "tsvirt-registries", namespace: "kubevirt" },
      data: {
        "registries.conf": [
          "[[registry]]",
          `prefix = "${c.registry.host}/tsvirt"`,
          `location = "${c.registry.host}/tsvirt"`,
          "[[registry.mirror]]",
          `location = "${dead}/tsvirt"`,
          "",
        ].join("\n"),
      },
    });
    await c.apply(dv("guest", { registry: { url: `docker://${c.image}` } }, "1Gi"));
    await c.waitFor("dv/guest", "{.status.phase}", "Succeeded", 300_000);
    await exec("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", await volume("guest"), c.guest.qcow2]);

    // ---- crash cell: kill -9 of the importer mid-import (qcow2.gz, slowly served) ----
    await c.apply(
      dv("crash", { http: { url: `${srv.base}/slow/disk.qcow2.gz`, checksum: await sumOf("disk.qcow2.gz") } }, "64Mi"),
    );
    const gz = (await readFile(join(c.dir, "disk.qcow2.gz"))).length;
    await until("a third of the image sent", 60_000, async () => (srv.state.slowSent >= gz / 3 ? true : undefined));
    const ps = await run("ps", ["-eo", "pid=,args="]);
    const victims = ps
      .split("\n")
      .filter((l) => l.includes(c.dir) && / importer --job /.test(l))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
    assert.equal(victims.length, 1, `one importer process of this cluster:\n${ps}`);
    process.kill(victims[0] ?? 0, "SIGKILL");
    await c.waitFor("dv/crash", "{.status.restartCount}", /^[1-9]/, 120_000);
    await c.waitFor("dv/crash", "{.status.phase}", "Succeeded", 300_000);
    assert.ok(
      (await volumeHead("crash", raw.length)).equals(raw),
      "after the crash the volume holds the image's bytes",
    );
  });
});
