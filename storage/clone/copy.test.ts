import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { cmdlineOf } from "../../lib/supervisor.js";
import { copyCommand, copyPathsOf, copyVolumeFile, isNodeCopy, killOrphanCopies } from "./copy.js";

const sh = promisify(execFile);

describe("a same-node copy's command line (pure)", () => {
  const dir = "/data/nodes/n1";
  const src = `${dir}/volumes/pvc-a/disk.img`;
  const dst = `${dir}/volumes/pvc-b/disk.img`;

  test("cp under setpriv --pdeathsig KILL, paths after --", () => {
    assert.deepEqual(copyCommand(src, dst), [
      "setpriv",
      "--pdeathsig",
      "KILL",
      "--",
      "cp",
      "--sparse=always",
      "--",
      src,
      dst,
    ]);
  });

  test("recognised before and after setpriv's exec, nothing else", () => {
    const argv = copyCommand(src, dst);
    assert.deepEqual(copyPathsOf(argv), [src, dst]);
    assert.deepEqual(copyPathsOf(argv.slice(4)), [src, dst]);
    assert.equal(copyPathsOf(["cp", "--sparse=always", src, dst]), undefined);
    assert.equal(copyPathsOf(["cp", "--sparse=always", "--", src, dst, "/x"]), undefined);
    assert.equal(copyPathsOf(["qemu-img", "convert", "--", src, dst]), undefined);
    assert.equal(copyPathsOf(["setpriv", "--pdeathsig", "KILL", "--", "rm", "-rf", "--", src, dst]), undefined);
  });

  test("this node's volumes only: never another node's data dir, never a path that escapes", () => {
    assert.ok(isNodeCopy(copyCommand(src, dst), dir));
    assert.ok(isNodeCopy(copyCommand(src, dst).slice(4), `${dir}/`));
    assert.ok(!isNodeCopy(copyCommand(src, dst), "/data/nodes/n2"));
    assert.ok(!isNodeCopy(copyCommand(src.replace("n1", "n10"), dst.replace("n1", "n10")), dir));
    assert.ok(!isNodeCopy(copyCommand(src, "/data/nodes/n2/volumes/pvc-b/disk.img"), dir));
    assert.ok(!isNodeCopy(copyCommand(src, `${dir}/volumes/../../n2/volumes/pvc-b/disk.img`), dir));
    assert.ok(!isNodeCopy(copyCommand(src, `${dir}/pods/x/disk.img`), dir));
    assert.ok(!isNodeCopy(copyCommand(src, "volumes/pvc-b/disk.img"), dir));
  });
});

/** The pids of a process's children (every thread's). */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const task of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const kids = await readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch(() => "");
    out.push(...kids.split(" ").filter(Boolean).map(Number));
  }
  return out;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("copies outlive no agent (real cp, a FIFO source holds it mid-copy)", () => {
  let root = "";
  const nodes: string[] = [];
  const children: ChildProcess[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "tsv-copy-"));
    for (const n of ["n1", "n2"]) {
      const dir = join(root, "nodes", n);
      await mkdir(join(dir, "volumes", "pvc-a"), { recursive: true });
      await mkdir(join(dir, "volumes", "pvc-b"), { recursive: true });
      // cp blocks opening a FIFO until a writer comes: a copy that runs as long as the test needs
      await sh("mkfifo", ["--", join(dir, "volumes", "pvc-a", "disk.img")]);
      nodes.push(dir);
    }
  });
  after(async () => {
    for (const c of children) c.kill("SIGKILL");
    await rm(root, { recursive: true, force: true });
  });

  const copyOn = (dir: string) =>
    copyCommand(join(dir, "volumes", "pvc-a", "disk.img"), join(dir, "volumes", "pvc-b", "disk.img"));
  const running = async (pid: number) => (await cmdlineOf(pid))?.[0] === "cp";

  test("killOrphanCopies kills this node's copies and waits for them, another node's stay", async () => {
    const [n1 = "", n2 = ""] = nodes;
    const pids = [n1, n2].map((dir) => {
      const [file = "", ...args] = copyOn(dir);
      const c = spawn(file, args, { stdio: "ignore" });
      children.push(c);
      return c.pid ?? 0;
    });
    const [mine = 0, other = 0] = pids;
    for (const pid of pids) await until(`cp ${pid} runs`, async () => ((await running(pid)) ? true : undefined));
    assert.deepEqual(await killOrphanCopies(n1), [mine]);
    assert.equal(await cmdlineOf(mine), undefined, "the node's copy is gone when killOrphanCopies returns");
    assert.ok(await running(other), "the other node's copy still runs");
    assert.deepEqual(await killOrphanCopies(n1), [], "nothing left to kill on the node");
  });

  test("a kill -9 of the copy's parent (the agent) kills the copy (PR_SET_PDEATHSIG)", async () => {
    const [n1 = ""] = nodes;
    // a stand-in agent: runs the copy as copyVolumeFile does (execFile), then waits
    const agent = spawn(
      process.execPath,
      [
        "-e",
        'const [f, ...a] = JSON.parse(process.argv[1]); require("node:child_process").execFile(f, a, () => {}); setInterval(() => {}, 1e3);',
        JSON.stringify(copyOn(n1)),
      ],
      { stdio: "ignore" },
    );
    children.push(agent);
    const cp = await until("the stand-in agent's cp runs", async () => {
      for (const k of await childrenOf(agent.pid ?? 0)) if (await running(k)) return k;
      return undefined;
    });
    agent.kill("SIGKILL");
    await until(`cp ${cp} gone with its agent`, async () => ((await cmdlineOf(cp)) === undefined ? true : undefined));
  });

  test("copyVolumeFile copies through setpriv: the source's bytes, holes kept, grown to the claim", async () => {
    const dir = join(root, "real");
    await mkdir(dir);
    const src = join(dir, "src.img");
    const dst = join(dir, "dst.img");
    const data = randomBytes(256 * 1024);
    const fh = await open(src, "w");
    await fh.write(data, 0, data.length, 1 << 20);
    await fh.close();
    await (await open(dst, "w")).close();
    const r = await copyVolumeFile(src, dst, 4 << 20);
    assert.equal(r.bytes, (1 << 20) + data.length);
    assert.equal((await stat(dst)).size, 4 << 20);
    const got = await readFile(dst);
    assert.ok(got.subarray(1 << 20, (1 << 20) + data.length).equals(data));
    assert.ok(got.subarray(0, 1 << 20).every((b) => b === 0));
  });
});
