import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { builtinDefinitions, crdFiles, kubevirtCrds } from "./index.js";

const root = new URL("../", import.meta.url);

test("deploy/crds holds exactly the generated CRDs (run `npm run gen:crds` after changing api/)", () => {
  const files = crdFiles();
  const onDisk = readdirSync(new URL("deploy/crds/", root)).filter((f) => f.endsWith(".yaml"));
  assert.deepEqual(onDisk.sort(), files.map((f) => f.path.replace("deploy/crds/", "")).sort());
  for (const f of files) {
    assert.equal(readFileSync(new URL(f.path, root), "utf8"), f.content, `${f.path} is stale`);
  }
});

test("kubevirt CRDs carry KubeVirt's names, versions, subresources and columns", () => {
  const byName = new Map(kubevirtCrds().map((c) => [c.metadata.name, c]));
  const vmi = byName.get("virtualmachineinstances.kubevirt.io");
  assert.ok(vmi);
  assert.deepEqual(vmi.spec.names.shortNames, ["vmi", "vmis"]);
  assert.deepEqual(vmi.spec.names.categories, ["all"]);
  assert.deepEqual(
    vmi.spec.versions.map((v) => [v.name, v.served, v.storage]),
    [
      ["v1", true, true],
      ["v1alpha3", true, false],
    ],
  );
  assert.equal(vmi.spec.versions[0]?.subresources, undefined, "VMI has no status subresource");
  assert.deepEqual(
    vmi.spec.versions[0]?.additionalPrinterColumns?.map((c) => c.name),
    ["Age", "Phase", "IP", "NodeName", "Ready", "Live-Migratable", "Paused"],
  );
  const vm = byName.get("virtualmachines.kubevirt.io");
  assert.deepEqual(vm?.spec.versions[0]?.subresources, { status: {} });
  assert.deepEqual(
    vm?.spec.versions[0]?.additionalPrinterColumns?.map((c) => c.name),
    ["Age", "Status", "Ready"],
  );
  const rs = byName.get("virtualmachineinstancereplicasets.kubevirt.io");
  assert.equal(rs?.spec.versions[0]?.subresources?.scale?.labelSelectorPath, ".status.labelSelector");
  assert.deepEqual(byName.get("virtualmachineinstancemigrations.kubevirt.io")?.spec.names.shortNames, [
    "vmim",
    "vmims",
  ]);
  assert.deepEqual(
    byName
      .get("virtualmachineinstancemigrations.kubevirt.io")
      ?.spec.versions[0]?.additionalPrinterColumns?.map((c) => [c.name, c.jsonPath]),
    [
      ["Phase", ".status.phase"],
      ["VMI", ".spec.vmiName"],
    ],
  );
  const policy = byName.get("migrationpolicies.migrations.kubevirt.io");
  assert.equal(policy?.spec.scope, "Cluster");
  assert.deepEqual(
    policy?.spec.versions.map((v) => [v.name, v.storage]),
    [["v1alpha1", true]],
  );
  const pool = byName.get("virtualmachinepools.pool.kubevirt.io");
  assert.ok(pool?.spec.versions.find((v) => v.name === "v1beta1")?.subresources?.scale);
  for (const name of [
    "virtualmachinesnapshots.snapshot.kubevirt.io",
    "virtualmachinesnapshotcontents.snapshot.kubevirt.io",
    "virtualmachinerestores.snapshot.kubevirt.io",
    "datavolumes.cdi.kubevirt.io",
  ]) {
    assert.ok(byName.has(name), name);
  }
  for (const crd of byName.values()) {
    for (const v of crd.spec.versions) assert.equal(v.selectableFields, undefined, "KubeVirt declares none");
  }
});

test("generated CRD schemas are structural: no additionalProperties alongside properties, no const", () => {
  const problems: string[] = [];
  function walk(s: unknown, path: string): void {
    if (!s || typeof s !== "object") return;
    const o = s as Record<string, unknown>;
    if (o.properties && "additionalProperties" in o) problems.push(`${path}: properties + additionalProperties`);
    if ("const" in o) problems.push(`${path}: const`);
    for (const [k, v] of Object.entries(o)) walk(v, `${path}.${k}`);
  }
  for (const f of crdFiles()) walk(parse(f.content), f.path);
  assert.deepEqual(problems, []);
});

test("built-in definitions: pods have binding/log and kube's field selectors and columns", () => {
  const defs = new Map(builtinDefinitions().map((d) => [d.crd.spec.names.plural, d]));
  const pods = defs.get("pods");
  assert.ok(pods?.builtin);
  assert.deepEqual(pods.extraSubresources, ["binding", "eviction", "log"]);
  assert.ok(pods.fieldSelectors?.includes("spec.nodeName"));
  assert.ok(pods.fieldSelectors?.includes("status.phase"));
  assert.deepEqual(
    pods.columns?.map((c) => c.name),
    ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"],
  );
  const pod = {
    metadata: { name: "virt-launcher-x", creationTimestamp: "2026-01-01T00:00:00Z" },
    spec: { containers: [{ name: "compute" }, { name: "volumecontainerdisk" }] },
    status: {
      phase: "Running",
      containerStatuses: [
        { name: "compute", ready: true, restartCount: 1, state: { running: {} } },
        {
          name: "volumecontainerdisk",
          ready: false,
          restartCount: 2,
          state: { waiting: { reason: "ImagePullBackOff" } },
        },
      ],
    },
  };
  const cells = pods.columns?.map((c) => c.cell(pod));
  assert.deepEqual(cells?.slice(0, 4), ["virt-launcher-x", "1/2", "ImagePullBackOff", "3"]);
  assert.equal(pods.columns?.[5]?.cell(pod), "<none>");
  const nodes = defs.get("nodes");
  assert.deepEqual(nodes?.crd.spec.versions[0]?.subresources, { status: {} });
  const node = {
    metadata: { name: "n1" },
    spec: { unschedulable: true },
    status: { conditions: [{ type: "Ready", status: "True" }] },
  };
  assert.equal(nodes?.columns?.[1]?.cell(node), "Ready,SchedulingDisabled");
  const events = defs.get("events");
  for (const f of [
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
  ]) {
    assert.ok(events?.fieldSelectors?.includes(f), f);
  }
  for (const plural of [
    "namespaces",
    "persistentvolumeclaims",
    "persistentvolumes",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "services",
    "leases",
    "horizontalpodautoscalers",
    "selfsubjectaccessreviews",
    "customresourcedefinitions",
  ]) {
    assert.ok(defs.get(plural)?.builtin, plural);
  }
});
