import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ColdMigration } from "../../api/index.js";
import type {
  Condition,
  PrintableStatus,
  StateChangeRequest,
  VirtualMachineInstance,
  VmiPhase,
} from "../../client/index.js";
import { newVm, newVmi, withRunStrategy } from "../testing/factories.js";
import {
  computeVmStatus,
  type FinalizerAction,
  holdForColdMigration,
  ORPHAN_FINALIZER,
  planVm,
  planVmFinalizer,
  printableStatus,
  VM_FINALIZER,
} from "./plan.js";

function vmi(
  phase: VmiPhase,
  conds: Condition[] = [],
  extra: Partial<VirtualMachineInstance["metadata"]> = {},
): VirtualMachineInstance {
  const v = newVmi("testvm");
  v.metadata = { ...v.metadata, uid: "u1", ...extra };
  v.status = { phase, conditions: conds };
  return v;
}

describe("printableStatus precedence", () => {
  const deletingVm = newVm("testvm", withRunStrategy("Always"));
  deletingVm.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
  const cases: [
    string,
    PrintableStatus,
    ReturnType<typeof newVm>,
    VirtualMachineInstance | undefined,
    StateChangeRequest[],
  ][] = [
    ["VM deleting", "Terminating", deletingVm, vmi("Running"), []],
    [
      "VMI deleting",
      "Stopping",
      newVm("testvm", withRunStrategy("Always")),
      vmi("Running", [], { deletionTimestamp: "x" }),
      [],
    ],
    [
      "Stop request",
      "Stopping",
      newVm("testvm", withRunStrategy("Manual")),
      vmi("Running"),
      [{ action: "Stop", uid: "u1" }],
    ],
    ["Halted with a live VMI", "Stopping", newVm("testvm"), vmi("Running"), []],
    [
      "migrating",
      "Migrating",
      newVm("testvm", withRunStrategy("Always")),
      { ...vmi("Running"), status: { phase: "Running", migrationState: { completed: false } } },
      [],
    ],
    [
      "paused",
      "Paused",
      newVm("testvm", withRunStrategy("Always")),
      vmi("Running", [{ type: "Paused", status: "True" }]),
      [],
    ],
    ["running", "Running", newVm("testvm", withRunStrategy("Always")), vmi("Running"), []],
    [
      "unschedulable",
      "ErrorUnschedulable",
      newVm("testvm", withRunStrategy("Always")),
      vmi("Scheduling", [{ type: "PodScheduled", status: "False", reason: "Unschedulable" }]),
      [],
    ],
    [
      "image pull",
      "ErrImagePull",
      newVm("testvm", withRunStrategy("Always")),
      vmi("Scheduled", [{ type: "Ready", status: "False", reason: "ErrImagePull" }]),
      [],
    ],
    [
      "image back-off",
      "ImagePullBackOff",
      newVm("testvm", withRunStrategy("Always")),
      vmi("Scheduled", [{ type: "Ready", status: "False", reason: "ImagePullBackOff" }]),
      [],
    ],
    ["starting", "Starting", newVm("testvm", withRunStrategy("Always")), vmi("Scheduling"), []],
    ["no VMI", "Stopped", newVm("testvm"), undefined, []],
    ["final VMI", "Stopped", newVm("testvm", withRunStrategy("Once")), vmi("Succeeded"), []],
    ["receiver", "WaitingForReceiver", newVm("testvm", withRunStrategy("WaitAsReceiver")), undefined, []],
  ];
  for (const [name, want, vm, v, reqs] of cases) {
    it(`${name} → ${want}`, () => {
      assert.equal(printableStatus(vm, v, reqs, vm.spec.runStrategy ?? "Halted"), want);
    });
  }
});

describe("computeVmStatus", () => {
  it("mirrors the VMI's Ready condition and keeps lastTransitionTime while it does not change", () => {
    const vm = newVm("testvm", withRunStrategy("Always"));
    const v = vmi("Running", [{ type: "Ready", status: "True" }]);
    const s1 = computeVmStatus(vm, v, planVm(vm, v), "2026-01-01T00:00:00Z");
    assert.equal(s1.ready, true);
    assert.equal(s1.created, true);
    const r1 = s1.conditions?.find((c) => c.type === "Ready");
    assert.deepEqual(r1, { type: "Ready", status: "True", lastTransitionTime: "2026-01-01T00:00:00Z" });
    const s2 = computeVmStatus({ ...vm, status: s1 }, v, planVm(vm, v), "2026-01-01T00:05:00Z");
    assert.deepEqual(s2, s1, "no change, so no write");
  });

  it("shows CrashLoopBackOff, not Stopped, from the round that sees the VMI fail (runStrategy Always)", () => {
    const vm = newVm("testvm", withRunStrategy("Always"));
    vm.status = { printableStatus: "Running", runStrategy: "Always" };
    const failed = vmi("Failed");
    const p = planVm(vm, failed, { nowMs: Date.parse("2026-01-01T00:00:00Z"), random: 0 });
    assert.equal(p.action, "delete");
    const s = computeVmStatus(vm, failed, p, "2026-01-01T00:00:00Z");
    assert.equal(s.printableStatus, "CrashLoopBackOff");
    assert.equal(s.startFailure?.consecutiveFailCount, 1);
    // A VM stopped by its user shows Stopped even after a failure.
    const halted = newVm("testvm");
    halted.status = { startFailure: s.startFailure! };
    assert.equal(
      computeVmStatus(halted, failed, planVm(halted, failed), "2026-01-01T00:00:01Z").printableStatus,
      "Stopped",
    );
  });

  it("carries the VMI's failure (Synchronized=False) as its Failure condition through the crash loop", () => {
    const vm = newVm("testvm", withRunStrategy("Always"));
    vm.status = { printableStatus: "Running", runStrategy: "Always" };
    const why = "the launcher refused the VMI: Cannot access storage file: Permission denied";
    const failed = vmi("Failed", [{ type: "Synchronized", status: "False", reason: "SyncFailed", message: why }]);
    const now = "2026-01-01T00:00:00Z";
    const s = computeVmStatus(vm, failed, planVm(vm, failed, { nowMs: Date.parse(now), random: 0 }), now);
    assert.equal(s.printableStatus, "CrashLoopBackOff");
    assert.deepEqual(
      s.conditions?.find((c) => c.type === "Failure"),
      { type: "Failure", status: "True", reason: "SyncFailed", message: why, lastTransitionTime: now },
    );
    // The failed VMI is gone (deleted for the restart): the VM still says why.
    const vm2 = { ...vm, status: s };
    const s2 = computeVmStatus(vm2, undefined, planVm(vm2, undefined, { nowMs: Date.parse(now), random: 0 }), now);
    assert.equal(s2.printableStatus, "CrashLoopBackOff");
    assert.equal(s2.conditions?.find((c) => c.type === "Failure")?.message, why);
    // A VMI that runs again clears it.
    const running = vmi("Running", [{ type: "Ready", status: "True" }]);
    const s3 = computeVmStatus({ ...vm, status: s2 }, running, planVm(vm, running), now);
    assert.equal(
      s3.conditions?.find((c) => c.type === "Failure"),
      undefined,
    );
  });
});

describe("planVmFinalizer (KubeVirt's vm.go sync)", () => {
  const vmWith = (finalizers: string[] | undefined, deleting: boolean) => {
    const vm = newVm("testvm", withRunStrategy("Always"));
    if (finalizers) vm.metadata.finalizers = finalizers;
    if (deleting) vm.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
    return vm;
  };
  const cases: [string, FinalizerAction, string[] | undefined, boolean, VirtualMachineInstance | undefined][] = [
    ["live VM without it: add", "add", undefined, false, undefined],
    ["live VM with another finalizer: add", "add", ["example.com/keep"], false, vmi("Running")],
    ["live VM with it: nothing", "none", [VM_FINALIZER], false, vmi("Running")],
    ["deleted VM with a VMI: keep it while the VMI goes", "none", [VM_FINALIZER], true, vmi("Running")],
    [
      "deleted VM with a terminating VMI: keep it",
      "none",
      [VM_FINALIZER],
      true,
      vmi("Running", [], { deletionTimestamp: "x" }),
    ],
    ["deleted VM whose VMI is gone: remove", "remove", [VM_FINALIZER], true, undefined],
    ["deleted VM orphaning its VMI: remove at once", "remove", [VM_FINALIZER, ORPHAN_FINALIZER], true, vmi("Running")],
    ["deleted VM without it (never synced): nothing, it is not re-added", "none", undefined, true, undefined],
  ];
  for (const [name, want, fins, deleting, v] of cases) {
    it(name, () => assert.equal(planVmFinalizer(vmWith(fins, deleting), v), want));
  }

  it("a deleted VM deletes its VMI, unless its dependents are orphaned", () => {
    const vm = vmWith([VM_FINALIZER], true);
    assert.equal(planVm(vm, vmi("Running")).action, "delete");
    assert.equal(planVm(vm, vmi("Succeeded")).action, "delete", "a final VMI still goes");
    assert.equal(planVm(vm, vmi("Running", [], { deletionTimestamp: "x" })).action, "none");
    assert.equal(planVm(vmWith([VM_FINALIZER, ORPHAN_FINALIZER], true), vmi("Running")).action, "none");
  });
});

describe("a cold migration holds the VM", () => {
  const migrating = (strategy: "Always" | "Manual") => {
    const vm = newVm("testvm", withRunStrategy(strategy));
    vm.status = {
      conditions: [{ type: ColdMigration.condition, status: "True", reason: "ColdMigrationInProgress", message: "m" }],
      stateChangeRequests: strategy === "Manual" ? [{ action: "Start" }] : [],
    };
    return vm;
  };
  it("a start waits (the Start request stays queued) and the VM shows Migrating", () => {
    for (const strategy of ["Always", "Manual"] as const) {
      const vm = migrating(strategy);
      const plan = holdForColdMigration(planVm(vm, undefined), vm);
      assert.equal(plan.action, "none", strategy);
      assert.equal(plan.why, "waiting for the cold migration");
      assert.deepEqual(plan.requests, vm.status?.stateChangeRequests ?? [], strategy);
      assert.equal(computeVmStatus(vm, undefined, plan, "2026-01-01T00:00:00Z").printableStatus, "Migrating");
    }
  });
  it("once the condition is False the start goes on", () => {
    const vm = migrating("Always");
    vm.status!.conditions![0]!.status = "False";
    assert.equal(holdForColdMigration(planVm(vm, undefined), vm).action, "create");
  });
});
