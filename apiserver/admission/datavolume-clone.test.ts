import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { crossNamespaceCloneCauses } from "./datavolume.js";

const spec = (namespace: string) => ({ source: { pvc: { namespace, name: "golden" } }, storage: {} });

describe("crossNamespaceCloneCauses", () => {
  it("a same-namespace clone asks nothing", () => {
    assert.deepEqual(
      crossNamespaceCloneCauses(spec("a"), "a", () => assert.fail("asked")),
      [],
    );
  });
  it("a cross-namespace clone needs create datavolumes/source in the source namespace", () => {
    const asked: unknown[] = [];
    const causes = crossNamespaceCloneCauses(spec("b"), "a", (attrs) => {
      asked.push(attrs);
      return false;
    });
    assert.deepEqual(asked, [
      { verb: "create", group: "cdi.kubevirt.io", resource: "datavolumes/source", namespace: "b" },
    ]);
    assert.equal(causes[0]?.field, "spec.source.pvc.namespace");
    assert.equal(causes[0]?.type, "FieldValueForbidden");
    assert.deepEqual(
      crossNamespaceCloneCauses(spec("b"), "a", () => true),
      [],
    );
  });
});
