import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { invalid, notFound, pointerToField } from "./errors.js";

describe("errors", () => {
  it("notFound renders kube-apiserver's message and details", () => {
    const e = notFound({ group: "kubevirt.io", resource: "virtualmachines" }, "vm1");
    assert.equal(e.status.code, 404);
    assert.equal(e.status.reason, "NotFound");
    assert.equal(e.status.message, 'virtualmachines.kubevirt.io "vm1" not found');
    assert.deepEqual(e.status.details, { name: "vm1", group: "kubevirt.io", kind: "virtualmachines" });
  });
  it("core resources have no group suffix", () => {
    assert.equal(notFound({ group: "", resource: "pods" }, "p").message, 'pods "p" not found');
  });
  it("invalid lists one cause per field", () => {
    const e = invalid({ group: "kubevirt.io", kind: "VirtualMachine" }, "vm1", [
      { type: "FieldValueInvalid", field: "spec.running", message: "running and runStrategy are mutually exclusive" },
    ]);
    assert.equal(e.status.code, 422);
    assert.equal(e.status.details?.causes?.[0]?.field, "spec.running");
    assert.match(e.message, /^VirtualMachine "vm1" is invalid: spec.running: /);
  });
  for (const [ptr, field] of [
    ["/spec/domain/devices/disks/0/name", "spec.domain.devices.disks[0].name"],
    ["/metadata/annotations/a~1b", "metadata.annotations.a/b"],
    ["", ""],
  ] as const) {
    it(`pointerToField(${JSON.stringify(ptr)})`, () => assert.equal(pointerToField(ptr), field));
  }
});
