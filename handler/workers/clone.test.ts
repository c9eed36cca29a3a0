import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Pod } from "../ports.js";
import { matchCloneSource } from "./clone.js";

const pod = (labels: Record<string, string>, annotations: Record<string, string> = {}): Pod =>
  ({ metadata: { name: "u-source-pod", namespace: "src", labels, annotations }, spec: { containers: [] } }) as Pod;

describe("matchCloneSource", () => {
  it("takes the target DV's uid from the pod's annotations", () => {
    const m = matchCloneSource(
      pod(
        { "cdi.kubevirt.io": "cdi-clone-source" },
        { "tsvirt.io/clone-target": "default/disk", "tsvirt.io/clone-target-uid": "dv-uid" },
      ),
    );
    assert.deepEqual(m, { ok: true, ownerUid: "dv-uid" });
  });
  it("refuses other pods and clone-source pods that name no target", () => {
    assert.equal(matchCloneSource(pod({ "cdi.kubevirt.io": "importer" })).ok, false);
    const m = matchCloneSource(pod({ "cdi.kubevirt.io": "cdi-clone-source" }));
    assert.equal(m.ok, false);
    assert.match(m.ok ? "" : m.why, /must name its target DataVolume/);
  });
});
