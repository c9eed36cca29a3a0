import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { FakeClient, resources, type VirtualMachineInstanceMigration } from "../../client/index.js";
import { serveSubresources } from "./testing.js";

const SR = "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines";

async function setup(t: TestContext, vmiPhase?: string) {
  const client = new FakeClient();
  client.seed(resources.vms, {
    metadata: { name: "vm1", namespace: "default" },
    spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
  } as never);
  if (vmiPhase)
    client.seed(resources.vmis, {
      metadata: { name: "vm1", namespace: "default" },
      spec: { domain: { devices: {} } },
      status: { phase: vmiPhase },
    } as never);
  const base = await serveSubresources(t, client);
  const migrate = async (body: unknown) => {
    const r = await fetch(`${base}${SR}/vm1/migrate`, { method: "PUT", body: JSON.stringify(body) });
    const text = await r.text();
    return { code: r.status, body: text ? (JSON.parse(text) as { message?: string }) : {} };
  };
  return { client, migrate };
}

describe("virt-api VM migrate", () => {
  it("a stopped VM gets a migration (cold: admission labels it), with addedNodeSelector", async (t) => {
    const s = await setup(t);
    const r = await s.migrate({ addedNodeSelector: { "kubernetes.io/hostname": "node02" } });
    assert.ok(r.code < 300, JSON.stringify(r));
    const [m] = s.client.all<VirtualMachineInstanceMigration>(resources.vmims);
    assert.equal(m?.spec.vmiName, "vm1");
    assert.deepEqual(m?.spec.addedNodeSelector, { "kubernetes.io/hostname": "node02" });
    assert.match(m?.metadata.name ?? "", /^kubevirt-migrate-vm-/);
  });

  it("a VM whose VMI is not running yet is refused (409), nothing created", async (t) => {
    const s = await setup(t, "Scheduled");
    const r = await s.migrate({});
    assert.equal(r.code, 409);
    assert.match(r.body.message ?? "", /VMI is not running/);
    assert.deepEqual(s.client.all(resources.vmims), []);
  });
});
