import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RetainedDisks } from "../api/index.js";
import { type DataVolume, FakeClient, resources, type VirtualMachine } from "../client/index.js";
import { runVirtctl } from "./testing.js";

const spec: VirtualMachine["spec"] = {
  runStrategy: "Always",
  dataVolumeTemplates: [{ metadata: { name: "root" }, spec: { source: { blank: {} } } }],
  template: { spec: { domain: { devices: {} }, volumes: [{ name: "root", dataVolume: { name: "root" } }] } },
};

function retained(name: string, vm: string, uid = "uid-1", ns = "default"): DataVolume {
  return {
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: {
      name,
      namespace: ns,
      labels: { [RetainedDisks.fromVmLabel]: vm },
      annotations: { [RetainedDisks.uidAnnotation]: uid, [RetainedDisks.specAnnotation]: JSON.stringify(spec) },
    },
    spec: { source: { blank: {} } },
    status: { phase: "Succeeded" },
  };
}

describe("virtctl recover", () => {
  it("recreates the VM from the retained spec", async () => {
    const client = new FakeClient();
    client.seed(resources.datavolumes, retained("root", "vm1"), retained("data", "vm1"));
    const r = await runVirtctl(["recover", "vm1"], client);
    assert.equal(r.err, "");
    assert.equal(r.code, 0);
    assert.equal(r.out, "VM vm1 recovered from its retained disks (data, root)\n");
    const vm = client.peek<VirtualMachine>(resources.vms, "default", "vm1")!;
    assert.deepEqual(vm.spec, spec);
  });

  it("refuses when a VM of that name exists (409-like message), and when nothing is retained", async () => {
    const client = new FakeClient();
    client.seed(resources.datavolumes, retained("root", "vm1"));
    client.seed(resources.vms, {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachine",
      metadata: { name: "vm1", namespace: "default" },
      spec,
    });
    const r = await runVirtctl(["recover", "vm1"], client);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /^Error: a VirtualMachine named vm1 already exists in namespace default: recover brings back only a deleted VM/,
    );
    const none = await runVirtctl(["recover", "ghost"], client);
    assert.equal(none.code, 1);
    assert.match(none.err, /no disks retained from a VM named ghost in namespace default/);
  });

  it("several deleted VMs of one name: asks for --uid, then recovers that one", async () => {
    const client = new FakeClient();
    client.seed(resources.datavolumes, retained("a", "vm1", "u1"), retained("b", "vm1", "u2"));
    const r = await runVirtctl(["recover", "vm1"], client);
    assert.equal(r.code, 1);
    assert.match(r.err, /uids u1, u2\): choose one with --uid/);
    const ok = await runVirtctl(["recover", "vm1", "--uid", "u2"], client);
    assert.equal(ok.code, 0);
    assert.match(ok.out, /\(b\)/);
  });

  it("--list shows the deleted VMs with their DataVolumes", async () => {
    const client = new FakeClient();
    client.seed(
      resources.datavolumes,
      retained("root", "vm1"),
      retained("data", "vm1"),
      retained("d2", "vm2", "uid-2"),
    );
    const r = await runVirtctl(["recover", "--list"], client);
    assert.equal(r.code, 0);
    const lines = r.out
      .trim()
      .split("\n")
      .map((l) => l.split(/\s+/));
    assert.deepEqual(lines, [
      ["VM", "UID", "DATAVOLUMES"],
      ["vm1", "uid-1", "data,root"],
      ["vm2", "uid-2", "d2"],
    ]);
    const empty = await runVirtctl(["recover", "--list", "-n", "other"], client);
    assert.equal(empty.out, "No retained disks in namespace other.\n");
  });
});
