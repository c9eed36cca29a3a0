// npm run bench:images — container-disk pull time against `skopeo copy` of the same image from the same registry.
// One ~100 MB image of random data (does not compress), a real docker-registry on loopback behind a counting
// proxy (bytes are counted there, not by the client). Alternating runs of each; medians. The last line is JSON.
// pull_ms is timed inside a long-lived node process running the compiled pull code (as the node agent calls it);
// the `tsvirt image pull` figure includes process start, as skopeo's does.
import { execFile, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildContainerDisk, pushImage } from "../images/index.js";
import { startRegistry } from "../images/testing/registry.js";

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SIZE_MB = Number(process.env.BENCH_SIZE_MB ?? 100);
const TSVIRT = join(import.meta.dirname, "..", "dist", "cmd", "tsvirt.js");

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** The counting proxy in its own process; counters are read over messages. */
async function startProxyWorker(upstream: string) {
  const w = fork(join(import.meta.dirname, "images-proxy-worker.ts"), [upstream], { execArgv: ["--import", "tsx"] });
  let seq = 0;
  const waiting = new Map<number, (m: { host?: string; requests?: number; blobBytes?: number }) => void>();
  w.on("message", (m: { id: number; host?: string; requests?: number; blobBytes?: number }) => {
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  const call = (cmd: string) =>
    new Promise<{ host?: string; requests?: number; blobBytes?: number }>((resolve) => {
      const id = ++seq;
      waiting.set(id, resolve);
      w.send({ cmd, id });
    });
  const first = await new Promise<{ host?: string }>((resolve) => waiting.set(0, resolve));
  return {
    host: first.host!,
    reset: async () => void (await call("reset")),
    stats: async () => {
      const s = await call("stats");
      return { requests: s.requests ?? 0, blobBytes: s.blobBytes ?? 0 };
    },
    close: async () => {
      await call("close");
      w.disconnect();
    },
  };
}

/** A separate node process running the compiled pull code (as the node agent does); pulls are timed inside it. */
async function startPullRunner() {
  const w = fork(join(import.meta.dirname, "..", "dist", "images", "testing", "pull-runner.js"), [], { execArgv: [] });
  let seq = 0;
  type Reply = { id: number; ms?: number; virtualSize?: number; error?: string };
  const waiting = new Map<number, (m: Reply) => void>();
  w.on("message", (m: Reply) => {
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  await new Promise<Reply>((resolve) => waiting.set(0, resolve));
  return {
    pull: (ref: string, cacheDir: string) =>
      new Promise<Reply>((resolve) => {
        const id = ++seq;
        waiting.set(id, resolve);
        w.send({ id, ref, cacheDir });
      }),
    close: () => w.disconnect(),
  };
}

const work = await mkdtemp(join(tmpdir(), "tsvirt-bench-images-"));
const reg = await startRegistry({ dir: join(work, "registry") });
const proxy = await startProxyWorker(reg.host);
const runner = await startPullRunner();
try {
  const disk = join(work, "disk.img");
  await writeFile(disk, randomBytes(SIZE_MB * 1024 * 1024));
  const built = await buildContainerDisk(disk, { cacheDir: join(work, "build") });
  const ref = `${proxy.host}/bench/disk:v1`;
  await pushImage(built.manifestDigest, [ref], { cacheDir: join(work, "build") });
  const layerBytes = built.manifest.layers[0]!.size;
  const load = (): string =>
    loadavg()
      .map((x) => x.toFixed(1))
      .join(" ");
  console.log(`machine: ${cpus().length} cores, load average ${load()} at start`);
  console.log(
    `image: ${SIZE_MB} MiB random raw disk, layer ${(layerBytes / 1048576).toFixed(1)} MiB (gzip), ${RUNS} alternating runs`,
  );

  const ours: number[] = [];
  const oursBytes: number[] = [];
  const cli: number[] = [];
  const skopeo: number[] = [];
  const skopeoBytes: number[] = [];
  const cached: number[] = [];
  const cachedBytes: number[] = [];
  const cachedRequests: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    // ours: in a node process like the node agent (compiled code), into an empty cache; timed inside it
    const cacheDir = join(work, `cache-${i}`);
    await proxy.reset();
    const r = await runner.pull(ref, cacheDir);
    if (r.error || r.ms === undefined) throw new Error(`pull failed: ${r.error}`);
    ours.push(r.ms);
    oursBytes.push((await proxy.stats()).blobBytes);
    if (r.virtualSize !== SIZE_MB * 1024 * 1024) throw new Error("pulled disk has the wrong size");
    // cached pull of the same image (IfNotPresent: the tag is not latest), in the same process
    await proxy.reset();
    const c = await runner.pull(ref, cacheDir);
    cached.push(c.ms ?? Number.NaN);
    const st = await proxy.stats();
    cachedBytes.push(st.blobBytes);
    cachedRequests.push(st.requests);
    await rm(cacheDir, { recursive: true, force: true });
    // skopeo copy into an empty directory
    const out = join(work, `skopeo-${i}`);
    await proxy.reset();
    let t = performance.now();
    await run("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `dir:${out}`]);
    skopeo.push(performance.now() - t);
    skopeoBytes.push((await proxy.stats()).blobBytes);
    await rm(out, { recursive: true, force: true });
    // ours from the command line (process start included, like skopeo)
    const cliCache = join(work, `cli-${i}`);
    t = performance.now();
    await run(process.execPath, [TSVIRT, "image", "pull", ref, "--cache-dir", cliCache]);
    cli.push(performance.now() - t);
    await rm(cliCache, { recursive: true, force: true });
    console.log(
      `run ${i + 1}: pull ${ours[i]!.toFixed(0)} ms, skopeo ${skopeo[i]!.toFixed(0)} ms, cli pull ${cli[i]!.toFixed(0)} ms, cached ${cached[i]!.toFixed(1)} ms`,
    );
  }
  const pull_ms = median(ours);
  const skopeo_ms = median(skopeo);
  const cli_ms = median(cli);
  const cached_pull_ms = median(cached);
  console.log(
    `pull_ms          ${r1(pull_ms)} ms   vs skopeo copy ${r1(skopeo_ms)} ms   ratio ${r3(pull_ms / skopeo_ms)} (target <= 1.0)`,
  );
  console.log(
    `cli pull         ${r1(cli_ms)} ms   vs skopeo copy ${r1(skopeo_ms)} ms   ratio ${r3(cli_ms / skopeo_ms)} (process start included)`,
  );
  console.log(
    `blob bytes       ${median(oursBytes)}   vs skopeo ${median(skopeoBytes)}   ratio ${r3(median(oursBytes) / median(skopeoBytes))}`,
  );
  console.log(
    `cached_pull_ms   ${r1(cached_pull_ms)} ms   vs cold pull ${r1(pull_ms)} ms   ratio ${r3(cached_pull_ms / pull_ms)} (target < 100 ms)`,
  );
  console.log(`load average ${load()} at end (figures are medians of alternating runs)`);
  console.log(
    `cached pull      ${median(cachedBytes)} blob bytes, ${median(cachedRequests)} requests (target: 0 bytes)`,
  );
  console.log(
    JSON.stringify({
      bench: "images",
      pull_ms: r1(pull_ms),
      skopeo_ms: r1(skopeo_ms),
      ratio: r3(pull_ms / skopeo_ms),
      cached_pull_ms: r1(cached_pull_ms),
      cached_blob_bytes: median(cachedBytes),
    }),
  );
} finally {
  runner.close();
  await proxy.close();
  await reg.stop();
  await rm(work, { recursive: true, force: true });
}
