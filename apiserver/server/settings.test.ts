// The KubeVirt settings object (created with defaults at the first start, read live, Warnings for what nothing acts
// on) and apps/v1 ControllerRevision, over HTTP.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { defaultConfiguration } from "../../api/index.js";
import { nullLogger } from "../../lib/log.js";
import { type ApiServer, startApiServer } from "../index.js";

let api: ApiServer;
const KV = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt";
const CR = "/apis/apps/v1/namespaces/default/controllerrevisions";

async function call(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; warnings: string[] }> {
  const r = await fetch(api.url + path, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  return {
    status: r.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    warnings: r.headers.get("warning") ? [r.headers.get("warning") as string] : [],
  };
}

describe("KubeVirt settings and ControllerRevisions", () => {
  before(async () => {
    api = await startApiServer({ memory: true, logger: nullLogger });
  });
  after(() => api.close());

  test("kubevirt/kubevirt exists from the first start, as KubeVirt's shipped CR, and fits the schema", async () => {
    const kv = await call("GET", KV);
    assert.equal(kv.status, 200);
    assert.deepEqual(kv.body.spec, {
      certificateRotateStrategy: {},
      workloadUpdateStrategy: {},
      configuration: { developerConfiguration: { featureGates: [] } },
    });
    // written back under Strict validation: every field it has is in the schema, and nothing warns
    const put = await call("PUT", `${KV}?fieldValidation=Strict`, kv.body);
    assert.equal(put.status, 200);
    assert.deepEqual(put.warnings, []);
    const list = await call("GET", "/apis/kubevirt.io/v1/kubevirts");
    assert.equal((list.body.items as unknown[]).length, 1);
  });

  test("settings nothing acts on answer a Warning; the machine type is read live by VMI defaulting", async () => {
    const patched = await call(
      "PATCH",
      KV,
      { spec: { configuration: { machineType: "pc-q35-9.0", migrations: { allowWorkloadDisruption: true } } } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(patched.status, 200);
    // both acted on (the launcher pauses the guest past the completion budget): no Warning
    assert.deepEqual(patched.warnings, []);
    const vmi = await call("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances", {
      metadata: { name: "mt" },
      spec: { domain: { devices: {} } },
    });
    assert.equal(vmi.status, 201);
    assert.equal((vmi.body.spec as { domain: { machine: { type: string } } }).domain.machine.type, "pc-q35-9.0");
    const other = await call("POST", "/apis/kubevirt.io/v1/namespaces/default/kubevirts", {
      metadata: { name: "second" },
      spec: {},
    });
    assert.equal(other.status, 201);
    assert.match(other.warnings[0] ?? "", /only kubevirt\/kubevirt is read/);
    assert.equal(defaultConfiguration().machineType, "q35");
    // the settings follow the object's deletion and re-creation at once (a cache kept by the store's events)
    assert.equal((await call("DELETE", KV)).status, 200);
    const after = await call("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances", {
      metadata: { name: "mt2" },
      spec: { domain: { devices: {} } },
    });
    assert.equal((after.body.spec as { domain: { machine: { type: string } } }).domain.machine.type, "q35");
    const again = await call("POST", "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts", {
      metadata: { name: "kubevirt" },
      spec: { configuration: { machineType: "pc-q35-8.2" } },
    });
    assert.equal(again.status, 201);
    const third = await call("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances", {
      metadata: { name: "mt3" },
      spec: { domain: { devices: {} } },
    });
    assert.equal((third.body.spec as { domain: { machine: { type: string } } }).domain.machine.type, "pc-q35-8.2");
  });

  test("ControllerRevision: create, get, list as a table, data immutable, delete", async () => {
    const rev = {
      apiVersion: "apps/v1",
      kind: "ControllerRevision",
      metadata: {
        name: "vm1-rev-1",
        ownerReferences: [
          { apiVersion: "kubevirt.io/v1", kind: "VirtualMachine", name: "vm1", uid: "u1", controller: true },
        ],
      },
      data: { spec: { template: { spec: { domain: { devices: {} } } } } },
      revision: 1,
    };
    const c = await call("POST", CR, rev);
    assert.equal(c.status, 201);
    assert.equal((await call("GET", `${CR}/vm1-rev-1`)).body.revision, 1);
    const table = await call("GET", CR, undefined, { accept: "application/json;as=Table;v=v1;g=meta.k8s.io" });
    const cols = (table.body.columnDefinitions as { name: string }[]).map((d) => d.name);
    assert.deepEqual(cols, ["Name", "Controller", "Revision", "Age"]);
    const cells = (table.body.rows as { cells: unknown[] }[])[0]?.cells;
    assert.deepEqual(cells?.slice(0, 3), ["vm1-rev-1", "virtualmachine.kubevirt.io/vm1", 1]);
    const changed = await call(
      "PATCH",
      `${CR}/vm1-rev-1`,
      { data: { other: 1 } },
      {
        "content-type": "application/merge-patch+json",
      },
    );
    assert.equal(changed.status, 422);
    assert.equal((changed.body.details as { causes: { field: string }[] }).causes[0]?.field, "data");
    const labelled = await call(
      "PATCH",
      `${CR}/vm1-rev-1`,
      { metadata: { labels: { a: "b" } } },
      {
        "content-type": "application/merge-patch+json",
      },
    );
    assert.equal(labelled.status, 200, "metadata may change");
    assert.equal((await call("POST", CR, { metadata: { name: "norev" }, data: {} })).status, 422, "revision required");
    assert.equal((await call("DELETE", `${CR}/vm1-rev-1`)).status, 200);
    assert.equal((await call("GET", `${CR}/vm1-rev-1`)).status, 404);
  });
});
