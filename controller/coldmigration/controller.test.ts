// The cold migration controller in virt-controller (harness: fake API, queues stepped). The test plays the DataVolume
// controller and the node (a clone DataVolume's claim bound on the node it is pinned to, then Succeeded).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ColdMigration, Migration } from "../../api/index.js";
import type {
  DataVolume,
  Node,
  PersistentVolumeClaim,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineInstanceMigration,
} from "../../client/index.js";
import { resources } from "../../client/index.js";
import { localStorageClass, NODE_STORAGE_RESOURCE } from "../../storage/index.js";
import { newClaim, newLocalVolume, newNode, newVm } from "../testing/factories.js";
import { type Harness, startHarness } from "../testing/harness.js";
import { shortHash } from "./plan.js";

function storageNode(name: string): Node {
  const n = newNode(name);
  n.status!.allocatable = { ...n.status!.allocatable, [NODE_STORAGE_RESOURCE]: "10Gi" };
  return n;
}

async function settle(h: Harness): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < 100 && quiet < 2; i++) {
    await new Promise((r) => setTimeout(r, 5));
    quiet = (await h.drain()) === 0 ? quiet + 1 : 0;
  }
}

/** A stopped VM whose DataVolume "disk" (Succeeded) is bound to a local volume on node01. */
async function seedVm(h: Harness): Promise<VirtualMachine> {
  const dv = await h.client.create<DataVolume>(resources.datavolumes, "default", {
    metadata: { name: "disk", namespace: "default" },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "1Gi" } } } },
  });
  await h.client.updateStatus(resources.datavolumes, { ...dv, status: { phase: "Succeeded", claimName: "disk" } });
  await bindClaim(h, "disk", dv, "node01");
  const vm = newVm("vm1");
  vm.spec.template.spec!.volumes = [{ name: "d", dataVolume: { name: "disk" } }];
  return h.client.create(resources.vms, "default", vm);
}

/** The claim of a DataVolume, bound to a local volume on `node` (what the DV controller and the binder make). */
async function bindClaim(h: Harness, name: string, dv: DataVolume, node: string): Promise<void> {
  const c = newClaim(name, "1Gi", { storageClassName: "tsvirt-local", volumeName: `pvc-${name}` });
  c.metadata.ownerReferences = [
    { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "DataVolume", name, uid: dv.metadata.uid ?? "", controller: true },
  ];
  c.metadata.annotations = { "pv.kubernetes.io/bind-completed": "yes" };
  const claim = await h.client.create<PersistentVolumeClaim>(resources.pvcs, "default", c);
  await h.client.updateStatus(resources.pvcs, {
    ...claim,
    status: { phase: "Bound", accessModes: ["ReadWriteOnce"], capacity: { storage: "1Gi" } },
  });
  const pv = newLocalVolume(`pvc-${name}`, node, { name, uid: claim.metadata.uid ?? "" });
  pv.metadata.finalizers = ["tsvirt.io/local-volume"];
  await h.client.create(resources.pvs, undefined, pv);
}

async function cloneFinishes(h: Harness, name: string): Promise<void> {
  const dv = h.client.peek<DataVolume>(resources.datavolumes, "default", name)!;
  await bindClaim(h, name, dv, dv.metadata.annotations?.["volume.kubernetes.io/selected-node"] ?? "");
  await h.client.updateStatus(resources.datavolumes, { ...dv, status: { phase: "Succeeded", claimName: name } });
}

/** Two nodes with local storage; the test plays the DataVolume controller. */
function start(): Promise<Harness> {
  return startHarness(
    [
      { ref: resources.nodes, objs: [storageNode("node01"), storageNode("node02")] },
      { ref: resources.storageclasses, objs: [localStorageClass()] },
    ],
    undefined,
    { playDataVolumes: true },
  );
}

function vmim(): VirtualMachineInstanceMigration {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: { name: "mig", namespace: "default", labels: { [ColdMigration.modeLabel]: ColdMigration.mode } },
    spec: { vmiName: "vm1" },
  };
}

const peekVm = (h: Harness) => h.client.peek<VirtualMachine>(resources.vms, "default", "vm1")!;
const peekMig = (h: Harness) => h.client.peek<VirtualMachineInstanceMigration>(resources.vmims, "default", "mig");

describe("cold migration controller", () => {
  it("moves a stopped VM's disk to node02; a start meanwhile waits (Migrating), then boots on the new disk", async (t) => {
    const h = await start();
    t.after(() => h.stop());
    await seedVm(h);
    await settle(h);
    const m = await h.client.create<VirtualMachineInstanceMigration>(resources.vmims, "default", vmim());
    const moved = `disk-m${shortHash(m.metadata.uid ?? "")}`;
    await settle(h);

    assert.equal(peekMig(h)?.status?.phase, "Running");
    assert.deepEqual(peekMig(h)?.metadata.finalizers, [Migration.finalizer]);
    assert.equal(peekMig(h)?.status?.migrationState?.targetNode, "node02");
    const clone = h.client.peek<DataVolume>(resources.datavolumes, "default", moved);
    assert.ok(clone, `clone DataVolume ${moved} exists`);
    assert.deepEqual(clone.spec.source?.pvc, { namespace: "default", name: "disk" });
    assert.equal(clone.metadata.annotations?.["volume.kubernetes.io/selected-node"], "node02");
    assert.equal(clone.metadata.ownerReferences?.[0]?.name, "vm1");
    const held = peekVm(h).status?.conditions?.find((c) => c.type === ColdMigration.condition);
    assert.equal(held?.status, "True");
    assert.match(held?.message ?? "", /mig/);

    // a start now waits
    await h.client.patch(resources.vms, "default", "vm1", "merge", { spec: { runStrategy: "Always" } });
    await settle(h);
    assert.equal(h.client.peek<VirtualMachineInstance>(resources.vmis, "default", "vm1"), undefined);
    assert.equal(peekVm(h).status?.printableStatus, "Migrating");

    await cloneFinishes(h, moved);
    await settle(h);
    assert.equal(peekMig(h)?.status?.phase, "Succeeded");
    assert.equal(peekMig(h)?.status?.migrationState?.completed, true);
    const vm = peekVm(h);
    assert.equal(vm.spec.template.spec?.volumes?.[0]?.dataVolume?.name, moved);
    assert.deepEqual(
      vm.spec.dataVolumeTemplates?.map((d) => d.metadata?.name),
      [moved],
    );
    assert.deepEqual(
      vm.status?.volumeUpdateState?.volumeMigrationState?.migratedVolumes?.map((v) => [
        v.sourcePVCInfo?.claimName,
        v.destinationPVCInfo?.claimName,
      ]),
      [["disk", moved]],
    );
    // the held start went on, on the new disk; the old one stays until the VMI runs on node02
    const vmi = h.client.peek<VirtualMachineInstance>(resources.vmis, "default", "vm1");
    assert.ok(vmi, "the VM started");
    assert.equal(vmi.spec.volumes?.[0]?.dataVolume?.name, moved);
    assert.ok(h.client.peek(resources.datavolumes, "default", "disk"), "old disk kept while the VM boots");
    assert.deepEqual(peekMig(h)?.metadata.finalizers, [Migration.finalizer]);

    await h.client.update(resources.vmis, { ...vmi, status: { phase: "Running", nodeName: "node02" } });
    await settle(h);
    assert.equal(h.client.peek(resources.datavolumes, "default", "disk"), undefined, "old DataVolume released");
    assert.equal(h.client.peek(resources.pvcs, "default", "disk"), undefined, "old claim released");
    assert.equal(peekMig(h)?.metadata.finalizers, undefined);
  });

  it("cancel (VMIM deleted) mid-clone: the clone goes, the VM keeps its disk and may start", async (t) => {
    const h = await start();
    t.after(() => h.stop());
    await seedVm(h);
    const m = await h.client.create<VirtualMachineInstanceMigration>(resources.vmims, "default", vmim());
    const moved = `disk-m${shortHash(m.metadata.uid ?? "")}`;
    await settle(h);
    assert.ok(h.client.peek(resources.datavolumes, "default", moved));
    const seen: (string | undefined)[] = [];
    h.client.prependReactor("updateStatus", "virtualmachineinstancemigrations", (a) => {
      seen.push((a.object as VirtualMachineInstanceMigration).status?.migrationState?.abortStatus);
      return undefined;
    });
    await h.client.delete(resources.vmims, "default", "mig");
    await settle(h);
    assert.equal(peekMig(h), undefined, "the VMIM is gone (finalizer removed)");
    assert.ok(seen.includes("Succeeded"), "it was marked Failed with abortStatus Succeeded on its way out");
    assert.equal(h.client.peek(resources.datavolumes, "default", moved), undefined, "the clone is deleted");
    const vm = peekVm(h);
    assert.equal(vm.spec.template.spec?.volumes?.[0]?.dataVolume?.name, "disk");
    assert.equal(vm.status?.volumeUpdateState, undefined);
    const c = vm.status?.conditions?.find((x) => x.type === ColdMigration.condition);
    assert.equal(c?.status, "False");
    assert.equal(c?.reason, "ColdMigrationCancelled");
    assert.ok(h.client.peek(resources.datavolumes, "default", "disk"));
  });
});
