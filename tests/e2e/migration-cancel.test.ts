// Cancelling a live migration through the cluster, as a user does (issue 12, Done-when 2): `tsvirt up --nodes 2`,
// `kubectl apply` of a MigrationPolicy capping the bandwidth at 1 MiB/s for the VM's labels, `virtctl migrate`,
// wait for the VMIM to run, `virtctl migrate-cancel`. KubeVirt's cancel is the VMIM's deletion: its finalizer holds
// it while the source aborts the job, the controller marks it Failed, then releases it (the object goes). The guest
// keeps running on the source (same boot, the counter goes on), the VMI says abortStatus Succeeded and failed, and
// nothing of the target is left on node02. Without the policy, a later `virtctl migrate` succeeds; back under a
// policy allowing post-copy with a budget pre-copy cannot meet, the migration succeeds in post-copy (mode PostCopy).
import assert from "node:assert/strict";
import { readlink } from "node:fs/promises";
import { describe, it } from "node:test";
import { podNetns } from "../../handler/network/index.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { askGuest as ask, netnsLink, startCluster, startCounting, until, vmiPods } from "../lib/up.js";
import { ApiWatch, podProcesses, qemuOf } from "./crash-lib.js";

const VM = "mcan1";
const SELECT = { "tsvirt.io/test-migration": "capped" };
const POLICY = "capped";

interface Vmi {
  metadata: { uid: string; labels?: Record<string, string> };
  status: {
    phase: string;
    nodeName: string;
    migrationState?: Record<string, unknown> & { migrationConfiguration?: Record<string, unknown> };
  };
}

/** The VMI's launcher pods that are not being deleted, with their node. */

describe("migrate-cancel under a MigrationPolicy bandwidth cap (tsvirt up --nodes 2)", async () => {
  it("the guest stays on the source, the VMIM ends Failed with abortStatus Succeeded; later migrates succeed, one in post-copy", {
    timeout: 1_500_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { nodes: 2, name: "mcan" });
    await c.apply(c.vm(VM, { runStrategy: "Always", memory: "128Mi", labels: SELECT }));
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    const con = c.console(VM);
    const { bootId, count: before } = await startCounting(c, con);
    const vmi0 = await c.getJson<Vmi>("vmi", VM);
    const uid = vmi0.metadata.uid;
    // node01 is where the scheduler put it (the source), node02 the other one.
    const node01 = vmi0.status.nodeName;
    const node02 = c.nodes.find((n) => n !== node01) as string;
    const [src] = await vmiPods(c, uid);
    assert.ok(src && src.node === node01, `the launcher pod runs on ${node01}`);

    await c.apply({
      apiVersion: "migrations.kubevirt.io/v1alpha1",
      kind: "MigrationPolicy",
      metadata: { name: POLICY },
      spec: { bandwidthPerMigration: "1Mi", selectors: { virtualMachineInstanceSelector: SELECT } },
    });

    const vmims = new ApiWatch(
      `http://127.0.0.1:${c.port}`,
      "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations",
    );
    vmims.start();
    t.after(() => vmims.stop());
    await c.virtctl("migrate", VM);
    const mig = await vmims.when("the VMIM to run", 300_000, () => vmims.list((m) => m.status?.phase === "Running")[0]);
    const running = await c.getJson<Vmi>("vmi", VM);
    const ms = running.status.migrationState ?? {};
    assert.equal(ms.migrationPolicyName, POLICY, "the policy matched");
    assert.equal(ms.migrationConfiguration?.bandwidthPerMigration, "1Mi", "the cap is the effective setting");
    assert.ok(ms.startTimestamp, "the source started the job");
    assert.equal(ms.targetNode, node02);
    const target = (await vmiPods(c, uid)).find((p) => p.node === node02);
    assert.ok(target, "a target launcher pod on node02");
    // Let the capped stream run a moment: a cancel of a job that moves data, not of one being set up.
    await new Promise((r) => setTimeout(r, 3_000));

    const out = await c.virtctl("migrate-cancel", VM);
    assert.match(out, new RegExp(`VM ${VM} was scheduled to migrate-cancel`));
    // Deletion is the cancel: the finalizer keeps the object until it is Failed, then it goes (KubeVirt's).
    const failed = await vmims.when("the VMIM to be Failed", 120_000, () =>
      vmims.events.find((e) => e.obj.metadata.uid === mig.metadata.uid && e.obj.status?.phase === "Failed"),
    );
    assert.ok(failed.obj.metadata.deletionTimestamp, "Failed while being deleted (the cancel)");
    await vmims.when("the VMIM to be gone", 60_000, () => (vmims.objects.has(mig.metadata.uid) ? undefined : true));
    const cancelled = await c.getJson<Vmi>("vmi", VM);
    const cs = cancelled.status.migrationState ?? {};
    assert.equal(cs.migrationUid, mig.metadata.uid);
    assert.equal(cs.abortRequested, true);
    assert.equal(cs.abortStatus, "Succeeded", JSON.stringify(cs));
    assert.equal(cs.failed, true);
    assert.notEqual(cs.completed, true);
    assert.ok(cs.endTimestamp, "the source wrote the end");
    assert.equal(cancelled.status.phase, "Running");
    assert.equal(cancelled.status.nodeName, node01, "the VMI stays on node01");
    assert.equal(cancelled.metadata.labels?.["kubevirt.io/nodeName"], node01);
    assert.equal(cancelled.metadata.labels?.["kubevirt.io/migrationTargetNodeName"], undefined);

    // Nothing of the target left on node02: no pod, no process of it, exactly one QEMU (the source's).
    await until("the target pod gone", 120_000, async () =>
      (await vmiPods(c, uid)).some((p) => p.node === node02) ? undefined : true,
    );
    await until("no process of the target pod", 60_000, async () =>
      (await podProcesses(target.uid)).length === 0 ? true : undefined,
    );
    const qemus = await qemuOf(uid);
    assert.equal(qemus.length, 1, `exactly one QEMU of the VM (found ${qemus.join(", ")})`);
    assert.equal(await readlink(`/proc/${qemus[0]}/ns/net`), await netnsLink(podNetns(src.uid)), "QEMU on node01");
    assert.deepEqual(
      (await vmiPods(c, uid)).map((p) => p.name),
      [src.name],
    );

    // The guest never left: same boot, its counter went on.
    con.send("\n");
    assert.equal(await ask(con, "cat /proc/sys/kernel/random/boot_id"), bootId, "same boot: no reset");
    const after = Number(await ask(con, "cat /dev/shm/count"));
    assert.ok(after > before, `the counter continues (${before} → ${after})`);
    con.close();

    // Without the cap the next migration goes through.
    await c.kubectl("delete", "migrationpolicy", POLICY);
    await c.virtctl("migrate", VM);
    const ok = await vmims.when(
      "the second migration to succeed",
      600_000,
      () => vmims.list((m) => m.metadata.uid !== mig.metadata.uid && m.status?.phase === "Succeeded")[0],
    );
    await c.waitFor(`vmi/${VM}`, "{.status.nodeName}", node02, 120_000);
    const moved = await c.getJson<Vmi>("vmi", VM);
    assert.equal(moved.status.migrationState?.migrationUid, ok.metadata.uid);
    assert.equal(moved.status.migrationState?.completed, true);
    assert.equal(moved.status.migrationState?.migrationPolicyName, undefined, "no policy any more");
    const con2 = c.console(VM);
    con2.send("\n");
    assert.equal(await ask(con2, "cat /proc/sys/kernel/random/boot_id"), bootId, "same boot after the migration");
    con2.close();

    // Back under a policy allowing post-copy, with a budget (1 s per GiB) and a cap pre-copy cannot meet: the
    // launcher switches to post-copy, the source agent records it, the migration succeeds.
    await c.apply({
      apiVersion: "migrations.kubevirt.io/v1alpha1",
      kind: "MigrationPolicy",
      metadata: { name: "postcopy" },
      spec: {
        allowPostCopy: true,
        completionTimeoutPerGiB: 1,
        bandwidthPerMigration: "8Mi",
        selectors: { virtualMachineInstanceSelector: SELECT },
      },
    });
    await c.virtctl("migrate", VM);
    const seen = new Set([mig.metadata.uid, ok.metadata.uid]);
    const pc = await vmims.when(
      "the post-copy migration to succeed",
      600_000,
      () =>
        vmims.list(
          (m) => !seen.has(m.metadata.uid) && (m.status?.phase === "Succeeded" || m.status?.phase === "Failed"),
        )[0],
    );
    assert.equal(pc.status?.phase, "Succeeded", JSON.stringify((await c.getJson<Vmi>("vmi", VM)).status));
    await c.waitFor(`vmi/${VM}`, "{.status.nodeName}", node01, 120_000);
    const back = await c.getJson<Vmi>("vmi", VM);
    assert.equal(back.status.migrationState?.migrationPolicyName, "postcopy");
    assert.equal(back.status.migrationState?.mode, "PostCopy", "switched to post-copy");
    assert.equal(back.status.migrationState?.completed, true);
    const con3 = c.console(VM);
    con3.send("\n");
    assert.equal(await ask(con3, "cat /proc/sys/kernel/random/boot_id"), bootId, "same boot after post-copy");
    const last = Number(await ask(con3, "cat /dev/shm/count"));
    assert.ok(last > after, `the counter continues (${after} → ${last})`);
    con3.close();
  });
});
