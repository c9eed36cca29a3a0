// Storage crash cells (issue 11, item 6) on one `tsvirt up --nodes 2`: kill -9 of the worker process (importer,
// clone source, upload server), the node agents, the controller and the API server during each storage operation:
// an http import, a same-node clone, a cross-node clone, an upload (`virtctl image-upload`) and an offline expansion
// of a Block claim. One round per component; in a round every operation runs at once, each is held at its observed
// moment (its worker's progress file past 0 %: the worker is SIGSTOPped for the instant of the kill, so the kill
// lands mid-copy however fast the copy is, then continued; an expansion: after the PVC edit, before the PV grew), the
// component is killed, and each cell (one `it`) checks what a user checks: the DV ends Succeeded with the right bytes
// (sha256 of disk.img against the source), restartCount sane, exactly one PV per claim; once the cell's claims are
// deleted, nothing of them is left on the nodes (volumes dir, `losetup`, a process naming a volume: the agent's cp).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { isNodeCopy } from "../../storage/clone/index.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { dv, slowServer, volumeFile } from "../lib/storage.js";
import { type Cluster, collect, run, startCluster, until, VIRTCTL } from "../lib/up.js";
import { processes, restarted } from "./crash-lib.js";

const MiB = 2 ** 20;
const SELECTED = "volume.kubernetes.io/selected-node";
/** A cell that does not converge fails after this long, naming what it waited for. */
const CONVERGE_MS = 150_000;

type Component = "worker" | "agent" | "controller" | "api";
type Op = "import" | "clone-same" | "clone-cross" | "upload" | "expand";
const OPS: readonly Op[] = ["import", "clone-same", "clone-cross", "upload", "expand"];
const ROUNDS: readonly Component[] = ["worker", "agent", "controller", "api"];
const WORKER_OF: Record<Exclude<Op, "expand">, string> = {
  import: "the importer",
  "clone-same": "the node agent's cp (a same-node clone is the agent's own copy)",
  "clone-cross": "the clone source",
  upload: "the upload server",
};
const KILLED: Record<Component, string> = {
  worker: "the worker",
  agent: "the node agents",
  controller: "the controller",
  api: "the API server",
};

interface KPod {
  metadata: { name: string; uid: string };
  spec?: { nodeName?: string };
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

/** sha256 of `data` followed by zeros up to `size` bytes (a volume holding it). */
function sha256Padded(data: Buffer, size: number): string {
  const h = createHash("sha256").update(data);
  const zeros = Buffer.alloc(MiB);
  for (let left = size - data.length; left > 0; left -= MiB) h.update(zeros.subarray(0, Math.min(MiB, left)));
  return h.digest("hex");
}

const kill = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
};

/** Whether a process is stopped (SIGSTOP took): state T in /proc/PID/stat; false once it exited (gone or zombie). */
const isStopped = async (pid: number): Promise<boolean> => {
  for (let i = 0; i < 50; i++) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "T" || state === "t") return true;
    if (!stat || state === "Z" || state === "X") return false;
    await new Promise((r) => setTimeout(r, 2));
  }
  return false;
};

/** One round's state shared by its cells. */
interface RoundState {
  /** Per op, what the cell's check needs. */
  done: Map<
    Op,
    { dv: string; pvc: string; note: string; upload?: Upload; error?: Error; copier?: number; outlived?: boolean }
  >;
  error?: Error;
  /** What the round did (kills, pids), shown by each cell. */
  log: string[];
  /** Pod network namespaces before the round (the test's own: e2e files run one at a time). */
  netnsBefore?: Set<string>;
}

interface Upload {
  child: ChildProcess;
  out: { text: string };
  exit: Promise<number | null>;
}

describe("storage crash cells: kill -9 of the worker, node agent, controller, API server during import, clone, upload, expansion", () => {
  let c: Cluster;
  let n1 = "";
  let n2 = "";
  let base = "";
  const cleanups: (() => unknown)[] = [];
  // the sources
  const image = Buffer.concat([randomBytes(12 * MiB), Buffer.alloc(4 * MiB), randomBytes(4 * MiB)]);
  const IMPORT_SIZE = 64 * MiB;
  const importSha = sha256Padded(image, IMPORT_SIZE);
  const CLONE_SIZE = 256 * MiB;
  let cloneSha = "";
  const upload = randomBytes(64 * MiB);
  const UPLOAD_SIZE = 128 * MiB;
  const uploadSha = sha256Padded(upload, UPLOAD_SIZE);
  let uploadPath = "";
  const EXP_TO = 96 * MiB;
  const expMark = randomBytes(MiB);

  const getPod = async (name: string): Promise<KPod | undefined> => {
    const r = await fetch(`${base}/api/v1/namespaces/default/pods/${name}`).catch(() => undefined);
    return r?.ok ? ((await r.json()) as KPod) : undefined;
  };

  before(async () => {
    requirePrereqs(...CLUSTER);
    const ctx = { after: (fn: () => unknown) => cleanups.push(fn) } as unknown as TestContext;
    c = await startCluster(ctx, { name: "scrash", nodes: 2, args: ["--node-storage", "3Gi"] });
    [n1 = "", n2 = ""] = c.nodes;
    base = `http://127.0.0.1:${c.port}`;
    uploadPath = join(tmpdir(), `tsv-scrash-upload-${process.pid}.raw`);
    await writeFile(uploadPath, upload);
    cleanups.push(() => rm(uploadPath, { force: true }));
    // The clone source: a blank DV on the first node, random runs written into its volume.
    await c.apply(withAnnotations(dv("src", { blank: {} }, "256Mi"), { [SELECTED]: n1 }));
    await c.waitFor("dv/src", "{.status.phase}", "Succeeded", 120_000);
    const src = await volumeFile(c, "src");
    const fh = await open(src.image, "r+");
    try {
      for (const [at, len] of [
        // ~180 MiB of data: a same-node cp of it runs long enough to be caught mid-copy
        [0, 128 * MiB],
        [160 * MiB + 4096 + 17, 48 * MiB],
        [CLONE_SIZE - 4096, 4096],
      ] as const)
        await fh.write(randomBytes(len), 0, len, at);
      await fh.sync();
    } finally {
      await fh.close();
    }
    cloneSha = await sha256File(src.image);
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  const podDir = (pod: KPod) =>
    join(c.dir, "nodes", pod.spec?.nodeName ?? "", "pods", pod.metadata.uid.replaceAll("-", "").slice(0, 16));

  /** The pid of the worker process running in the pod's directory (`tsvirt <role> --job <pod dir>/job.json`). */
  const workerPid = async (pod: KPod): Promise<number | undefined> => {
    const job = join(podDir(pod), "job.json");
    const isWorker = (argv: string[]) => /tsvirt\.js$/.test(argv[1] ?? "") && argv[3] === "--job" && argv[4] === job;
    // the pod runner's record names the process it started: read first (a copy may end within a /proc scan)
    const rec = await readFile(join(podDir(pod), "pod.json"), "utf8").then(
      (t) => (JSON.parse(t) as { pid?: number }).pid,
      () => undefined,
    );
    if (rec) {
      const argv = (await readFile(`/proc/${rec}/cmdline`, "utf8").catch(() => "")).split("\0");
      if (isWorker(argv)) return rec;
    }
    const ps = await processes();
    const pid = ps.find((p) => isWorker(p.argv))?.pid;
    if (pid === undefined)
      throw new Error(
        `no worker process with --job ${job} (it ended?); workers: ${ps
          .filter((p) => p.argv.includes("--job"))
          .map((p) => `${p.pid}:${p.argv.slice(2, 5).join(" ")}`)
          .join(" | ")}`,
      );
    return pid;
  };

  /** Children of a process (all its threads'), with their command lines. */
  const childrenOf = async (pid: number): Promise<{ pid: number; argv: string[] }[]> => {
    const out: { pid: number; argv: string[] }[] = [];
    for (const task of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
      const kids = await readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch(() => "");
      for (const k of kids.split(" ").filter(Boolean)) {
        const argv = (await readFile(`/proc/${k}/cmdline`, "utf8").catch(() => "")).split("\0").filter(Boolean);
        out.push({ pid: Number(k), argv });
      }
    }
    return out;
  };

  interface Moment {
    /** The process copying the bytes (held by SIGSTOP for the instant of a kill). */
    copier: number;
    /** The worker the worker round kills: the copier, or a cross clone's source. */
    worker: number;
    /** How far the copy was. */
    at: string;
  }

  /**
   * The op's observed moment, mid-copy: a worker's progress file past 0 % (importer, upload server, a cross clone's
   * target importer), or for a same-node clone the node agent's `cp` running with bytes in the target. Fails clearly
   * if the copy ended before its moment was seen.
   */
  const moment = async (op: Op, name: string): Promise<Moment> => {
    if (op === "clone-same") {
      // The claim's PV is pvc-<claim uid> (known before it exists: the copy may start the moment it does).
      const uid = await until(
        `${name}'s claim`,
        CONVERGE_MS,
        async () => {
          const r = await fetch(`${base}/api/v1/namespaces/default/persistentvolumeclaims/${name}`);
          return r.ok ? ((await r.json()) as { metadata: { uid: string } }).metadata.uid : undefined;
        },
        10,
      );
      const target = join(c.dir, "nodes", n1, "volumes", `pvc-${uid}`, "disk.img");
      const agent = await c.pid(`handler-${n1}`);
      let seen = 0;
      return untilOk(
        `${name}: the node agent's cp writing the target`,
        CONVERGE_MS,
        async () => {
          // The target's blocks before the look for cp: a cp that starts between the two is not taken for one gone.
          const before = await stat(target).catch(() => undefined);
          const cp = (await childrenOf(agent)).find((p) => p.argv[0] === "cp" && p.argv.includes(target));
          const st = cp ? await stat(target).catch(() => undefined) : before;
          if (!cp) {
            const why = "ended before it was seen mid-copy: make the source bigger";
            return seen === 0 && !st?.blocks
              ? undefined
              : new Error(`${name}: the copy (cp ${seen || "unseen"}) ${why}`);
          }
          seen = cp.pid;
          if (!st?.blocks) return undefined;
          // Held before it is handed on: a fast cp could otherwise finish between this look and the kill (a kill
          // that lands on nothing). Stopped means alive: a cp that ended meanwhile is looked for again.
          kill(cp.pid, "SIGSTOP");
          if (!(await isStopped(cp.pid))) return undefined;
          const held = await stat(target).catch(() => undefined);
          const mib = (((held ?? st).blocks ?? 0) * 512) / MiB;
          return { copier: cp.pid, worker: cp.pid, at: `${mib.toFixed(1)} MiB written (cp held)` };
        },
        5,
      );
    }
    const podName = op === "upload" ? `cdi-upload-${name}` : `importer-${name}`;
    let seen: KPod | undefined;
    const pod = await untilOk(
      `${op} ${name}: its worker reporting progress past 0 %`,
      CONVERGE_MS,
      async () => {
        const pod = await getPod(podName);
        if (!pod?.spec?.nodeName) return undefined;
        seen = pod;
        const p = await readFile(join(podDir(pod), "progress"), "utf8").catch(() => "");
        const pct = Number.parseFloat(p);
        if (!(pct > 0)) return undefined;
        return pct < 100 ? pod : new Error(`${op} ${name} ended (${p}) before it was seen mid-copy: make it bigger`);
      },
      20,
    ).catch((e: Error) => {
      throw new Error(`${e.message} (last pod seen: ${seen?.metadata.uid ?? "none"})`);
    });
    const at = await readFile(join(podDir(pod), "progress"), "utf8").catch(() => "?");
    const copier = await workerPid(pod);
    assert.ok(copier, `${op} ${name}: its worker process runs at its moment (${at})`);
    if (op !== "clone-cross") return { copier, worker: copier, at };
    const uid = await c.kubectl("get", "dv", name, "-o", "jsonpath={.metadata.uid}");
    const source = await getPod(`${uid}-source-pod`);
    const worker = source ? await workerPid(source) : undefined;
    assert.ok(worker, `${name}: the clone source's process runs while its target copies (${at})`);
    return { copier, worker, at };
  };

  /** Starts the op's DV (or upload) for a round; the expansion claim is made ready for its edit. */
  const startOp = async (round: Component, op: Op): Promise<{ dv: string; pvc: string; upload?: Upload }> => {
    const name = `${round.slice(0, 4)}-${op}`;
    if (op === "import") {
      const srv = await slowServer(image, 6 * MiB);
      cleanups.push(() => srv.close());
      await c.apply(withAnnotations(dv(name, { http: { url: srv.url } }, "64Mi"), { [SELECTED]: n2 }));
    } else if (op === "clone-same" || op === "clone-cross") {
      const m = dv(name, { pvc: { namespace: "default", name: "src" } }, "256Mi");
      await c.apply(withAnnotations(m, { [SELECTED]: op === "clone-same" ? n1 : n2 }));
    } else if (op === "upload") {
      const child = spawn(process.execPath, [VIRTCTL, ...uploadArgs(name)], {
        env: c.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      cleanups.push(() => child.kill("SIGKILL"));
      const out = collect(child, true);
      const exit = new Promise<number | null>((r) => child.once("exit", r));
      return { dv: name, pvc: name, upload: { child, out, exit } };
    } else {
      const m = withAnnotations(dv(name, { blank: {} }, "64Mi"), { [SELECTED]: n2 }) as {
        spec: { storage: Record<string, unknown> };
      };
      m.spec.storage.volumeMode = "Block";
      await c.apply(m);
      await c.waitFor(`dv/${name}`, "{.status.phase}", "Succeeded", CONVERGE_MS);
      const vol = await volumeFile(c, name);
      const fh = await open(vol.image, "r+");
      try {
        await fh.write(expMark, 0, expMark.length, 0);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    return { dv: name, pvc: name };
  };

  const uploadArgs = (name: string) => [
    "image-upload",
    "dv",
    name,
    "--size",
    "128Mi",
    "--image-path",
    uploadPath,
    "--insecure",
  ];

  const patchSize = (pvc: string, size: string) =>
    c.kubectl(
      "patch",
      "pvc",
      pvc,
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { resources: { requests: { storage: size } } } }),
    );
  const pvCapacity = async (pvc: string) => {
    const pv = await c.kubectl("get", "pvc", pvc, "-o", "jsonpath={.spec.volumeName}");
    return c.kubectl("get", "pv", pv, "-o", "jsonpath={.spec.capacity.storage}");
  };

  /** Runs a round up to (and including) the kill; the cells' checks follow in their own `it`s. */
  const runRound = async (round: Component, st: RoundState): Promise<void> => {
    /** A cell whose moment was not seen fails on its own; the round goes on for the others. */
    const failed = (op: Op) => (e: Error) => {
      const d = st.done.get(op);
      const said = d?.upload ? ` (virtctl image-upload said: ${d.upload.out.text.trim().slice(-600)})` : "";
      if (d) d.error = new Error(`${e.message}${said}`);
      return undefined;
    };
    const note = (op: Op, s: string) => {
      const d = st.done.get(op);
      if (d) d.note += `${d.note ? "; " : ""}${s}`;
    };
    // The expansion's claim is made (and written) first: the copies are watched from the moment each starts.
    if (round !== "worker") st.done.set("expand", { ...(await startOp(round, "expand")), note: "" });
    const copies = OPS.filter((op) => op !== "expand");
    /** Starts each copy and waits for its moment; `at` kills or holds it there. */
    const eachAtMoment = (at: (op: Op, m: Moment) => void) =>
      Promise.all(
        copies.map(async (op) => {
          for (let attempt = 1; ; attempt++) {
            const s = await startOp(round, op);
            st.done.set(op, { ...s, note: "" });
            const m = await moment(op, s.dv).catch((e: Error) => e);
            if (!(m instanceof Error)) {
              if (attempt > 1) note(op, `its moment seen at attempt ${attempt}`);
              at(op, m);
              return;
            }
            // A same-node cp (~180 MiB from the page cache) can start and end between two looks: the cell's moment
            // was not seen, nothing was killed, so the clone is made again (bounded); other misses fail the cell.
            if (op !== "clone-same" || attempt >= 3 || !/ended before it was seen/.test(m.message)) {
              failed(op)(m);
              return;
            }
            await deleteCell(s.dv);
          }
        }),
      );

    if (round === "worker") {
      // each worker killed at its own moment
      await eachAtMoment((op, m) => {
        kill(m.worker, "SIGKILL");
        note(op, `killed ${WORKER_OF[op as Exclude<Op, "expand">]} (pid ${m.worker}) at ${m.at}`);
      });
      return;
    }

    // Hold every copy at its moment (SIGSTOP of its copying process), so one kill lands mid-way in all of them.
    const held: number[] = [];
    const release = () => {
      for (const p of held.splice(0)) kill(p, "SIGCONT");
    };
    try {
      await eachAtMoment((op, m) => {
        kill(m.copier, "SIGSTOP");
        held.push(m.copier);
        const d = st.done.get(op);
        if (d) d.copier = m.copier;
        note(op, `${KILLED[round]} killed at ${m.at}`);
      });

      const exp = st.done.get("expand")?.pvc ?? "";
      const victims: [string, number, string][] =
        round === "agent"
          ? await Promise.all(
              c.nodes.map(async (n) => [`handler-${n}`, await c.pid(`handler-${n}`), n] as [string, number, string]),
            )
          : [[round, await c.pid(round), n1]];
      if (round === "agent") {
        // the expansion's node agent held before the edit; the kill comes once the controller grew the PV
        const agent = await c.pid(`handler-${n2}`);
        kill(agent, "SIGSTOP");
        held.push(agent);
        await patchSize(exp, "96Mi");
        await until(`PV of ${exp} grown by the controller`, 60_000, async () =>
          (await pvCapacity(exp)) === "96Mi" ? true : undefined,
        );
        note("expand", "node agent killed after the PV grew, before the node grew the volume");
      } else {
        // the controller held: the edit is accepted, the PV cannot grow before the kill
        const ctl = await c.pid("controller");
        kill(ctl, "SIGSTOP");
        held.push(ctl);
        await patchSize(exp, "96Mi");
        assert.equal(await pvCapacity(exp), "64Mi", "the PV has not grown at the kill");
        note("expand", `${KILLED[round]} killed after the PVC edit, before the PV grew`);
      }
      for (const [, pid] of victims) kill(pid, "SIGKILL");
      st.log.push(`killed ${victims.map(([v, p]) => `${v} (${p})`).join(", ")}`);
      const same = st.done.get("clone-same");
      if (round === "agent" && same?.copier) {
        // The agent's cp dies with it (PR_SET_PDEATHSIG), still held: an orphan would wait for its SIGCONT and then
        // write on into the target the restarted agent copies again. (10 s: a loaded machine's slow exit; the
        // restarted agent would kill a survivor too.)
        const t0 = Date.now();
        same.outlived = !(await copyGone(same.copier, 10_000));
        note(
          "clone-same",
          `the killed agent's cp (pid ${same.copier}) ${same.outlived ? "outlived it" : `died with it in ${Date.now() - t0} ms`}`,
        );
      }
      release();
      for (const [comp, pid, node] of victims) await restarted(c, comp, pid, node);
    } finally {
      release();
    }
  };

  /** The DV's Warning events (each retry's reason), oldest first: what a restart count is made of. */
  const failureEvents = async (dv: string): Promise<string> => {
    const out = await c.kubectl("get", "events", "-o", "json").catch((e: Error) => `{"items":[],"err":"${e.message}"}`);
    type Ev = { involvedObject?: { name?: string }; type?: string; reason?: string; message?: string };
    const items = (JSON.parse(out) as { items: Ev[] }).items;
    return items
      .filter((e) => e.involvedObject?.name === dv && e.type === "Warning")
      .map((e) => `${e.reason}: ${e.message}`)
      .join(" | ");
  };

  /** The cell's check: converged, right bytes, sane restarts, one PV; then deleted and nothing of it left. */
  const checkCell = async (t: TestContext, round: Component, op: Op, st: RoundState): Promise<void> => {
    if (st.error) throw new Error(`the round failed before the cell could be checked: ${st.error.message}`);
    const d = st.done.get(op);
    assert.ok(d, `the cell ${round} × ${op} was started`);
    if (d.error) {
      await deleteCell(d.dv);
      throw new Error(`no kill at the cell's moment: ${d.error.message}`);
    }
    t.diagnostic(`${st.log.join("; ")}; ${d.note}`);
    try {
      if (op === "expand") {
        await c.waitFor(`pvc/${d.pvc}`, "{.status.capacity.storage}", "96Mi", CONVERGE_MS);
        assert.equal(await pvCapacity(d.pvc), "96Mi");
        await c.waitFor(`pvc/${d.pvc}`, "{.status.conditions}", "", 30_000);
        const vol = await volumeFile(c, d.pvc);
        assert.equal((await stat(vol.image)).size, EXP_TO, "disk.img grew to the new size");
        const fh = await open(vol.image, "r");
        try {
          const got = Buffer.alloc(expMark.length);
          await fh.read(got, 0, got.length, 0);
          assert.ok(got.equals(expMark), "the data written before the expansion is still there");
        } finally {
          await fh.close();
        }
        const loops = await loopsOf(vol.image);
        assert.ok(loops.length <= 1, `at most one loop device over the Block volume: ${loops}`);
        for (const l of loops)
          assert.equal(Number((await run("blockdev", ["--getsize64", l])).trim()), EXP_TO, `${l} has the new size`);
      } else {
        if (op === "upload") await finishUpload(t, d.dv, d.upload);
        await untilOk(
          `DV ${d.dv} Succeeded`,
          CONVERGE_MS,
          async () => {
            const ph = await c.kubectl("get", "dv", d.dv, "-o", "jsonpath={.status.phase}");
            if (ph === "Failed")
              return new Error(
                `DV ${d.dv} Failed: ${await c.kubectl("get", "dv", d.dv, "-o", "jsonpath={.status.conditions}")}`,
              );
            return ph === "Succeeded" ? true : undefined;
          },
          300,
        );
        assert.equal(await c.kubectl("get", "dv", d.dv, "-o", "jsonpath={.status.progress}"), "100.0%");
        const restarts = Number(await c.kubectl("get", "dv", d.dv, "-o", "jsonpath={.status.restartCount}"));
        t.diagnostic(`restartCount ${restarts}`);
        if (restarts > 0) t.diagnostic(`why it retried: ${await failureEvents(d.dv)}`);
        if (round === "worker") assert.ok(restarts >= 1, `the killed worker counted as a restart (${restarts})`);
        assert.ok(restarts <= 1, `restartCount ${restarts}: one kill costs at most one retry`);
        const vol = await volumeFile(c, d.pvc);
        const want = op === "import" ? importSha : op === "upload" ? uploadSha : cloneSha;
        const size = op === "import" ? IMPORT_SIZE : op === "upload" ? UPLOAD_SIZE : CLONE_SIZE;
        assert.equal((await stat(vol.image)).size, size, "disk.img has the claim's size");
        assert.equal(await sha256File(vol.image), want, "disk.img holds the source's bytes, zeros after");
        if (op === "clone-same") {
          assert.equal(vol.node, n1);
          assert.ok(!d.outlived, `the killed agent's cp (pid ${d.copier}) died with it, before it was let go on`);
          // Converged means nobody copies into the target any more: neither the cp of a killed agent (orphaned, it
          // would go on writing a volume now in use) nor another.
          const copies = await nodeCopies();
          assert.deepEqual(copies, [], `no same-node cp left running once ${d.dv} is Succeeded (killed: ${d.copier})`);
        }
        if (op === "clone-cross") assert.equal(vol.node, n2);
        // the worker pods (a cross clone's source pod too) and their processes are gone once Succeeded
        const uid = await c.kubectl("get", "dv", d.dv, "-o", "jsonpath={.metadata.uid}");
        const names = [`importer-${d.dv}`, `cdi-upload-${d.dv}`, `${uid}-source-pod`];
        let left = "";
        await until(`${d.dv}'s worker pods gone (left: ${left})`, 60_000, async () => {
          const pods = (await Promise.all(names.map(getPod))).filter((p) => p !== undefined) as (KPod & {
            metadata: { deletionTimestamp?: string };
          })[];
          left = pods.map((p) => `${p.metadata.name} deleting since ${p.metadata.deletionTimestamp ?? "-"}`).join(", ");
          return pods.length === 0 ? true : undefined;
        }).catch((e: Error) => {
          throw new Error(`${e.message}; left: ${left}`);
        });
      }
      await oneVolumePerClaim();
    } finally {
      await deleteCell(d.dv);
    }
  };

  /** An upload killed mid-way fails its command; the user runs it again (bounded) until the DV is Succeeded. */
  const finishUpload = async (t: TestContext, name: string, u: Upload | undefined): Promise<void> => {
    assert.ok(u);
    const code = await Promise.race([
      u.exit,
      new Promise<"hung">((r) => setTimeout(() => r("hung"), CONVERGE_MS).unref()),
    ]);
    assert.notEqual(code, "hung", `virtctl image-upload still runs ${CONVERGE_MS} ms after the kill: ${u.out.text}`);
    t.diagnostic(`first upload exited ${code}: ${u.out.text.trim().split("\n").pop()}`);
    for (let attempt = 1; code !== 0 && attempt <= 4; attempt++) {
      if ((await c.kubectl("get", "dv", name, "-o", "jsonpath={.status.phase}")) === "Succeeded") return;
      const r = await run(process.execPath, [VIRTCTL, ...uploadArgs(name)], c.env, CONVERGE_MS).then(
        () => "ok",
        (e: Error) => e.message,
      );
      t.diagnostic(`upload retry ${attempt}: ${r.trim().split("\n").pop()}`);
      if (r === "ok") return;
    }
  };

  const loopsOf = async (image: string): Promise<string[]> =>
    (await run("losetup", ["-j", image]))
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split(":")[0] ?? "");

  const volumeDirs = (node: string): Promise<string[]> =>
    readdir(join(c.dir, "nodes", node, "volumes")).catch(() => [] as string[]);

  /** The same-node copies (cp of one node's volumes) running on any node of the cluster, as "pid:argv". */
  const nodeCopies = async (): Promise<string[]> =>
    (await processes())
      .filter((p) => c.nodes.some((n) => isNodeCopy(p.argv, join(c.dir, "nodes", n))))
      .map((p) => `${p.pid}:${p.argv.join(" ")}`);

  /** Whether the process `pid` is no longer a same-node copy within `ms` (gone, a zombie, or the pid reused). */
  const copyGone = async (pid: number, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").filter(Boolean);
      if (!stat || state === "Z" || state === "X" || !c.nodes.some((n) => isNodeCopy(argv, join(c.dir, "nodes", n))))
        return true;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  /** Every claim bound to exactly one PV, no PV handed to two claims. */
  const oneVolumePerClaim = async (): Promise<void> => {
    const pvcs = await c.getJson<{
      items: { metadata: { name: string; uid: string }; spec: { volumeName?: string } }[];
    }>("pvc", "-A");
    const pvs = await c.getJson<{ items: { metadata: { name: string }; spec: { claimRef?: { uid?: string } } }[] }>(
      "pv",
    );
    for (const pvc of pvcs.items) {
      const mine = pvs.items.filter((pv) => pv.spec.claimRef?.uid === pvc.metadata.uid).map((pv) => pv.metadata.name);
      if (pvc.spec.volumeName)
        assert.deepEqual(mine, [pvc.spec.volumeName], `exactly one PV for claim ${pvc.metadata.name}`);
    }
    const names = pvcs.items.map((p) => p.spec.volumeName).filter(Boolean);
    assert.equal(new Set(names).size, names.length, `no PV bound to two claims: ${names}`);
  };

  /** Deletes the cell's DV (its claim goes with it) and waits until nothing of its volume is left on the nodes. */
  const deleteCell = async (name: string): Promise<void> => {
    const pv = await c.kubectl("get", "pvc", name, "--ignore-not-found", "-o", "jsonpath={.spec.volumeName}");
    await c.kubectl("delete", "dv", name, "--ignore-not-found", "--wait=true", "--timeout=60s");
    await c.kubectl("delete", "pvc", name, "--ignore-not-found", "--wait=true", "--timeout=60s");
    if (!pv) return;
    await until(`nothing left of ${name}'s volume ${pv}`, 60_000, async () => {
      if ((await c.kubectl("get", "pv", pv, "--ignore-not-found", "-o", "name")) !== "") return undefined;
      for (const n of c.nodes) if ((await volumeDirs(n)).includes(pv)) return undefined;
      if ((await run("losetup", ["-a"])).includes(pv)) return undefined;
      return true;
    });
  };

  /** No volume directory or loop device of this cluster without a PV whose claim exists. */
  const nothingOrphaned = async (): Promise<void> => {
    const pvcs = await c.getJson<{ items: { spec: { volumeName?: string } }[] }>("pvc", "-A");
    const claimed = new Set(pvcs.items.map((p) => p.spec.volumeName ?? ""));
    for (const n of c.nodes) {
      const dirs = await volumeDirs(n);
      assert.deepEqual(
        dirs.filter((d) => !claimed.has(d)),
        [],
        `volume directories on ${n} without a claim`,
      );
    }
    const loops = (await run("losetup", ["-a"])).split("\n").filter((l) => l.includes(c.dir));
    assert.deepEqual(
      loops.filter((l) => ![...claimed].some((pv) => pv && l.includes(`/${pv}/`))),
      [],
      "loop devices without a claim",
    );
  };

  for (const round of ROUNDS) {
    describe(`kill -9 ${KILLED[round]}`, () => {
      const st: RoundState = { done: new Map(), log: [] };
      before(async () => {
        const t0 = Date.now();
        st.netnsBefore = await podNetnses();
        await runRound(round, st).catch((e: Error) => {
          st.error = e;
        });
        st.log.push(`round up to the restart: ${Date.now() - t0} ms`);
      });
      after(async () => {
        // whatever a failed cell left, its claims go: the next round starts clean
        for (const d of st.done.values()) await deleteCell(d.dv).catch(() => {});
        await nothingOrphaned();
        let left = "";
        // No worker, and no process at all naming a volume of a node (a worker's qemu-img, the agent's cp or
        // losetup): the source DV's volume is all that is left, and nothing runs on it.
        const volumes = c.nodes.map((n) => `${join(c.dir, "nodes", n, "volumes")}/`);
        await until("no worker or volume process left once the round's DataVolumes are gone", 30_000, async () => {
          const ps = (await processes()).filter(
            (p) =>
              (p.argv[3] === "--job" && (p.argv[4] ?? "").startsWith(c.dir)) ||
              p.argv.some((a) => volumes.some((v) => a.includes(v))),
          );
          left = ps.map((p) => `${p.pid}:${p.argv.slice(0, 5).join(" ")}`).join(" | ");
          return ps.length === 0 ? true : undefined;
        }).catch((e: Error) => {
          throw new Error(`${e.message}; left: ${left}`);
        });
        // No network namespace of a pod the API no longer has (an agent killed while making a worker pod's).
        await until("no pod network namespace left of a pod that is gone", 30_000, async () => {
          const uids = await c.kubectl("get", "pods", "-A", "-o", "jsonpath={.items[*].metadata.uid}");
          const live = new Set(
            uids
              .split(/\s+/)
              .filter(Boolean)
              .map((u) => `tsvirt-pod-${u.replaceAll("-", "").slice(0, 12)}`),
          );
          const stray = [...(await podNetnses())].filter((n) => !st.netnsBefore?.has(n) && !live.has(n));
          left = stray.join(" ");
          return stray.length === 0 ? true : undefined;
        }).catch((e: Error) => {
          throw new Error(`${e.message}; left: ${left}`);
        });
      });
      for (const op of OPS) {
        if (round === "worker" && op === "expand") continue;
        const what = round === "worker" ? WORKER_OF[op as Exclude<Op, "expand">] : KILLED[round];
        it(`${op}: kill -9 ${what}`, { timeout: 400_000 }, (t) => checkCell(t, round, op, st));
      }
    });
  }
});

/** until(), but the probe may end the wait with a failure by returning an Error (until() swallows throws). */
async function podNetnses(): Promise<Set<string>> {
  return new Set((await readdir("/run/netns").catch(() => [] as string[])).filter((n) => n.startsWith("tsvirt-pod-")));
}

async function untilOk<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | Error | undefined>,
  everyMs?: number,
): Promise<T> {
  const v = await until(what, timeoutMs, probe, everyMs);
  if (v instanceof Error) throw v;
  return v;
}

function withAnnotations(m: Record<string, unknown>, a: Record<string, string>): Record<string, unknown> {
  const meta = m.metadata as { annotations?: Record<string, string> };
  meta.annotations = { ...meta.annotations, ...a };
  return m;
}
