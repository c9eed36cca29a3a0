import assert from "node:assert/strict";
import { test } from "node:test";
import type { UnstructuredObject as KObj } from "../../api/index.js";
import { builtinDefinitions } from "../../api/index.js";
import { isStatusError } from "../../lib/errors.js";
import { Registry } from "../registry/resources.js";
import { strategyFor } from "./index.js";

const reg = new Registry(builtinDefinitions());
const of = (key: string) => {
  const r = reg.byKey(key);
  assert.ok(r, key);
  return strategyFor(r);
};

test("strategies are looked up by resource; kinds without rules get the generic behaviour", () => {
  assert.equal(of("/namespaces").nameIsLabel, true);
  assert.equal(of("/namespaces").noDeleteCollection, true);
  assert.equal(of("apiextensions.k8s.io/customresourcedefinitions").generation, true);
  assert.deepEqual(of("/services"), {});
});

test("pod deletion: a bound running pod gets a grace period; a shorter one later shortens it; unbound pods go", () => {
  const s = of("/pods");
  const pod = (extra: Partial<KObj> = {}): KObj => ({
    metadata: { name: "p" },
    spec: { nodeName: "n1" },
    status: { phase: "Running" },
    ...extra,
  });
  const cur = pod();
  const next = structuredClone(cur);
  assert.equal(s.prepareForDelete?.(cur, next, {}), "update");
  assert.equal(next.metadata.deletionGracePeriodSeconds, 30);
  assert.equal(s.terminating?.(next), true);
  const again = structuredClone(next);
  assert.equal(s.prepareForDelete?.(next, again, { gracePeriodSeconds: 60 }), "keep");
  const unbound = pod({ spec: {} });
  assert.equal(s.prepareForDelete?.(unbound, structuredClone(unbound), {}), undefined);
});

test("a ControllerRevision's data and revision are immutable", () => {
  const s = of("apps/controllerrevisions");
  const cur: KObj = { metadata: { name: "r" }, data: { a: 1 }, revision: 1 };
  s.validateUpdate?.(cur, { ...cur, metadata: { name: "r", labels: { x: "y" } } }, undefined);
  for (const change of [{ data: { a: 2 } }, { revision: 2 }]) {
    try {
      s.validateUpdate?.(cur, { ...cur, ...change }, undefined);
      assert.fail("accepted");
    } catch (e) {
      assert.ok(isStatusError(e) && e.code === 422);
    }
  }
});
