import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StatusError } from "../../lib/errors.js";
import { applyStrategicMergePatch } from "./index.js";

const pod = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: {
    name: "virt-launcher-x",
    labels: { app: "a" },
    finalizers: ["a", "b"],
    ownerReferences: [{ uid: "u1", kind: "VirtualMachineInstance", name: "x" }],
  },
  spec: {
    containers: [
      { name: "compute", image: "img:1", env: [{ name: "A", value: "1" }], ports: [{ containerPort: 80 }] },
      { name: "sidecar", image: "side:1" },
    ],
    volumes: [{ name: "disk0", emptyDir: {} }],
    tolerations: [{ key: "t1" }],
  },
  status: { conditions: [{ type: "Ready", status: "False" }] },
};

describe("applyStrategicMergePatch on built-in kinds", () => {
  const cases: [string, unknown, (out: typeof pod) => void][] = [
    [
      "containers merge by name",
      { spec: { containers: [{ name: "compute", image: "img:2" }] } },
      (o) => {
        assert.deepEqual(
          o.spec.containers.map((c) => [c.name, c.image]),
          [
            ["compute", "img:2"],
            ["sidecar", "side:1"],
          ],
        );
        assert.deepEqual(o.spec.containers[0]!.env, [{ name: "A", value: "1" }]);
      },
    ],
    [
      "a new element goes before the server-only ones (apimachinery mergeSortedSlice order)",
      { spec: { containers: [{ name: "new", image: "n" }] } },
      (o) =>
        assert.deepEqual(
          o.spec.containers.map((c) => c.name),
          ["new", "compute", "sidecar"],
        ),
    ],
    [
      "$patch: delete removes one element",
      { spec: { containers: [{ name: "sidecar", $patch: "delete" }] } },
      (o) =>
        assert.deepEqual(
          o.spec.containers.map((c) => c.name),
          ["compute"],
        ),
    ],
    [
      "$patch: replace on a list replaces it",
      { spec: { containers: [{ $patch: "replace" }, { name: "only", image: "o" }] } },
      (o) => assert.deepEqual(o.spec.containers, [{ name: "only", image: "o" }]),
    ],
    [
      "$patch: replace on a map replaces it",
      { metadata: { labels: { $patch: "replace", b: "2" } } },
      (o) => assert.deepEqual(o.metadata.labels, { b: "2" }),
    ],
    [
      "$patch: delete on a map deletes it",
      { status: { $patch: "delete" } },
      (o) => assert.equal((o as { status?: unknown }).status, undefined),
    ],
    [
      "env merges by name inside a container",
      { spec: { containers: [{ name: "compute", env: [{ name: "B", value: "2" }] }] } },
      (o) =>
        assert.deepEqual(o.spec.containers[0]!.env, [
          { name: "B", value: "2" },
          { name: "A", value: "1" },
        ]),
    ],
    [
      "container ports merge by containerPort",
      {
        spec: {
          containers: [{ name: "compute", ports: [{ containerPort: 80, name: "http" }, { containerPort: 443 }] }],
        },
      },
      (o) =>
        assert.deepEqual(o.spec.containers[0]!.ports, [{ containerPort: 80, name: "http" }, { containerPort: 443 }]),
    ],
    [
      "finalizers merge as a set",
      { metadata: { finalizers: ["b", "c"] } },
      (o) => assert.deepEqual(o.metadata.finalizers, ["a", "b", "c"]),
    ],
    [
      "$deleteFromPrimitiveList removes finalizers",
      { metadata: { "$deleteFromPrimitiveList/finalizers": ["a"] } },
      (o) => assert.deepEqual(o.metadata.finalizers, ["b"]),
    ],
    [
      "ownerReferences merge by uid",
      { metadata: { ownerReferences: [{ uid: "u2", kind: "Other", name: "y" }] } },
      (o) =>
        assert.deepEqual(
          o.metadata.ownerReferences.map((r) => r.uid),
          ["u2", "u1"],
        ),
    ],
    [
      "tolerations have no merge strategy: replaced",
      { spec: { tolerations: [{ key: "t2" }] } },
      (o) => assert.deepEqual(o.spec.tolerations, [{ key: "t2" }]),
    ],
    [
      "conditions merge by type",
      {
        status: {
          conditions: [
            { type: "Ready", status: "True" },
            { type: "PodScheduled", status: "True" },
          ],
        },
      },
      (o) =>
        assert.deepEqual(o.status.conditions, [
          { type: "Ready", status: "True" },
          { type: "PodScheduled", status: "True" },
        ]),
    ],
    [
      "$setElementOrder orders the merged list",
      {
        spec: {
          "$setElementOrder/containers": [{ name: "sidecar" }, { name: "compute" }],
          containers: [{ name: "compute", image: "img:3" }],
        },
      },
      (o) =>
        assert.deepEqual(
          o.spec.containers.map((c) => [c.name, c.image]),
          [
            ["sidecar", "side:1"],
            ["compute", "img:3"],
          ],
        ),
    ],
    [
      "$retainKeys on a volume drops the other source",
      { spec: { volumes: [{ name: "disk0", $retainKeys: ["name", "hostPath"], hostPath: { path: "/x" } }] } },
      (o) => assert.deepEqual(o.spec.volumes, [{ name: "disk0", hostPath: { path: "/x" } }]),
    ],
    [
      "a patch naming an existing element keeps the live order",
      { spec: { containers: [{ name: "sidecar", image: "side:2" }] } },
      (o) =>
        assert.deepEqual(
          o.spec.containers.map((c) => [c.name, c.image]),
          [
            ["compute", "img:1"],
            ["sidecar", "side:2"],
          ],
        ),
    ],
    [
      "$setElementOrder alone reorders",
      { spec: { "$setElementOrder/containers": [{ name: "sidecar" }, { name: "compute" }] } },
      (o) =>
        assert.deepEqual(
          o.spec.containers.map((c) => c.name),
          ["sidecar", "compute"],
        ),
    ],
    [
      "kubectl apply's patch: $setElementOrder with a new element in the middle",
      {
        spec: {
          "$setElementOrder/containers": [{ name: "compute" }, { name: "mid" }, { name: "sidecar" }],
          containers: [{ name: "mid", image: "m" }],
        },
      },
      (o) =>
        assert.deepEqual(
          o.spec.containers.map((c) => c.name),
          ["compute", "mid", "sidecar"],
        ),
    ],
    ["null deletes a field", { metadata: { labels: { app: null } } }, (o) => assert.deepEqual(o.metadata.labels, {})],
    [
      "kubectl cordon",
      { spec: { unschedulable: true } },
      (o) => assert.equal((o.spec as { unschedulable?: boolean }).unschedulable, true),
    ],
  ];
  for (const [name, patch, check] of cases) {
    it(name, () => {
      const before = structuredClone(pod);
      check(applyStrategicMergePatch<typeof pod>(pod, patch));
      assert.deepEqual(pod, before, "the target is not mutated");
    });
  }

  for (const [name, patch] of [
    ["unknown $patch", { spec: { $patch: "frob" } }],
    ["an element without its merge key", { spec: { containers: [{ image: "x" }] } }],
    [
      "$retainKeys that does not cover the patch",
      { spec: { volumes: [{ name: "d", $retainKeys: ["name"], hostPath: {} }] } },
    ],
    ["a patch that is not an object", [1]],
  ] as const) {
    it(`${name} is a 400`, () => {
      assert.throws(
        () => applyStrategicMergePatch(pod, patch),
        (e: unknown) => e instanceof StatusError && e.code === 400,
      );
    });
  }
});
