import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyJsonPatch, type VirtualMachine, type VirtualMachineInstance, type VmiPhase } from "../../client/index.js";
import { newVm, newVmi, withRunning, withRunStrategy } from "../testing/factories.js";
import { planRestart, planStart, planStop, runStrategyOf } from "./runstrategy.js";

const vmiIn = (phase: VmiPhase): VirtualMachineInstance => {
  const v = newVmi("testvm");
  v.metadata.uid = "vmi-uid";
  v.status = { phase };
  return v;
};

function apply(vm: VirtualMachine, plan: ReturnType<typeof planStart>): VirtualMachine {
  assert.ok(plan.ok, plan.ok ? "" : plan.error.message);
  let out = vm;
  for (const p of plan.patches) out = applyJsonPatch(out, p.ops);
  return out;
}

describe("runStrategy table (start / stop / restart subresources)", () => {
  it("runStrategyOf: runStrategy, else running, else Halted", () => {
    assert.equal(runStrategyOf(newVm("a", withRunStrategy("Manual"))), "Manual");
    assert.equal(runStrategyOf(newVm("a", withRunning(true))), "Always");
    assert.equal(runStrategyOf(newVm("a", withRunning(false))), "Halted");
    const vm = newVm("a");
    delete vm.spec.runStrategy;
    assert.equal(runStrategyOf(vm), "Halted");
  });

  const start409: [string, VirtualMachine, VirtualMachineInstance | undefined, string][] = [
    ["Always", newVm("testvm", withRunStrategy("Always")), undefined, "Always does not support manual start requests"],
    ["Once", newVm("testvm", withRunStrategy("Once")), undefined, "Once does not support manual start requests"],
    ["running VMI", newVm("testvm", withRunStrategy("Manual")), vmiIn("Running"), "VM is already running"],
    [
      "RerunOnFailure, VMI Failed",
      newVm("testvm", withRunStrategy("RerunOnFailure")),
      vmiIn("Failed"),
      "RerunOnFailure does not support starting VM from failed state",
    ],
  ];
  for (const [name, vm, vmi, why] of start409) {
    it(`start: 409 for ${name}`, () => {
      const r = planStart(vm, vmi);
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.error.code, 409);
      assert.equal(r.error.reason, "Conflict");
      assert.equal(r.error.message, `Operation cannot be fulfilled on virtualmachine.kubevirt.io "testvm": ${why}`);
    });
  }

  it("start: Halted → Always with a test on the old value; running:false → running:true", () => {
    const vm = newVm("testvm");
    const plan = planStart(vm, undefined);
    assert.ok(plan.ok);
    assert.deepEqual(plan.patches[0]?.ops[0], { op: "test", path: "/spec/runStrategy", value: "Halted" });
    assert.equal(apply(vm, plan).spec.runStrategy, "Always");
    const old = newVm("testvm", withRunning(false));
    assert.equal(apply(old, planStart(old, undefined)).spec.running, true);
  });

  it("start: Manual adds a Start request; a final VMI gets Stop(uid) + Start", () => {
    const vm = newVm("testvm", withRunStrategy("Manual"));
    assert.deepEqual(apply(vm, planStart(vm, undefined)).status?.stateChangeRequests, [{ action: "Start" }]);
    assert.deepEqual(apply(vm, planStart(vm, vmiIn("Succeeded"))).status?.stateChangeRequests, [
      { action: "Stop", uid: "vmi-uid" },
      { action: "Start" },
    ]);
  });

  it("stop: Always → Halted; Manual → Stop request with the VMI uid; Halted → 409", () => {
    const always = newVm("testvm", withRunStrategy("Always"));
    assert.equal(apply(always, planStop(always, vmiIn("Running"))).spec.runStrategy, "Halted");
    const manual = newVm("testvm", withRunStrategy("Manual"));
    assert.deepEqual(apply(manual, planStop(manual, vmiIn("Running"))).status?.stateChangeRequests, [
      { action: "Stop", uid: "vmi-uid" },
    ]);
    const halted = planStop(newVm("testvm"), undefined);
    assert.equal(halted.ok ? 0 : halted.error.code, 409);
    assert.equal(
      halted.ok ? "" : halted.error.message,
      'Operation cannot be fulfilled on virtualmachine.kubevirt.io "testvm": VM is not running',
    );
  });

  it("restart: Stop(uid) + Start; 409 for Halted and for no VMI", () => {
    const vm = newVm("testvm", withRunStrategy("Always"));
    assert.deepEqual(apply(vm, planRestart(vm, vmiIn("Running"))).status?.stateChangeRequests, [
      { action: "Stop", uid: "vmi-uid" },
      { action: "Start" },
    ]);
    const halted = planRestart(newVm("testvm"), undefined);
    assert.equal(
      halted.ok ? "" : halted.error.message,
      'Operation cannot be fulfilled on virtualmachine.kubevirt.io "testvm": Halted does not support manual restart requests',
    );
    const none = planRestart(vm, undefined);
    assert.equal(none.ok, false);
  });

  it("a concurrent change makes the patch's test fail", () => {
    const vm = newVm("testvm");
    const plan = planStart(vm, undefined);
    assert.ok(plan.ok);
    const changed = { ...vm, spec: { ...vm.spec, runStrategy: "Manual" as const } };
    assert.throws(
      () => applyJsonPatch(changed, plan.patches[0]!.ops),
      (e: { status?: { details?: { causes?: { message?: string }[] } } }) =>
        /^testing value .* failed/.test(e.status?.details?.causes?.[0]?.message ?? ""),
    );
  });
});
