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

test("a claim's spec is frozen but for a bound claim's requests, which only grow, and only where the class allows", async () => {
  const { Store } = await import("../storage/store.js");
  const store = new Store();
  const ctx = { registry: reg, store };
  const sc = (name: string, allow: boolean | undefined, isDefault = false) =>
    store.create("storage.k8s.io/storageclasses", {
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: {
        name,
        ...(isDefault ? { annotations: { "storageclass.kubernetes.io/is-default-class": "true" } } : {}),
      },
      provisioner: "x",
      ...(allow === undefined ? {} : { allowVolumeExpansion: allow }),
    });
  sc("grows", true, true);
  sc("fixed", false);
  sc("unsaid", undefined);
  const s = of("/persistentvolumeclaims");
  const claim = (cls: string | undefined, size: string, phase = "Bound", volumeName = "pv-1"): KObj => ({
    metadata: { name: "c" },
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: size } },
      ...(cls ? { storageClassName: cls } : {}),
      ...(volumeName ? { volumeName } : {}),
    },
    status: { phase },
  });
  const code = (f: () => void): number | undefined => {
    try {
      f();
      return undefined;
    } catch (e) {
      assert.ok(isStatusError(e));
      return e.code;
    }
  };
  const upd = (cur: KObj, next: KObj) => code(() => s.validateUpdate?.(cur, next, undefined, ctx));
  assert.equal(upd(claim("grows", "1Gi"), claim("grows", "2Gi")), undefined, "grows where allowed");
  assert.equal(upd(claim(undefined, "1Gi"), claim(undefined, "2Gi")), undefined, "unset class: the default class");
  assert.equal(upd(claim("grows", "2Gi"), claim("grows", "1Gi")), 422, "never shrinks");
  assert.equal(upd(claim("fixed", "1Gi"), claim("fixed", "2Gi")), 403);
  assert.equal(upd(claim("unsaid", "1Gi"), claim("unsaid", "2Gi")), 403, "allowVolumeExpansion unset: no");
  assert.equal(upd(claim("grows", "1Gi"), claim("fixed", "1Gi")), 422, "class is immutable");
  assert.equal(
    upd(claim("grows", "1Gi", "Pending", ""), claim("grows", "2Gi", "Pending", "")),
    422,
    "an unbound claim's requests are frozen",
  );
  assert.equal(
    upd(claim("grows", "1Gi", "Pending", ""), claim("grows", "1Gi", "Pending", "pv-2")),
    undefined,
    "the binder sets volumeName once",
  );
  assert.equal(upd(claim("grows", "1Gi"), claim("grows", "1Gi", "Bound", "pv-2")), 422, "...and only once");
  assert.equal(
    code(() => s.validateUpdate?.(claim("fixed", "1Gi"), claim("fixed", "2Gi"), "status", ctx)),
    undefined,
  );
  try {
    s.validateUpdate?.(claim("fixed", "1Gi"), claim("fixed", "2Gi"), undefined, ctx);
  } catch (e) {
    assert.match(String((e as Error).message), /only dynamically provisioned pvc can be resized/);
  }
  store.close();
});
