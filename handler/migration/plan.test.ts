import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { movedClaimName, shortHash, volumesOnNode } from "../../api/index.js";
import type { Pod } from "../ports.js";
import { MIG, migratingVmi } from "./fixtures.js";
import {
  copyStorageTargets,
  MIGRATION_DOMAIN_XML_ANNOTATION,
  MIGRATION_JOB_UID_LABEL,
  type MigrationState,
  migrateStartParams,
  planSource,
  planTarget,
  portsMap,
  portsOf,
  roleOf,
  type TargetEndpoint,
} from "./plan.js";

const EP: TargetEndpoint = {
  address: "10.244.1.5",
  ports: { libvirt: 49152, qemu: 49153, nbd: 49154 },
  domainXml: "<domain/>",
};

const vmi = migratingVmi;

function pod(annotations: Record<string, string> = {}, phase: "Running" | "Pending" = "Running"): Pod {
  return {
    metadata: {
      name: "tgt",
      namespace: "default",
      uid: "pod-uid",
      labels: { [MIGRATION_JOB_UID_LABEL]: MIG },
      annotations,
    },
    spec: { nodeName: "n2", containers: [] },
    status: { phase, podIP: EP.address },
  };
}

const published = (): Partial<MigrationState> => ({
  targetNodeAddress: EP.address,
  targetDirectMigrationNodePorts: portsMap(EP.ports),
});

describe("roleOf", () => {
  it("tells source, target and neither apart by migrationState and the VMI's owner", () => {
    assert.equal(roleOf(vmi({}), "n1"), "source");
    assert.equal(roleOf(vmi({}), "n2"), "target");
    assert.equal(roleOf(vmi({}), "n3"), undefined);
    assert.equal(roleOf(vmi({}, "n2"), "n2"), undefined, "handed over: the target is the owner, no longer a target");
    assert.equal(roleOf(vmi({}, "n2"), "n1"), undefined, "handed over: the source has no part left");
    assert.equal(roleOf(vmi({ migrationUid: undefined as unknown as string }), "n1"), undefined);
  });
});

describe("ports map", () => {
  it("round-trips KubeVirt's port → channel shape", () => {
    assert.deepEqual(portsMap(EP.ports), { "49152": 0, "49153": 49152, "49154": 49153 });
    assert.deepEqual(portsOf(portsMap(EP.ports)), EP.ports);
    assert.equal(portsOf({ "49152": 0 }), undefined, "all three channels or nothing");
  });
});

describe("planTarget", () => {
  const obs = { launcherReady: true, holding: false };
  it("waits for the pod, then for the launcher, then prepares", () => {
    assert.equal(planTarget(vmi({}), "n2", { ...obs }).kind, "none", "no target pod yet");
    assert.equal(planTarget(vmi({}), "n2", { ...obs, pod: pod({}, "Pending") }).kind, "none");
    assert.equal(planTarget(vmi({}), "n2", { ...obs, launcherReady: false, pod: pod() }).kind, "wait");
    assert.equal(planTarget(vmi({}), "n2", { ...obs, pod: pod() }).kind, "prepare");
  });
  it("prepares again after a restart (no memory) and until address, ports and XML are all published", () => {
    assert.equal(planTarget(vmi(published()), "n2", { ...obs, pod: pod() }).kind, "prepare", "restarted agent");
    assert.equal(planTarget(vmi({}), "n2", { ...obs, pod: pod(), prepared: EP }).kind, "prepare");
    const done = pod({ [MIGRATION_DOMAIN_XML_ANNOTATION]: EP.domainXml });
    assert.equal(planTarget(vmi(published()), "n2", { ...obs, pod: done, prepared: EP }).kind, "none");
  });
  it("does not prepare once the stream runs; notes the incoming domain once", () => {
    const started = vmi({ ...published(), startTimestamp: "t" });
    assert.equal(planTarget(started, "n2", { ...obs, pod: pod() }).kind, "none");
    const domain = { state: "Paused" as const, reason: "Migration" };
    assert.equal(planTarget(started, "n2", { ...obs, pod: pod(), domain }).kind, "detected");
    const noted = vmi({ ...published(), startTimestamp: "t", targetNodeDomainDetected: true });
    assert.equal(planTarget(noted, "n2", { ...obs, pod: pod(), domain }).kind, "none");
  });
  it("hands over after completed once the domain runs here", () => {
    const done = vmi({ ...published(), startTimestamp: "t", completed: true });
    assert.equal(planTarget(done, "n2", { ...obs, pod: pod() }).kind, "wait");
    const running = { state: "Running" as const, reason: "Migrated" };
    assert.equal(planTarget(done, "n2", { ...obs, pod: pod(), domain: running }).kind, "handover");
  });
  it("releases what it prepared when the migration failed", () => {
    const failed = vmi({ failed: true });
    assert.equal(planTarget(failed, "n2", { ...obs, holding: true }).kind, "release");
    assert.equal(planTarget(failed, "n2", { ...obs, holding: false }).kind, "none");
  });
  it("prepares nothing for an abort requested before the start", () => {
    assert.equal(planTarget(vmi({ abortRequested: true }), "n2", { ...obs, pod: pod() }).kind, "none");
  });
});

describe("planSource", () => {
  const ready = vmi({ ...published() });
  it("waits for the launcher, the target's address and the destination XML", () => {
    assert.equal(planSource(ready, "n1", { abortSent: false }).kind, "wait");
    assert.equal(planSource(vmi({}), "n1", { abortSent: false, job: { state: "none" } }).kind, "none");
    assert.equal(planSource(ready, "n1", { abortSent: false, job: { state: "none" } }).kind, "wait");
  });
  it("starts with the destination XML and the target's ports", () => {
    const a = planSource(ready, "n1", { abortSent: false, job: { state: "none" }, destXml: "<x/>" });
    assert.deepEqual(a, { kind: "start", destXml: "<x/>", ports: EP.ports });
  });
  it("never starts a second job: a running job without startTimestamp only records the start", () => {
    const a = planSource(ready, "n1", { abortSent: false, job: { state: "running", migrationUid: MIG } });
    assert.equal(a.kind, "markStarted");
  });
  it("starts although the launcher still reports an earlier migration's failed job", () => {
    const job = { state: "failed" as const, migrationUid: "older" };
    assert.equal(planSource(ready, "n1", { abortSent: false, job, destXml: "<x/>" }).kind, "start");
  });
  it("follows, then records completion or failure", () => {
    const started = vmi({ ...published(), startTimestamp: "t" });
    assert.equal(planSource(started, "n1", { abortSent: false, job: { state: "running" } }).kind, "follow");
    assert.deepEqual(planSource(started, "n1", { abortSent: false, job: { state: "completed" } }), {
      kind: "finish",
      end: { completed: true, failed: false },
    });
    const f = planSource(started, "n1", { abortSent: false, job: { state: "failed", message: "progress timeout" } });
    assert.deepEqual(f, { kind: "finish", end: { completed: false, failed: true, failureReason: "progress timeout" } });
  });
  it("aborts once on abortRequested and reports abortStatus", () => {
    const abort = vmi({ ...published(), startTimestamp: "t", abortRequested: true });
    assert.equal(planSource(abort, "n1", { abortSent: false, job: { state: "running" } }).kind, "abort");
    assert.equal(planSource(abort, "n1", { abortSent: true, job: { state: "running" } }).kind, "follow");
    const c = planSource(abort, "n1", { abortSent: true, job: { state: "cancelled" } });
    assert.equal(c.kind === "finish" && c.end.abortStatus, "Succeeded");
    assert.equal(c.kind === "finish" && c.end.failed, true);
    const late = planSource(abort, "n1", { abortSent: true, job: { state: "completed" } });
    assert.equal(late.kind === "finish" && late.end.abortStatus, "Failed", "too late: the migration finished");
  });
  it("records the switch to post-copy once (mode), before an abort (which post-copy refuses) or the end", () => {
    const started = vmi({ ...published(), startTimestamp: "t", mode: "PreCopy" });
    const pc = { state: "running" as const, mode: "PostCopy" as const };
    assert.deepEqual(planSource(started, "n1", { abortSent: false, job: pc }), { kind: "mode", mode: "PostCopy" });
    const noted = vmi({ ...published(), startTimestamp: "t", mode: "PostCopy" });
    assert.equal(planSource(noted, "n1", { abortSent: false, job: pc }).kind, "follow");
    // Ended before the agent saw it running in post-copy: the end carries the mode.
    assert.deepEqual(planSource(started, "n1", { abortSent: false, job: { ...pc, state: "completed" } }), {
      kind: "finish",
      end: { completed: true, failed: false, mode: "PostCopy" },
    });
    // Cancelled in post-copy: the launcher refused, the migration completed; the abort failed (KubeVirt's).
    const abort = vmi({ ...published(), startTimestamp: "t", mode: "PostCopy", abortRequested: true });
    assert.equal(planSource(abort, "n1", { abortSent: false, job: pc }).kind, "abort");
    const end = planSource(abort, "n1", { abortSent: true, job: { ...pc, state: "completed" } });
    assert.deepEqual(end, { kind: "finish", end: { completed: true, failed: false, abortStatus: "Failed" } });
  });
  it("records a paused guest (mode Paused) once; a post-copy job that failed ends failed with its mode", () => {
    const started = vmi({ ...published(), startTimestamp: "t", mode: "PreCopy" });
    const paused = { state: "running" as const, mode: "Paused" as const };
    assert.deepEqual(planSource(started, "n1", { abortSent: false, job: paused }), { kind: "mode", mode: "Paused" });
    const noted = vmi({ ...published(), startTimestamp: "t", mode: "Paused" });
    assert.equal(planSource(noted, "n1", { abortSent: false, job: paused }).kind, "follow");
    const lost = { state: "failed" as const, mode: "PostCopy" as const, message: "post-copy … irrecoverable" };
    assert.deepEqual(planSource(started, "n1", { abortSent: false, job: lost }), {
      kind: "finish",
      end: { completed: false, failed: true, failureReason: "post-copy … irrecoverable", mode: "PostCopy" },
    });
    const known = vmi({ ...published(), startTimestamp: "t", mode: "PostCopy" });
    assert.deepEqual(planSource(known, "n1", { abortSent: false, job: lost }), {
      kind: "finish",
      end: { completed: false, failed: true, failureReason: "post-copy … irrecoverable" },
    });
  });
  it("after a launcher restart (no job), the domain tells where the guest went", () => {
    const started = vmi({ ...published(), startTimestamp: "t" });
    const gone = { state: "Shutoff" as const, reason: "Migrated" };
    const a = planSource(started, "n1", { abortSent: false, job: { state: "none" }, domain: gone });
    assert.equal(a.kind === "finish" && a.end.completed, true);
    const here = { state: "Running" as const, reason: "Booted" };
    const b = planSource(started, "n1", { abortSent: false, job: { state: "none" }, domain: here });
    assert.equal(b.kind === "finish" && b.end.failed, true);
  });
  it("a launcher gone after the start: its termination message tells where the guest went", () => {
    const started = vmi({ ...published(), startTimestamp: "t" });
    const migrated = { state: "Shutoff" as const, reason: "Migrated" };
    const a = planSource(started, "n1", { abortSent: false, ended: migrated });
    assert.deepEqual(a, { kind: "finish", end: { completed: true, failed: false } });
    const b = planSource(started, "n1", { abortSent: false, ended: { state: "Shutoff", reason: "Crashed" } });
    assert.equal(b.kind === "finish" && b.end.failed, true);
    assert.equal(planSource(started, "n1", { abortSent: false }).kind, "wait", "no word from it yet");
    // Before the start, a launcher's end says nothing about this migration.
    assert.equal(planSource(ready, "n1", { abortSent: false, ended: migrated }).kind, "wait");
  });
  it("does nothing once ended", () => {
    const ended = vmi({ ...published(), startTimestamp: "t", completed: true, endTimestamp: "t2" });
    assert.equal(planSource(ended, "n1", { abortSent: false, job: { state: "completed" } }).kind, "none");
  });
});

describe("migrateStartParams", () => {
  const xml = `<domain>
    <devices>
      <disk type="file" device="disk"><source file="/a/overlay.qcow2"/><target dev="vda" bus="virtio"/><alias name="ua-containerdisk"/></disk>
      <disk type="file" device="disk"><source file="/a/scratch.img"/><target dev="vdb" bus="virtio"/><alias name="ua-scratch"/></disk>
      <disk type="file" device="disk"><source file="/v/data.img"/><target dev="vdc" bus="virtio"/><alias name="ua-data"/></disk>
      <disk type="file" device="cdrom"><source file="/a/ci.iso"/><target dev="sda" bus="sata"/><readonly/><alias name="ua-cloudinit"/></disk>
    </devices>
  </domain>`;
  it("copies the node-local disks only", () => {
    assert.deepEqual(copyStorageTargets(vmi({}), xml), ["vda", "vdb"]);
  });
  it("copies a claim this migration moves (status.migratedVolumes of its uid), not one of an earlier migration", () => {
    const moved = (uid: string) => {
      const v = vmi({});
      const info = (claimName: string) => ({ claimName });
      v.status!.migratedVolumes = [
        {
          volumeName: "data",
          sourcePVCInfo: info("data"),
          destinationPVCInfo: info(movedClaimName("data", shortHash(uid))),
        },
      ];
      return v;
    };
    assert.deepEqual(copyStorageTargets(moved(MIG), xml), ["vda", "vdb", "vdc"]);
    assert.deepEqual(copyStorageTargets(moved("an-earlier-one"), xml), ["vda", "vdb"]);
  });
  it("the target node prepares a moved volume's new claim; the source node and a failed migration the old one", () => {
    const v = vmi({});
    v.status!.migratedVolumes = [
      {
        volumeName: "data",
        sourcePVCInfo: { claimName: "data" },
        destinationPVCInfo: { claimName: movedClaimName("data", shortHash(MIG)) },
      },
    ];
    const claim = (node: string, x = v) =>
      volumesOnNode(x, node).find((vol) => vol.name === "data")?.persistentVolumeClaim?.claimName;
    assert.equal(claim("n2"), movedClaimName("data", shortHash(MIG)));
    assert.equal(claim("n1"), "data");
    assert.equal(claim("n2", vmi({ failed: true })), "data");
    // after the swap the spec names the new claim: unchanged on both nodes
    const swapped = structuredClone(v);
    swapped.spec.volumes![2] = {
      name: "data",
      persistentVolumeClaim: { claimName: movedClaimName("data", shortHash(MIG)) },
    };
    assert.equal(claim("n2", swapped), movedClaimName("data", shortHash(MIG)));
  });
  it("builds the URIs and the effective settings", () => {
    const v = vmi({
      migrationConfiguration: {
        bandwidthPerMigration: "64Mi",
        allowAutoConverge: true,
        completionTimeoutPerGiB: 150,
        progressTimeout: 150,
        allowPostCopy: true,
        allowWorkloadDisruption: false,
      },
    });
    const p = migrateStartParams(v, EP.address, EP.ports, xml);
    assert.equal(p.destinationUri, "qemu+tcp://10.244.1.5:49152/system");
    assert.equal(p.migrateUri, "tcp://10.244.1.5:49153");
    assert.equal(p.disksUri, "tcp://10.244.1.5:49154");
    assert.equal(p.bandwidthMiBps, 64);
    assert.equal(p.autoConverge, true);
    assert.equal(p.completionTimeoutPerGiB, 150);
    assert.deepEqual([p.postCopy, p.allowWorkloadDisruption], [true, false]);
    assert.equal(p.migrationUid, MIG);
    const unlimited = migrateStartParams(
      vmi({ migrationConfiguration: { bandwidthPerMigration: "0Mi" } }),
      "a",
      EP.ports,
      "",
    );
    assert.equal(unlimited.bandwidthMiBps, undefined);
    assert.equal(unlimited.disksUri, undefined, "nothing to copy: no NBD");
  });
});
