// `virtctl image-upload` end to end through `tsvirt up`: a 512 MiB qcow2 (random data in parts, made with qemu-img)
// goes through the API server's upload proxy and the node agent to the upload server, which writes it into the
// DataVolume's tsvirt-local volume as raw. The crash cell: the upload server is kill -9'd mid-way, the command fails
// with the server's message, the DV controller brings a new upload pod (restartCount 1), and the same command again
// ends Succeeded with exactly the image's bytes in disk.img (compared with `qemu-img convert` of the source).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { volumeFile } from "../lib/storage.js";
import { collect, run, startCluster, until, VIRTCTL } from "../lib/up.js";

const DV = "upl";
const MIB = 1 << 20;

/** A 512 MiB raw disk with random data in parts (holes between), and its qcow2 made by qemu-img. */
async function makeImage(dir: string): Promise<{ raw: string; qcow2: string }> {
  const raw = join(dir, "src.raw");
  const qcow2 = join(dir, "src.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "raw", raw, "512M"]);
  const fh = await open(raw, "r+");
  try {
    // 6 parts of 48 MiB random data, 80 MiB apart: ~288 MiB of data nothing can compress or skip
    for (let i = 0; i < 6; i++) {
      for (let m = 0; m < 48; m++) {
        const buf = randomFillSync(Buffer.allocUnsafe(MIB));
        await fh.write(buf, 0, MIB, (i * 80 + m + 8) * MIB);
      }
    }
  } finally {
    await fh.close();
  }
  await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow2]);
  return { raw, qcow2 };
}

async function sha256(path: string, bytes: number): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { start: 0, end: bytes - 1 })) h.update(c as Buffer);
  return h.digest("hex");
}

/** Pids whose command line is `tsvirt uploadserver --job <a job below dir>`. */
async function uploadServers(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = (await readFile(`/proc/${d}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (cmd.includes("uploadserver") && cmd.some((a) => a.startsWith(dir) && a.endsWith("job.json")))
      out.push(Number(d));
  }
  return out;
}

describe("virtctl image-upload", () => {
  it("uploads a 512 MiB qcow2 with progress; a killed upload server, then the same command again, ends Succeeded with the right bytes", {
    timeout: 900_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER, "qemu-img");
    const c = await startCluster(t, { name: "upload", args: ["--node-storage", "3Gi"] });
    const work = join(tmpdir(), `tsv-upload-src-${process.pid}`);
    await run("mkdir", ["-p", work]);
    t.after(() => rm(work, { recursive: true, force: true }));
    const { raw, qcow2 } = await makeImage(work);
    const qsize = (await stat(qcow2)).size;
    assert.ok(qsize > 250 * MIB, `the qcow2 holds the random parts (${qsize} bytes)`);

    const args = ["image-upload", "dv", DV, "--size", "1Gi", "--image-path", qcow2, "--insecure"];
    // A file that is not a disk image is refused before anything is created.
    const bad = await run(
      process.execPath,
      [VIRTCTL, "image-upload", "dv", "nope", "--size", "1Gi", "--image-path", join(c.dir, "kubeconfig")],
      c.env,
    ).then(
      () => "",
      (e: Error) => e.message,
    );
    assert.match(bad, /is not a disk image/);
    assert.equal(await c.kubectl("get", "dv", "nope", "--ignore-not-found", "-o", "name"), "");

    // A DataVolume no node can hold: its Warning shows while virtctl waits (a watch of its events), --wait-secs runs
    // out with KubeVirt's error and not a byte sent, the process ends at once (no watch left open), the DV stays.
    const stuckStart = Date.now();
    const stuck = spawn(
      process.execPath,
      [
        VIRTCTL,
        "image-upload",
        "dv",
        "nofit",
        "--size",
        "100Gi",
        "--wait-secs",
        "3",
        "--image-path",
        qcow2,
        "--insecure",
      ],
      { env: c.env, stdio: ["ignore", "pipe", "pipe"] },
    );
    const stuckOut = collect(stuck, true);
    const stuckCode = await new Promise<number | null>((r) => stuck.once("exit", r));
    const stuckSecs = (Date.now() - stuckStart) / 1000;
    assert.equal(stuckCode, 1, stuckOut.text);
    assert.match(stuckOut.text, /Warning: (DataVolume|PersistentVolumeClaim) nofit: ErrNoRoom: /, stuckOut.text);
    assert.match(stuckOut.text, /Error: timed out waiting for the condition: .*nothing was sent/);
    assert.doesNotMatch(stuckOut.text, /Uploading/, "no progress bar after the deadline");
    assert.ok(stuckSecs < 8, `the command ends at --wait-secs (${stuckSecs.toFixed(1)} s)`);
    assert.match(await c.kubectl("get", "dv", "nofit", "-o", "name"), /nofit/, "the DataVolume stays");
    await c.kubectl("delete", "dv", "nofit");

    // First attempt: killed mid-way.
    const first = spawn(process.execPath, [VIRTCTL, ...args], { env: c.env, stdio: ["ignore", "pipe", "pipe"] });
    const firstOut = collect(first, true);
    const firstExit = new Promise<number | null>((r) => first.once("exit", r));
    const server = await until(
      "the upload server receiving data",
      300_000,
      async () => {
        for (const pid of await uploadServers(c.dir)) {
          const job = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").find((a) => a.endsWith("job.json"));
          // (the qcow2 streams into the volume: its progress file, written as the bytes arrive, says how far)
          const progress = await readFile(join(job ?? "", "..", "progress"), "utf8").catch(() => "");
          const pct = Number.parseFloat(progress);
          if (pct > 5) return { pid, pct };
        }
        return undefined;
      },
      20,
    );
    process.kill(server.pid, "SIGKILL");
    const code = await firstExit;
    assert.notEqual(code, 0, `the interrupted upload fails: ${firstOut.text}`);
    assert.match(firstOut.text, /Error: .+/);
    assert.equal(
      await c.kubectl("get", "dv", DV, "-o", "jsonpath={.status.phase}").then((p) => p === "Succeeded"),
      false,
    );

    // The DV controller counts the restart and brings a new upload pod; the same command again succeeds.
    await c.waitFor(`dv/${DV}`, "{.status.restartCount}", /^[1-9]/, 120_000);
    // (the bytes of the cut-short attempt are no progress of the volume: N/A until Succeeded, as CDI's)
    assert.equal(await c.kubectl("get", "dv", DV, "-o", "jsonpath={.status.progress}"), "N/A");
    t.diagnostic(`interrupted attempt: ${firstOut.text.trim().split("\n").pop()}`);
    const started = Date.now();
    const second = await run(process.execPath, [VIRTCTL, ...args], c.env, 600_000);
    const secs = (Date.now() - started) / 1000;
    t.diagnostic(
      `retry: ${(qsize / MIB).toFixed(0)} MiB qcow2 → Succeeded in ${secs.toFixed(1)} s (${(qsize / MIB / secs).toFixed(1)} MiB/s, command start to DV Succeeded)`,
    );
    assert.match(second, /Using existing DataVolume default\/upl/);
    assert.match(second, /Uploading \[[#.]+\] .*MiB/, "progress lines");
    assert.match(second, /Processing completed successfully/);
    assert.equal(await c.kubectl("get", "dv", DV, "-o", "jsonpath={.status.phase}"), "Succeeded");
    assert.equal(await c.kubectl("get", "dv", DV, "-o", "jsonpath={.status.progress}"), "100.0%");

    // The volume holds exactly the image: qemu-img convert of the source, then zeros to the claim's size.
    const { image: disk } = await volumeFile(c, DV);
    assert.equal((await stat(disk)).size, 2 ** 30);
    const expected = join(work, "expected.raw");
    await run("qemu-img", ["convert", "-q", "-f", "qcow2", "-O", "raw", qcow2, expected]);
    assert.equal(
      await sha256(disk, 512 * MIB),
      await sha256(expected, 512 * MIB),
      "disk.img = qemu-img convert of the qcow2",
    );
    assert.equal(await sha256(expected, 512 * MIB), await sha256(raw, 512 * MIB));
    await run("cmp", ["-i", `${512 * MIB}:0`, "-n", String(512 * MIB), disk, "/dev/zero"]).catch((e: Error) =>
      assert.fail(`the rest of the volume reads zeros: ${e.message}`),
    );
  });
});
