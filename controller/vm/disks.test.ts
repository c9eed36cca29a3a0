import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RetainedDisks } from "../../api/index.js";
import {
  type DataVolume,
  type KObject,
  type Node,
  type PersistentVolumeClaim,
  resources,
  type VirtualMachine,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { localStorageClass, NODE_STORAGE_RESOURCE } from "../../storage/index.js";
import { newClaim, newLocalVolume, newNode, newVm, type Opt, withRunStrategy } from "../testing/factories.js";
import { type Harness, startHarness } from "../testing/harness.js";
import { releaseOnDelete, retainedObject, retainsDisks, templateDisk } from "./disks.js";
import { printableStatus } from "./plan.js";

const NS = "default";

/** A VM whose template boots from DataVolume `root` and has a blank DataVolume `data`. */
const withDisks: Opt<VirtualMachine> = (vm) => {
  vm.spec.dataVolumeTemplates = ["root", "data"].map((name) => ({
    metadata: { name },
    spec:
      name === "root"
        ? { source: { registry: { url: "docker://guest" } }, storage: { resources: { requests: { storage: "1Gi" } } } }
        : { source: { blank: {} }, storage: { resources: { requests: { storage: "64Mi" } } } },
  }));
  vm.spec.template.spec!.volumes = [
    { name: "root", dataVolume: { name: "root" } },
    { name: "data", dataVolume: { name: "data" } },
  ];
};

const annotate =
  (k: string, v: string): Opt<VirtualMachine> =>
  (vm) => {
    vm.metadata.annotations = { ...(vm.metadata.annotations ?? {}), [k]: v };
  };

const dvOf = (h: Harness, name: string) => h.client.peek<DataVolume>(resources.datavolumes, NS, name);
const vmOf = (h: Harness, name = "testvm") => h.client.peek<VirtualMachine>(resources.vms, NS, name);
const vmiOf = (h: Harness, name = "testvm") => h.client.peek<VirtualMachineInstance>(resources.vmis, NS, name);
const claimOf = (h: Harness, name: string) => h.client.peek<PersistentVolumeClaim>(resources.pvcs, NS, name);
const cond = (o: { status?: { conditions?: { type: string }[] } } | undefined, type: string) =>
  o?.status?.conditions?.find((c) => c.type === type) as
    | { type: string; status: string; reason?: string; message?: string }
    | undefined;

/**
 * Plays the DataVolume controller: a phase, and a claim of the DV's name (WaitForFirstConsumer: unbound; Succeeded:
 * bound to a volume on node01).
 */
async function setDv(h: Harness, name: string, phase: string, extra: Partial<NonNullable<DataVolume["status"]>> = {}) {
  const dv = dvOf(h, name)!;
  await h.client.updateStatus(resources.datavolumes, {
    ...dv,
    status: { ...dv.status, phase: phase as never, ...extra },
  });
  if (!claimOf(h, name)) {
    const pvc = newClaim(name, "1Gi", { storageClassName: "tsvirt-local" });
    pvc.metadata.ownerReferences = [
      { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "DataVolume", name, uid: dv.metadata.uid!, controller: true },
    ];
    await h.client.create(resources.pvcs, NS, pvc);
  }
  if (phase === "Succeeded" && !claimOf(h, name)?.spec.volumeName) {
    const pvc = claimOf(h, name)!;
    await h.client.create(
      resources.pvs,
      undefined,
      newLocalVolume(`pvc-${name}`, "node01", { name, uid: pvc.metadata.uid! }),
    );
    const bound = await h.client.update(resources.pvcs, { ...pvc, spec: { ...pvc.spec, volumeName: `pvc-${name}` } });
    await h.client.updateStatus(resources.pvcs, { ...bound, status: { phase: "Bound" } });
  }
  await h.drain();
}

async function playHarness(seed: Parameters<typeof startHarness>[0]): Promise<Harness> {
  return startHarness(seed, undefined, { playDataVolumes: true });
}

async function start(...opts: Opt<VirtualMachine>[]): Promise<Harness> {
  return playHarness([
    { ref: resources.storageclasses, objs: [localStorageClass()] },
    { ref: resources.vms, objs: [newVm("testvm", withDisks, ...opts)] },
    { ref: resources.nodes, objs: [withStorage(newNode("node01"))] },
  ]);
}

function withStorage(n: Node): Node {
  n.status!.capacity = { ...n.status!.capacity, [NODE_STORAGE_RESOURCE]: "20Gi" };
  n.status!.allocatable = { ...n.status!.allocatable, [NODE_STORAGE_RESOURCE]: "20Gi" };
  return n;
}

describe("VM disks: dataVolumeTemplates", () => {
  it("makes the DataVolumes when the VM is created (even Halted): named as written, controlled by the VM", async (t) => {
    const h = await start();
    t.after(() => h.stop());
    await h.drain();
    const vm = vmOf(h)!;
    for (const name of ["root", "data"]) {
      const dv = dvOf(h, name)!;
      assert.ok(dv, `DataVolume ${name} created`);
      assert.deepEqual(dv.metadata.ownerReferences, [
        {
          apiVersion: "kubevirt.io/v1",
          kind: "VirtualMachine",
          name: "testvm",
          uid: vm.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      assert.equal(dv.metadata.labels?.["kubevirt.io/created-by"], vm.metadata.uid);
    }
    assert.equal(dvOf(h, "data")?.spec.source?.blank !== undefined, true);
    assert.equal(vmOf(h)?.status?.printableStatus, "Provisioning");
    assert.deepEqual(vm.metadata.finalizers, ["kubevirt.io/virtualMachineControllerFinalize", RetainedDisks.finalizer]);
    assert.ok((await h.eventReasons()).includes("SuccessfulDataVolumeCreate"));
  });

  it("starts the VMI only once its DataVolumes are Succeeded; Provisioning then; DataVolumesReady", async (t) => {
    const h = await start(withRunStrategy("Always"));
    t.after(() => h.stop());
    await h.drain();
    await setDv(h, "root", "ImportInProgress", { progress: "45.2%" });
    await setDv(h, "data", "Succeeded", { progress: "100.0%" });
    assert.equal(vmiOf(h), undefined, "no VMI while a disk is being filled");
    assert.equal(vmOf(h)?.status?.printableStatus, "Provisioning");
    const c = cond(vmOf(h), "DataVolumesReady");
    assert.equal(c?.status, "False");
    assert.equal(c?.reason, "NotAllDVsReady");
    assert.match(c?.message ?? "", /root \(phase ImportInProgress\)/);
    await setDv(h, "root", "Succeeded", { progress: "100.0%" });
    assert.ok(vmiOf(h), "VMI created once both are Succeeded");
    assert.equal(cond(vmOf(h), "DataVolumesReady")?.reason, "AllDVsReady");
    assert.equal(vmOf(h)?.status?.printableStatus, "Starting");
  });

  it("WaitForFirstConsumer: the VMI and its launcher pod are made (the pod, first consumer, selects the node)", async (t) => {
    const h = await start(withRunStrategy("Always"));
    t.after(() => h.stop());
    await h.drain();
    await setDv(h, "root", "WaitForFirstConsumer");
    await setDv(h, "data", "WaitForFirstConsumer");
    assert.ok(vmiOf(h), "VMI created");
    const pods = h.client.all<KObject & { spec: { nodeName?: string } }>(resources.pods);
    assert.equal(pods.length, 1, "launcher pod created");
    assert.equal(pods[0]?.spec.nodeName, "node01", "scheduled: its claims' node is selected");
    assert.equal(claimOf(h, "root")?.metadata.annotations?.["volume.kubernetes.io/selected-node"], "node01");
    assert.equal(cond(vmiOf(h), "DataVolumesReady")?.reason, "NotAllDVsReady");
  });

  it("DataVolumeError (a Failed DataVolume, or Running=False reason Error), even for a stopped VM", async (t) => {
    const h = await start();
    t.after(() => h.stop());
    await h.drain();
    await setDv(h, "data", "Succeeded");
    await setDv(h, "root", "Failed", {
      conditions: [{ type: "Running", status: "False", reason: "ImageTooLarge", message: "the image is larger" }],
    });
    assert.equal(vmOf(h)?.status?.printableStatus, "DataVolumeError");
    await setDv(h, "root", "ImportScheduled", {
      conditions: [{ type: "Running", status: "False", reason: "Error", message: "connection refused" }],
    });
    assert.equal(vmOf(h)?.status?.printableStatus, "DataVolumeError");
  });

  it("printableStatus precedence: ErrorPvcNotFound > DataVolumeError > ErrorUnschedulable > Provisioning > WaitingForVolumeBinding", () => {
    const vm = newVm("testvm", withDisks, withRunStrategy("Always"));
    const vmi = (conds: { type: string; status: string; reason: string }[]) =>
      ({ metadata: { name: "testvm" }, spec: {}, status: { phase: "Scheduling", conditions: conds } }) as never;
    const all = { error: "e", provisioning: "p", unbound: "u" };
    const pvcNotFound = vmi([{ type: "Synchronized", status: "False", reason: "FailedPvcNotFound" }]);
    const unsched = vmi([{ type: "PodScheduled", status: "False", reason: "Unschedulable" }]);
    assert.equal(printableStatus(vm, pvcNotFound, [], "Always", false, all), "ErrorPvcNotFound");
    assert.equal(printableStatus(vm, unsched, [], "Always", false, all), "DataVolumeError");
    assert.equal(printableStatus(vm, unsched, [], "Always", false, { provisioning: "p" }), "ErrorUnschedulable");
    assert.equal(
      printableStatus(vm, undefined, [], "Always", false, { provisioning: "p", unbound: "u" }),
      "Provisioning",
    );
    assert.equal(printableStatus(vm, undefined, [], "Always", false, { unbound: "u" }), "WaitingForVolumeBinding");
    assert.equal(printableStatus(vm, undefined, [], "Halted", false, { unbound: "u" }), "Stopped");
  });
});

describe("VM disks: deletion keeps them", () => {
  async function runningWithDisks(...opts: Opt<VirtualMachine>[]): Promise<Harness> {
    const h = await start(withRunStrategy("Always"), ...opts);
    await h.drain();
    await setDv(h, "root", "Succeeded");
    await setDv(h, "data", "Succeeded");
    assert.ok(vmiOf(h));
    return h;
  }

  function assertRetained(h: Harness, uid: string) {
    for (const name of ["root", "data"]) {
      const dv = dvOf(h, name)!;
      assert.ok(dv, `DataVolume ${name} kept`);
      assert.equal(dv.metadata.ownerReferences, undefined, "the VM's ownerReference is gone");
      assert.equal(dv.metadata.labels?.[RetainedDisks.fromVmLabel], "testvm");
      assert.equal(dv.metadata.annotations?.[RetainedDisks.uidAnnotation], uid);
      const spec = JSON.parse(dv.metadata.annotations?.[RetainedDisks.specAnnotation] ?? "{}");
      assert.deepEqual(
        spec.dataVolumeTemplates.map((t: { metadata: { name: string } }) => t.metadata.name),
        ["root", "data"],
      );
      const pvc = claimOf(h, name)!;
      assert.equal(pvc.metadata.labels?.[RetainedDisks.fromVmLabel], "testvm");
      assert.equal(pvc.metadata.ownerReferences?.[0]?.kind, "DataVolume", "the claim stays the DataVolume's");
    }
  }

  it("deleting the VM removes its VMI; its DataVolumes and claims stay, released and marked", async (t) => {
    const h = await runningWithDisks();
    t.after(() => h.stop());
    const uid = vmOf(h)!.metadata.uid!;
    await h.client.delete(resources.vms, NS, "testvm");
    await h.drain();
    // the VMI is asked to go; play virt-handler + the VMI controller: it goes
    const vmi = vmiOf(h);
    if (vmi) await h.client.update(resources.vmis, { ...vmi, metadata: { ...vmi.metadata, finalizers: [] } });
    await h.drain();
    assert.equal(vmiOf(h), undefined);
    assert.equal(vmOf(h), undefined, "the VM is gone");
    assertRetained(h, uid);
    assert.ok((await h.eventReasons()).includes("DisksRetained"));
  });

  it("crash-safe: a release interrupted after the DataVolume (claim update fails) converges on retry", async (t) => {
    const h = await runningWithDisks();
    t.after(() => h.stop());
    const uid = vmOf(h)!.metadata.uid!;
    let failures = 1;
    h.client.prependReactor("update", "persistentvolumeclaims", () => {
      if (failures-- > 0) throw new Error("killed");
      return undefined;
    });
    await h.client.delete(resources.vms, NS, "testvm");
    await h.ctrl.stepVm().catch(() => {});
    assert.ok(vmOf(h)?.metadata.finalizers?.includes(RetainedDisks.finalizer), "finalizer held");
    assert.equal(dvOf(h, "root")?.metadata.ownerReferences, undefined, "first DataVolume released");
    h.ctrl.vmQueue.add(`${NS}/testvm`);
    const vmi = vmiOf(h);
    if (vmi) await h.client.update(resources.vmis, { ...vmi, metadata: { ...vmi.metadata, finalizers: [] } });
    await h.drain();
    assert.equal(vmOf(h), undefined);
    assertRetained(h, uid);
  });

  it('opt-out tsvirt.io/delete-disks-with-vm: "true": no retain finalizer, the disks keep the VM\'s ownerReference (they go with it)', async (t) => {
    const h = await runningWithDisks(annotate(RetainedDisks.deleteWithVmAnnotation, "true"));
    t.after(() => h.stop());
    assert.ok(!vmOf(h)?.metadata.finalizers?.includes(RetainedDisks.finalizer));
    await h.client.delete(resources.vms, NS, "testvm");
    const vmi = vmiOf(h);
    await h.drain();
    if (vmi)
      await h.client.update(resources.vmis, { ...vmiOf(h)!, metadata: { ...vmiOf(h)!.metadata, finalizers: [] } });
    await h.drain();
    assert.equal(vmOf(h), undefined);
    assert.equal(
      dvOf(h, "root")?.metadata.ownerReferences?.[0]?.kind,
      "VirtualMachine",
      "left to the garbage collector",
    );
    assert.equal(dvOf(h, "root")?.metadata.labels?.[RetainedDisks.fromVmLabel], undefined);
  });

  it('pool members\' disks go with them unless the pool says "false"; an orphan delete keeps everything as is', () => {
    const pool: KObject = { metadata: { name: "p", namespace: NS, uid: "pool-uid" } };
    const member = newVm("m", withDisks, (vm) => {
      vm.metadata.ownerReferences = [
        {
          apiVersion: "pool.kubevirt.io/v1beta1",
          kind: "VirtualMachinePool",
          name: "p",
          uid: "pool-uid",
          controller: true,
        },
      ];
    });
    assert.equal(retainsDisks(member, pool), false);
    const keeping = {
      ...pool,
      metadata: { ...pool.metadata, annotations: { [RetainedDisks.deleteWithVmAnnotation]: "false" } },
    };
    assert.equal(retainsDisks(member, keeping), true);
    assert.equal(retainsDisks(newVm("plain", withDisks), undefined), true);
    assert.equal(retainsDisks(newVm("nodisks"), undefined), false);
    const deleted = (fins: string[]) =>
      newVm("d", withDisks, (vm) => {
        vm.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
        vm.metadata.finalizers = fins;
      });
    assert.equal(releaseOnDelete(deleted([RetainedDisks.finalizer]), undefined), true);
    assert.equal(releaseOnDelete(deleted([RetainedDisks.finalizer, "orphan"]), undefined), false);
    assert.equal(releaseOnDelete(deleted([]), undefined), false);
    // a pool member whose pool is gone (deleted with its members) follows the decision its finalizer recorded
    const gonePool = deleted([RetainedDisks.finalizer]);
    gonePool.metadata.ownerReferences = member.metadata.ownerReferences!;
    assert.equal(releaseOnDelete(gonePool, undefined), true);
  });

  it("retainedObject is idempotent (a second round changes nothing)", () => {
    const vm = newVm("testvm", withDisks, (v) => {
      v.metadata.uid = "vm-uid";
    });
    const dv = {
      metadata: {
        name: "root",
        ownerReferences: [
          { apiVersion: "kubevirt.io/v1", kind: "VirtualMachine", name: "testvm", uid: "vm-uid", controller: true },
        ],
      },
    } as KObject;
    const once = retainedObject(vm, dv)!;
    assert.equal(once.metadata.ownerReferences, undefined);
    assert.equal(retainedObject(vm, once), undefined);
  });
});

describe("VM disks: recovery and adoption", () => {
  const retained = (name: string, fromVm: string, extra: Partial<KObject["metadata"]> = {}): DataVolume => ({
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: {
      name,
      namespace: NS,
      labels: { [RetainedDisks.fromVmLabel]: fromVm, "kubevirt.io/created-by": "old-uid" },
      annotations: { [RetainedDisks.uidAnnotation]: "old-uid", [RetainedDisks.specAnnotation]: "{}" },
      ...extra,
    },
    spec: { source: { blank: {} } },
    status: { phase: "Succeeded", progress: "100.0%" },
  });
  const retainedClaim = (name: string): PersistentVolumeClaim => {
    const pvc = newClaim(name, "1Gi");
    pvc.metadata.labels = { [RetainedDisks.fromVmLabel]: "testvm" };
    pvc.metadata.annotations = { [RetainedDisks.uidAnnotation]: "old-uid" };
    pvc.status = { phase: "Bound" };
    return pvc;
  };

  it("a VM re-created with the same name adopts its retained DataVolumes (no new import) and starts on them", async (t) => {
    const h = await playHarness([
      { ref: resources.datavolumes, objs: [retained("root", "testvm"), retained("data", "testvm")] },
      { ref: resources.pvcs, objs: [retainedClaim("root"), retainedClaim("data")] },
      { ref: resources.vms, objs: [newVm("testvm", withDisks, withRunStrategy("Always"))] },
      { ref: resources.nodes, objs: [newNode("node01")] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const vm = vmOf(h)!;
    assert.ok(!h.client.actions.some((a) => a.verb === "create" && a.resource === "datavolumes"), "nothing re-made");
    for (const name of ["root", "data"]) {
      const dv = dvOf(h, name)!;
      assert.equal(dv.metadata.ownerReferences?.[0]?.uid, vm.metadata.uid);
      assert.equal(dv.metadata.labels?.[RetainedDisks.fromVmLabel], undefined);
      assert.equal(dv.metadata.annotations?.[RetainedDisks.specAnnotation], undefined);
      assert.equal(dv.metadata.labels?.["kubevirt.io/created-by"], vm.metadata.uid);
      assert.equal(dv.status?.phase, "Succeeded");
      assert.equal(claimOf(h, name)?.metadata.labels?.[RetainedDisks.fromVmLabel], undefined);
    }
    assert.ok(vmiOf(h), "the VM starts on its adopted disks");
    assert.ok((await h.eventReasons()).includes("DataVolumeAdopted"));
  });

  it("a DataVolume of that name not retained from a VM of that name is not adopted: condition, no VMI", async (t) => {
    const other = retained("root", "othervm");
    const plain: DataVolume = { ...retained("data", "x"), metadata: { name: "data", namespace: NS } };
    const h = await playHarness([
      { ref: resources.datavolumes, objs: [other, plain] },
      { ref: resources.vms, objs: [newVm("testvm", withDisks, withRunStrategy("Always"))] },
      { ref: resources.nodes, objs: [newNode("node01")] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    assert.equal(dvOf(h, "root")?.metadata.ownerReferences, undefined);
    assert.equal(dvOf(h, "data")?.metadata.ownerReferences, undefined);
    assert.equal(vmiOf(h), undefined, "never started on someone else's disk");
    const c = cond(vmOf(h), "DataVolumesReady");
    assert.equal(c?.reason, "DataVolumeConflict");
    assert.match(c?.message ?? "", /DataVolume root exists and is not this VM's: it was retained from VM othervm/);
    assert.match(c?.message ?? "", /DataVolume data exists .* not retained from a VM named testvm/);
    assert.ok((await h.eventReasons()).includes("DataVolumeConflict"));
  });

  it("templateDisk: owned / adoptable / foreign (another controller)", () => {
    const vm = newVm("testvm", (v) => {
      v.metadata.uid = "u1";
    });
    const ref = (uid: string, kind = "VirtualMachine") => [
      { apiVersion: "v1", kind, name: "x", uid, controller: true },
    ];
    assert.equal(templateDisk(vm, "a", undefined).state, "missing");
    assert.equal(
      templateDisk(vm, "a", { ...retained("a", "testvm"), metadata: { name: "a", ownerReferences: ref("u1") } }).state,
      "owned",
    );
    assert.equal(templateDisk(vm, "a", retained("a", "testvm")).state, "adoptable");
    const foreign = templateDisk(vm, "a", {
      ...retained("a", "testvm"),
      metadata: { name: "a", ownerReferences: ref("u2", "VirtualMachine") },
    });
    assert.equal(foreign.state, "foreign");
  });
});

describe("VM disks: their node is down", () => {
  it("a condition names the node its disks are on while it is NotReady; it clears when the node returns", async (t) => {
    const pv = newLocalVolume("pvc-1", "node02", { name: "disk" });
    const claim = newClaim("disk", "1Gi", { volumeName: "pvc-1", storageClassName: "tsvirt-local" });
    claim.status = { phase: "Bound" };
    const vm = newVm("testvm", withRunStrategy("Always"), (v) => {
      v.spec.template.spec!.volumes = [{ name: "disk", persistentVolumeClaim: { claimName: "disk" } }];
    });
    const h = await playHarness([
      { ref: resources.pvs, objs: [pv] },
      { ref: resources.pvcs, objs: [claim] },
      { ref: resources.vms, objs: [vm] },
      { ref: resources.nodes, objs: [newNode("node01"), newNode("node02", { ready: false })] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const c = cond(vmOf(h), "DisksNodeReady");
    assert.equal(c?.status, "False");
    assert.equal(c?.reason, "NodeNotReady");
    assert.match(c?.message ?? "", /claims disk\) are on node node02, which is not Ready/);
    // the launcher pod is not placed elsewhere (PV node affinity): the VM shows it cannot be scheduled
    const pods = h.client.all<KObject & { spec: { nodeName?: string } }>(resources.pods);
    assert.equal(pods.length, 1);
    assert.equal(pods[0]?.spec.nodeName, undefined, "never started on another node");
    assert.equal(vmOf(h)?.status?.printableStatus, "ErrorUnschedulable");
    // the node returns
    const n2 = newNode("node02");
    const cur = h.client.peek<KObject>(resources.nodes, undefined, "node02")!;
    await h.client.updateStatus(resources.nodes, { ...cur, status: n2.status } as KObject);
    await h.drain();
    assert.equal(cond(vmOf(h), "DisksNodeReady"), undefined);
    const placed = h.client.all<KObject & { spec: { nodeName?: string } }>(resources.pods);
    assert.equal(placed[0]?.spec.nodeName, "node02", "scheduled on its disk's node once it is back");
  });
});
