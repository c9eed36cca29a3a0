// The node agent killed with kill -9 while two VMs run: the restarted agent re-attaches to both launchers through
// their sockets (<node dir>/sockets/<vmi uid>_sock). No new QEMU, no VMI leaves Running or loses Ready, and the
// re-attached clients carry later verbs: pause/unpause, then `virtctl stop` of both.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { startCluster, until } from "../lib/up.js";
import { ApiWatch, phaseRegressions, qemuOf } from "./crash-lib.js";

const VMS = ["ra1", "ra2"];

describe("virt-handler re-attaches after kill -9", () => {
  it("to both running VMs through their sockets; no new QEMU; stop still works", { timeout: 900_000 }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "reatt" });
    const node = c.nodes[0] ?? "";
    const watch = new ApiWatch(`http://127.0.0.1:${c.port}`, "/apis/kubevirt.io/v1/virtualmachineinstances");
    watch.start();
    t.after(() => watch.stop());

    for (const n of VMS) await c.apply(c.vm(n, { runStrategy: "Always" }));
    const uids: string[] = [];
    for (const n of VMS) {
      await c.waitFor(`vmi/${n}`, "{.status.phase}", "Running", 300_000);
      await c.waitFor(`vmi/${n}`, '{.status.conditions[?(@.type=="Ready")].status}', "True", 120_000);
      uids.push(await c.kubectl("get", "vmi", n, "-o", "jsonpath={.metadata.uid}"));
    }
    // Both guests are up: their console marker, in the serial log each launcher keeps in its pod directory.
    for (const uid of uids) {
      const podUid = await c.kubectl(
        "get",
        "pods",
        "-l",
        `kubevirt.io/created-by=${uid}`,
        "-o",
        "jsonpath={.items[0].metadata.uid}",
      );
      const serial = join(c.dir, "nodes", node, "pods", podUid.replaceAll("-", "").slice(0, 16), "serial.log");
      await until(`TSVIRT-GUEST-READY in ${serial}`, 240_000, async () =>
        (await readFile(serial, "utf8")).includes("TSVIRT-GUEST-READY") ? true : undefined,
      );
    }
    const qemu = await Promise.all(uids.map((u) => qemuOf(u)));
    for (const [i, q] of qemu.entries()) assert.equal(q.length, 1, `one QEMU for ${VMS[i]}`);

    const logFile = join(c.dir, "logs", `handler-${node}.log`);
    const attaches = async (uid: string): Promise<number> =>
      (await readFile(logFile, "utf8").catch(() => ""))
        .split("\n")
        .filter((l) => l.includes("attached to launcher") && l.includes(`${uid}_sock`)).length;
    const before = await Promise.all(uids.map(attaches));
    for (const [i, n] of before.entries()) assert.ok(n >= 1, `the agent dialled ${VMS[i]}'s socket (log: ${logFile})`);

    const killedAt = Math.max(0, ...watch.events.map((e) => e.rv));
    const old = await c.pid(`handler-${node}`);
    process.kill(old, "SIGKILL");
    await until("the supervisor's new node agent", 120_000, async () => {
      const p = await c.pid(`handler-${node}`);
      return p !== old ? p : undefined;
    });
    await until("the new agent attached to both launchers' sockets", 120_000, async () => {
      const now = await Promise.all(uids.map(attaches));
      return now.every((n, i) => n > (before[i] ?? 0)) ? true : undefined;
    });

    // Nothing restarted: the same QEMU processes, both VMIs still Running and Ready, no phase went backwards.
    assert.deepEqual(await Promise.all(uids.map((u) => qemuOf(u))), qemu, "no new QEMU");
    for (const n of VMS) {
      assert.equal(await c.kubectl("get", "vmi", n, "-o", "jsonpath={.status.phase}"), "Running");
      assert.equal(
        await c.kubectl("get", "vmi", n, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'),
        "True",
      );
    }
    const since = watch.events.filter((e) => e.rv > killedAt && uids.includes(e.obj.metadata.uid));
    const ready = (e: (typeof since)[number]) =>
      (e.obj.status?.conditions as { type: string; status: string }[] | undefined)?.find((x) => x.type === "Ready")
        ?.status;
    assert.deepEqual(
      since.filter((e) => e.obj.status?.phase !== "Running" || ready(e) !== "True").map((e) => e.obj.status),
      [],
      "no VMI left Running or lost Ready while the agent restarted",
    );
    assert.deepEqual(phaseRegressions(watch.events), []);

    // A verb through the re-attached client.
    await c.virtctl("pause", "vm", "ra1");
    await c.waitFor("vmi/ra1", '{.status.conditions[?(@.type=="Paused")].status}', "True", 60_000);
    await c.virtctl("unpause", "vm", "ra1");
    await c.waitFor("vmi/ra1", '{.status.conditions[?(@.type=="Ready")].status}', "True", 60_000);

    // virtctl stop: the re-attached agent shuts both guests down; the VMs stop and their QEMU is gone.
    for (const n of VMS) await c.virtctl("stop", n);
    for (const n of VMS) await c.waitFor(`vm/${n}`, "{.status.printableStatus}", "Stopped", 180_000);
    for (const u of uids) {
      await until(`QEMU of ${u} gone`, 60_000, async () => ((await qemuOf(u)).length === 0 ? true : undefined));
    }
    assert.equal(
      watch.events.filter((e) => uids.includes(e.obj.metadata.uid) && e.obj.status?.phase === "Failed").length,
      0,
      "a stopped VM's VMI ends Succeeded, never Failed",
    );
  });
});
