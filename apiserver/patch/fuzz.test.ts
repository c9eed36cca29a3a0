// Random and mutated inputs never make the patch or field-management libraries throw anything but a StatusError
// (which the server answers as a 4xx), and never mutate their inputs. Bounded: a fixed seed, a few thousand cases.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StatusError } from "../../lib/errors.js";
import {
  applyJsonPatch,
  applyMergePatch,
  applyServerSide,
  applyStrategicMergePatch,
  isNoop,
  type Json,
  updateManagedFields,
} from "./index.js";

function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

const keys = [
  "name",
  "spec",
  "metadata",
  "labels",
  "containers",
  "env",
  "a",
  "b",
  "$patch",
  "$retainKeys",
  "$setElementOrder/containers",
  "$deleteFromPrimitiveList/finalizers",
  "finalizers",
  "managedFields",
  "value",
  "type",
  "conditions",
  "disks",
  "uid",
  "",
];
const strings = ["x", "web", "replace", "delete", "merge", "", "/", "~1", 'k:{"name":"x"}', "f:a", "Apply", "Update"];

function value(r: (n: number) => number, depth: number): Json {
  switch (depth > 3 ? r(4) : r(7)) {
    case 0:
      return strings[r(strings.length)]!;
    case 1:
      return r(100) - 50;
    case 2:
      return r(2) === 0;
    case 3:
      return null;
    case 4:
    case 5: {
      const o: Record<string, Json> = {};
      for (let i = r(5); i > 0; i--) o[keys[r(keys.length)]!] = value(r, depth + 1);
      return o;
    }
    default:
      return Array.from({ length: r(4) }, () => value(r, depth + 1));
  }
}

function pointer(r: (n: number) => number): string {
  const parts = Array.from({ length: r(4) }, () =>
    r(3) === 0 ? String(r(3)) : r(5) === 0 ? "-" : keys[r(keys.length)]!,
  );
  return parts.length ? `/${parts.join("/")}` : r(2) ? "" : "nope";
}

function ops(r: (n: number) => number): Json {
  if (r(20) === 0) return value(r, 0);
  const names = ["add", "remove", "replace", "move", "copy", "test", "frob"];
  return Array.from({ length: 1 + r(4) }, () => {
    const o: Record<string, Json> = { op: names[r(names.length)]!, path: pointer(r) };
    if (r(2)) o.from = pointer(r);
    if (r(3)) o.value = value(r, 2);
    if (r(15) === 0) o.path = r(10);
    return o;
  });
}

function expectOnlyStatusErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof StatusError, `threw ${e instanceof Error ? e.stack : String(e)}`);
    assert.ok(e.code >= 400 && e.code < 500, `code ${e.code}: ${e.message}`);
  }
}

describe("fuzz: patch and field management never crash", () => {
  const cases = 1500;
  it(`${cases} random JSON patches`, () => {
    const r = rng(1);
    for (let i = 0; i < cases; i++) {
      const doc = value(r, 0);
      const before = JSON.stringify(doc);
      expectOnlyStatusErrors(() => applyJsonPatch(doc, ops(r)));
      assert.equal(JSON.stringify(doc), before);
    }
  });
  it(`${cases} random merge and strategic merge patches`, () => {
    const r = rng(2);
    for (let i = 0; i < cases; i++) {
      const doc = value(r, 0);
      const patch = value(r, 0);
      const before = JSON.stringify(doc);
      expectOnlyStatusErrors(() => applyMergePatch(doc, patch));
      expectOnlyStatusErrors(() => applyStrategicMergePatch(doc, patch));
      assert.equal(JSON.stringify(doc), before);
    }
  });
  it(`${cases} random applies and updates, with garbage managedFields too`, () => {
    const r = rng(3);
    for (let i = 0; i < cases; i++) {
      const live = value(r, 0);
      const after = value(r, 0);
      const applied = value(r, 0);
      if (r(3) === 0 && live && typeof live === "object" && !Array.isArray(live)) {
        live.metadata = { managedFields: value(r, 1) } as Json;
      }
      const before = JSON.stringify([live, after, applied]);
      expectOnlyStatusErrors(() => updateManagedFields({ before: live, after, manager: "m" }));
      expectOnlyStatusErrors(() => applyServerSide({ live, applied, manager: "a", force: r(2) === 0 }));
      expectOnlyStatusErrors(() => isNoop(live, after));
      assert.equal(JSON.stringify([live, after, applied]), before);
    }
  });
});
