// pods/eviction over HTTP against the real server (in-memory store): discovery, the generic eviction (a delete), the
// Status on every error path, and KubeVirt's launcher-pod rules from admission (429 + evacuationNodeName).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { nullLogger } from "../../lib/log.js";
import { type ApiServer, startApiServer } from "../index.js";

let api: ApiServer;
const PODS = "/api/v1/namespaces/default/pods";
const VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances";
const KV = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt";
type Obj = Record<string, unknown>;

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { "content-type": "application/json", ...headers } };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const r = await fetch(api.url + path, init);
  const text = await r.text();
  let parsed: Obj = {};
  try {
    parsed = JSON.parse(text) as Obj;
  } catch {}
  return { status: r.status, body: parsed, headers: r.headers };
}

const merge = { "content-type": "application/merge-patch+json" };

function eviction(name: string, extra: Obj = {}): Obj {
  return { apiVersion: "policy/v1", kind: "Eviction", metadata: { name, namespace: "default" }, ...extra };
}

async function pod(name: string, o: { launcherOf?: string; node?: string } = {}): Promise<void> {
  const labels: Record<string, string> = o.launcherOf ? { "kubevirt.io": "virt-launcher" } : { app: "web" };
  const annotations: Record<string, string> = o.launcherOf ? { "kubevirt.io/domain": o.launcherOf } : {};
  const c = await call("POST", PODS, {
    metadata: { name, labels, annotations },
    spec: { containers: [{ name: "compute", image: "x" }] },
  });
  assert.equal(c.status, 201);
  if (o.node) assert.equal((await call("POST", `${PODS}/${name}/binding`, { target: { name: o.node } })).status, 201);
}

async function vmi(name: string, o: { strategy?: string; migratable: boolean; node: string }): Promise<void> {
  const c = await call("POST", VMIS, {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name },
    spec: {
      ...(o.strategy ? { evictionStrategy: o.strategy } : {}),
      domain: { devices: {}, resources: { requests: { memory: "64Mi" } } },
    },
  });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  const p = await call(
    "PATCH",
    `${VMIS}/${name}`,
    {
      status: {
        phase: "Running",
        nodeName: o.node,
        conditions: [{ type: "LiveMigratable", status: o.migratable ? "True" : "False" }],
      },
    },
    merge,
  );
  assert.equal(p.status, 200, JSON.stringify(p.body));
}

function statusOf(o: Obj): Obj {
  return (o.status ?? {}) as Obj;
}

before(async () => {
  api = await startApiServer({ memory: true, logger: nullLogger });
});
after(async () => {
  await api.close();
});

describe("pods/eviction", () => {
  test("discovery lists pods/eviction as policy/v1 Eviction (kubectl drain evicts only then)", async () => {
    const core = await call("GET", "/api/v1");
    const e = (core.body.resources as Obj[]).find((r) => r.name === "pods/eviction");
    assert.deepEqual(e, {
      name: "pods/eviction",
      singularName: "",
      namespaced: true,
      kind: "Eviction",
      verbs: ["create"],
      group: "policy",
      version: "v1",
    });
    const agg = await call("GET", "/api", undefined, {
      accept: "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    });
    const v1 = (((agg.body.items as Obj[])[0] as Obj).versions as Obj[])[0] as Obj;
    const pods = (v1.resources as Obj[]).find((r) => r.resource === "pods") as Obj;
    assert.ok(
      (pods.subresources as Obj[]).some(
        (s) => s.subresource === "eviction" && JSON.stringify(s.responseKind).includes('"group":"policy"'),
      ),
    );
  });

  test("an ordinary pod is deleted with the Eviction's deleteOptions; 201 Success", async () => {
    await pod("web1", { node: "node01" });
    const r = await call(
      "POST",
      `${PODS}/web1/eviction`,
      eviction("web1", { deleteOptions: { gracePeriodSeconds: 0 } }),
    );
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual([r.body.kind, r.body.status], ["Status", "Success"]);
    assert.equal((await call("GET", `${PODS}/web1`)).status, 404);
    await pod("web2", { node: "node01" });
    assert.equal((await call("POST", `${PODS}/web2/eviction`, eviction("web2"))).status, 201);
    const graceful = await call("GET", `${PODS}/web2`);
    assert.ok((graceful.body.metadata as Obj).deletionTimestamp, "a bound pod terminates gracefully");
    await pod("web3");
    const dry = await call("POST", `${PODS}/web3/eviction?dryRun=All`, eviction("web3", { extra: 1 }));
    assert.equal(dry.status, 201);
    assert.match(dry.headers.get("warning") ?? "", /unknown field .*extra/);
    assert.equal((await call("GET", `${PODS}/web3`)).status, 200, "dry run deletes nothing");
  });

  test("errors are Statuses: 404 missing pod, 400 name mismatch or wrong kind, 422 bad deleteOptions, 405 GET", async () => {
    const missing = await call("POST", `${PODS}/nope/eviction`, eviction("nope"));
    assert.equal(missing.status, 404);
    assert.equal(missing.body.reason, "NotFound");
    await pod("web4");
    const mismatch = await call("POST", `${PODS}/web4/eviction`, eviction("other"));
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.body.message, "name in URL does not match name in Eviction object");
    const kind = await call("POST", `${PODS}/web4/eviction`, { apiVersion: "v1", kind: "Pod", metadata: {} });
    assert.equal(kind.status, 400);
    const bad = await call(
      "POST",
      `${PODS}/web4/eviction`,
      eviction("web4", { deleteOptions: { gracePeriodSeconds: "soon" } }),
    );
    assert.equal(bad.status, 422);
    assert.equal((bad.body.details as { causes: Obj[] }).causes[0]?.field, "deleteOptions.gracePeriodSeconds");
    const pre = await call(
      "POST",
      `${PODS}/web4/eviction`,
      eviction("web4", { deleteOptions: { preconditions: { uid: "not-the-uid" } } }),
    );
    assert.equal(pre.status, 409);
    assert.equal((await call("GET", `${PODS}/web4/eviction`)).status, 405);
    const strict = await call("POST", `${PODS}/web4/eviction?fieldValidation=Strict`, eviction("web4", { extra: 1 }));
    assert.equal(strict.status, 400);
    assert.match(String(strict.body.message), /unknown field "extra"/);
    assert.equal((await call("GET", `${PODS}/web4`)).status, 200);
  });

  test("a LiveMigrate launcher pod: 429, the VMI marked, the pod kept; again: in progress", async () => {
    await vmi("lm", { strategy: "LiveMigrate", migratable: true, node: "node01" });
    await pod("virt-launcher-lm-x", { launcherOf: "lm", node: "node01" });
    const r = await call("POST", `${PODS}/virt-launcher-lm-x/eviction`, eviction("virt-launcher-lm-x"));
    assert.equal(r.status, 429);
    assert.equal(r.body.reason, "TooManyRequests");
    assert.equal(r.headers.get("retry-after"), null, "no Retry-After: client-go would retry it silently");
    assert.equal(
      r.body.message,
      'admission webhook "virt-launcher-eviction-interceptor.kubevirt.io" denied the request: Eviction triggered evacuation of VMI "default/lm"',
    );
    assert.equal(statusOf((await call("GET", `${VMIS}/lm`)).body).evacuationNodeName, "node01");
    const p = await call("GET", `${PODS}/virt-launcher-lm-x`);
    assert.equal((p.body.metadata as Obj).deletionTimestamp, undefined);
    const again = await call("POST", `${PODS}/virt-launcher-lm-x/eviction`, eviction("virt-launcher-lm-x"));
    assert.equal(again.status, 429);
    assert.match(String(again.body.message), /Evacuation in progress: Eviction triggered evacuation of VMI/);
  });

  test("dry run refuses the same way but marks nothing", async () => {
    await vmi("dr", { strategy: "External", migratable: false, node: "node01" });
    await pod("virt-launcher-dr-x", { launcherOf: "dr", node: "node01" });
    const r = await call("POST", `${PODS}/virt-launcher-dr-x/eviction?dryRun=All`, eviction("virt-launcher-dr-x"));
    assert.equal(r.status, 429);
    assert.equal(statusOf((await call("GET", `${VMIS}/dr`)).body).evacuationNodeName, undefined);
  });

  test("LiveMigrate on a VMI that cannot migrate: 429, nothing marked", async () => {
    await vmi("nm", { strategy: "LiveMigrate", migratable: false, node: "node01" });
    await pod("virt-launcher-nm-x", { launcherOf: "nm", node: "node01" });
    const r = await call("POST", `${PODS}/virt-launcher-nm-x/eviction`, eviction("virt-launcher-nm-x"));
    assert.equal(r.status, 429);
    assert.match(String(r.body.message), /VMI nm is configured with an eviction strategy but is not live-migratable/);
    assert.equal(statusOf((await call("GET", `${VMIS}/nm`)).body).evacuationNodeName, undefined);
  });

  test("None (the default) evicts the launcher pod; the KubeVirt object's strategy applies when the VMI has none", async () => {
    await vmi("none", { migratable: true, node: "node01" });
    await pod("virt-launcher-none-x", { launcherOf: "none", node: "node01" });
    const r = await call(
      "POST",
      `${PODS}/virt-launcher-none-x/eviction`,
      eviction("virt-launcher-none-x", { deleteOptions: { gracePeriodSeconds: 0 } }),
    );
    assert.equal(r.status, 201);
    assert.equal((await call("GET", `${PODS}/virt-launcher-none-x`)).status, 404);
    const kv = await call("PATCH", KV, { spec: { configuration: { evictionStrategy: "LiveMigrate" } } }, merge);
    assert.equal(kv.status, 200, JSON.stringify(kv.body));
    await vmi("cl", { migratable: true, node: "node01" });
    await pod("virt-launcher-cl-x", { launcherOf: "cl", node: "node01" });
    const c = await call("POST", `${PODS}/virt-launcher-cl-x/eviction`, eviction("virt-launcher-cl-x"));
    assert.equal(c.status, 429);
    assert.equal(statusOf((await call("GET", `${VMIS}/cl`)).body).evacuationNodeName, "node01");
    await call("PATCH", KV, { spec: { configuration: { evictionStrategy: null } } }, merge);
  });
});
