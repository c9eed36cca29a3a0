import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { resourceVersionPrecondition } from "./json.js";
import { applyMergePatch } from "./mergepatch.js";

describe("applyMergePatch (RFC 7386 appendix A)", () => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: "b" }, { a: "c" }, { a: "c" }],
    [{ a: "b" }, { b: "c" }, { a: "b", b: "c" }],
    [{ a: "b" }, { a: null }, {}],
    [{ a: "b", b: "c" }, { a: null }, { b: "c" }],
    [{ a: ["b"] }, { a: "c" }, { a: "c" }],
    [{ a: "c" }, { a: ["b"] }, { a: ["b"] }],
    [{ a: { b: "c" } }, { a: { b: "d", c: null } }, { a: { b: "d" } }],
    [{ a: [{ b: "c" }] }, { a: [1] }, { a: [1] }],
    [
      ["a", "b"],
      ["c", "d"],
      ["c", "d"],
    ],
    [{ a: "b" }, ["c"], ["c"]],
    [{ a: "foo" }, null, null],
    [{ a: "foo" }, "bar", "bar"],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: "b", c: null }, { a: "b" }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, want] of cases) {
    it(`${JSON.stringify(target)} + ${JSON.stringify(patch)}`, () => {
      const before = structuredClone(target);
      assert.deepEqual(applyMergePatch(target, patch), want);
      assert.deepEqual(target, before, "the target is not mutated");
    });
  }

  it("kubectl apply's patch on a VM: labels, annotation and spec fields", () => {
    const vm = {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachine",
      metadata: { name: "testvm", namespace: "default", resourceVersion: "7", labels: { app: "demo" } },
      spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
    };
    const out = applyMergePatch<typeof vm>(vm, {
      metadata: { annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}" }, labels: { app: "demo2" } },
      spec: { runStrategy: "Always" },
    });
    assert.equal(out.metadata.labels.app, "demo2");
    assert.equal(out.spec.runStrategy, "Always");
    assert.deepEqual(out.spec.template, vm.spec.template);
    assert.equal(resourceVersionPrecondition(vm, out), undefined);
  });

  it("a resourceVersion inside the patch is a precondition the caller checks", () => {
    const cur = { metadata: { name: "x", resourceVersion: "9" } };
    assert.equal(resourceVersionPrecondition(cur, applyMergePatch(cur, { metadata: { resourceVersion: "8" } })), "8");
    assert.equal(
      resourceVersionPrecondition(cur, applyMergePatch(cur, { metadata: { resourceVersion: "9" } })),
      undefined,
    );
  });
});
