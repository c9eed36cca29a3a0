// Every field path of KubeVirt's published OpenAPI for VM, VMI, VMIRS and VMIM (api/testdata) must exist in our
// hand-written schemas with a compatible type: a missing KubeVirt field is a failing test, not a rejected manifest.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  Disk,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineInstanceMigration,
  VirtualMachineInstanceReplicaSet,
  VirtualMachinePool,
  VirtualMachineRestore,
  VirtualMachineSnapshot,
  VirtualMachineSnapshotContent,
} from "../../index.js";

type Def = { required: string[]; properties: Record<string, string> };
const data = JSON.parse(readFileSync(new URL("../../testdata/kubevirt-openapi-v1.json", import.meta.url), "utf8")) as {
  definitions: Record<string, Def>;
};
type Schema = Record<string, unknown>;

function kindOf(s: Schema): string {
  if (s["x-kubernetes-int-or-string"]) return "int-or-string";
  if (s["x-kubernetes-preserve-unknown-fields"] && !s.properties) return "preserve";
  return String(s.type ?? "any");
}

/** tsvirt's own fields, each named here on purpose (KubeVirt has no place for them). */
const EXTENSIONS = new Set([
  // The manifest digest a containerDisk was pulled at: later pulls for the VMI fetch exactly that image.
  "status.volumeStatus[].containerDiskVolume.digest",
]);
// Fields of embedded CDI types newer than the KubeVirt OpenAPI we compare with, wherever those types are embedded.
const CDI_NEWER = [
  // CDI v1.65's http checksum (DataVolumeSourceHTTP.checksum), verified by the importer before Succeeded.
  "dataVolumeTemplates[].spec.source.http.checksum",
];
const isExtension = (p: string): boolean => EXTENSIONS.has(p) || CDI_NEWER.some((s) => p.endsWith(s));

let compared = 0;
function compare(ref: string, ours: Schema, path: string, problems: string[], seen: Set<string>): void {
  compared++;
  if (ref.startsWith("[]")) {
    if (ours.type !== "array") {
      problems.push(`${path}: KubeVirt has an array, ours is ${kindOf(ours)}`);
      return;
    }
    compare(ref.slice(2), ours.items as Schema, `${path}[]`, problems, seen);
    return;
  }
  if (ref.startsWith("map:")) {
    if (ours.type !== "object" || typeof ours.additionalProperties !== "object") {
      problems.push(`${path}: KubeVirt has a map, ours is ${kindOf(ours)}`);
      return;
    }
    compare(ref.slice(4), ours.additionalProperties as Schema, `${path}{}`, problems, seen);
    return;
  }
  const scalar: Record<string, string> = { string: "string", integer: "integer", boolean: "boolean", number: "number" };
  if (scalar[ref]) {
    const k = kindOf(ours);
    // An enum string, a date-time string or a literal is still a string.
    if (k !== scalar[ref] && !(ref === "number" && k === "integer"))
      problems.push(`${path}: KubeVirt type ${ref}, ours is ${k}`);
    return;
  }
  if (ref === "int-or-string" || ref === "io.k8s.apimachinery.pkg.util.intstr.IntOrString") {
    if (kindOf(ours) !== "int-or-string")
      problems.push(`${path}: KubeVirt has a number or a name, ours is ${kindOf(ours)}`);
    return;
  }
  if (ref === "io.k8s.apimachinery.pkg.api.resource.Quantity") {
    if (kindOf(ours) !== "int-or-string") problems.push(`${path}: KubeVirt has a Quantity, ours is ${kindOf(ours)}`);
    return;
  }
  if (ref === "io.k8s.apimachinery.pkg.apis.meta.v1.Time") {
    if (kindOf(ours) !== "string") problems.push(`${path}: KubeVirt has a Time, ours is ${kindOf(ours)}`);
    return;
  }
  const def = data.definitions[ref];
  if (!def) {
    // io.k8s.* / v1beta1.*: not in the excerpt; the field must exist and be an object.
    if (ours.type !== "object") problems.push(`${path}: KubeVirt has ${ref}, ours is ${kindOf(ours)}`);
    return;
  }
  if (ours.type !== "object") {
    problems.push(`${path}: KubeVirt has ${ref}, ours is ${kindOf(ours)}`);
    return;
  }
  const key = `${ref}@${path}`;
  if (seen.has(key)) return;
  seen.add(key);
  const props = (ours.properties ?? {}) as Record<string, Schema>;
  for (const [name, type] of Object.entries(def.properties)) {
    const sub = props[name];
    const p = path ? `${path}.${name}` : name;
    if (!sub) {
      problems.push(`${p}: missing (KubeVirt ${ref}.${name})`);
      continue;
    }
    compare(type, sub, p, problems, seen);
  }
  for (const name of Object.keys(props)) {
    if (!(name in def.properties) && !isExtension(`${path ? `${path}.` : ""}${name}`))
      problems.push(`${path ? `${path}.` : ""}${name}: not in KubeVirt's ${ref}`);
  }
  const ourRequired = new Set((ours.required as string[] | undefined) ?? []);
  for (const r of def.required) {
    if (!ourRequired.has(r))
      problems.push(`${path ? `${path}.` : ""}${r}: required in KubeVirt (${ref}), optional here`);
  }
}

const roots: [string, object][] = [
  ["v1beta1.VirtualMachinePool", VirtualMachinePool],
  ["v1beta1.VirtualMachineSnapshot", VirtualMachineSnapshot],
  ["v1beta1.VirtualMachineSnapshotContent", VirtualMachineSnapshotContent],
  ["v1beta1.VirtualMachineRestore", VirtualMachineRestore],
  ["v1.VirtualMachine", VirtualMachine],
  ["v1.VirtualMachineInstance", VirtualMachineInstance],
  ["v1.VirtualMachineInstanceReplicaSet", VirtualMachineInstanceReplicaSet],
  ["v1.VirtualMachineInstanceMigration", VirtualMachineInstanceMigration],
];

for (const [ref, schema] of roots) {
  test(`${ref}: every KubeVirt OpenAPI field exists in our schema, and no other`, () => {
    const problems: string[] = [];
    compare(ref, schema as Schema, "", problems, new Set());
    assert.deepEqual(problems, []);
  });
}

test("the comparison really walks KubeVirt's field tree (VM, VMI, VMIRS, VMIM)", () => {
  assert.ok(compared >= 2500, `compared ${compared} field paths`);
});

test("the KubeVirt excerpt is not trivially small", () => {
  let paths = 0;
  for (const d of Object.values(data.definitions)) paths += Object.keys(d.properties).length;
  assert.ok(Object.keys(data.definitions).length >= 250, "definitions");
  assert.ok(paths >= 600, `field count ${paths}`);
});

test("the comparison reports a missing KubeVirt field and a field KubeVirt lacks", () => {
  const disk = JSON.parse(JSON.stringify(Disk)) as Schema & { properties: Record<string, unknown> };
  delete disk.properties.serial;
  disk.properties.madeUp = { type: "string" };
  const problems: string[] = [];
  compare("v1.Disk", disk, "disk", problems, new Set());
  assert.deepEqual(problems, [
    "disk.serial: missing (KubeVirt v1.Disk.serial)",
    "disk.madeUp: not in KubeVirt's v1.Disk",
  ]);
});
