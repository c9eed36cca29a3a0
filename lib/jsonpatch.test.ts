import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StatusError } from "./errors.js";
import { applyJsonPatch } from "./jsonpatch.js";

describe("applyJsonPatch (RFC 6902 appendix A)", () => {
  const cases: [string, unknown, unknown[], unknown][] = [
    ["add an object member", { foo: "bar" }, [{ op: "add", path: "/baz", value: "qux" }], { baz: "qux", foo: "bar" }],
    [
      "add an array element",
      { foo: ["bar", "baz"] },
      [{ op: "add", path: "/foo/1", value: "qux" }],
      { foo: ["bar", "qux", "baz"] },
    ],
    ["append with -", { foo: [1] }, [{ op: "add", path: "/foo/-", value: 2 }], { foo: [1, 2] }],
    ["remove a member", { baz: "qux", foo: "bar" }, [{ op: "remove", path: "/baz" }], { foo: "bar" }],
    ["remove an element", { foo: ["bar", "qux", "baz"] }, [{ op: "remove", path: "/foo/1" }], { foo: ["bar", "baz"] }],
    [
      "replace a value",
      { baz: "qux", foo: "bar" },
      [{ op: "replace", path: "/baz", value: "boo" }],
      { baz: "boo", foo: "bar" },
    ],
    [
      "move a value",
      { foo: { bar: "baz", waldo: "fred" }, qux: { corge: "grault" } },
      [{ op: "move", from: "/foo/waldo", path: "/qux/thud" }],
      { foo: { bar: "baz" }, qux: { corge: "grault", thud: "fred" } },
    ],
    [
      "move an array element",
      { foo: ["all", "grass", "cows", "eat"] },
      [{ op: "move", from: "/foo/1", path: "/foo/3" }],
      { foo: ["all", "cows", "eat", "grass"] },
    ],
    ["copy", { a: { b: 1 } }, [{ op: "copy", from: "/a", path: "/c" }], { a: { b: 1 }, c: { b: 1 } }],
    [
      "test passes",
      { baz: "qux", foo: ["a", 2, "c"] },
      [{ op: "test", path: "/foo", value: ["a", 2, "c"] }],
      { baz: "qux", foo: ["a", 2, "c"] },
    ],
    [
      "add a nested member object",
      { foo: "bar" },
      [{ op: "add", path: "/child", value: { grandchild: {} } }],
      { foo: "bar", child: { grandchild: {} } },
    ],
    [
      "~1 and ~0 escapes",
      { "/": 9, "~1": 10 },
      [
        { op: "replace", path: "/~01", value: 11 },
        { op: "remove", path: "/~1" },
      ],
      { "~1": 11 },
    ],
    ["add replaces an existing member", { foo: 1 }, [{ op: "add", path: "/foo", value: 2 }], { foo: 2 }],
    ["add to the root replaces the document", { foo: 1 }, [{ op: "add", path: "", value: [1] }], [1]],
    [
      "kubectl's CSA→SSA migration",
      { metadata: { name: "testvm", resourceVersion: "8", managedFields: [{ manager: "old" }] } },
      [
        { op: "replace", path: "/metadata/managedFields", value: [{ manager: "kubectl", operation: "Apply" }] },
        { op: "replace", path: "/metadata/resourceVersion", value: "8" },
      ],
      {
        metadata: { name: "testvm", resourceVersion: "8", managedFields: [{ manager: "kubectl", operation: "Apply" }] },
      },
    ],
  ];
  for (const [name, doc, ops, want] of cases) {
    it(name, () => {
      const before = structuredClone(doc);
      assert.deepEqual(applyJsonPatch(doc, ops), want);
      assert.deepEqual(doc, before, "the target is not mutated");
    });
  }
});

function expectStatus(fn: () => unknown, code: number, reason: string, cause?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StatusError, String(e));
    assert.equal(e.code, code);
    assert.equal(e.reason, reason);
    if (cause) {
      assert.equal(e.message, "the server rejected our request due to an error in our request");
      assert.equal(e.status.details?.causes?.[0]?.type, "UnexpectedServerResponse");
      assert.match(e.status.details?.causes?.[0]?.message ?? "", cause);
    }
    return true;
  });
}

describe("applyJsonPatch failures map to kube-apiserver's status codes (never 500)", () => {
  const doc = { spec: { running: false, list: [1, 2] } };
  const cases: [string, unknown, number, string, RegExp?][] = [
    [
      "failed test",
      [{ op: "test", path: "/spec/running", value: true }],
      422,
      "Invalid",
      /^testing value \/spec\/running failed: test failed$/,
    ],
    [
      "test of a missing path",
      [{ op: "test", path: "/spec/nope", value: 1 }],
      422,
      "Invalid",
      /^testing value \/spec\/nope failed: test failed$/,
    ],
    [
      "test below a missing parent",
      [{ op: "test", path: "/nope/x", value: 1 }],
      422,
      "Invalid",
      /^test operation does not apply: is missing path: \/nope\/x: missing value$/,
    ],
    [
      "replace of a missing key",
      [{ op: "replace", path: "/spec/nope", value: 1 }],
      422,
      "Invalid",
      /replace operation does not apply/,
    ],
    [
      "remove of a missing key",
      [{ op: "remove", path: "/spec/nope" }],
      422,
      "Invalid",
      /remove operation does not apply/,
    ],
    [
      "add below a missing parent",
      [{ op: "add", path: "/a/b/c", value: 1 }],
      422,
      "Invalid",
      /add operation does not apply/,
    ],
    ["index out of range", [{ op: "add", path: "/spec/list/5", value: 1 }], 422, "Invalid", /invalid index/],
    ["move into its own child", [{ op: "move", from: "/spec", path: "/spec/x" }], 422, "Invalid", /own child/],
    ["unknown op", [{ op: "frob", path: "/spec" }], 422, "Invalid", /Unexpected kind: frob/],
    ["bad pointer", [{ op: "add", path: "spec", value: 1 }], 422, "Invalid", /JSON pointer/],
    ["not a list", { op: "add" }, 400, "BadRequest"],
    ["an op that is not an object", [1], 400, "BadRequest"],
    [
      "too many operations",
      Array.from({ length: 10001 }, () => ({ op: "test", path: "", value: {} })),
      413,
      "RequestEntityTooLarge",
    ],
  ];
  for (const [name, ops, code, reason, cause] of cases) {
    it(name, () => expectStatus(() => applyJsonPatch(doc, ops), code, reason, cause));
  }
  it("a failed operation leaves the target untouched (all or nothing)", () => {
    const d = { a: 1 };
    assert.throws(() =>
      applyJsonPatch(d, [
        { op: "replace", path: "/a", value: 2 },
        { op: "test", path: "/a", value: 3 },
      ]),
    );
    assert.deepEqual(d, { a: 1 });
  });
});
