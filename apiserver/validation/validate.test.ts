import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { parseAllDocuments } from "yaml";
import {
  CustomResourceDefinitionSchema,
  kubevirtCrds,
  Pod,
  VirtualMachine,
  VirtualMachineInstance,
} from "../../api/index.js";
import { isStatusError } from "../../lib/errors.js";
import { strictDecodingError, unknownFieldWarnings, validateObject } from "./index.js";

const examplesDir = new URL("../../api/testdata/kubevirt-examples/", import.meta.url);

/** Every document of KubeVirt's example manifests (copied verbatim into api/testdata, see PROVENANCE.md there). */
export function kubevirtExamples(): { file: string; obj: Record<string, unknown> }[] {
  const out: { file: string; obj: Record<string, unknown> }[] = [];
  for (const file of readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"))) {
    for (const doc of parseAllDocuments(readFileSync(new URL(file, examplesDir), "utf8"))) {
      const obj = doc.toJS() as Record<string, unknown> | null;
      if (obj) out.push({ file, obj });
    }
  }
  return out;
}

const CRDS = kubevirtCrds();
/** The schema the server uses: the generated CRD's openAPIV3Schema for the object's kind. */
function crdSchema(kind: string): object {
  const crd = CRDS.find((c) => c.spec.names.kind === kind);
  assert.ok(crd, `no CRD for ${kind}`);
  return crd.spec.versions[0]?.schema?.openAPIV3Schema as object;
}

test("every KubeVirt example validates under Strict against its generated CRD schema", () => {
  const all = kubevirtExamples();
  assert.ok(all.length >= 9, `found ${all.length} examples`);
  for (const { file, obj } of all) {
    const r = validateObject(crdSchema(String(obj.kind)), obj, { fieldValidation: "Strict" });
    assert.deepEqual(r.unknownFields, [], file);
    assert.deepEqual(r.causes, [], file);
    assert.deepEqual(r.object, obj, `${file} is unchanged by pruning`);
  }
});

test("unknown fields are reported with their paths and pruned from the copy", () => {
  const vm = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name: "vm1", foo: "x" },
    spec: {
      foo: 1,
      runStrategy: "Halted",
      template: {
        spec: {
          domain: { devices: { disks: [{ name: "d", bar: true }], rng: { extra: 1 } } },
          volumes: [{ name: "d", containerDisk: { image: "i" } }],
        },
      },
    },
  };
  for (const schema of [VirtualMachine, crdSchema("VirtualMachine")]) {
    const r = validateObject<typeof vm>(schema, vm, { fieldValidation: "Strict" });
    assert.deepEqual(r.unknownFields.sort(), [
      "metadata.foo",
      "spec.foo",
      "spec.template.spec.domain.devices.disks[0].bar",
      "spec.template.spec.domain.devices.rng.extra",
    ]);
    assert.equal("foo" in r.object.spec, false);
    assert.deepEqual(r.object.spec.template.spec.domain.devices.disks, [{ name: "d" }]);
    assert.deepEqual(r.causes, []);
  }
  const err = strictDecodingError(["spec.foo", "spec.bar"]);
  assert.ok(isStatusError(err));
  assert.equal(err.status.code, 400);
  assert.equal(err.status.reason, "BadRequest");
  assert.equal(err.status.message, 'strict decoding error: unknown field "spec.foo", unknown field "spec.bar"');
  assert.deepEqual(unknownFieldWarnings(["spec.foo"]), ['unknown field "spec.foo"']);
});

test("type errors, missing required fields, enums and bad quantities become causes with dotted paths", () => {
  const vmi = {
    metadata: { name: "v" },
    spec: {
      terminationGracePeriodSeconds: "soon",
      domain: {
        memory: { guest: "12 apples" },
        resources: { requests: { memory: "64Mi", cpu: "1.5" } },
        devices: { disks: [{ disk: { bus: "virtio" } }] },
      },
      evictionStrategy: "Sometimes",
      volumes: [{ name: "e", emptyDisk: { capacity: "1Gx" } }],
    },
  };
  const r = validateObject(crdSchema("VirtualMachineInstance"), vmi);
  const byField = new Map(r.causes.map((c) => [c.field, c]));
  assert.equal(byField.get("spec.terminationGracePeriodSeconds")?.type, "FieldValueTypeInvalid");
  assert.equal(byField.get("spec.domain.memory.guest")?.type, "FieldValueInvalid");
  assert.match(byField.get("spec.domain.memory.guest")?.message ?? "", /quantities must match/);
  assert.equal(byField.get("spec.volumes[0].emptyDisk.capacity")?.type, "FieldValueInvalid");
  assert.equal(byField.get("spec.domain.devices.disks[0].name")?.type, "FieldValueRequired");
  assert.equal(byField.get("spec.evictionStrategy")?.type, "FieldValueNotSupported");
  assert.equal(byField.has("spec.domain.resources.requests.memory"), false);
  assert.equal(r.causes.length, 5, JSON.stringify(r.causes));
});

test("nulls are dropped where the schema is not nullable; int-or-string accepts both", () => {
  const r = validateObject<{ metadata: object; spec: object }>(VirtualMachineInstance, {
    metadata: { name: "v", creationTimestamp: null, labels: null },
    spec: { domain: { devices: {}, memory: { guest: 1073741824 } }, volumes: null },
  });
  assert.deepEqual(r.causes, []);
  assert.deepEqual(r.object.metadata, { name: "v" });
  assert.equal("volumes" in r.object.spec, false);
});

test("core kinds are closed too", () => {
  const r = validateObject(Pod, {
    metadata: { name: "p" },
    spec: { containers: [{ name: "c", image: "i", imagePolicy: "x" }], nodeName: 3 },
  });
  assert.deepEqual(r.unknownFields, ["spec.containers[0].imagePolicy"]);
  assert.equal(r.causes[0]?.field, "spec.nodeName");
});

test("schemas beyond the structural subset (user CRDs) are validated by ajv with the same cause shape", () => {
  const schema = {
    type: "object",
    properties: {
      metadata: { type: "object" },
      spec: {
        type: "object",
        required: ["size"],
        properties: { size: { type: "integer", minimum: 1, maximum: 10 }, mode: { type: "string", enum: ["a", "b"] } },
      },
    },
  };
  const r = validateObject(schema, { metadata: { name: "x" }, spec: { size: 11, mode: "c", extra: true } });
  assert.deepEqual(r.unknownFields, ["spec.extra"]);
  assert.deepEqual(
    r.causes.map((c) => [c.field, c.type]),
    [
      ["spec.size", "FieldValueInvalid"],
      ["spec.mode", "FieldValueNotSupported"],
    ],
  );
});

test("validating a VirtualMachine needs no slow compilation", () => {
  const t0 = performance.now();
  for (const crd of CRDS) validateObject(crd.spec.versions[0]?.schema?.openAPIV3Schema as object, {});
  assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
});

test("keys named like Object.prototype members are unknown fields, never schema lookups", () => {
  const body = JSON.parse(
    '{"metadata":{"name":"v"},"spec":{"constructor":1,"__proto__":{"x":1},"domain":{"devices":{"toString":"x"}}}}',
  );
  const r = validateObject<{ spec: Record<string, unknown> }>(VirtualMachineInstance, body);
  assert.deepEqual(r.unknownFields.sort(), ["spec.__proto__", "spec.constructor", "spec.domain.devices.toString"]);
  assert.equal(Object.getPrototypeOf(r.object.spec), Object.prototype);
  assert.equal(Object.hasOwn(r.object.spec, "constructor"), false);
});

test("random bodies never throw", () => {
  const samples: unknown[] = [null, 1, "x", [], [1, 2], { spec: [] }, { spec: { domain: [] } }, { metadata: 5 }];
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const values = () => [null, true, 3, -1.5, "s", "12Mi", [], {}, [{}], { name: 1 }][Math.floor(rnd() * 10)];
  for (let i = 0; i < 300; i++) {
    const o: Record<string, unknown> = {
      spec: { domain: { devices: { disks: [{ name: values(), disk: values() }] } } },
    };
    (o.spec as Record<string, unknown>)[["volumes", "networks", "domain", "x"][i % 4] as string] = values();
    samples.push(o);
  }
  for (const s of samples) {
    for (const schema of [
      VirtualMachineInstance,
      VirtualMachine,
      CRDS[0]?.spec.versions[0]?.schema?.openAPIV3Schema as object,
    ]) {
      const r = validateObject(schema, s);
      assert.ok(Array.isArray(r.causes));
    }
  }
});

test("x-kubernetes-preserve-unknown-fields keeps arbitrary content; embedded resources accept apiVersion/kind/metadata", () => {
  const crd = {
    metadata: { name: "foos.example.com" },
    spec: {
      group: "example.com",
      names: { plural: "foos", kind: "Foo" },
      scope: "Namespaced",
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", properties: { spec: { type: "object", "x-anything": 1 } } } },
        },
      ],
    },
  };
  const r = validateObject(CustomResourceDefinitionSchema, crd, { fieldValidation: "Strict" });
  assert.deepEqual(r.unknownFields, []);
  assert.deepEqual(r.causes, []);
  assert.deepEqual(r.object, crd);

  const schema = {
    type: "object",
    properties: {
      template: { type: "object", "x-kubernetes-embedded-resource": true, properties: { spec: { type: "object" } } },
    },
  };
  const e = validateObject(schema, {
    template: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" }, spec: {}, extra: 1 },
  });
  assert.deepEqual(e.unknownFields, ["template.extra"]);
});
