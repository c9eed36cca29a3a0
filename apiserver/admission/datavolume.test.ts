import assert from "node:assert/strict";
import { test } from "node:test";
import { isStatusError, type StatusError } from "../../lib/errors.js";
import { validateDataVolumeSpec } from "./datavolume.js";
import { type AdmissionRequest, admissionPlugins, runAdmission } from "./index.js";

type Obj = Record<string, unknown>;
const plugins = admissionPlugins();

function req(kind: string, resource: string, obj: Obj, operation: AdmissionRequest["operation"] = "CREATE", old?: Obj) {
  return {
    uid: "u",
    kind: { group: "cdi.kubevirt.io", version: "v1beta1", kind },
    resource: { group: "cdi.kubevirt.io", version: "v1beta1", resource },
    operation,
    namespace: "default",
    userInfo: { username: "alice" },
    object: obj,
    ...(old ? { oldObject: old } : {}),
  } as AdmissionRequest;
}

const dv = (spec: Obj): Obj => ({
  apiVersion: "cdi.kubevirt.io/v1beta1",
  kind: "DataVolume",
  metadata: { name: "d" },
  spec,
});
const size = { resources: { requests: { storage: "1Gi" } } };

async function refused(spec: Obj, field: RegExp, message: RegExp): Promise<StatusError> {
  try {
    await runAdmission(plugins, req("DataVolume", "datavolumes", dv(spec)));
  } catch (e) {
    assert.ok(isStatusError(e), String(e));
    assert.equal(e.status.code, 422, e.status.message);
    const causes = e.status.details?.causes ?? [];
    assert.ok(
      causes.some((c) => field.test(c.field ?? "") && message.test(c.message ?? "")),
      `${JSON.stringify(spec)} → ${JSON.stringify(causes)}`,
    );
    return e;
  }
  assert.fail(`accepted: ${JSON.stringify(spec)}`);
}

test("DV admission accepts the sources tsvirt implements", async () => {
  for (const spec of [
    { source: { blank: {} }, storage: size },
    { source: { registry: { url: "docker://127.0.0.1:5000/disk:1" } }, storage: size },
    { source: { http: { url: "https://example.test/x.qcow2.gz", checksum: `sha256:${"a".repeat(64)}` } }, pvc: size },
    { source: { upload: {} }, storage: size },
    { source: { pvc: { namespace: "default", name: "golden" } }, storage: {} },
  ]) {
    const { warnings } = await runAdmission(plugins, req("DataVolume", "datavolumes", dv(spec)));
    assert.deepEqual(warnings, [], JSON.stringify(spec));
  }
});

test("DV admission refuses what tsvirt does not act on, naming the field", async () => {
  await refused(
    { sourceRef: { kind: "DataSource", name: "fedora" }, storage: size },
    /^spec\.sourceRef$/,
    /tsvirt does not support/,
  );
  for (const k of ["s3", "gcs", "imageio", "vddk", "snapshot"]) {
    await refused(
      { source: { [k]: { url: "x", name: "n", namespace: "n" } }, storage: size },
      new RegExp(`^spec\\.source\\.${k}$`),
      new RegExp(`tsvirt does not support the ${k} source`),
    );
  }
  await refused({ storage: size }, /^spec\.source$/, /either Source or SourceRef/);
  await refused({ source: { blank: {}, upload: {} }, storage: size }, /^spec\.source$/, /Multiple/);
  await refused({ source: { blank: {} }, storage: size, pvc: size }, /^spec\.pvc$/, /both pvc and storage/);
  await refused({ source: { blank: {} } }, /^spec\.pvc$/, /Missing/);
  await refused(
    { source: { blank: {} }, storage: {} },
    /^spec\.storage\.resources\.requests\.storage$/,
    /size is missing/,
  );
  await refused(
    { source: { blank: {} }, pvc: { resources: { requests: { storage: "0" } } } },
    /storage$/,
    /less than zero/,
  );
  await refused(
    { source: { registry: { url: "quay.io/x/y" } }, storage: size },
    /^spec\.source\.registry\.url$/,
    /docker:\/\//,
  );
  await refused(
    { source: { registry: { url: "docker://r/x", pullMethod: "node" } }, storage: size },
    /pullMethod$/,
    /pulls in the importer pod/,
  );
  await refused(
    { source: { http: { url: "ftp://h/x" } }, storage: size },
    /^spec\.source\.http\.url$/,
    /not http or https/,
  );
  await refused(
    { source: { http: { url: "http://h/x", checksum: "sha256:12" } }, storage: size },
    /checksum$/,
    /hex digest/,
  );
  await refused(
    { source: { http: { url: "http://h/x", extraHeaders: ["a: b"] } }, storage: size },
    /extraHeaders$/,
    /extra HTTP headers/,
  );
  await refused(
    { source: { blank: {} }, storage: size, checkpoints: [{ previous: "", current: "a" }] },
    /checkpoints$/,
    /multi-stage/,
  );
  await refused({ source: { blank: {} }, storage: size, contentType: "archive" }, /contentType$/, /disk images only/);
  await refused(
    { source: { blank: {} }, storage: { ...size, dataSourceRef: { kind: "X", name: "y" } } },
    /dataSourceRef$/,
    /populators/,
  );
});

test("DV admission answers harmless unused fields with a Warning", async () => {
  const { warnings } = await runAdmission(
    plugins,
    req(
      "DataVolume",
      "datavolumes",
      dv({ source: { blank: {} }, storage: size, preallocation: true, priorityClassName: "high" }),
    ),
  );
  assert.equal(warnings.length, 2);
  assert.match(warnings[0] ?? "", /spec\.preallocation/);
  assert.match(warnings[1] ?? "", /spec\.priorityClassName/);
});

test("a DV's spec is immutable; its metadata is not", async () => {
  const old = dv({ source: { blank: {} }, storage: size });
  const labelled = { ...old, metadata: { name: "d", labels: { a: "b" } } };
  await runAdmission(plugins, req("DataVolume", "datavolumes", labelled, "UPDATE", old));
  const grown = dv({ source: { blank: {} }, storage: { resources: { requests: { storage: "2Gi" } } } });
  try {
    await runAdmission(plugins, req("DataVolume", "datavolumes", grown, "UPDATE", old));
    assert.fail("spec update accepted");
  } catch (e) {
    assert.ok(isStatusError(e));
    assert.equal(e.status.code, 422);
    assert.equal(e.status.details?.causes?.[0]?.field, "spec");
  }
});

test("a VM's dataVolumeTemplates are held to the same rules", () => {
  assert.deepEqual(
    validateDataVolumeSpec({ source: { blank: {} }, storage: size }, "spec.dataVolumeTemplates[0].spec").causes,
    [],
  );
  const c = validateDataVolumeSpec(
    { source: { s3: { url: "s3://b/k" } }, storage: size },
    "spec.dataVolumeTemplates[0].spec",
  );
  assert.equal(c.causes[0]?.field, "spec.dataVolumeTemplates[0].spec.source.s3");
});

test("CDIConfig: fields other than uploadProxyURLOverride are answered with a Warning", async () => {
  const cfg = { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "CDIConfig", metadata: { name: "config" } };
  assert.deepEqual(
    (
      await runAdmission(
        plugins,
        req("CDIConfig", "cdiconfigs", { ...cfg, spec: { uploadProxyURLOverride: "https://x" } }),
      )
    ).warnings,
    [],
  );
  const { warnings } = await runAdmission(
    plugins,
    req("CDIConfig", "cdiconfigs", { ...cfg, spec: { featureGates: ["X"] } }),
  );
  assert.deepEqual(warnings, ["spec.featureGates: accepted but not acted on by tsvirt"]);
});
