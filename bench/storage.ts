// npm run bench:storage — the storage data paths through `tsvirt up`, each figure beside its baseline from the same
// run, medians of BENCH_RUNS (default 3) alternating runs:
//  - registry import, request → DV Succeeded, vs by hand: `skopeo copy docker://… dir:` + extracting the layer +
//    `qemu-img convert -O raw` (target ratio ≤ 0.8; the time of a `sync` of the result is shown beside it);
//  - upload vs `curl -T` of the same file to a loopback PUT sink that writes and fsyncs (bench/put-sink.ts; target
//    ≥ 0.8× its MiB/s), two figures: the issue's, from the upload request (virtctl says it sends the bytes: the DV
//    exists and its upload pod is ready, as with KubeVirt's `virtctl image-upload --no-create`) → DV Succeeded; and the
//    whole command, `virtctl image-upload` spawned (it creates the DV) → DV Succeeded (upload_command_mib_s);
//  - clone on the same node, request → DV Succeeded, vs `cp --sparse=always` of the source's disk.img followed by a
//    `sync` of the copy (≤ 1.2×; the clone fsyncs before it is Succeeded, so the baseline's copy is made durable too);
//  - guest sequential write (dd oflag=direct, timed by the guest) on a DV disk vs a QEMU started by hand on the same
//    raw file with the same disk options (bench/storage-guest.ts; ≥ 0.9×); BENCH_GUEST_RUNS (default 7) pairs.
// The test image (bench/storage-image.ts): the test guest grown to 200 MiB, 184 MiB of it random, pushed twice to the
// loopback docker-registry as a containerDisk (gzip layer, `tsvirt image build`'s default): raw (the issue's figures:
// the importer streams it into the volume with no scratch copy) and qcow2 (figures beside them, *_qcow2_*: a qcow2
// is converted as it streams, storage/importer/qcow2-stream.ts, no scratch copy for qemu-img's layout). Uploads likewise send the raw file, then the qcow2 file.
// A figure whose tsvirt side is not in this tree prints "n/a (needs <branch>)" and is null in the JSON.
// BENCH_ONLY=import,upload,clone,guest (comma-separated) runs only those pairs (the others are null): quick profiles.
// BENCH_UPLOAD_TIMELINE=1 prints each upload's timeline (virtctl's steps, DV and upload pod transitions) in ms.
// Last line: one JSON object.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type KObject, loadConfig, RestClient, resources } from "../client/index.js";
import { CLUSTER, requirePrereqs } from "../tests/lib/prereqs.js";
import { type Cluster, qemuFor, ROOT, run, startCluster, TSVIRT, until, VIRTCTL } from "../tests/lib/up.js";
import { list, load, median, ms, r2 } from "./figures.js";
import { startPutSink } from "./put-sink.js";
import {
  blockdevFiles,
  type GuestShell,
  guestWrite,
  handQemuArgs,
  processArgv,
  startHandQemu,
} from "./storage-guest.js";
import { type BenchImage, IMAGE_BYTES, makeBenchImage } from "./storage-image.js";
import { runLines, uploadTimeline } from "./upload-timeline.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const NS = "default";
const MiB = 2 ** 20;
const CLAIM = "512Mi"; // import/upload/clone targets: room for the 200 MiB image
const GUEST_DISK = { size: "2Gi", sectors: (2 * 2 ** 30) / 512 };
const GUEST_WRITE_MIB = Number(process.env.BENCH_GUEST_WRITE_MIB ?? 512);
// A dd takes a second or two once both guests are up: more pairs for a steadier median on a shared, loaded host.
const GUEST_RUNS = Math.max(RUNS, Number(process.env.BENCH_GUEST_RUNS ?? 7));
const TARGET = { import: 0.8, upload: 0.8, clone: 1.2, guestWrite: 0.9 };
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",").map((x) => x.trim())) : undefined;
/** "skipped (BENCH_ONLY)" when BENCH_ONLY leaves this pair out, else undefined. */
const skipped = (pair: "import" | "upload" | "clone" | "guest"): string | undefined =>
  ONLY && !ONLY.has(pair) ? "skipped (BENCH_ONLY)" : undefined;
/** BENCH_UPLOAD_TIMELINE=1: each upload run also prints its timeline (bench/upload-timeline.ts). */
const TIMELINE = !!process.env.BENCH_UPLOAD_TIMELINE;
const IMMEDIATE = "cdi.kubevirt.io/storage.bind.immediate.requested";
/** Which tsvirt sides this tree has (each helper's component directory; see /work/brief/STORAGE-CONTRACT.md). */
const HAVE = {
  dv: existsSync(join(ROOT, "storage", "datavolume")),
  importer: existsSync(join(ROOT, "storage", "importer")),
  upload: existsSync(join(ROOT, "storage", "upload")),
  clone: existsSync(join(ROOT, "storage", "clone")),
};
type Branch = keyof typeof HAVE;
/** "n/a (needs …)" when a branch this figure needs is missing, else undefined. */
function needs(...branches: Branch[]): string | undefined {
  const missing = branches.filter((b) => !HAVE[b]);
  return missing.length > 0 ? `n/a (needs ${missing.join(", ")})` : undefined;
}

const run1 = (file: string, args: string[], timeout = 600_000): Promise<string> =>
  run(file, args, process.env, timeout);

/** Wall time of an async step, in ms. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

interface Dv extends KObject {
  status?: { phase?: string; progress?: string; conditions?: { type: string; reason?: string; message?: string }[] };
}

/**
 * Resolves with performance.now() at the moment the DV `name` was seen Succeeded (a watch, started before the
 * request so no event is missed); rejects when it goes Failed or after `timeoutMs`.
 */
function dvSucceeded(client: RestClient, name: string, timeoutMs: number): { at: Promise<number>; stop(): void } {
  let stop: () => void = () => {};
  const at = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      w.stop();
      reject(new Error(`DataVolume ${name} not Succeeded within ${timeoutMs} ms`));
    }, timeoutMs);
    const w = client.watch<Dv>(resources.datavolumes, NS, { fieldSelector: `metadata.name=${name}` }, (ev) => {
      if (ev.type !== "ADDED" && ev.type !== "MODIFIED") return;
      const o = ev.object as Dv;
      if (o.metadata.name !== name) return;
      const phase = o.status?.phase;
      if (phase === "Succeeded" || phase === "Failed") {
        clearTimeout(timer);
        w.stop();
        if (phase === "Succeeded") resolve(performance.now());
        else {
          const c = o.status?.conditions?.find((x) => x.type === "Running");
          reject(new Error(`DataVolume ${name} Failed: ${c?.reason ?? ""} ${c?.message ?? ""}`));
        }
      }
    });
    w.done.catch(() => {});
    stop = () => {
      clearTimeout(timer);
      w.stop();
    };
  });
  return { at, stop };
}

function dataVolume(name: string, source: Record<string, unknown>, size: string): Dv {
  return {
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: { name, namespace: NS, annotations: { [IMMEDIATE]: "true" } },
    spec: { source, storage: { resources: { requests: { storage: size } } } },
  } as Dv;
}

/** Creates a DV and resolves with request → Succeeded in ms. */
async function dvRun(client: RestClient, dv: Dv, timeoutMs = 600_000): Promise<number> {
  const name = dv.metadata.name ?? "";
  const done = dvSucceeded(client, name, timeoutMs);
  await new Promise((r) => setTimeout(r, 200)); // the watch is established before the request
  const t0 = performance.now();
  try {
    await client.create(resources.datavolumes, NS, dv);
  } catch (e) {
    done.stop();
    throw e;
  }
  return (await done.at) - t0;
}

/** The node's file behind a claim: `<data dir>/nodes/<node>/volumes/<pv>/disk.img`. */
async function claimFile(c: Cluster, client: RestClient, claim: string): Promise<{ path: string; pv: string }> {
  const pvc = await client.get<KObject & { spec?: { volumeName?: string } }>(resources.pvcs, NS, claim);
  const pv = pvc.spec?.volumeName;
  if (!pv) throw new Error(`claim ${claim} is not bound`);
  for (const node of c.nodes) {
    const path = join(c.dir, "nodes", node, "volumes", pv, "disk.img");
    if (existsSync(path)) return { path, pv };
  }
  throw new Error(`no node holds the volume ${pv} of claim ${claim}`);
}

/** The first `IMAGE_BYTES` of `file` are the image's raw bytes (cmp exits non-zero otherwise). */
async function sameData(file: string, img: BenchImage): Promise<void> {
  await run1("cmp", ["-n", String(IMAGE_BYTES), img.raw, file]);
}

async function deleteDv(client: RestClient, name: string): Promise<void> {
  await client.delete(resources.datavolumes, NS, name).catch(() => {});
  await client.delete(resources.pvcs, NS, name).catch(() => {});
}

// ---- the four pairs ----

interface Pair {
  tsvirt: number[];
  baseline: number[];
  /** Extra per-run figure: the import's a sync after its baseline, the upload's the whole command's MiB/s. */
  extra: number[];
}

/** The image in one format: the file (uploaded) and its containerDisk (imported). */
interface Variant {
  format: "raw" | "qcow2";
  file: string;
  fileBytes: number;
  ref: string;
}

/** The DV kept after the imports: the clone source. */
const CLONE_SOURCE = "imp-raw-0";

async function importPair(c: Cluster, client: RestClient, img: BenchImage, v: Variant, work: string): Promise<Pair> {
  const p: Pair = { tsvirt: [], baseline: [], extra: [] };
  const { ref } = v;
  for (let i = 0; i < RUNS; i++) {
    const name = `imp-${v.format}-${i}`;
    const t = await dvRun(client, dataVolume(name, { registry: { url: `docker://${ref}` } }, CLAIM));
    await sameData((await claimFile(c, client, name)).path, img);
    // By hand: the registry's image to a local directory, its one layer unpacked, the disk converted to raw.
    const dir = join(work, `import${i}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const out = join(dir, "disk.img");
    const b = await timed(async () => {
      await run1("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `dir:${join(dir, "oci")}`]);
      const manifest = JSON.parse(await readFile(join(dir, "oci", "manifest.json"), "utf8")) as {
        layers: { digest: string }[];
      };
      const layer = manifest.layers[0]?.digest.replace(/^sha256:/, "") ?? "";
      await run1("tar", ["-xf", join(dir, "oci", layer), "-C", dir]);
      const disk = existsSync(join(dir, "disk", "disk.qcow2")) ? "disk.qcow2" : "disk.img";
      await run1("qemu-img", ["convert", "-O", "raw", join(dir, "disk", disk), out]);
    });
    const s = await timed(() => run1("sync", [out]));
    await sameData(out, img);
    p.tsvirt.push(t);
    p.baseline.push(b);
    p.extra.push(s);
    console.log(
      `import ${v.format} run ${i + 1}/${RUNS}: tsvirt ${ms(t)}, by hand ${ms(b)} (+ sync ${ms(s)}); load ${load()}`,
    );
    await rm(dir, { recursive: true, force: true });
    if (name !== CLONE_SOURCE) await deleteDv(client, name);
  }
  return p;
}

async function uploadPair(c: Cluster, client: RestClient, img: BenchImage, v: Variant, work: string): Promise<Pair> {
  const p: Pair = { tsvirt: [], baseline: [], extra: [] };
  const sinkFile = join(work, "sink.img");
  const sink = await startPutSink(sinkFile);
  try {
    for (let i = 0; i < RUNS; i++) {
      const name = `up-${v.format}-${i}`;
      const done = dvSucceeded(client, name, 600_000);
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      const args = [VIRTCTL, "image-upload", "dv", name, "--size", CLAIM, "--image-path", v.file, "--insecure"];
      const tl = TIMELINE ? uploadTimeline(client, NS, name, t0) : undefined;
      // virtctl prints this line as the bytes go (the upload pod said go: 100 Continue or the redirect to the node)
      let sending: number | undefined;
      const onLine = (line: string): void => {
        if (sending === undefined && line.startsWith("Uploading data to ")) sending = performance.now();
      };
      await (tl
        ? tl.virtctl(process.execPath, args, c.env, onLine)
        : runLines(process.execPath, args, c.env, onLine)
      ).catch((e: unknown) => {
        done.stop();
        tl?.stop();
        throw e;
      });
      const end = await done.at;
      if (sending === undefined) throw new Error("virtctl never said it sends the bytes (Uploading data to …)");
      const t = end - sending;
      const whole = end - t0;
      if (tl) {
        await new Promise((r) => setTimeout(r, 300)); // the last events (pod deleted) arrive
        tl.stop();
        console.log(`upload ${v.format} run ${i + 1} timeline (ms): ${tl.text()}`);
      }
      await sameData((await claimFile(c, client, name)).path, img);
      const b = await timed(() => run1("curl", ["-sS", "--fail", "-T", v.file, sink.url, "-o", "/dev/null"]));
      p.tsvirt.push(mibs(v.fileBytes, t));
      p.baseline.push(mibs(v.fileBytes, b));
      p.extra.push(mibs(v.fileBytes, whole));
      console.log(
        `upload ${v.format} run ${i + 1}/${RUNS}: tsvirt request → Succeeded ${ms(t)} (${r2(mibs(v.fileBytes, t))} MiB/s), whole command ${ms(whole)} (${r2(mibs(v.fileBytes, whole))} MiB/s), curl -T ${ms(b)} (${r2(mibs(v.fileBytes, b))} MiB/s); load ${load()}`,
      );
      await deleteDv(client, name);
    }
  } finally {
    await sink.close();
    await rm(sinkFile, { force: true });
  }
  return p;
}

async function clonePair(c: Cluster, client: RestClient, img: BenchImage, work: string): Promise<Pair> {
  const p: Pair = { tsvirt: [], baseline: [], extra: [] };
  const source = await claimFile(c, client, CLONE_SOURCE);
  for (let i = 0; i < RUNS; i++) {
    const name = `cl${i}`;
    const t = await dvRun(client, dataVolume(name, { pvc: { namespace: NS, name: CLONE_SOURCE } }, CLAIM));
    await sameData((await claimFile(c, client, name)).path, img);
    const out = join(work, "clone.img");
    await rm(out, { force: true });
    const b = await timed(() => run1("cp", ["--sparse=always", source.path, out]));
    const s = await timed(() => run1("sync", [out]));
    p.extra.push(b);
    p.tsvirt.push(t);
    p.baseline.push(b + s);
    console.log(
      `clone run ${i + 1}/${RUNS}: tsvirt ${ms(t)}, cp --sparse=always + sync ${ms(b + s)} (cp ${ms(b)}, sync ${ms(s)}); load ${load()}`,
    );
    await rm(out, { force: true });
    await deleteDv(client, name);
  }
  return p;
}

/** Guest dd MiB/s in a tsvirt VM (its data disk a DV when the tree has dv + importer, else a PVC) vs QEMU by hand. */
async function guestWritePair(c: Cluster, client: RestClient): Promise<Pair & { disk: string }> {
  const p: Pair = { tsvirt: [], baseline: [], extra: [] };
  const claim = "gwdisk";
  const useDv = needs("dv", "importer") === undefined;
  if (useDv) {
    await dvRun(client, dataVolume(claim, { blank: {} }, GUEST_DISK.size));
  } else {
    await c.apply({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: claim, namespace: NS },
      spec: {
        storageClassName: "tsvirt-local",
        accessModes: ["ReadWriteOnce"],
        volumeMode: "Filesystem",
        resources: { requests: { storage: GUEST_DISK.size } },
      },
    });
  }
  const vmName = "gwvm";
  const vm = c.vm(vmName, { runStrategy: "Always", memory: "256Mi" }) as {
    spec: { template: { spec: { domain: { devices: { disks: unknown[] } }; volumes: unknown[] } } };
  };
  vm.spec.template.spec.domain.devices.disks.push({ name: "data", disk: { bus: "virtio" } });
  vm.spec.template.spec.volumes.push(
    useDv
      ? { name: "data", dataVolume: { name: claim } }
      : { name: "data", persistentVolumeClaim: { claimName: claim } },
  );
  await c.apply(vm);
  await c.waitFor(`vmi/${vmName}`, "{.status.phase}", "Running", 300_000);
  const uid = await c.kubectl("get", "vmi", vmName, "-o", "jsonpath={.metadata.uid}");
  const { pv } = await claimFile(c, client, claim);
  const con = c.console(vmName);
  await con.expect(new RegExp(c.guest.marker), 300_000);
  con.send("\n");
  const pid = await until("the VM's QEMU", 60_000, async () => (await qemuFor(uid))[0]);
  const argv = await processArgv(pid);
  // The file QEMU was given for the claim (the PV's disk.img, as the node prepared it).
  const file = blockdevFiles(argv).find((f) => f.includes(pv));
  if (!file) throw new Error(`the VM's QEMU has no file for volume ${pv}`);
  const handArgs = handQemuArgs(argv, file, c.guest.qcow2);
  console.log(`guest write: QEMU by hand: qemu-system-x86_64 ${handArgs.join(" ")}`);
  const hand = startHandQemu(handArgs);
  try {
    await until("the hand QEMU's guest ready", 300_000, async () =>
      hand.out.text.includes(c.guest.marker) ? true : undefined,
    );
    hand.send("\n");
    // Each dd starts with none of the file's pages dirty in the host's page cache (both QEMUs write through it:
    // libvirt's default cache mode), so no side pays for the other's writeback; the order alternates per pair.
    const write = async (sh: GuestShell, tag: string): Promise<number> => {
      await run1("sync", [file]);
      return guestWrite(sh, tag, GUEST_DISK.sectors, GUEST_WRITE_MIB);
    };
    // Warm-up, not counted: the first pass allocates the file's blocks; later passes overwrite them on both sides.
    await write(con, "GWT");
    await write(hand, "GWH");
    for (let i = 0; i < GUEST_RUNS; i++) {
      let t = 0;
      let b = 0;
      if (i % 2 === 0) {
        t = await write(con, `GWT${i}`);
        b = await write(hand, `GWH${i}`);
      } else {
        b = await write(hand, `GWH${i}`);
        t = await write(con, `GWT${i}`);
      }
      p.tsvirt.push(GUEST_WRITE_MIB / t);
      p.baseline.push(GUEST_WRITE_MIB / b);
      console.log(
        `guest write run ${i + 1}/${GUEST_RUNS}: tsvirt VM ${r2(GUEST_WRITE_MIB / t)} MiB/s (${t} s), QEMU by hand ${r2(GUEST_WRITE_MIB / b)} MiB/s (${b} s); load ${load()}`,
      );
    }
  } finally {
    await hand.kill();
    con.close();
    await c.kubectl("delete", "vm", vmName, "--wait=true", "--timeout=120s").catch(() => "");
  }
  return { ...p, disk: useDv ? "DataVolume (blank)" : "PVC (n/a DV: needs dv, importer)" };
}

const mibs = (bytes: number, msTaken: number): number => bytes / MiB / (msTaken / 1000);

// ---- main ----

async function main(): Promise<void> {
  requirePrereqs(...CLUSTER, "skopeo", "curl");
  const cleanups: (() => unknown)[] = [];
  // The e2e harness registers its teardown through t.after; the bench runs them in reverse order at the end.
  const t = { after: (fn: () => unknown) => void cleanups.push(fn) } as unknown as TestContext;
  const work = await mkdtemp(join(tmpdir(), "tsv-bench-storage-"));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  try {
    const c = await startCluster(t, { name: "stbench", args: ["--node-storage", "16Gi"] });
    const client = new RestClient({ ...loadConfig({ kubeconfig: c.kubeconfig }), userAgent: "storage-bench" });
    cleanups.push(() => client.close());

    console.log(
      "test image: the test guest grown to 200 MiB, random data after it; containerDisks of it raw and qcow2",
    );
    const img = await makeBenchImage(c.guest.qcow2, work);
    const variants: Variant[] = [];
    for (const [format, file] of [
      ["raw", img.raw],
      ["qcow2", img.qcow2],
    ] as const) {
      const ref = `${c.registry.host}/tsvirt/bench-disk:${format}`;
      await run1(
        process.execPath,
        [TSVIRT, "image", "build", "--cache-dir", join(work, "build-cache")].concat(["--disk", file, "--push", ref]),
      );
      const fileBytes = (await stat(file)).size;
      variants.push({ format, file, fileBytes, ref });
      console.log(`  ${ref}: ${format} file ${r2(fileBytes / MiB)} MiB (gzip layer)`);
    }
    console.log(`  virtual ${img.virtualBytes / MiB} MiB, random ${img.randomBytes / MiB} MiB`);
    const [raw, qcow2] = variants as [Variant, Variant];

    const na = {
      // (clone's source is the raw import: BENCH_ONLY=clone still runs that import)
      import: needs("dv", "importer") ?? (skipped("clone") ? skipped("import") : undefined),
      upload: needs("dv", "upload") ?? skipped("upload"),
      clone: needs("dv", "importer", "clone") ?? skipped("clone"),
      guest: skipped("guest"),
    };
    // A pair that fails is reported as failed (null in the JSON); the others still run.
    const failed: string[] = [];
    const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await fn();
      } catch (e) {
        const line = `${what}: FAILED: ${(e as Error).message.split("\n")[0]}`;
        console.log(line);
        failed.push(line);
        return undefined;
      }
    };
    const imp = na.import ? undefined : await attempt("import raw", () => importPair(c, client, img, raw, work));
    const impQ =
      na.import || skipped("import")
        ? undefined
        : await attempt("import qcow2", () => importPair(c, client, img, qcow2, work));
    const up = na.upload ? undefined : await attempt("upload raw", () => uploadPair(c, client, img, raw, work));
    const upQ = na.upload ? undefined : await attempt("upload qcow2", () => uploadPair(c, client, img, qcow2, work));
    const cl = na.clone || !imp ? undefined : await attempt("clone", () => clonePair(c, client, img, work));
    const gw = na.guest ? undefined : await attempt("guest write", () => guestWritePair(c, client));

    const figure = (pr: Pair | undefined, f: (pr: Pair) => number): number | null => (pr ? r2(f(pr)) : null);
    const ratio = (pr: Pair | undefined): number | null => figure(pr, (x) => median(x.tsvirt) / median(x.baseline));
    const out = {
      import_ms: figure(imp, (x) => Math.round(median(x.tsvirt))),
      import_baseline_ms: figure(imp, (x) => Math.round(median(x.baseline))),
      import_ratio: ratio(imp),
      upload_mib_s: figure(up, (x) => median(x.tsvirt)),
      upload_baseline_mib_s: figure(up, (x) => median(x.baseline)),
      upload_command_mib_s: figure(up, (x) => median(x.extra)),
      clone_ratio: ratio(cl),
      guest_write_ratio: ratio(gw),
      // Beside the figures: the qcow2 image (the importer converts it as it streams), the upload
      // ratio, and which disk the guest wrote.
      import_qcow2_ms: figure(impQ, (x) => Math.round(median(x.tsvirt))),
      import_qcow2_baseline_ms: figure(impQ, (x) => Math.round(median(x.baseline))),
      import_qcow2_ratio: ratio(impQ),
      upload_ratio: ratio(up),
      upload_qcow2_mib_s: figure(upQ, (x) => median(x.tsvirt)),
      upload_qcow2_baseline_mib_s: figure(upQ, (x) => median(x.baseline)),
      upload_qcow2_ratio: ratio(upQ),
      upload_qcow2_command_mib_s: figure(upQ, (x) => median(x.extra)),
      guest_write_disk: gw?.disk ?? null,
    };

    console.log("");
    console.log(`storage figures (medians of ${RUNS} alternating runs, this run's baselines):`);
    const importLine = (f: string, x: Pair | undefined): string =>
      x
        ? `  registry import (${f} image), request → DV Succeeded: ${ms(median(x.tsvirt))} (runs ${list(x.tsvirt)}); by hand (skopeo copy + tar -x + qemu-img convert -O raw) ${ms(median(x.baseline))} (runs ${list(x.baseline)}; a sync after it ${ms(median(x.extra))}); ratio ${ratio(x)} (target ≤ ${TARGET.import})`
        : `  registry import (${f} image): ${na.import ?? skipped("import") ?? "failed (below)"}`;
    const uploadLine = (f: string, x: Pair | undefined): string =>
      x
        ? `  upload (${f} file), upload request → DV Succeeded: ${r2(median(x.tsvirt))} MiB/s (runs ${list(x.tsvirt, r2)}); curl -T to a PUT sink that fsyncs ${r2(median(x.baseline))} MiB/s (runs ${list(x.baseline, r2)}); ratio ${ratio(x)} (target ≥ ${TARGET.upload}); the whole command (virtctl image-upload spawned, DV created → DV Succeeded) ${r2(median(x.extra))} MiB/s (runs ${list(x.extra, r2)}), ratio ${figure(x, (y) => median(y.extra) / median(y.baseline))}`
        : `  upload (${f} file): ${na.upload ?? "failed (below)"}`;
    console.log(importLine("raw", imp));
    console.log(importLine("qcow2", impQ));
    console.log(uploadLine("raw", up));
    console.log(uploadLine("qcow2", upQ));
    if (cl)
      console.log(
        `  clone (same node), request → DV Succeeded: ${ms(median(cl.tsvirt))} (runs ${list(cl.tsvirt)}); cp --sparse=always + sync of the copy ${ms(median(cl.baseline))} (runs ${list(cl.baseline)}; the cp alone ${ms(median(cl.extra))}); ratio ${out.clone_ratio} (target ≤ ${TARGET.clone})`,
      );
    else console.log(`  clone: ${na.clone ?? (imp ? "failed (below)" : "n/a (its source is the raw import)")}`);
    if (gw)
      console.log(
        `  guest sequential write (dd ${GUEST_WRITE_MIB} MiB oflag=direct, medians of ${GUEST_RUNS} pairs) on a ${gw.disk}: ${r2(median(gw.tsvirt))} MiB/s (runs ${list(gw.tsvirt, r2)}); QEMU by hand, same file and disk options ${r2(median(gw.baseline))} MiB/s (runs ${list(gw.baseline, r2)}); ratio ${out.guest_write_ratio} (target ≥ ${TARGET.guestWrite})`,
      );
    else if (na.guest) console.log(`  guest write: ${na.guest}`);
    for (const f of failed) console.log(`  ${f}`);
    console.log(JSON.stringify({ bench: "storage", ...out }));
  } finally {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  }
}

await main();
process.exit(0);
