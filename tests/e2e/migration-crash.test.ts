// Live migration's crash cells (issue 12, item 7) on real QEMU, `tsvirt up --nodes 2`: kill -9 of the source or
// target node agent, the target launcher, the controller or the API server at a migration moment observed through
// API watches (target being prepared, stream running: slowed by a MigrationPolicy bandwidth cap, just after
// `completed`: the handover). After each kill, within a bounded time: the VMIM is Succeeded, or Failed with a
// reason; exactly one QEMU, one launcher and one launcher pod of the VM across both nodes, on the node the VMI
// names; nothing left of the other pod; the console answers with the same boot and the in-memory counter went on;
// and a plain `virtctl migrate` afterwards succeeds (nothing wedged). One cluster, one VM, the cells in sequence.
import assert from "node:assert/strict";
import { readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { Migration } from "../../api/index.js";
import { podNetns } from "../../handler/network/index.js";
import { podDirOf } from "../../handler/processes.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { type Cluster, netnsLink, startCluster, until, type VmiPod, vmiPods } from "../lib/up.js";
import {
  ApiWatch,
  ask,
  describeProcs,
  type KObj,
  launcherPids,
  processes,
  qemuOf,
  restarted,
  START_COUNTER,
} from "./crash-lib.js";

const VM = "mc";
const POLICY = "mcrash-slow";
/** The 128 MiB guest and its disk's overlay (~100 MiB sent) stream for ~7 s: the Running moment is reliable. */
const SLOW = "16Mi";
const CELL_TIMEOUT_MS = 240_000;

type Who = "source-agent" | "target-agent" | "target-launcher" | "controller" | "api";
type Moment = "prepare" | "running" | "handover";
interface Cell {
  who: Who;
  at: Moment;
  /** The end the product must reach (undefined: Succeeded or Failed, both clean). */
  ends?: "Succeeded" | "Failed";
  /**
   * The agent stays down until the source launcher ended (stopped, then killed: a restart slower than the stream and
   * the launcher's 10 s wait for its "completed" to be read): the restarted agent learns the end from the pod.
   */
  late?: true;
}

// Every component at every moment, but the target launcher at the handover (past `completed` it runs the only
// guest: killing it is a guest crash, which the VM's runStrategy handles, not a migration's).
const CELLS: Cell[] = [
  { who: "target-agent", at: "prepare" },
  { who: "target-launcher", at: "prepare", ends: "Failed" },
  { who: "source-agent", at: "prepare" },
  { who: "controller", at: "prepare" },
  { who: "api", at: "prepare" },
  { who: "source-agent", at: "running", ends: "Succeeded" },
  { who: "target-agent", at: "running", ends: "Succeeded" },
  { who: "target-launcher", at: "running", ends: "Failed" },
  { who: "controller", at: "running", ends: "Succeeded" },
  { who: "api", at: "running", ends: "Succeeded" },
  { who: "target-agent", at: "handover", ends: "Succeeded" },
  { who: "source-agent", at: "handover", ends: "Succeeded" },
  { who: "controller", at: "handover", ends: "Succeeded" },
  // The handover is written while the agents' watches are away: the former source must learn the VMI left it.
  { who: "api", at: "handover", ends: "Succeeded" },
  { who: "source-agent", at: "running", ends: "Succeeded", late: true },
];

const vmimObject = (name: string) => ({
  apiVersion: "kubevirt.io/v1",
  kind: "VirtualMachineInstanceMigration",
  metadata: { name, namespace: "default" },
  spec: { vmiName: VM },
});

const slowPolicy = {
  apiVersion: "migrations.kubevirt.io/v1alpha1",
  kind: "MigrationPolicy",
  metadata: { name: POLICY },
  spec: { selectors: { virtualMachineInstanceSelector: { "tsvirt.io/test": "mcrash" } }, bandwidthPerMigration: SLOW },
};

/** MigrateStart calls the node agents of `node` made for `migrationUid` (its log survives its restarts). */
async function jobStarts(c: Cluster, node: string, migrationUid: string): Promise<number> {
  const log = await readFile(join(c.dir, "logs", `handler-${node}.log`), "utf8");
  return log.split("\n").filter((l) => l.includes('"msg":"migration started"') && l.includes(migrationUid)).length;
}

requirePrereqs(...CLUSTER);
describe("live migration crash cells (tsvirt up --nodes 2): kill -9 at observed migration moments", () => {
  let c: Cluster;
  let vmims: ApiWatch;
  let vmis: ApiWatch;
  let vmiUid = "";
  let bootId = "";
  let count = 0;
  const cleanups: (() => unknown)[] = [];

  /** The console answers: same boot, the counter went on. */
  const guestContinues = async (t: TestContext, where: string): Promise<void> => {
    const con = c.console(VM);
    try {
      con.send("\n");
      assert.equal(await ask(con, "cat /proc/sys/kernel/random/boot_id"), bootId, `same boot ${where}: no reset`);
      const now = await until(`the counter goes on ${where}`, 30_000, async () => {
        const v = Number(await ask(con, "cat /dev/shm/count"));
        return v > count ? v : undefined;
      });
      t.diagnostic(`counter ${count} → ${now} ${where}`);
      count = now;
    } finally {
      con.close();
    }
  };

  /**
   * Converged on `node`: the VMI Running there (label and no target label), one launcher pod (no other, live or
   * finished), one launcher and one QEMU in that pod's netns, and no process left in the other pods' directories.
   */
  const convergedOn = async (node: string, seenPods: VmiPod[]): Promise<VmiPod> => {
    // Nothing of the other pods (the source after a success, the target after a failure) outlives them.
    const leftovers = async (live: VmiPod): Promise<string> => {
      const all = await processes();
      const dirs = seenPods.filter((p) => p.uid !== live.uid).map((p) => podDirOf(join(c.dir, "nodes", p.node), p.uid));
      return describeProcs(all.filter((x) => x.argv.some((a) => dirs.some((d) => a.includes(d)))));
    };
    let why = "";
    const pod = await until(
      `the VM alone on ${node}`,
      120_000,
      async () => {
        const vmi = await c.getJson<KObj>("vmi", VM);
        const pods = await vmiPods(c, vmiUid);
        const q = await qemuOf(vmiUid);
        const l = await launcherPids(vmiUid);
        why = `VMI ${vmi.status?.phase} on ${vmi.status?.nodeName} labels ${JSON.stringify(vmi.metadata.labels)}, pods ${pods.map((p) => `${p.name}@${p.node}:${p.phase}${p.deleting ? "(deleting)" : ""}`)}, QEMU ${q}, launcher ${l}`;
        if (vmi.status?.phase !== "Running" || vmi.status?.nodeName !== node) return undefined;
        if (vmi.metadata.labels?.["kubevirt.io/nodeName"] !== node) return undefined;
        if (vmi.metadata.labels?.[Migration.targetNodeLabel] !== undefined) return undefined;
        if (pods.length !== 1 || pods[0]!.node !== node || pods[0]!.phase !== "Running" || pods[0]!.deleting)
          return undefined;
        if (q.length !== 1 || l.length !== 1) return undefined;
        const left = await leftovers(pods[0]!);
        why += `, left of other pods: ${left}`;
        return left === "" ? pods[0]! : undefined;
      },
      300,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; last seen: ${why}`);
    });
    const [qemu] = await qemuOf(vmiUid);
    assert.equal(
      await readlink(`/proc/${qemu}/ns/net`),
      await netnsLink(podNetns(pod.uid)),
      `the one QEMU runs in the pod on ${node}`,
    );
    return pod;
  };

  before(async () => {
    const ctx = { after: (fn: () => unknown) => cleanups.push(fn) } as unknown as TestContext;
    c = await startCluster(ctx, { nodes: 2, name: "mcrash" });
    const base = `http://127.0.0.1:${c.port}`;
    vmims = new ApiWatch(base, "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations");
    vmis = new ApiWatch(base, "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances");
    for (const w of [vmims, vmis]) w.start();
    cleanups.push(() => Promise.all([vmims.stop(), vmis.stop()]));
    await c.apply(c.vm(VM, { runStrategy: "Always", memory: "128Mi", labels: { "tsvirt.io/test": "mcrash" } }));
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    vmiUid = (await c.kubectl("get", "vmi", VM, "-o", "jsonpath={.metadata.uid}")).trim();
    const con = c.console(VM);
    await con.expect(new RegExp(c.guest.marker), 300_000);
    con.send("\n");
    bootId = await ask(con, "cat /proc/sys/kernel/random/boot_id");
    assert.match(bootId, /^[0-9a-f-]{36}$/);
    con.send(START_COUNTER);
    count = await until("the counter runs", 30_000, async () => {
      const v = Number(await ask(con, "cat /dev/shm/count"));
      return v > 0 ? v : undefined;
    });
    con.close();
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  let n = 0;
  for (const cell of CELLS) {
    it(`kill -9 ${cell.who} at ${cell.at}${cell.late ? ", back after the source launcher ended" : ""}`, {
      timeout: CELL_TIMEOUT_MS,
    }, async (t) => {
      const started = Date.now();
      const name = `mc-${++n}-${cell.who}-${cell.at}`;
      const before = await convergedOn(
        (await c.kubectl("get", "vmi", VM, "-o", "jsonpath={.status.nodeName}")).trim(),
        [],
      );
      const source = before.node;
      const target = c.nodes.find((x) => x !== source)!;
      const [sourceLauncher] = await launcherPids(vmiUid);
      await c.apply(slowPolicy);

      const vmimOf = (): KObj | undefined => vmims.list((o) => o.metadata.name === name)[0];
      const moment =
        cell.at === "handover"
          ? vmis.when(`${name}: migrationState.completed`, 180_000, () => {
              const v = vmis.list((o) => o.metadata.uid === vmiUid)[0];
              const ms = v?.status?.migrationState;
              if (ms?.migrationUid === vmimOf()?.metadata.uid && ms?.completed) return v;
              const p = vmimOf()?.status?.phase;
              if (p === "Succeeded" || p === "Failed") throw new Error(`${name} ended ${p} before the kill`);
              return undefined;
            })
          : vmims.when(`${name}: ${cell.at}`, 180_000, () => {
              const p = vmimOf()?.status?.phase;
              const want = cell.at === "running" ? ["Running"] : ["PreparingTarget", "TargetReady"];
              if (p === "Succeeded" || p === "Failed") throw new Error(`${name} ended ${p} before the kill`);
              return want.includes(p) ? p : undefined;
            });
      await c.apply(vmimObject(name));
      await moment;
      const migrationUid = vmimOf()?.metadata.uid ?? "";
      // Running and later: the source wrote startTimestamp (the VMIM's phase follows it); it must not change.
      const startedAt =
        cell.at === "prepare"
          ? undefined
          : await vmis.when("startTimestamp on the VMI", 10_000, () => {
              const ms = vmis.objects.get(vmiUid)?.status?.migrationState;
              return ms?.migrationUid === migrationUid ? ms.startTimestamp : undefined;
            });

      // kill -9
      const component =
        cell.who === "source-agent"
          ? `handler-${source}`
          : cell.who === "target-agent"
            ? `handler-${target}`
            : cell.who;
      let oldPid = 0;
      if (cell.who === "target-launcher") {
        const pid = await until("the target launcher", 60_000, async () =>
          (await launcherPids(vmiUid)).find((p) => p !== sourceLauncher),
        );
        process.kill(pid, "SIGKILL");
      } else if (cell.late) {
        oldPid = await c.pid(component);
        process.kill(oldPid, "SIGSTOP");
        await until("the source launcher ended", 90_000, async () =>
          (await launcherPids(vmiUid)).includes(sourceLauncher ?? 0) ? undefined : true,
        );
        process.kill(oldPid, "SIGKILL");
      } else {
        oldPid = await c.pid(component);
        process.kill(oldPid, "SIGKILL");
      }
      t.diagnostic(
        `killed ${cell.who} at VMIM ${vmimOf()?.status?.phase}, completed=${vmis.objects.get(vmiUid)?.status?.migrationState?.completed === true} (${Date.now() - started} ms into the cell)`,
      );
      if (oldPid) await restarted(c, component, oldPid, cell.who === "source-agent" ? source : target);

      // The migration ends, with a reason when it failed.
      const end = await vmims.when(`${name} Succeeded or Failed`, 180_000, () => {
        const m = vmimOf();
        const p = m?.status?.phase;
        return p === "Succeeded" || p === "Failed" ? m : undefined;
      });
      const phase = end.status.phase as string;
      const reason: string = end.status?.migrationState?.failureReason ?? "";
      t.diagnostic(`${name} ended ${phase}${reason ? `: ${reason}` : ""} (${Date.now() - started} ms into the cell)`);
      if (phase === "Failed") assert.notEqual(reason, "", "a failed migration says why");
      if (cell.ends) assert.equal(phase, cell.ends, `${name}: ${reason}`);

      const seenPods = await vmiPods(c, vmiUid);
      const live = await convergedOn(phase === "Succeeded" ? target : source, [before, ...seenPods]);
      if (cell.who === "source-agent") {
        // The restarted source agent asked its launcher for the job and followed it: it never started another.
        assert.equal(await jobStarts(c, source, migrationUid), 1, "one MigrateStart on the source");
        if (startedAt)
          assert.equal(end.status?.migrationState?.startTimestamp, startedAt, "startTimestamp written once");
      }
      await guestContinues(t, `after ${cell.who} died at ${cell.at}`);

      // Not wedged: an unhindered migration goes through.
      await c.kubectl("delete", "migrationpolicy", POLICY, "--ignore-not-found");
      const known = new Set(vmims.list().map((o) => o.metadata.uid));
      await c.virtctl("migrate", VM);
      const next = await vmims.when("the next migration ends", 120_000, () => {
        const m = vmims.list((o) => !known.has(o.metadata.uid) && o.spec?.vmiName === VM)[0];
        const p = m?.status?.phase;
        return p === "Succeeded" || p === "Failed" ? m : undefined;
      });
      assert.equal(next.status.phase, "Succeeded", `the next migration: ${next.status?.migrationState?.failureReason}`);
      const from = live.node;
      await convergedOn(c.nodes.find((x) => x !== from)!, [live, ...(await vmiPods(c, vmiUid))]);
      t.diagnostic(`cell done in ${Date.now() - started} ms`);
    });
  }

  it("the guest still runs the same boot after every cell", { timeout: 60_000 }, (t) =>
    guestContinues(t, "at the end"),
  );
});
