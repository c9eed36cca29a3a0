import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Node, PersistentVolume, PersistentVolumeClaim } from "../client/index.js";
import { newClaim, newNode } from "../controller/testing/factories.js";
import {
  CLONE_REQUEST_ANNOTATION,
  capacityObjects,
  claimedBefore,
  expansionRoom,
  findMatchingVolume,
  freeByNode,
  LOCAL_CLASS,
  localStorageClass,
  NODE_STORAGE_RESOURCE,
  NODE_VOLUME_BYTES_ANNOTATION,
  noRoomMessage,
  planClaim,
  planProvision,
  planVolume,
  podVolumes,
  usedByNode,
  volumeNode,
  volumesFitNode,
} from "./plan.js";

const GI = 2 ** 30;
const cls = localStorageClass();

function claim(name: string, size: string, extra: Partial<PersistentVolumeClaim["spec"]> = {}, node?: string) {
  const c = newClaim(name, size, extra, node);
  c.metadata.uid = `uid-${name}`;
  c.metadata.creationTimestamp = `2026-01-01T00:00:0${name.length % 10}Z`;
  return c;
}

function storageNode(name: string, size: string): Node {
  const n = newNode(name);
  n.status!.allocatable = { ...n.status!.allocatable, [NODE_STORAGE_RESOURCE]: size };
  return n;
}

function provisioned(pvc: PersistentVolumeClaim, node: string): PersistentVolume {
  const r = planProvision(pvc, cls, node, storageNode(node, "1Ti"), new Map([[node, 2 ** 40]]));
  assert.ok(r.ok);
  return r.volume;
}

function manualPv(name: string, size: string, extra: Partial<PersistentVolume["spec"]> = {}): PersistentVolume {
  return {
    metadata: { name, uid: `uid-${name}` },
    spec: {
      capacity: { storage: size },
      accessModes: ["ReadWriteOnce"],
      persistentVolumeReclaimPolicy: "Retain",
      hostPath: { path: "/srv" },
      ...extra,
    },
    status: { phase: "Available" },
  };
}

const lookupOf = (claims: PersistentVolumeClaim[], pvs: PersistentVolume[]) => ({
  claim: (_ns: string, n: string) => claims.find((c) => c.metadata.name === n),
  volume: (n: string) => pvs.find((v) => v.metadata.name === n),
  classOf: (c: PersistentVolumeClaim) => (c.spec.storageClassName === "manual" ? undefined : cls),
  volumes: () => pvs,
});

describe("local provisioner accounting (thick)", () => {
  it("counts every local PV and every claim headed to a node without a PV yet, in full", () => {
    const a = claim("a", "3Gi", {}, "node01");
    const b = claim("b", "2Gi", {}, "node01");
    const c = claim("c", "1Gi", {}, "node02");
    const pvA = provisioned(a, "node01");
    const used = usedByNode([pvA], [a, b, c], () => true);
    assert.equal(used.get("node01"), 5 * GI); // a's PV + b (selected, no PV)
    assert.equal(used.get("node02"), 1 * GI);
    const free = freeByNode([storageNode("node01", "10Gi"), storageNode("node02", "1Gi"), newNode("node03")], used);
    assert.deepEqual(
      [...free.entries()],
      [
        ["node01", 5 * GI],
        ["node02", 0],
      ],
    );
    const caps = capacityObjects(free);
    assert.equal(caps[0]?.metadata.name, `${LOCAL_CLASS}-node01`);
    assert.equal(caps[0]?.capacity, "5Gi");
    assert.deepEqual(caps[1]?.nodeTopology, { matchLabels: { "kubernetes.io/hostname": "node02" } });
    assert.equal(caps[1]?.capacity, "0");
  });

  it("older claims go first: of two that overfill a node, the younger waits", () => {
    const old = claim("o", "6Gi", {}, "node01");
    const young = claim("young", "6Gi", {}, "node01");
    const node = storageNode("node01", "10Gi");
    const freeFor = (pvc: PersistentVolumeClaim) =>
      freeByNode(
        [node],
        usedByNode([], claimedBefore(pvc, [old, young]), () => true),
      );
    assert.ok(planProvision(old, cls, "node01", node, freeFor(old)).ok);
    const r = planProvision(young, cls, "node01", node, freeFor(young));
    assert.equal(r.ok, false);
    assert.match(r.ok ? "" : r.message, /has 4Gi of local storage free, the claim requests 6Gi/);
  });

  it("a clone claim's request goes to its PV (the node makes the volume as a copy); others carry none", () => {
    const pvc = claim("copy", "1Gi", {}, "node01");
    assert.equal(provisioned(pvc, "node01").metadata.annotations?.[CLONE_REQUEST_ANNOTATION], undefined);
    pvc.metadata.annotations = { ...pvc.metadata.annotations, [CLONE_REQUEST_ANNOTATION]: '{"uid":"u"}' };
    assert.equal(provisioned(pvc, "node01").metadata.annotations?.[CLONE_REQUEST_ANNOTATION], '{"uid":"u"}');
  });

  it("the provisioned PV is pre-bound, pinned to the node, sized as requested, with the class's policy", () => {
    const pvc = claim("disk", "5Gi", { volumeMode: "Block" }, "node02");
    const pv = provisioned(pvc, "node02");
    assert.equal(pv.metadata.name, "pvc-uid-disk");
    assert.equal(volumeNode(pv), "node02");
    assert.deepEqual(pv.spec.capacity, { storage: "5Gi" });
    assert.equal(pv.spec.volumeMode, "Block");
    assert.equal(pv.spec.persistentVolumeReclaimPolicy, "Delete");
    assert.equal(pv.spec.claimRef?.uid, "uid-disk");
    assert.deepEqual(pv.metadata.finalizers, ["tsvirt.io/local-volume"]);
    assert.equal(pv.spec.local?.path, "volumes/pvc-uid-disk");
    const rwx = planProvision(
      claim("x", "1Gi", { accessModes: ["ReadWriteMany"] }),
      cls,
      "n",
      newNode("n"),
      new Map([["n", GI]]),
    );
    assert.equal(rwx.ok, false);
    assert.equal(planProvision(pvc, cls, "node09", undefined, new Map()).ok, false);
  });

  it("says which node has how much free when a claim fits none", () => {
    assert.equal(
      noRoomMessage(
        100 * GI,
        new Map([
          ["node02", GI],
          ["node01", 10 * GI],
        ]),
      ),
      "requested 100Gi fits no node: node01 has 10Gi free, node02 has 1Gi free",
    );
    assert.match(noRoomMessage(GI, new Map()), /no node offers local storage/);
  });
});

describe("binder", () => {
  it("waits for the first consumer, then provisions on the selected node; binds a pre-bound or matching PV", () => {
    const waiting = claim("w", "1Gi");
    assert.deepEqual(planClaim(waiting, cls, [], undefined), {
      kind: "pending",
      reason: "WaitForFirstConsumer",
      message: "waiting for first consumer to be created before binding",
      eventType: "Normal",
    });
    const chosen = claim("w", "1Gi", {}, "node01");
    assert.deepEqual(planClaim(chosen, cls, [], storageNode("node01", "5Gi")), { kind: "provision" });
    const pv = provisioned(chosen, "node01");
    assert.deepEqual(planClaim(chosen, cls, [pv], undefined), { kind: "bind", volume: pv.metadata.name });
    const bound = { ...chosen, spec: { ...chosen.spec, volumeName: pv.metadata.name } };
    assert.deepEqual(planClaim(bound, cls, [pv], undefined), { kind: "markBound", volume: pv.metadata.name });
  });

  it("picks the smallest Available PV matching class, modes, volumeMode, size and node", () => {
    const pvc = claim("m", "2Gi", { storageClassName: "manual" });
    const pvs = [
      manualPv("big", "10Gi", { storageClassName: "manual" }),
      manualPv("small", "1Gi", { storageClassName: "manual" }),
      manualPv("fit", "3Gi", { storageClassName: "manual" }),
      manualPv("block", "2Gi", { storageClassName: "manual", volumeMode: "Block" }),
      manualPv("rox", "2Gi", { storageClassName: "manual", accessModes: ["ReadOnlyMany"] }),
      manualPv("other", "2Gi", { storageClassName: "fast" }),
    ];
    assert.equal(findMatchingVolume(pvc, pvs)?.metadata.name, "fit");
    const pinned = manualPv("pinned", "2Gi", {
      storageClassName: "manual",
      nodeAffinity: {
        required: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["n2"] }] },
          ],
        },
      },
    });
    assert.equal(findMatchingVolume(pvc, [pinned], newNode("n1")), undefined);
    assert.equal(findMatchingVolume(pvc, [pinned], newNode("n2"))?.metadata.name, "pinned");
    const none = planClaim(claim("z", "1Gi", { storageClassName: "" }), undefined, [], undefined);
    assert.equal(none.kind, "pending");
    assert.match(none.kind === "pending" ? none.message : "", /no persistent volumes available/);
  });

  it("expansion: requests above the PV grow it; the claim takes the new size once its node grew the data", () => {
    const pvc = claim("e", "1Gi", {}, "node01");
    const pv = { ...provisioned(pvc, "node01"), status: { phase: "Bound" as const } };
    const grown = claim("e", "2Gi", { volumeName: pv.metadata.name }, "node01");
    grown.status = { phase: "Bound", capacity: { storage: "1Gi" } };
    assert.deepEqual(planClaim(grown, cls, [pv], undefined), {
      kind: "expand",
      volume: pv.metadata.name,
      bytes: 2 ** 31,
    });
    const bigger = { ...pv, spec: { ...pv.spec, capacity: { storage: "2Gi" } } };
    assert.deepEqual(planClaim(grown, cls, [bigger], undefined), { kind: "resizing", volume: pv.metadata.name });
    const onNode = {
      ...bigger,
      metadata: {
        ...bigger.metadata,
        annotations: { ...bigger.metadata.annotations, [NODE_VOLUME_BYTES_ANNOTATION]: String(2 ** 31) },
      },
    };
    assert.deepEqual(planClaim(grown, cls, [onNode], undefined), { kind: "expanded", volume: pv.metadata.name });
    const done = { ...grown, status: { ...grown.status, capacity: { storage: "2Gi" } } };
    assert.equal(planClaim(done, cls, [onNode], undefined).kind, "none");
    // A statically made PV (not tsvirt-local's) cannot grow: said, not ignored.
    const manual = { ...pv, metadata: { name: pv.metadata.name } };
    const w = planClaim(grown, cls, [manual], undefined);
    assert.equal(w.kind, "warn");
    assert.equal(w.kind === "warn" ? w.reason : "", "VolumeResizeFailed");
  });

  it("expansion room is thick: the growth must be free on the PV's node", () => {
    const pv = provisioned(claim("e", "1Gi", {}, "node01"), "node01");
    assert.equal(expansionRoom(pv, 3 * 2 ** 30, new Map([["node01", 2 * 2 ** 30]])), undefined);
    assert.equal(
      expansionRoom(pv, 4 * 2 ** 30, new Map([["node01", 2 * 2 ** 30]])),
      `expanding volume ${pv.metadata.name} from 1Gi to 4Gi needs 3Gi more on node "node01", which has 2Gi of local storage free; the claim keeps its size`,
    );
  });

  it("a bound claim whose PV vanished is Lost", () => {
    const pvc = claim("l", "1Gi", { volumeName: "gone" });
    pvc.status = { phase: "Bound" };
    assert.equal(planClaim(pvc, cls, [], undefined).kind, "lost");
  });

  it("volumes: Available, Bound, Released on claim deletion, then Delete (local) or Retain or Failed", () => {
    const pvc = claim("v", "1Gi", {}, "node01");
    const pv = provisioned(pvc, "node01");
    assert.deepEqual(planVolume(pv, pvc), { kind: "phase", phase: "Bound" });
    assert.deepEqual(planVolume({ ...pv, status: { phase: "Bound" } }, pvc), { kind: "none" });
    assert.deepEqual(planVolume({ ...pv, status: { phase: "Bound" } }, undefined), {
      kind: "phase",
      phase: "Released",
    });
    assert.deepEqual(planVolume({ ...pv, status: { phase: "Released" } }, undefined), { kind: "delete" });
    const retained = { ...pv, spec: { ...pv.spec, persistentVolumeReclaimPolicy: "Retain" as const } };
    assert.deepEqual(planVolume({ ...retained, status: { phase: "Released" } }, undefined), { kind: "none" });
    const manual = manualPv("m", "1Gi", {
      persistentVolumeReclaimPolicy: "Delete",
      claimRef: { name: "x", namespace: "default", uid: "gone" },
    });
    const failed = planVolume({ ...manual, status: { phase: "Released" } }, undefined);
    assert.equal(failed.kind === "phase" && failed.phase, "Failed");
    assert.deepEqual(planVolume({ ...manualPv("free", "1Gi"), status: {} }, undefined), {
      kind: "phase",
      phase: "Available",
    });
    // a claim of the same name but another uid is not the claim the PV was bound to
    assert.deepEqual(
      planVolume({ ...pv, status: { phase: "Bound" } }, { ...pvc, metadata: { ...pvc.metadata, uid: "new" } }),
      {
        kind: "phase",
        phase: "Released",
      },
    );
  });
});

describe("scheduler volume binding", () => {
  it("a pod's unbound local claims need room for all of them together on the node", () => {
    const a = claim("a", "3Gi");
    const b = claim("b", "3Gi");
    const pod = {
      metadata: { namespace: "default" },
      spec: { volumes: [{ persistentVolumeClaim: { claimName: "a" } }, { persistentVolumeClaim: { claimName: "b" } }] },
    };
    const lookup = lookupOf([a, b], []);
    const vols = podVolumes(pod, lookup);
    assert.ok(!("error" in vols));
    const free = new Map([
      ["node01", 5 * GI],
      ["node02", 6 * GI],
    ]);
    assert.equal(
      volumesFitNode(vols, storageNode("node01", "5Gi"), lookup, free),
      "node(s) did not have enough free storage",
    );
    assert.equal(volumesFitNode(vols, storageNode("node02", "6Gi"), lookup, free), undefined);
    assert.equal(volumesFitNode(vols, newNode("node03"), lookup, free), "node(s) did not have enough free storage");
  });

  it("a bound local PV pins the pod to its node; a missing claim or an unbound Immediate claim is reported", () => {
    const a = claim("a", "1Gi", {}, "node01");
    const pv = provisioned(a, "node01");
    const bound = { ...a, spec: { ...a.spec, volumeName: pv.metadata.name } };
    const pod = {
      metadata: { namespace: "default" },
      spec: { volumes: [{ persistentVolumeClaim: { claimName: "a" } }] },
    };
    const lookup = lookupOf([bound], [pv]);
    const vols = podVolumes(pod, lookup);
    assert.ok(!("error" in vols));
    assert.equal(volumesFitNode(vols, newNode("node01"), lookup, new Map()), undefined);
    assert.equal(
      volumesFitNode(vols, newNode("node02"), lookup, new Map()),
      "node(s) had volume node affinity conflict",
    );
    assert.deepEqual(
      podVolumes({ ...pod, spec: { volumes: [{ persistentVolumeClaim: { claimName: "nope" } }] } }, lookup),
      {
        error: 'persistentvolumeclaim "nope" not found',
      },
    );
    const immediate = claim("i", "1Gi", { storageClassName: "manual" });
    const imm = lookupOf([immediate], []);
    assert.deepEqual(podVolumes({ ...pod, spec: { volumes: [{ persistentVolumeClaim: { claimName: "i" } }] } }, imm), {
      error: "pod has unbound immediate PersistentVolumeClaims",
    });
  });
});
