// planColdMigration step by step, against a small world the test changes as the shell (and the DV controller, the
// VM controller, the node) would. Crash re-entry: the planner reads only that world, so "killed after step N" is the
// world after N steps planned again; every such point must lead to the same end.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ColdMigration, Migration } from "../../api/index.js";
import type {
  DataVolume,
  Node,
  PersistentVolume,
  PersistentVolumeClaim,
  VirtualMachine,
  VirtualMachineInstance,
} from "../../client/index.js";
import { setCondition } from "../conditions.js";
import { newClaim, newLocalVolume, newNode, newVm, newVmi } from "../testing/factories.js";
import {
  COLD_UID_LABEL,
  type ColdInput,
  type ColdStep,
  chooseTarget,
  isSwapped,
  movedClaimName,
  planColdMigration,
  SCHEDULING_TIMEOUT_MS,
  shortHash,
  swappedVmSpec,
  type Vmim,
} from "./plan.js";

const NOW = new Date("2026-12-07T07:00:00Z");
const UID = "11111111-2222-3333-4444-555555555555";
const HASH = shortHash(UID);
const NEW = `disk-m${HASH}`;

function storageNode(name: string, free = "10Gi", opts: Parameters<typeof newNode>[1] = {}): Node {
  const n = newNode(name, opts);
  n.status!.allocatable = { ...n.status!.allocatable, "tsvirt.io/local-storage": free };
  return n;
}

interface World {
  vmim: Vmim;
  vm?: VirtualMachine;
  vmi?: VirtualMachineInstance;
  dvs: Map<string, DataVolume>;
  claims: Map<string, PersistentVolumeClaim>;
  pvs: Map<string, PersistentVolume>;
  nodes: Node[];
}

function world(): World {
  const vm = newVm("vm1");
  vm.metadata.uid = "vm-uid";
  vm.spec.dataVolumeTemplates = [
    {
      metadata: { name: "disk" },
      spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "1Gi" } } } },
    },
  ];
  vm.spec.template.spec!.volumes = [{ name: "d", dataVolume: { name: "disk" } }];
  const dv: DataVolume = {
    metadata: { name: "disk", namespace: "default", uid: "old-dv-uid" },
    spec: { source: { blank: {} } },
    status: { phase: "Succeeded", claimName: "disk" },
  };
  const claim = newClaim("disk", "1Gi");
  claim.metadata.uid = "old-claim-uid";
  claim.metadata.ownerReferences = [
    { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "DataVolume", name: "disk", uid: "old-dv-uid", controller: true },
  ];
  claim.spec.volumeName = "pvc-old";
  claim.status = { phase: "Bound", capacity: { storage: "1Gi" } };
  const vmim: Vmim = {
    metadata: {
      name: "mig",
      namespace: "default",
      uid: UID,
      creationTimestamp: "2026-12-07T06:59:00Z",
      labels: { [ColdMigration.modeLabel]: ColdMigration.mode },
    },
    spec: { vmiName: "vm1" },
  };
  return {
    vmim,
    vm,
    dvs: new Map([["disk", dv]]),
    claims: new Map([["disk", claim]]),
    pvs: new Map([["pvc-old", newLocalVolume("pvc-old", "node01", { name: "disk", uid: "old-claim-uid" })]]),
    nodes: [storageNode("node01"), storageNode("node02")],
  };
}

function input(w: World, now = NOW): ColdInput {
  return {
    vmim: w.vmim,
    ...(w.vm ? { vm: w.vm } : {}),
    ...(w.vmi ? { vmi: w.vmi } : {}),
    siblings: [],
    nodes: w.nodes,
    free: new Map(w.nodes.map((n) => [n.metadata.name ?? "", 10 * 2 ** 30])),
    lookup: {
      dv: (_ns, name) => w.dvs.get(name),
      claim: (_ns, name) => w.claims.get(name),
      volume: (name) => w.pvs.get(name),
    },
    now,
  };
}

/** What the shell and the other controllers make of a step (the DV controller finishes a clone at once). */
function apply(w: World, step: ColdStep): void {
  switch (step.kind) {
    case "none":
      return;
    case "finalizer": {
      const f = w.vmim.metadata.finalizers ?? [];
      w.vmim.metadata.finalizers = step.add ? [...f, Migration.finalizer] : f.filter((x) => x !== Migration.finalizer);
      return;
    }
    case "status":
      w.vmim.status = step.status;
      return;
    case "vmStatus": {
      const vm = w.vm!;
      const st = { ...(vm.status ?? {}) };
      st.conditions = setCondition(st.conditions ?? [], step.condition, NOW.toISOString());
      if (step.migratedVolumes === null) delete st.volumeUpdateState;
      else if (step.migratedVolumes)
        st.volumeUpdateState = { volumeMigrationState: { migratedVolumes: step.migratedVolumes } };
      w.vm = { ...vm, status: st };
      return;
    }
    case "createDataVolumes":
      for (const dv of step.dvs) {
        const name = dv.metadata.name ?? "";
        w.dvs.set(name, {
          ...dv,
          metadata: { ...dv.metadata, uid: `${name}-uid` },
          status: { phase: "CloneInProgress" },
        });
      }
      return;
    case "delete":
      for (const d of step.dvs) {
        w.dvs.delete(d.name);
        w.claims.delete(d.name); // the claim goes with its DataVolume (garbage collector)
      }
      for (const c of step.claims) w.claims.delete(c.name);
      return;
    case "swap":
      w.vm = { ...w.vm!, spec: swappedVmSpec(w.vm!, step.moved, step.templates) };
      return;
  }
}

/** The DV controller finishing the clone on the node the DV is pinned to. */
function cloneDone(w: World, name: string, phase: "Succeeded" | "Failed" = "Succeeded"): void {
  const dv = w.dvs.get(name)!;
  const node = dv.metadata.annotations?.["volume.kubernetes.io/selected-node"] ?? "";
  w.dvs.set(name, { ...dv, status: { phase, claimName: name } });
  if (phase === "Failed") return;
  const c = newClaim(name, "1Gi");
  c.metadata.uid = `${name}-claim-uid`;
  c.spec.volumeName = `pvc-${name}`;
  c.status = { phase: "Bound" };
  w.claims.set(name, c);
  w.pvs.set(`pvc-${name}`, newLocalVolume(`pvc-${name}`, node, { name, uid: c.metadata.uid }));
}

/** Plan and apply until nothing is left to do (`none`), finishing clones as they appear; returns the steps. */
function run(w: World, max = 30): ColdStep[] {
  const steps: ColdStep[] = [];
  for (let i = 0; i < max; i++) {
    const s = planColdMigration(input(w));
    steps.push(s);
    if (s.kind === "none") {
      const pending = [...w.dvs.values()].find((d) => d.status?.phase === "CloneInProgress");
      if (!pending) return steps;
      cloneDone(w, pending.metadata.name ?? "");
      continue;
    }
    apply(w, s);
  }
  assert.fail(`no end after ${max} steps: ${steps.map((s) => s.kind).join(",")}`);
}

const kinds = (steps: ColdStep[]) => steps.map((s) => (s.kind === "status" ? `status:${s.status.phase}` : s.kind));

describe("cold migration planner", () => {
  it("a stopped VM: finalizer, Scheduling, target, lock, Running, clone, swap, unlock, Succeeded, release, done", () => {
    const w = world();
    const steps = run(w);
    assert.deepEqual(kinds(steps), [
      "finalizer",
      "status:Scheduling",
      "status:Scheduling",
      "vmStatus",
      "status:Running",
      "createDataVolumes",
      "none",
      "swap",
      "vmStatus",
      "status:Succeeded",
      "delete",
      "finalizer",
      "none",
    ]);
    const ms = w.vmim.status?.migrationState;
    assert.equal(ms?.sourceNode, "node01");
    assert.equal(ms?.targetNode, "node02");
    assert.equal(ms?.completed, true);
    assert.deepEqual(w.vmim.metadata.finalizers, []);
    // the VM names the new claim (volume and template), the old disk is gone, the record stays
    assert.equal(w.vm?.spec.template.spec?.volumes?.[0]?.dataVolume?.name, NEW);
    assert.deepEqual(
      w.vm?.spec.dataVolumeTemplates?.map((t) => t.metadata?.name),
      [NEW],
    );
    assert.equal(w.dvs.has("disk"), false);
    assert.equal(w.claims.has("disk"), false);
    const rec = w.vm?.status?.volumeUpdateState?.volumeMigrationState?.migratedVolumes;
    assert.deepEqual(
      rec?.map((m) => [m.volumeName, m.sourcePVCInfo?.claimName, m.destinationPVCInfo?.claimName]),
      [["d", "disk", NEW]],
    );
    const cond = w.vm?.status?.conditions?.find((c) => c.type === ColdMigration.condition);
    assert.equal(cond?.status, "False");
    assert.equal(cond?.reason, "ColdMigrationSucceeded");
    assert.match(cond?.message ?? "", /mig/);
    // the clone: source.pvc of the old claim, pinned to node02, bind-immediate, the VM's, labelled with the VMIM
    const dv = w.dvs.get(NEW)!;
    assert.deepEqual(dv.spec.source?.pvc, { namespace: "default", name: "disk" });
    assert.equal(dv.metadata.annotations?.["volume.kubernetes.io/selected-node"], "node02");
    assert.equal(dv.metadata.annotations?.["cdi.kubevirt.io/storage.bind.immediate.requested"], "true");
    assert.equal(dv.metadata.labels?.[COLD_UID_LABEL], UID);
    assert.equal(dv.metadata.ownerReferences?.[0]?.uid, "vm-uid");
    assert.equal(dv.metadata.ownerReferences?.[0]?.controller, true);
    assert.equal(dv.spec.storage?.resources?.requests?.storage, "1Gi");
  });

  it("killed after any step, it resumes from the API state and ends the same way", () => {
    const ref = world();
    const total = run(ref).length;
    for (let k = 0; k < total; k++) {
      const w = world();
      // the first k steps happen, then the controller dies; a new one plans from the same world
      for (let i = 0; i < k; i++) {
        const s = planColdMigration(input(w));
        if (s.kind === "none") {
          const pending = [...w.dvs.values()].find((d) => d.status?.phase === "CloneInProgress");
          if (pending) cloneDone(w, pending.metadata.name ?? "");
        } else apply(w, s);
      }
      // the step in flight was done twice (written, then the crash before the next round saw it): still converges
      const again = planColdMigration(input(w));
      apply(w, again);
      apply(w, again);
      run(w);
      assert.equal(w.vmim.status?.phase, "Succeeded", `crash after step ${k}`);
      assert.equal(w.vm?.spec.template.spec?.volumes?.[0]?.dataVolume?.name, NEW, `crash after step ${k}`);
      assert.equal(w.dvs.has("disk"), false, `crash after step ${k}`);
    }
  });

  it("cancelled after any step: before the swap it rolls back to the old disk, after it it completes", () => {
    const total = run(world()).length;
    for (let k = 0; k < total; k++) {
      const w = world();
      for (let i = 0; i < k; i++) {
        const s = planColdMigration(input(w));
        if (s.kind === "none") cloneDone(w, NEW);
        else apply(w, s);
      }
      const before = !isSwapped(w.vm, w.vm?.status?.volumeUpdateState?.volumeMigrationState?.migratedVolumes ?? []);
      const started = (w.vmim.metadata.finalizers ?? []).length > 0 || w.vmim.status?.phase !== undefined;
      w.vmim.metadata.deletionTimestamp = NOW.toISOString();
      run(w);
      const disk = w.vm?.spec.template.spec?.volumes?.[0]?.dataVolume?.name;
      assert.deepEqual(w.vmim.metadata.finalizers ?? [], [], `cancel after step ${k}`);
      if (before) {
        assert.equal(disk, "disk", `cancel after step ${k}`);
        assert.ok(w.dvs.has("disk") && !w.dvs.has(NEW), `cancel after step ${k}`);
        if (started && w.vmim.status?.phase) assert.equal(w.vmim.status.phase, "Failed", `cancel after step ${k}`);
        assert.notEqual(
          w.vm?.status?.conditions?.find((c) => c.type === ColdMigration.condition)?.status,
          "True",
          `cancel after step ${k}: the VM is not held`,
        );
      } else {
        assert.equal(disk, NEW, `cancel after step ${k}`);
        assert.equal(w.vmim.status?.phase, "Succeeded", `cancel after step ${k}`);
      }
    }
  });

  it("a VM that is started waits: old disks kept until its VMI runs on the target, then released", () => {
    const w = world();
    // run up to Succeeded
    for (let i = 0; i < 20 && w.vmim.status?.phase !== "Succeeded"; i++) {
      const s = planColdMigration(input(w));
      if (s.kind === "none") cloneDone(w, NEW);
      else apply(w, s);
    }
    assert.equal(w.vmim.status?.phase, "Succeeded");
    w.vm!.spec.runStrategy = "Always";
    assert.equal(planColdMigration(input(w)).kind, "none", "no VMI yet: keep");
    const vmi = newVmi("vm1");
    vmi.status = { phase: "Scheduled", nodeName: "node02" };
    w.vmi = vmi;
    assert.equal(planColdMigration(input(w)).kind, "none", "not running yet: keep");
    vmi.status = { phase: "Running", nodeName: "node02" };
    const s = planColdMigration(input(w));
    assert.equal(s.kind, "delete");
    assert.deepEqual(s.kind === "delete" && s.dvs, [{ name: "disk", uid: "old-dv-uid" }]);
  });

  it("a bare PVC volume is moved too, and released by deleting the claim", () => {
    const w = world();
    w.vm!.spec.dataVolumeTemplates = [];
    w.vm!.spec.template.spec!.volumes = [{ name: "d", persistentVolumeClaim: { claimName: "disk" } }];
    w.dvs.clear();
    delete w.claims.get("disk")!.metadata.ownerReferences;
    const steps = run(w);
    assert.equal(w.vmim.status?.phase, "Succeeded");
    assert.equal(w.vm?.spec.template.spec?.volumes?.[0]?.persistentVolumeClaim?.claimName, NEW);
    assert.deepEqual(
      w.vm?.spec.dataVolumeTemplates?.map((t) => t.metadata?.name),
      [NEW],
    );
    const del = steps.find((s) => s.kind === "delete");
    assert.deepEqual(del?.kind === "delete" && del.claims, [{ name: "disk", uid: "old-claim-uid" }]);
  });

  it("cancel (VMIM deleted) before the swap: new DataVolume deleted, VM unlocked, Failed with abortStatus Succeeded", () => {
    const w = world();
    for (let i = 0; i < 20 && !w.dvs.has(NEW); i++) apply(w, planColdMigration(input(w)));
    assert.ok(w.dvs.has(NEW), "clone started");
    w.vmim.metadata.deletionTimestamp = NOW.toISOString();
    const steps = run(w);
    assert.deepEqual(kinds(steps), ["status:Failed", "delete", "vmStatus", "finalizer", "none"]);
    assert.equal(w.dvs.has(NEW), false);
    assert.equal(w.vmim.status?.migrationState?.abortStatus, "Succeeded");
    assert.equal(w.vmim.status?.migrationState?.failed, true);
    // the VM is untouched: its old disk, no record, a False condition naming the cancel
    assert.equal(w.vm?.spec.template.spec?.volumes?.[0]?.dataVolume?.name, "disk");
    assert.equal(w.vm?.status?.volumeUpdateState, undefined);
    assert.equal(w.vm?.status?.conditions?.[0]?.reason, "ColdMigrationCancelled");
    assert.ok(w.dvs.has("disk"));
  });

  it("a delete after the swap cannot cancel: it ends Succeeded (abortStatus Failed) and releases", () => {
    const w = world();
    for (
      let i = 0;
      i < 20 && !isSwapped(w.vm, w.vm?.status?.volumeUpdateState?.volumeMigrationState?.migratedVolumes ?? []);
      i++
    ) {
      const s = planColdMigration(input(w));
      if (s.kind === "none") cloneDone(w, NEW);
      else apply(w, s);
    }
    w.vmim.metadata.deletionTimestamp = NOW.toISOString();
    run(w);
    assert.equal(w.vmim.status?.phase, "Succeeded");
    assert.equal(w.vmim.status?.migrationState?.abortStatus, "Failed");
    assert.equal(w.dvs.has("disk"), false);
    assert.deepEqual(w.vmim.metadata.finalizers, []);
  });

  it("the VM started before the swap, or a failed clone: roll back to the old disks, Failed", () => {
    for (const what of ["vmi", "clone"] as const) {
      const w = world();
      for (let i = 0; i < 20 && !w.dvs.has(NEW); i++) apply(w, planColdMigration(input(w)));
      if (what === "vmi") w.vmi = newVmi("vm1");
      else cloneDone(w, NEW, "Failed");
      run(w);
      assert.equal(w.vmim.status?.phase, "Failed", what);
      assert.equal(w.vmim.status?.migrationState?.abortStatus, undefined, what);
      assert.match(w.vmim.status?.migrationState?.failureReason ?? "", what === "vmi" ? /started/ : /clone/);
      assert.equal(w.dvs.has(NEW), false, what);
      assert.equal(w.vm?.spec.template.spec?.volumes?.[0]?.dataVolume?.name, "disk", what);
    }
  });

  it("the VM's volumes edited while the disks are copied: Failed and rolled back, the edit kept", () => {
    const w = world();
    for (let i = 0; i < 20 && !w.dvs.has(NEW); i++) apply(w, planColdMigration(input(w)));
    w.vm!.spec.template.spec!.volumes = [{ name: "d", dataVolume: { name: "other" } }];
    run(w);
    assert.equal(w.vmim.status?.phase, "Failed");
    assert.match(w.vmim.status?.migrationState?.failureReason ?? "", /volume d was changed/);
    assert.equal(w.dvs.has(NEW), false);
    assert.equal(w.vm?.spec.template.spec?.volumes?.[0]?.dataVolume?.name, "other");
  });

  it("refusals in Pending: no local disk, a DataVolume still importing, disks on two nodes", () => {
    const none = world();
    none.vm!.spec.template.spec!.volumes = [{ name: "c", containerDisk: { image: "x" } }];
    none.vmim.metadata.finalizers = [Migration.finalizer];
    const s1 = planColdMigration(input(none));
    assert.ok(s1.kind === "status" && s1.status.phase === "Failed" && /no node-local disk/.test(s1.why));
    const busy = world();
    busy.vmim.metadata.finalizers = [Migration.finalizer];
    busy.dvs.get("disk")!.status = { phase: "ImportInProgress" };
    const s2 = planColdMigration(input(busy));
    assert.ok(s2.kind === "status" && s2.status.phase === "Failed" && /ImportInProgress/.test(s2.why));
  });

  it("the target: not the source, Ready, schedulable, addedNodeSelector, room; none → waits, then fails", () => {
    const vm = world().vm!;
    const m = world().vmim;
    const gi = 2 ** 30;
    const free = new Map([
      ["node01", 10 * gi],
      ["node02", 10 * gi],
      ["node03", 10 * gi],
      ["node04", 10 * gi],
      ["node05", 0],
    ]);
    const nodes = [
      storageNode("node01"),
      storageNode("node02", "10Gi", { ready: false }),
      storageNode("node03", "10Gi", { unschedulable: true }),
      storageNode("node04", "10Gi", { labels: { zone: "b" } }),
      storageNode("node05", "10Gi", { labels: { zone: "a" } }),
    ];
    assert.deepEqual(chooseTarget(vm, m, "node01", gi, nodes, free), { node: "node04" });
    const sel = { ...m, spec: { ...m.spec, addedNodeSelector: { zone: "a" } } };
    const none = chooseTarget(vm, sel, "node01", gi, nodes, free);
    assert.ok("message" in none && /node05: 0 bytes free/.test(none.message), JSON.stringify(none));

    const w = world();
    w.nodes = [storageNode("node01")];
    apply(w, planColdMigration(input(w)));
    apply(w, planColdMigration(input(w)));
    assert.equal(w.vmim.status?.phase, "Scheduling");
    const wait = planColdMigration(input(w));
    assert.equal(wait.kind, "none");
    const late = planColdMigration(input(w, new Date(NOW.getTime() + SCHEDULING_TIMEOUT_MS)));
    assert.ok(late.kind === "status" && late.status.phase === "Failed" && /no node to move to/.test(late.why));
  });

  it("an older active cold migration of the same VM goes first", () => {
    const w = world();
    w.vmim.metadata.finalizers = [Migration.finalizer];
    const older: Vmim = {
      ...structuredClone(w.vmim),
      metadata: { ...w.vmim.metadata, name: "first", uid: "other", creationTimestamp: "2026-12-07T06:00:00Z" },
      status: { phase: "Running" },
    };
    const s = planColdMigration({ ...input(w), siblings: [older] });
    assert.ok(s.kind === "none" && /first/.test(s.why));
  });

  it("new claim names: <claim>-m<hash>, a moved claim's old suffix replaced, ≤ 63 characters", () => {
    assert.equal(movedClaimName("disk", "abcdef"), "disk-mabcdef");
    assert.equal(movedClaimName("disk-m012345", "abcdef"), "disk-mabcdef");
    assert.ok(movedClaimName("x".repeat(80), "abcdef").length <= 63);
  });
});
