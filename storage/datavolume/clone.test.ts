import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PersistentVolumeClaim, Pod } from "../../client/index.js";
import { claimUsers } from "./clone.js";

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
