import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isConflict, isNotFound, StatusError } from "../lib/errors.js";
import { FakeClient } from "./fake.js";
import { resources } from "./resources.js";
import type { Pod, VirtualMachine } from "./types.js";

const vm = (): VirtualMachine => ({
  metadata: { name: "vm1", namespace: "default" },
  spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
});

describe("FakeClient", () => {
  it("creates with generateName, uid and resourceVersion; rejects a stale update with 409", async () => {
    const c = new FakeClient();
    const p = await c.create<Pod>(resources.pods, "default", {
      metadata: { generateName: "virt-launcher-vm1-" },
      spec: { containers: [] },
    });
    assert.match(p.metadata.name!, /^virt-launcher-vm1-[a-z0-9]{5}$/);
    assert.ok(p.metadata.uid);
    const p2 = await c.update(resources.pods, { ...p, metadata: { ...p.metadata, labels: { a: "b" } } });
    assert.notEqual(p2.metadata.resourceVersion, p.metadata.resourceVersion);
    await assert.rejects(c.update(resources.pods, p), (e) => isConflict(e));
  });

  it("keeps status on update and spec on updateStatus for kinds with a status subresource", async () => {
    const c = new FakeClient();
    const [v] = c.seed(resources.vms, { ...vm(), status: { printableStatus: "Stopped" } });
    const u = await c.update(resources.vms, { ...v!, status: { printableStatus: "Running" } });
    assert.equal(u.status?.printableStatus, "Stopped");
    const s = await c.updateStatus(resources.vms, {
      ...u,
      spec: { ...u.spec, runStrategy: "Always" },
      status: { printableStatus: "Running" },
    });
    assert.equal(s.status?.printableStatus, "Running");
    assert.equal(s.spec.runStrategy, "Halted");
  });

  it("json patch with a failing test op is a 409; merge patch applies", async () => {
    const c = new FakeClient();
    c.seed(resources.vms, vm());
    await assert.rejects(
      c.patch(resources.vms, "default", "vm1", "json", [
        { op: "test", path: "/spec/runStrategy", value: "Always" },
        { op: "replace", path: "/spec/runStrategy", value: "Halted" },
      ]),
      (e) => isConflict(e),
    );
    const out = await c.patch<VirtualMachine>(resources.vms, "default", "vm1", "merge", {
      spec: { runStrategy: "Always" },
    });
    assert.equal(out.spec.runStrategy, "Always");
    assert.equal(out.metadata.generation, 2);
  });

  it("reactors fail a verb, and actions are recorded", async () => {
    const c = new FakeClient();
    c.prependReactor("create", "pods", () => ({
      error: new StatusError({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "quota",
        reason: "Forbidden",
        code: 403,
      }),
    }));
    await assert.rejects(
      c.create(resources.pods, "default", { metadata: { name: "p" }, spec: { containers: [] } } as Pod),
      /quota/,
    );
    await assert.rejects(c.get(resources.pods, "default", "p"), (e) => isNotFound(e));
    assert.deepEqual(
      c.actions.map((a) => a.verb),
      ["create", "get"],
    );
  });

  it("finalizers delay deletion; a bound pod stays until deleted with grace 0", async () => {
    const c = new FakeClient();
    c.seed(resources.vmis, { metadata: { name: "v", namespace: "default", finalizers: ["f"] }, spec: { domain: {} } });
    await c.delete(resources.vmis, "default", "v");
    const v = c.peek(resources.vmis, "default", "v");
    assert.ok(v?.metadata.deletionTimestamp);
    await c.update(resources.vmis, { ...v!, metadata: { ...v!.metadata, finalizers: [] } });
    assert.equal(c.peek(resources.vmis, "default", "v"), undefined);
    c.seed<Pod>(resources.pods, {
      metadata: { name: "p", namespace: "default" },
      spec: { containers: [], nodeName: "n1" },
    });
    await c.delete(resources.pods, "default", "p");
    assert.ok(c.peek(resources.pods, "default", "p")?.metadata.deletionTimestamp);
    await c.delete(resources.pods, "default", "p", { gracePeriodSeconds: 0 });
    assert.equal(c.peek(resources.pods, "default", "p"), undefined);
  });

  it("pods/binding sets nodeName once", async () => {
    const c = new FakeClient();
    c.seed<Pod>(resources.pods, { metadata: { name: "p", namespace: "default" }, spec: { containers: [] } });
    const b = { apiVersion: "v1", kind: "Binding", metadata: { name: "p" }, target: { kind: "Node", name: "n1" } };
    await c.createSubresource(resources.pods, "default", "p", "binding", b);
    assert.equal(c.peek<Pod>(resources.pods, "default", "p")?.spec.nodeName, "n1");
    await assert.rejects(c.createSubresource(resources.pods, "default", "p", "binding", b), (e) => isConflict(e));
  });
});
