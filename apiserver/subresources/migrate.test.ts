import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { FakeClient, resources, type VirtualMachineInstanceMigration } from "../../client/index.js";
import { serveSubresources } from "./testing.js";

const SR = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines";

/** A VM vm1, with a VMI in `phase` (none: a stopped VM, a cold migration). */
async function setup(t: TestContext, phase: string | undefined = "Running") {
  const client = new FakeClient();
  client.seed(resources.vms, { metadata: { name: "vm1", namespace: "default" }, spec: { template: {} } } as never);
  if (phase)
    client.seed(resources.vmis, {
      metadata: { name: "vm1", namespace: "default" },
      spec: { domain: {} },
      status: { phase, nodeName: "node01" },
    } as never);
  const base = await serveSubresources(t, client);
  const put = async (body: unknown) => {
    const r = await fetch(`${base}${SR}/vm1/migrate`, { method: "PUT", body: JSON.stringify(body) });
    const text = await r.text();
    return { code: r.status, body: text ? (JSON.parse(text) as { message?: string }) : {} };
  };
  return { client, put };
}

describe("virt-api migrate (VM subresource)", () => {
  it("creates a VMIM kubevirt-migrate-vm-* with the addedNodeSelector (202)", async (t) => {
    const s = await setup(t);
    assert.equal((await s.put({ addedNodeSelector: { zone: "b" } })).code, 202);
    const [m] = s.client.all<{ metadata: { generateName?: string; name?: string }; spec: unknown }>(resources.vmims);
    assert.match(m?.metadata.name ?? "", /^kubevirt-migrate-vm-/);
    assert.deepEqual(m?.spec, { vmiName: "vm1", addedNodeSelector: { zone: "b" } });
  });
  it("dry run creates nothing; a bad addedNodeSelector is a 400; a VMI not Running a 409", async (t) => {
    const s = await setup(t);
    assert.equal((await s.put({ dryRun: ["All"] })).code, 202);
    assert.equal(s.client.all(resources.vmims).length, 0);
    const bad = await s.put({ addedNodeSelector: { zone: 3 } });
    assert.equal(bad.code, 400);
    assert.match(bad.body.message ?? "", /addedNodeSelector/);
    const stopped = await setup(t, "Scheduling");
    assert.equal((await stopped.put({})).code, 409);
  });
  it("a stopped VM gets a migration (cold: admission labels it), with addedNodeSelector", async (t) => {
    const s = await setup(t, undefined);
    const r = await s.put({ addedNodeSelector: { "kubernetes.io/hostname": "node02" } });
    assert.ok(r.code < 300, JSON.stringify(r));
    const [m] = s.client.all<VirtualMachineInstanceMigration>(resources.vmims);
    assert.equal(m?.spec.vmiName, "vm1");
    assert.deepEqual(m?.spec.addedNodeSelector, { "kubernetes.io/hostname": "node02" });
    assert.match(m?.metadata.name ?? "", /^kubevirt-migrate-vm-/);
  });

  it("a VM whose VMI is not running yet is refused (409), nothing created", async (t) => {
    const s = await setup(t, "Scheduled");
    const r = await s.put({});
    assert.equal(r.code, 409);
    assert.match(r.body.message ?? "", /VMI is not running/);
    assert.deepEqual(s.client.all(resources.vmims), []);
  });
});
