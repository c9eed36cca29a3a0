import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DataVolume, PersistentVolumeClaim, Pod } from "../../client/index.js";
import { claimUsers, cloneAdmissionCauses } from "./clone.js";

const spec = (namespace: string): DataVolume["spec"] => ({
  source: { pvc: { namespace, name: "golden" } },
  storage: {},
});

describe("cloneAdmissionCauses", () => {
  it("a same-namespace clone needs nothing more", () => {
    assert.deepEqual(
      cloneAdmissionCauses({ metadata: { namespace: "a" }, spec: spec("a") }, () => false),
      [],
    );
  });
  it("a cross-namespace clone asks the authorizer for create datavolumes/source in the source namespace", () => {
    const asked: unknown[] = [];
    const causes = cloneAdmissionCauses({ metadata: { namespace: "a" }, spec: spec("b") }, (attrs) => {
      asked.push(attrs);
      return false;
    });
    assert.deepEqual(asked, [
      { verb: "create", group: "cdi.kubevirt.io", resource: "datavolumes/source", namespace: "b" },
    ]);
    assert.equal(causes[0]?.field, "spec.source.pvc.namespace");
    assert.equal(causes[0]?.type, "FieldValueForbidden");
    assert.deepEqual(
      cloneAdmissionCauses({ metadata: { namespace: "a" }, spec: spec("b") }, () => true),
      [],
    );
  });
});

describe("claimUsers", () => {
  const claim: PersistentVolumeClaim = { metadata: { name: "golden", namespace: "a" }, spec: {} };
  const pod = (name: string, phase: string, volume = "root", ns = "a"): Pod =>
    ({
      metadata: { name, namespace: ns },
      spec: { containers: [], volumes: [{ name: volume, persistentVolumeClaim: { claimName: "golden" } }] },
      status: { phase },
    }) as Pod;
  it("counts live pods that mount the claim, not finished ones, other namespaces or clone-source pods", () => {
    const users = claimUsers(claim, [
      pod("launcher", "Running"),
      pod("done", "Succeeded"),
      pod("elsewhere", "Running", "root", "b"),
      pod("source", "Running", "cdi-source-vol"),
    ]);
    assert.deepEqual(
      users.map((p) => p.metadata.name),
      ["launcher"],
    );
  });
});
