import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { resources, type VirtualMachine, type VirtualMachineInstance } from "../../client/index.js";
import { newNode, newVm, withRunning, withRunStrategy } from "../testing/factories.js";
import { startHarness } from "../testing/harness.js";

const getVm = (h: Awaited<ReturnType<typeof startHarness>>, name = "testvm") =>
  h.client.peek<VirtualMachine>(resources.vms, "default", name)!;
const getVmi = (h: Awaited<ReturnType<typeof startHarness>>, name = "testvm") =>
  h.client.peek<VirtualMachineInstance>(resources.vmis, "default", name);

/** Plays virt-handler: moves the VMI to a phase with a Ready condition. */
async function setVmiPhase(h: Awaited<ReturnType<typeof startHarness>>, phase: string, ready = false, name = "testvm") {
  const vmi = getVmi(h, name)!;
  await h.client.update(resources.vmis, {
    ...vmi,
    status: {
      ...vmi.status,
      phase: phase as never,
      conditions: [{ type: "Ready", status: ready ? "True" : "False", reason: ready ? "" : "NotReady" }],
    },
  });
}

describe("VM controller", () => {
  it("Halted: creates no VMI; status Stopped, Ready=False, runStrategy recorded", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm()] }]);
    t.after(() => h.stop());
    await h.drain();
    assert.equal(getVmi(h), undefined);
    const vm = getVm(h);
    assert.equal(vm.status?.printableStatus, "Stopped");
    assert.equal(vm.status?.runStrategy, "Halted");
    assert.equal(vm.status?.conditions?.find((c) => c.type === "Ready")?.status, "False");
    assert.equal(vm.status?.created, undefined);
  });

  it("Always (and running: true): creates the VMI named as the VM, controlled by it, from the template", async (t) => {
    for (const opt of [withRunStrategy("Always"), withRunning(true)]) {
      const h = await startHarness([
        { ref: resources.vms, objs: [newVm("testvm", opt)] },
        { ref: resources.nodes, objs: [newNode("node01")] },
      ]);
      t.after(() => h.stop());
      await h.drain();
      const vm = getVm(h);
      const vmi = getVmi(h)!;
      assert.ok(vmi, "VMI created");
      assert.deepEqual(vmi.metadata.ownerReferences, [
        {
          apiVersion: "kubevirt.io/v1",
          kind: "VirtualMachine",
          name: "testvm",
          uid: vm.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      assert.equal(vmi.metadata.labels?.["kubevirt.io/vm"], "testvm");
      assert.equal(vmi.metadata.annotations?.note, "from-template");
      assert.equal(vm.status?.created, true);
      assert.equal(vm.status?.printableStatus, "Starting");
      assert.ok((await h.eventReasons()).includes("SuccessfulCreate"));
    }
  });

  it("expectations: a VMI the cache has not shown yet is not created twice", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    // The API accepts the create, but the watch never shows it (a slow cache).
    let creates = 0;
    h.client.prependReactor("create", "virtualmachineinstances", (a) => {
      creates++;
      return { result: a.object };
    });
    await h.ctrl.stepVm();
    h.ctrl.vmQueue.add("default/testvm");
    await h.ctrl.stepVm();
    assert.equal(creates, 1);
  });

  it("stop (runStrategy → Halted) deletes the VMI: Stopping, then Stopped once it is gone", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    await h.drain();
    await setVmiPhase(h, "Running", true);
    await h.drain();
    assert.equal(getVm(h).status?.printableStatus, "Running");
    assert.equal(getVm(h).status?.ready, true);
    assert.equal(getVm(h).status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    await h.client.patch(resources.vms, "default", "testvm", "merge", { spec: { runStrategy: "Halted" } });
    await h.ctrl.stepVm();
    const vmi = getVmi(h);
    assert.ok(vmi?.metadata.deletionTimestamp, "VMI marked for deletion (its finalizer holds it)");
    assert.equal(getVm(h).status?.printableStatus, "Stopping");
    // The VMI controller deletes the pod and drops the finalizer; the VMI goes.
    await h.drain();
    assert.equal(getVmi(h), undefined);
    assert.equal(getVm(h).status?.printableStatus, "Stopped");
    assert.equal(getVm(h).status?.ready, undefined);
  });

  it("finalizer: added in the VM's first round; a deleted VM is Terminating until its VMI is gone, then goes", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    let finalizerPatches = 0;
    h.client.prependReactor("patch", "virtualmachines", () => {
      finalizerPatches++;
      return undefined;
    });
    await h.drain();
    assert.deepEqual(getVm(h).metadata.finalizers, ["kubevirt.io/virtualMachineControllerFinalize"]);
    assert.equal(finalizerPatches, 1, "one metadata write in the VM's life; status writes as before");
    await setVmiPhase(h, "Running", true);
    await h.drain();
    const uid = getVmi(h)!.metadata.uid;

    await h.client.delete(resources.vms, "default", "testvm");
    assert.ok(getVm(h).metadata.deletionTimestamp, "the finalizer holds the VM");
    await h.ctrl.stepVm();
    assert.ok(getVmi(h)?.metadata.deletionTimestamp, "its VMI is being deleted");
    assert.equal(getVm(h).status?.printableStatus, "Terminating");
    await h.drain();
    assert.equal(getVmi(h), undefined);
    assert.equal(h.client.peek(resources.vms, "default", "testvm"), undefined, "VM gone once its VMI is");
    assert.ok((await h.eventReasons()).includes("SuccessfulDelete"), `VMI ${uid} deleted by the VM controller`);
  });

  it("a deleted VM whose VMI was orphaned (ownerReference dropped) leaves the VMI alone and goes", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    await h.drain();
    await setVmiPhase(h, "Running", true);
    await h.drain();
    // The embedded API server's Orphan deletion: ownerReferences dropped, then the deletionTimestamp set.
    const vmi = getVmi(h)!;
    await h.client.update(resources.vmis, { ...vmi, metadata: { ...vmi.metadata, ownerReferences: [] } });
    await h.client.delete(resources.vms, "default", "testvm");
    await h.drain();
    assert.equal(h.client.peek(resources.vms, "default", "testvm"), undefined);
    assert.equal(getVmi(h)?.metadata.deletionTimestamp, undefined, "the orphaned VMI runs on");
    assert.equal(getVmi(h)?.metadata.uid, vmi.metadata.uid);
  });

  it("a deleted VM carrying Kubernetes' orphan finalizer releases its own at once and keeps the VMI", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    await h.drain();
    const vm = getVm(h);
    await h.client.update(resources.vms, {
      ...vm,
      metadata: { ...vm.metadata, finalizers: [...(vm.metadata.finalizers ?? []), "orphan"] },
    });
    await h.client.delete(resources.vms, "default", "testvm");
    await h.drain();
    assert.deepEqual(getVm(h).metadata.finalizers, ["orphan"], "the garbage collector's finalizer is its own");
    assert.equal(getVmi(h)?.metadata.deletionTimestamp, undefined);
  });

  it("a VMI the cache shows stale (orphaned meanwhile) is not deleted: the resourceVersion precondition fails", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    await h.drain();
    const vmi = getVmi(h)!;
    let preconditions: unknown;
    h.client.prependReactor("delete", "virtualmachineinstances", (a) => {
      preconditions = (a.options as { preconditions?: unknown } | undefined)?.preconditions;
      return undefined;
    });
    await h.client.delete(resources.vms, "default", "testvm");
    await h.ctrl.stepVm();
    assert.deepEqual(preconditions, { uid: vmi.metadata.uid, resourceVersion: vmi.metadata.resourceVersion });
  });

  it("restart (Stop uid + Start requests) replaces the VMI with a new uid and clears the requests", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    await h.drain();
    const old = getVmi(h)!;
    const vm = getVm(h);
    await h.client.updateStatus(resources.vms, {
      ...vm,
      status: { ...vm.status, stateChangeRequests: [{ action: "Stop", uid: old.metadata.uid! }, { action: "Start" }] },
    });
    await h.drain();
    const fresh = getVmi(h)!;
    assert.ok(fresh);
    assert.notEqual(fresh.metadata.uid, old.metadata.uid);
    assert.equal(getVm(h).status?.stateChangeRequests, undefined);
  });

  it("RerunOnFailure: a Failed VMI is replaced; a Succeeded one is not", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("RerunOnFailure"))] }]);
    t.after(() => h.stop());
    await h.drain();
    const first = getVmi(h)!;
    await setVmiPhase(h, "Failed");
    await h.drain();
    assert.equal(getVm(h).status?.printableStatus, "CrashLoopBackOff");
    h.ctrl.vmDeps.now = () => new Date(Date.now() + 20_000); // past the first back-off
    h.ctrl.vmQueue.add("default/testvm");
    await h.drain();
    const second = getVmi(h)!;
    assert.notEqual(second.metadata.uid, first.metadata.uid, "rerun after failure");
    await setVmiPhase(h, "Succeeded");
    await h.drain();
    assert.equal(getVmi(h)?.metadata.uid, second.metadata.uid, "no rerun after success");
    assert.equal(getVm(h).status?.printableStatus, "Stopped");
  });

  it("Manual: nothing until a Start request; the request is consumed when the VMI is created", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Manual"))] }]);
    t.after(() => h.stop());
    await h.drain();
    assert.equal(getVmi(h), undefined);
    const vm = getVm(h);
    await h.client.updateStatus(resources.vms, {
      ...vm,
      status: { ...vm.status, stateChangeRequests: [{ action: "Start" }] },
    });
    await h.drain();
    assert.ok(getVmi(h));
    assert.equal(getVm(h).status?.stateChangeRequests, undefined);
  });

  it("Once: runs once and is not restarted after the VMI ends", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Once"))] }]);
    t.after(() => h.stop());
    await h.drain();
    const vmi = getVmi(h)!;
    await setVmiPhase(h, "Failed");
    await h.drain();
    assert.equal(getVmi(h)?.metadata.uid, vmi.metadata.uid);
    assert.equal(getVm(h).status?.printableStatus, "Stopped");
  });

  it("a failed VMI create is a FailedCreate event and a retry, not a crash", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    let fail = true;
    h.client.prependReactor("create", "virtualmachineinstances", () =>
      fail ? { error: new Error("admission denied") } : undefined,
    );
    await h.ctrl.stepVm();
    assert.equal(h.ctrl.vmQueue.numRequeues("default/testvm"), 1);
    assert.ok((await h.eventReasons()).includes("FailedCreate"));
    fail = false;
    h.ctrl.vmQueue.add("default/testvm");
    await h.drain();
    assert.ok(getVmi(h));
  });
});

describe("VM controller crash-loop back-off", () => {
  it("holds back the restart of a failed VMI with KubeVirt's growing delay, shown as CrashLoopBackOff", async (t) => {
    const h = await startHarness([{ ref: resources.vms, objs: [newVm("testvm", withRunStrategy("Always"))] }]);
    t.after(() => h.stop());
    let offset = 0;
    h.ctrl.vmDeps.now = () => new Date(Date.now() + offset);
    await h.drain();
    const first = getVmi(h)!;
    await setVmiPhase(h, "Failed");
    // the delay is read against the clock before and after the drain that sets it (a stall there is not a delay)
    let before = Date.now();
    await h.drain();
    let after = Date.now();
    assert.equal(getVmi(h), undefined, "the failed VMI is gone and no new one yet");
    const vm = getVm(h);
    assert.equal(vm.status?.printableStatus, "CrashLoopBackOff");
    assert.equal(vm.status?.startFailure?.consecutiveFailCount, 1);
    assert.equal(vm.status?.startFailure?.lastFailedVMIUID, first.metadata.uid);
    const retry = Date.parse(vm.status!.startFailure!.retryAfterTimestamp!);
    assert.ok(retry - before > 8_000 && retry - after <= 16_000, `first delay 10-15 s, got ${retry - after} ms`);
    assert.equal(h.ctrl.vmQueue.delayedLen(), 1, "requeued for the end of the back-off");
    offset = 20_000;
    h.ctrl.vmQueue.add("default/testvm");
    await h.drain();
    const second = getVmi(h)!;
    assert.notEqual(second.metadata.uid, first.metadata.uid);
    await setVmiPhase(h, "Failed");
    before = Date.now() + offset;
    await h.drain();
    after = Date.now() + offset;
    const sf = getVm(h).status?.startFailure;
    assert.equal(sf?.consecutiveFailCount, 2);
    const retry2 = Date.parse(sf!.retryAfterTimestamp!);
    assert.ok(retry2 - before > 38_000 && retry2 - after <= 61_000, `second delay 40-60 s, got ${retry2 - after} ms`);
  });

  it("the delay formula: max(10, 300/30)·n² + jitter up to half, capped at 300 s", async () => {
    const { crashLoopDelaySeconds } = await import("./plan.js");
    assert.deepEqual(
      [1, 2, 3, 5, 6].map((n) => crashLoopDelaySeconds(n, 0)),
      [10, 40, 90, 250, 300],
    );
    assert.equal(crashLoopDelaySeconds(2, 0.999), 59);
  });
});
