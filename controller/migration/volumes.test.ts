// Live migration of a VMI on a node-local disk, planned round by round against a small world the test changes as the
// shell (and the DV controller, the scheduler, the node agents) would. Crash re-entry: the planner reads only that
// world, so "killed after write N of a round" is the world with the round's first N writes applied, planned again.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defaultConfiguration, Migration, movedByMigration, shortHash } from "../../api/index.js";
import type { DataVolume, PersistentVolume, PersistentVolumeClaim, VirtualMachine } from "../../client/index.js";
import { LIVE_UID_LABEL } from "../coldmigration/index.js";
import { getCondition, removeCondition, setCondition } from "../conditions.js";
import { newClaim, newLocalVolume, newPod, newVm, newVmi } from "../testing/factories.js";
import { type MigrationInput, type MigrationPlan, planMigration } from "./plan.js";
import { VOLUMES_CHANGE } from "./volumes.js";

const UID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const NEW = `disk-m${shortHash(UID)}`;
const NOW = "2026-12-07T07:00:00Z";

interface World {
  vmim: MigrationInput["vmim"];
  vmi: NonNullable<MigrationInput["vmi"]>;
  vm: VirtualMachine;
  pods: MigrationInput["pods"];
  dvs: Map<string, DataVolume>;
  claims: Map<string, PersistentVolumeClaim>;
  pvs: Map<string, PersistentVolume>;
}

function world(): World {
  const vm = newVm("vm1");
  vm.metadata.uid = "vm-uid";
  vm.spec.dataVolumeTemplates = [
    {
      metadata: { name: "disk", labels: { app: "x" }, annotations: { "volume.kubernetes.io/selected-node": "node01" } },
      spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "1Gi" } } } },
    },
  ];
  vm.spec.template.spec!.volumes = [{ name: "d", dataVolume: { name: "disk" } }];
  const vmi = newVmi("vm1", (v) => {
    v.metadata.uid = "vmi-uid";
    v.metadata.labels = { "kubevirt.io/nodeName": "node01" };
    v.metadata.ownerReferences = [
      { apiVersion: "kubevirt.io/v1", kind: "VirtualMachine", name: "vm1", uid: "vm-uid", controller: true },
    ];
    v.spec.volumes = [{ name: "d", dataVolume: { name: "disk" } }];
    v.status = { phase: "Running", nodeName: "node01" };
  });
  const dv: DataVolume = {
    metadata: { name: "disk", namespace: "default", uid: "old-dv-uid" },
    spec: { source: { blank: {} } },
    status: { phase: "Succeeded", claimName: "disk" },
  };
  const claim = {
    ...newClaim("disk", "1Gi", { storageClassName: "tsvirt-local", volumeName: "pvc-old" }),
    status: { phase: "Bound" as const, capacity: { storage: "1Gi" } },
  };
  claim.metadata.uid = "old-claim-uid";
  const source = newPod("virt-launcher-vm1-aaaaa", { nodeName: "node01", phase: "Running" });
  source.metadata.uid = "src-uid";
  source.metadata.labels = { "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": "vmi-uid" };
  return {
    vmim: {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstanceMigration",
      metadata: { name: "mig", namespace: "default", uid: UID, creationTimestamp: "2026-12-07T06:59:00Z" },
      spec: { vmiName: "vm1" },
    },
    vmi,
    vm,
    pods: [source],
    dvs: new Map([["disk", dv]]),
    claims: new Map([["disk", claim]]),
    pvs: new Map([["pvc-old", newLocalVolume("pvc-old", "node01", { name: "disk", uid: "old-claim-uid" })]]),
  };
}

function plan(w: World): MigrationPlan {
  return planMigration({
    vmim: w.vmim,
    vmi: w.vmi,
    pods: w.pods,
    migratable: { condition: { type: "LiveMigratable", status: "True" }, method: "BlockMigration" },
    config: defaultConfiguration().migrations ?? {},
    policies: [],
    others: [],
    now: NOW,
    nowMs: Date.parse(NOW),
    volumes: {
      vm: w.vm,
      lookup: {
        dv: (_ns, n) => w.dvs.get(n),
        claim: (_ns, n) => w.claims.get(n),
        volume: (n) => w.pvs.get(n),
      },
      own: [...w.dvs.values()].filter((d) => d.metadata.labels?.[LIVE_UID_LABEL] === UID),
    },
  });
}

/** The shell's writes of a plan in its order; `limit` stops after that many (a kill -9 there). Returns the count. */
function apply(w: World, p: MigrationPlan, limit = Number.POSITIVE_INFINITY): number {
  const writes: (() => void)[] = [];
  if (p.addFinalizer) writes.push(() => (w.vmim.metadata.finalizers = [Migration.finalizer]));
  for (const dv of p.createDataVolumes)
    writes.push(() => {
      const name = dv.metadata.name ?? "";
      w.dvs.set(name, { ...dv, metadata: { ...dv.metadata, uid: `${name}-uid` }, status: { phase: "Pending" } });
      // the DV controller makes its claim (WaitForFirstConsumer: unbound)
      w.claims.set(name, newClaim(name, "1Gi", { storageClassName: "tsvirt-local" }));
    });
  for (const pod of p.deletePods) writes.push(() => (w.pods = w.pods.filter((x) => x !== pod)));
  if (p.createPod) {
    const pod = p.createPod;
    writes.push(() => w.pods.push({ ...pod, metadata: { ...pod.metadata, name: "virt-launcher-vm1-bbbbb" } }));
  }
  if (p.vmi) {
    const c = p.vmi;
    writes.push(() => {
      const st = { ...(w.vmi.status ?? {}) };
      if (c.migrationState) st.migrationState = c.migrationState;
      if (c.migratedVolumes) st.migratedVolumes = c.migratedVolumes;
      else if (c.migratedVolumes === null) delete st.migratedVolumes;
      if (c.volumesChange === null) st.conditions = removeCondition(st.conditions, VOLUMES_CHANGE);
      else if (c.volumesChange) st.conditions = setCondition(st.conditions, c.volumesChange, NOW);
      w.vmi = { ...w.vmi, status: st, ...(c.volumes ? { spec: { ...w.vmi.spec, volumes: c.volumes } } : {}) };
    });
  }
  if (p.vm?.migratedVolumes) {
    const mv = p.vm.migratedVolumes;
    writes.push(
      () => (w.vm = { ...w.vm, status: { volumeUpdateState: { volumeMigrationState: { migratedVolumes: mv } } } }),
    );
  }
  if (p.vm?.spec) {
    const spec = p.vm.spec;
    writes.push(() => (w.vm = { ...w.vm, spec }));
  }
  if (JSON.stringify(p.status) !== JSON.stringify(w.vmim.status ?? {}))
    writes.push(() => (w.vmim = { ...w.vmim, status: p.status }));
  if (p.removeFinalizer) writes.push(() => delete w.vmim.metadata.finalizers);
  for (const d of [...p.deleteDataVolumes, ...p.deleteClaims])
    writes.push(() => {
      w.dvs.delete(d.name);
      const claim = w.claims.get(d.name);
      w.claims.delete(d.name);
      if (claim?.spec.volumeName) w.pvs.delete(claim.spec.volumeName);
    });
  let n = 0;
  for (const f of writes.slice(0, limit)) {
    f();
    n++;
  }
  return n;
}

/** What the scheduler, the storage and the node agents do between rounds (one step each, in the real order). */
function others(w: World): void {
  const target = w.pods.find((p) => p.metadata.labels?.[Migration.jobUidLabel] === UID);
  if (target && !target.spec.nodeName) {
    target.spec.nodeName = "node02";
    // the scheduler selected node02 for the claims; the provisioner and the blank import follow
    for (const [name, dv] of w.dvs) {
      if (dv.metadata.labels?.[LIVE_UID_LABEL] !== UID) continue;
      const claim = w.claims.get(name)!;
      claim.spec.volumeName = `pvc-${name}`;
      claim.status = { phase: "Bound", capacity: { storage: "1Gi" } };
      w.pvs.set(`pvc-${name}`, newLocalVolume(`pvc-${name}`, "node02", { name, uid: `${name}-uid` }));
      dv.status = { phase: "Succeeded", claimName: name };
    }
    return;
  }
  const ms = w.vmi.status?.migrationState;
  if (ms?.migrationUid !== UID || ms.failed) return;
  if (!ms.targetNodeAddress) ms.targetNodeAddress = "10.0.2.7";
  else if (!ms.startTimestamp) ms.startTimestamp = NOW;
  else if (!ms.completed) Object.assign(ms, { completed: true, endTimestamp: NOW });
  else if (w.vmi.status?.nodeName !== "node02") {
    w.vmi.status!.nodeName = "node02";
    ms.targetNodeDomainReadyTimestamp = NOW;
  }
}

/** Rounds until the VMIM is final without a finalizer; each round may be cut after `cut(round)` writes. */
function run(w: World, cut: (round: number) => number = () => Number.POSITIVE_INFINITY): string[] {
  const trail: string[] = [];
  for (let round = 0; round < 60; round++) {
    const p = plan(w);
    apply(w, p, cut(round));
    trail.push(w.vmim.status?.phase ?? "");
    if ((w.vmim.status?.phase === "Succeeded" || w.vmim.status?.phase === "Failed") && !w.vmim.metadata.finalizers)
      return trail;
    others(w);
  }
  throw new Error(`did not settle: ${trail.join(" ")}`);
}

function assertMoved(w: World): void {
  assert.equal(w.vmim.status?.phase, "Succeeded");
  assert.deepEqual(w.vmi.spec.volumes, [{ name: "d", dataVolume: { name: NEW } }], "the VMI names the new claim");
  assert.deepEqual(w.vm.spec.template.spec?.volumes, [{ name: "d", dataVolume: { name: NEW } }]);
  assert.deepEqual(
    w.vm.spec.dataVolumeTemplates?.map((t) => t.metadata?.name),
    [NEW],
    "the template names the new claim",
  );
  const rec = w.vm.status?.volumeUpdateState?.volumeMigrationState?.migratedVolumes ?? [];
  assert.deepEqual(
    rec.map((m) => [m.volumeName, m.sourcePVCInfo?.claimName, m.destinationPVCInfo?.claimName]),
    [["d", "disk", NEW]],
  );
  // KubeVirt clears the VMI's record and its VolumesChange condition once the move is done
  assert.equal(w.vmi.status?.migratedVolumes, undefined, "the VMI's record goes once the old disk is released");
  assert.equal(getCondition(w.vmi.status?.conditions, VOLUMES_CHANGE), undefined, "VolumesChange removed");
  assert.deepEqual([...w.dvs.keys()], [NEW], "the old DataVolume released");
  assert.ok(!w.pvs.has("pvc-old"), "the old PV gone");
}

describe("live migration of node-local disks (planner)", () => {
  it("records, makes a blank DV consumed by the target pod, swaps VMI then VM after completion, releases the old", () => {
    const w = world();
    const p0 = plan(w);
    // the record first, nothing made yet
    assert.deepEqual(
      p0.vmi?.migratedVolumes?.map((m) => [m.sourcePVCInfo?.claimName, m.destinationPVCInfo?.claimName]),
      [["disk", NEW]],
    );
    assert.deepEqual(p0.vmi?.volumesChange, { type: "VolumesChange", status: "True", message: "migrate volumes" });
    assert.equal(p0.createPod, undefined);
    assert.equal(p0.createDataVolumes.length, 0);
    apply(w, p0);
    const p1 = plan(w);
    assert.equal(p1.createDataVolumes.length, 1);
    const dv = p1.createDataVolumes[0]!;
    assert.equal(dv.metadata.name, NEW);
    assert.deepEqual(dv.spec.source, { blank: {} });
    assert.equal(dv.spec.storage?.storageClassName, "tsvirt-local");
    assert.equal(dv.spec.storage?.resources?.requests?.storage, "1Gi");
    assert.equal(dv.metadata.labels?.[LIVE_UID_LABEL], UID);
    assert.equal(dv.metadata.labels?.app, "x", "the old template's labels follow (retained-disk rules)");
    assert.equal(dv.metadata.annotations?.["volume.kubernetes.io/selected-node"], undefined, "not pinned to node01");
    assert.equal(dv.metadata.ownerReferences?.[0]?.uid, "vm-uid", "controlled by the VM, like the old one");
    apply(w, p1);
    const p2 = plan(w);
    assert.ok(p2.createPod, "the target pod once the new claim exists");
    assert.deepEqual(
      p2.createPod.spec.volumes?.map((v) => v.persistentVolumeClaim?.claimName),
      [NEW],
      "the target pod names the new claim",
    );
    assert.equal(w.vmi.spec.volumes?.[0]?.dataVolume?.name, "disk", "the VMI still names the old one");
    run(w);
    assertMoved(w);
  });

  it("a finished migration leaves the next one's record and VolumesChange condition alone", () => {
    const w = world();
    run(w);
    assertMoved(w);
    // the next migration (another uid) recorded its move before the VMI's migrationState names it
    const next = [
      {
        volumeName: "d",
        sourcePVCInfo: { claimName: NEW },
        destinationPVCInfo: { claimName: `disk-m${shortHash("next-uid")}` },
      },
    ];
    w.vmi.status = {
      ...w.vmi.status,
      migratedVolumes: next,
      conditions: setCondition(w.vmi.status?.conditions, { type: VOLUMES_CHANGE, status: "True" }, NOW),
    };
    const p = plan(w);
    assert.equal(p.vmi?.volumesChange, undefined, "the condition is the next migration's");
    assert.equal(p.vmi?.migratedVolumes, undefined, "its record too");
  });

  it("a controller killed after any write of any round converges to the same end", () => {
    const ref = world();
    const rounds = run(ref).length;
    for (let round = 0; round < rounds; round++) {
      for (let cut = 0; cut < 8; cut++) {
        const w = world();
        run(w, (r) => (r === round ? cut : Number.POSITIVE_INFINITY));
        assertMoved(w);
      }
    }
  });

  it("a failure before completion deletes the new DataVolume and the record; the VM is untouched", () => {
    const w = world();
    for (let i = 0; i < 8 && !w.vmi.status?.migrationState?.startTimestamp; i++) {
      apply(w, plan(w));
      others(w);
    }
    assert.ok(w.dvs.has(NEW));
    const vmBefore = structuredClone(w.vm);
    Object.assign(w.vmi.status!.migrationState!, { failed: true, failureReason: "boom", endTimestamp: NOW });
    const trail = run(w);
    assert.equal(trail.at(-1), "Failed");
    assert.deepEqual([...w.dvs.keys()], ["disk"], "only the old DataVolume is left");
    assert.equal(w.vmi.status?.migratedVolumes, undefined, "the record is cleared");
    const vc = getCondition(w.vmi.status?.conditions, VOLUMES_CHANGE);
    assert.deepEqual([vc?.status, vc?.reason], ["False", "VolumesChangeCancellation"], "KubeVirt's cancellation");
    assert.deepEqual(w.vmi.spec.volumes, [{ name: "d", dataVolume: { name: "disk" } }]);
    assert.deepEqual(w.vm, vmBefore, "the VM is untouched");
    assert.ok(w.pvs.has("pvc-old"));
  });

  it("a cancel (VMIM deleted) before the handoff rolls the new disk back too", () => {
    const w = world();
    for (let i = 0; i < 3; i++) apply(w, plan(w));
    assert.ok(w.dvs.has(NEW));
    w.vmim.metadata.deletionTimestamp = NOW;
    run(w);
    assert.equal(w.vmim.status?.phase, "Failed");
    assert.deepEqual([...w.dvs.keys()], ["disk"]);
  });

  it("a DataVolume of the new name that is not this migration's fails it and is left alone", () => {
    const w = world();
    apply(w, plan(w));
    w.dvs.set(NEW, { metadata: { name: NEW, namespace: "default", uid: "foreign" }, spec: {} } as DataVolume);
    run(w);
    assert.equal(w.vmim.status?.phase, "Failed");
    assert.match(w.vmim.status?.migrationState?.failureReason ?? "", /exists and is not this migration's/);
    assert.ok(w.dvs.has(NEW), "a foreign DataVolume is never deleted");
  });
});
