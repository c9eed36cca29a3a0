// Integration tests: the real server on 127.0.0.1:0 with an in-memory store, driven over HTTP as clients do.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { nullLogger } from "../../lib/log.js";
import { type ApiServer, startApiServer } from "../index.js";

let api: ApiServer;
const VMS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines";
const PODS = "/api/v1/namespaces/default/pods";

interface Resp {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
  text: string;
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Resp> {
  const init: RequestInit = { method, headers: { "content-type": "application/json", ...headers } };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const r = await fetch(api.url + path, init);
  const text = await r.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // text bodies (health, metrics)
  }
  return { status: r.status, body: parsed, headers: r.headers, text };
}

function md(o: Record<string, unknown>): Record<string, unknown> {
  return (o.metadata ?? {}) as Record<string, unknown>;
}

function vm(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name, labels: { app: "t" }, ...extra },
    spec: {
      runStrategy: "Halted",
      template: { spec: { domain: { devices: {}, resources: { requests: { memory: "64Mi" } } } } },
    },
  };
}

/** Reads watch events until `n` arrived or the stream ends. */
async function watchEvents(
  path: string,
  n: number,
  timeoutMs = 10_000,
  headers: Record<string, string> = {},
  onFirst: () => void = () => {},
): Promise<Record<string, unknown>[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const events: Record<string, unknown>[] = [];
  try {
    const r = await fetch(api.url + path, { signal: ac.signal, headers });
    const reader = r.body?.getReader();
    let buf = "";
    while (reader && events.length < n) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString("utf8");
      let i = buf.indexOf("\n");
      while (i >= 0) {
        events.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        if (events.length === 1) onFirst();
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
    }
    ac.abort();
  } catch (e) {
    if ((e as Error).name !== "AbortError") throw e;
  } finally {
    clearTimeout(timer);
  }
  return events;
}

before(async () => {
  api = await startApiServer({
    memory: true,
    logger: nullLogger,
    bookmarkIntervalMs: 200,
    resyncMs: 200,
    eventTtlSeconds: 2,
  });
});
after(async () => {
  await api.close();
});

describe("discovery and metadata endpoints", () => {
  test("version reports minor 32 and health endpoints answer ok", async () => {
    const v = await call("GET", "/version");
    assert.equal(v.body.major, "1");
    assert.equal(v.body.minor, "32");
    for (const p of ["/healthz", "/livez", "/readyz"]) assert.equal((await call("GET", p)).text, "ok");
  });

  test("legacy and aggregated discovery list kubevirt kinds with short names", async () => {
    const list = await call("GET", "/apis/kubevirt.io/v1");
    const res = list.body.resources as Record<string, unknown>[];
    const vmr = res.find((r) => r.name === "virtualmachines");
    assert.deepEqual(vmr?.shortNames, ["vm", "vms"]);
    assert.ok(res.some((r) => r.name === "virtualmachines/status"));
    assert.ok(!res.some((r) => r.name === "virtualmachineinstances/status"), "VMI has no status subresource");
    const agg = await call("GET", "/apis", undefined, {
      accept: "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
    });
    assert.match(agg.headers.get("content-type") ?? "", /as=APIGroupDiscoveryList/);
    const groups = (agg.body.items as Record<string, unknown>[]).map((i) => md(i).name);
    for (const g of [
      "kubevirt.io",
      "snapshot.kubevirt.io",
      "cdi.kubevirt.io",
      "pool.kubevirt.io",
      "apiextensions.k8s.io",
    ]) {
      assert.ok(groups.includes(g), g);
    }
    const core = await call("GET", "/api/v1");
    const names = (core.body.resources as Record<string, unknown>[]).map((r) => r.name);
    for (const n of ["pods", "pods/log", "pods/binding", "nodes/status", "namespaces", "events", "configmaps"]) {
      assert.ok(names.includes(n), n);
    }
  });

  test("openapi v3 declares fieldValidation on PATCH and no strategic merge for custom kinds", async () => {
    const idx = await call("GET", "/openapi/v3");
    const url = ((idx.body.paths as Record<string, Record<string, string>>)["apis/kubevirt.io/v1"] ?? {})
      .serverRelativeURL;
    assert.ok(url);
    const doc = await call("GET", url ?? "");
    assert.match(doc.headers.get("cache-control") ?? "", /immutable/);
    const paths = doc.body.paths as Record<string, Record<string, Record<string, unknown>>>;
    const item = paths["/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}"];
    const patch = item?.patch as Record<string, unknown>;
    assert.ok((patch.parameters as { name: string }[]).some((p) => p.name === "fieldValidation"));
    const types = Object.keys((patch.requestBody as { content: Record<string, unknown> }).content);
    assert.ok(!types.includes("application/strategic-merge-patch+json"));
    const schemas = (doc.body.components as { schemas: Record<string, Record<string, unknown>> }).schemas;
    assert.ok(
      Object.values(schemas).some((s) =>
        JSON.stringify(s["x-kubernetes-group-version-kind"] ?? "").includes('"VirtualMachine"'),
      ),
    );
    const core = await call("GET", "/openapi/v3/api/v1");
    const podPatch = (core.body.paths as Record<string, Record<string, Record<string, unknown>>>)[
      "/api/v1/namespaces/{namespace}/pods/{name}"
    ]?.patch;
    assert.ok(
      Object.keys((podPatch?.requestBody as { content: Record<string, unknown> } | undefined)?.content ?? {}).includes(
        "application/strategic-merge-patch+json",
      ),
    );
  });

  test("system namespaces exist from the first start", async () => {
    const ns = await call("GET", "/api/v1/namespaces");
    const names = (ns.body.items as Record<string, unknown>[]).map((i) => md(i).name);
    for (const n of ["default", "kube-system", "kube-public", "kube-node-lease", "kubevirt"])
      assert.ok(names.includes(n), n);
  });
});

describe("CRUD semantics", () => {
  test("create sets server fields; duplicate is AlreadyExists; missing is NotFound", async () => {
    const c = await call("POST", VMS, vm("crud1"));
    assert.equal(c.status, 201);
    const m = md(c.body);
    assert.match(String(m.uid), /^[0-9a-f-]{36}$/);
    assert.equal(m.generation, 1);
    assert.match(String(m.resourceVersion), /^\d+$/);
    assert.equal(m.namespace, "default");
    const dup = await call("POST", VMS, vm("crud1"));
    assert.equal(dup.status, 409);
    assert.equal(dup.body.reason, "AlreadyExists");
    const nf = await call("GET", `${VMS}/nope`);
    assert.equal(nf.status, 404);
    assert.equal(nf.body.message, 'virtualmachines.kubevirt.io "nope" not found');
    const noNs = await call("POST", "/apis/kubevirt.io/v1/namespaces/missing/virtualmachines", vm("x"));
    assert.equal(noNs.status, 404);
    const mismatch = await call("POST", VMS, vm("x", { namespace: "other" }));
    assert.equal(mismatch.status, 400);
  });

  test("every read and write answers in the apiVersion it was asked in, whatever the stored text", async () => {
    const A3 = "/apis/kubevirt.io/v1alpha3/namespaces/default/virtualmachines";
    const { apiVersion: _a, kind: _k, ...rest } = vm("ver1");
    const created = await call("POST", VMS, { ...rest, kind: "VirtualMachine", apiVersion: "kubevirt.io/v1" });
    assert.equal(created.status, 201);
    assert.equal(created.body.apiVersion, "kubevirt.io/v1");
    const rv = String(md(created.body).resourceVersion);
    const asV1 = await call("GET", `${VMS}/ver1`);
    const asA3 = await call("GET", `${A3}/ver1`);
    assert.equal(asV1.body.apiVersion, "kubevirt.io/v1");
    assert.equal(asA3.body.apiVersion, "kubevirt.io/v1alpha3");
    assert.deepEqual({ ...asA3.body, apiVersion: "kubevirt.io/v1" }, asV1.body);
    assert.deepEqual(asV1.body, created.body);
    const viaA3 = await call("POST", A3, { ...vm("ver2"), apiVersion: "kubevirt.io/v1alpha3" });
    assert.equal(viaA3.status, 201);
    assert.equal(viaA3.body.apiVersion, "kubevirt.io/v1alpha3");
    assert.equal((await call("GET", `${VMS}/ver2`)).body.apiVersion, "kubevirt.io/v1");
    const patched = await call(
      "PATCH",
      `${A3}/ver1`,
      { metadata: { labels: { v: "1" } } },
      {
        "content-type": "application/merge-patch+json",
      },
    );
    assert.equal(patched.body.apiVersion, "kubevirt.io/v1alpha3");
    for (const [base, av] of [
      [A3, "kubevirt.io/v1alpha3"],
      [VMS, "kubevirt.io/v1"],
    ] as const) {
      const list = await call("GET", base);
      const items = list.body.items as Record<string, unknown>[];
      assert.ok(items.some((o) => md(o).name === "ver1"));
      assert.deepEqual([...new Set(items.map((o) => o.apiVersion))], [av]);
      const events = await watchEvents(
        `${base}?watch=true&resourceVersion=${rv}&fieldSelector=metadata.name%3Dver1`,
        1,
      );
      assert.equal(events[0]?.type, "MODIFIED");
      const o = events[0]?.object as Record<string, unknown>;
      assert.equal(o.apiVersion, av);
      assert.deepEqual((md(o).labels as Record<string, string>).v, "1");
    }
  });

  test("generateName gives a unique name", async () => {
    const body = vm("");
    (body.metadata as Record<string, unknown>).name = undefined;
    (body.metadata as Record<string, unknown>).generateName = "gen-";
    const a = await call("POST", VMS, body);
    const b = await call("POST", VMS, body);
    assert.equal(a.status, 201);
    assert.match(String(md(a.body).name), /^gen-[a-z0-9]{5}$/);
    assert.notEqual(md(a.body).name, md(b.body).name);
    const none = await call("POST", VMS, { ...vm(""), metadata: {} });
    assert.equal(none.status, 422);
  });

  test("update: stale resourceVersion conflicts; generation bumps on spec only; no-op keeps RV", async () => {
    const c = (await call("POST", VMS, vm("upd1"))).body;
    const rv1 = md(c).resourceVersion;
    const labeled = await call(
      "PATCH",
      `${VMS}/upd1`,
      { metadata: { labels: { x: "y" } } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(labeled.status, 200);
    assert.equal(md(labeled.body).generation, 1);
    assert.notEqual(md(labeled.body).resourceVersion, rv1);
    const stale = await call("PUT", `${VMS}/upd1`, c);
    assert.equal(stale.status, 409);
    assert.equal(stale.body.reason, "Conflict");
    const spec = await call(
      "PATCH",
      `${VMS}/upd1`,
      { spec: { runStrategy: "Always" } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(md(spec.body).generation, 2);
    const same = await call(
      "PATCH",
      `${VMS}/upd1`,
      { spec: { runStrategy: "Always" } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(md(same.body).resourceVersion, md(spec.body).resourceVersion);
    const status = await call(
      "PATCH",
      `${VMS}/upd1/status`,
      { status: { printableStatus: "Running" } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(status.status, 200);
    assert.equal(md(status.body).generation, 2);
    const ignored = await call(
      "PATCH",
      `${VMS}/upd1`,
      { status: { printableStatus: "Nope" } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(
      (ignored.body.status as Record<string, unknown>).printableStatus,
      "Running",
      "main resource ignores status",
    );
  });

  test("patch types: json patch with failing test, SMP 415 on a CR, apply creates and conflicts", async () => {
    await call("POST", VMS, vm("p1"));
    const jp = await call("PATCH", `${VMS}/p1`, [{ op: "add", path: "/metadata/labels/j", value: "1" }], {
      "content-type": "application/json-patch+json",
    });
    assert.equal((md(jp.body).labels as Record<string, string> | undefined)?.j, "1");
    const bad = await call("PATCH", `${VMS}/p1`, [{ op: "test", path: "/spec/runStrategy", value: "X" }], {
      "content-type": "application/json-patch+json",
    });
    assert.equal(bad.status, 422);
    const smp = await call(
      "PATCH",
      `${VMS}/p1`,
      { metadata: { labels: { s: "1" } } },
      { "content-type": "application/strategic-merge-patch+json" },
    );
    assert.equal(smp.status, 415);
    const noMgr = await call("PATCH", `${VMS}/ssa1`, vm("ssa1"), { "content-type": "application/apply-patch+yaml" });
    assert.equal(noMgr.status, 400);
    const created = await call("PATCH", `${VMS}/ssa1?fieldManager=one`, vm("ssa1"), {
      "content-type": "application/apply-patch+yaml",
    });
    assert.equal(created.status, 201);
    const other = vm("ssa1");
    (other.metadata as Record<string, unknown>).labels = { app: "other" };
    const conflictResp = await call("PATCH", `${VMS}/ssa1?fieldManager=two`, other, {
      "content-type": "application/apply-patch+yaml",
    });
    assert.equal(conflictResp.status, 409);
    assert.match(String(conflictResp.body.message), /conflict with "one"/);
    const forced = await call("PATCH", `${VMS}/ssa1?fieldManager=two&force=true`, other, {
      "content-type": "application/apply-patch+yaml",
    });
    assert.equal(forced.status, 200);
    const managers = (md(forced.body).managedFields as { manager: string }[]).map((m) => m.manager).sort();
    assert.deepEqual(managers, ["one", "two"]);
    // strategic merge on a built-in kind merges lists by name
    await call("POST", "/api/v1/namespaces/default/configmaps", { metadata: { name: "cm-smp" }, data: { a: "1" } });
    const cm = await call(
      "PATCH",
      "/api/v1/namespaces/default/configmaps/cm-smp",
      { data: { b: "2" } },
      { "content-type": "application/strategic-merge-patch+json" },
    );
    assert.deepEqual(cm.body.data, { a: "1", b: "2" });
  });

  test("dryRun=All validates without persisting; fieldValidation Strict rejects unknown fields", async () => {
    const dry = await call("POST", `${VMS}?dryRun=All`, vm("dry1"));
    assert.equal(dry.status, 201);
    assert.equal((await call("GET", `${VMS}/dry1`)).status, 404);
    const bad = vm("strict1");
    (bad.spec as Record<string, unknown>).foo = 1;
    const strict = await call("POST", `${VMS}?fieldValidation=Strict`, bad);
    assert.equal(strict.status, 400);
    assert.match(String(strict.body.message), /strict decoding error: unknown field "spec.foo"/);
    const warn = await call("POST", `${VMS}?fieldValidation=Warn`, bad);
    assert.equal(warn.status, 201);
    assert.match(warn.headers.get("warning") ?? "", /unknown field \\?"spec.foo/);
    assert.equal((warn.body.spec as Record<string, unknown>).foo, undefined, "pruned, never stored");
    // a field name outside printable ASCII is a warning too (sent as UTF-8, as kube-apiserver does), never a 500
    const odd = vm("warn-utf8");
    (odd.spec as Record<string, unknown>)["naïve✓\u007f"] = 1;
    const oddWarn = await call("POST", `${VMS}?fieldValidation=Warn`, odd);
    assert.equal(oddWarn.status, 201);
    const text = Buffer.from(oddWarn.headers.get("warning") ?? "", "latin1").toString("utf8");
    assert.match(text, /unknown field \\?"spec\.naïve✓ /);
  });

  test("list: label and field selectors, limit/continue, unsupported field selector is 400", async () => {
    for (const n of ["l1", "l2", "l3"])
      await call("POST", "/api/v1/namespaces/default/configmaps", { metadata: { name: n, labels: { grp: "l" } } });
    const sel = await call("GET", "/api/v1/namespaces/default/configmaps?labelSelector=grp%20in%20(l)");
    assert.equal((sel.body.items as unknown[]).length, 3);
    const f = await call("GET", "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dl2");
    assert.deepEqual(
      (f.body.items as Record<string, unknown>[]).map((i) => md(i).name),
      ["l2"],
    );
    const p1 = await call("GET", "/api/v1/namespaces/default/configmaps?labelSelector=grp%3Dl&limit=2");
    assert.equal((p1.body.items as unknown[]).length, 2);
    const cont = md(p1.body).continue as string;
    assert.ok(cont);
    const p2 = await call(
      "GET",
      `/api/v1/namespaces/default/configmaps?labelSelector=grp%3Dl&limit=2&continue=${cont}`,
    );
    assert.equal((p2.body.items as unknown[]).length, 1);
    assert.equal(md(p2.body).continue, undefined);
    const badField = await call("GET", `${VMS}?fieldSelector=spec.running%3Dtrue`);
    assert.equal(badField.status, 400);
    const podField = await call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1");
    assert.equal(podField.status, 200);
    const badLabel = await call("GET", `${VMS}?labelSelector=a%20in%20(`);
    assert.equal(badLabel.status, 400);
  });

  test("Table output has KubeVirt's columns and humanized ages", async () => {
    await call("POST", VMS, vm("tbl1"));
    const t = await call("GET", VMS, undefined, {
      accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    });
    assert.equal(t.body.kind, "Table");
    const cols = (t.body.columnDefinitions as { name: string }[]).map((c) => c.name);
    assert.deepEqual(cols, ["Name", "Age", "Status", "Ready"]);
    const row = (t.body.rows as { cells: unknown[]; object: Record<string, unknown> }[]).find(
      (r) => r.cells[0] === "tbl1",
    );
    assert.match(String(row?.cells[1]), /^\d+s$/);
    assert.equal(md(row?.object ?? {}).namespace, "default");
  });
});

describe("admission", () => {
  test("KubeVirt's validation answers 422 Invalid with one cause per field path", async () => {
    const both = vm("adm-both");
    (both.spec as Record<string, unknown>).running = true;
    const r1 = await call("POST", VMS, both);
    assert.equal(r1.status, 422, JSON.stringify(r1.body));
    assert.equal(r1.body.reason, "Invalid");
    const noVolume = vm("adm-disk");
    const tmpl = (noVolume.spec as { template: { spec: { domain: { devices: Record<string, unknown> } } } }).template;
    tmpl.spec.domain.devices.disks = [{ name: "missing", disk: { bus: "virtio" } }];
    const r2 = await call("POST", VMS, noVolume);
    assert.equal(r2.status, 422);
    const causes = ((r2.body.details as { causes?: { field?: string }[] }).causes ?? []).map((c) => c.field);
    assert.ok(
      causes.some((f) => f?.includes("disks[0]")),
      JSON.stringify(causes),
    );
    const badQty = vm("adm-qty");
    (badQty.spec as { template: { spec: { domain: Record<string, unknown> } } }).template.spec.domain.resources = {
      requests: { memory: "lots" },
    };
    const r3 = await call("POST", VMS, badQty);
    assert.equal(r3.status, 422);
  });

  test("VMI creation gets KubeVirt's defaults: finalizer and phase Pending", async () => {
    const c = await call("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances", {
      metadata: { name: "adm-vmi" },
      spec: { domain: { devices: {}, resources: { requests: { memory: "64Mi" } } } },
    });
    assert.equal(c.status, 201, JSON.stringify(c.body));
    assert.ok((md(c.body).finalizers as string[]).includes("foregroundDeleteVirtualMachine"));
    assert.equal((c.body.status as Record<string, unknown>).phase, "Pending");
  });
});

describe("watch", () => {
  test("resumes from a resourceVersion, filters by field selector, ends on timeoutSeconds", async () => {
    const c = await call("POST", VMS, vm("w1"));
    const rv = md(c.body).resourceVersion;
    await call(
      "PATCH",
      `${VMS}/w1`,
      { metadata: { labels: { a: "1" } } },
      { "content-type": "application/merge-patch+json" },
    );
    await call("POST", VMS, vm("w2"));
    await call("DELETE", `${VMS}/w1`);
    const ev = await watchEvents(
      `${VMS}?watch=true&resourceVersion=${rv}&fieldSelector=metadata.name%3Dw1&timeoutSeconds=1`,
      10,
    );
    assert.deepEqual(
      ev.map((e) => e.type),
      ["MODIFIED", "DELETED"],
    );
  });

  test("resumed with a label selector: an object that came to match is ADDED, one that stopped matching DELETED", async () => {
    const path = "/api/v1/namespaces/default/configmaps";
    const merge = { "content-type": "application/merge-patch+json" };
    await call("POST", path, { metadata: { name: "sel-in", labels: { sel: "no" } } });
    const out = await call("POST", path, { metadata: { name: "sel-out", labels: { sel: "yes" } } });
    const rv = md(out.body).resourceVersion;
    // what a client that listed at rv holds: sel-out only; then, while it is away, both flip and sel-out flips twice
    await call("PATCH", `${path}/sel-in`, { metadata: { labels: { sel: "yes" } } }, merge);
    await call("PATCH", `${path}/sel-out`, { metadata: { labels: { sel: "no" } } }, merge);
    await call("PATCH", `${path}/sel-in`, { data: { k: "v" } }, merge);
    await call("PATCH", `${path}/sel-out`, { data: { k: "v" } }, merge);
    await call("POST", path, { metadata: { name: "sel-new", labels: { sel: "yes" } } });
    await call("DELETE", `${path}/sel-new`);
    const resumed = await watchEvents(
      `${path}?watch=true&resourceVersion=${rv}&labelSelector=sel%3Dyes&timeoutSeconds=1`,
      10,
    );
    const seen = (ev: Record<string, unknown>[]): string[] =>
      ev.map((e) => `${e.type}:${md(e.object as Record<string, unknown>).name}`);
    assert.deepEqual(seen(resumed), [
      "ADDED:sel-in",
      "DELETED:sel-out",
      "MODIFIED:sel-in",
      "ADDED:sel-new",
      "DELETED:sel-new",
    ]);
    // the same changes live
    // the writes follow the watch's initial ADDED (a fixed sleep let a slow watch start after them)
    let started: () => void = () => {};
    const running = new Promise<void>((r) => {
      started = r;
    });
    const live = watchEvents(`${path}?watch=true&labelSelector=sel%3Dyes&timeoutSeconds=10`, 3, 10_000, {}, started);
    await Promise.race([running, live]);
    await call("PATCH", `${path}/sel-in`, { metadata: { labels: { sel: "no" } } }, merge);
    await call("PATCH", `${path}/sel-out`, { metadata: { labels: { sel: "yes" } } }, merge);
    assert.deepEqual(seen(await live), ["ADDED:sel-in", "DELETED:sel-in", "ADDED:sel-out"]);
  });

  test("bookmarks only when asked; rv=0 sends ADDED for current objects", async () => {
    const plain = await watchEvents(`${VMS}?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dtbl1`, 10);
    assert.deepEqual(
      plain.map((e) => e.type),
      ["ADDED"],
    );
    const bm = await watchEvents(
      `${VMS}?watch=true&resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dtbl1`,
      10,
    );
    assert.ok(bm.some((e) => e.type === "BOOKMARK"));
  });

  test("a watch on an empty collection answers at once and streams later writes", async () => {
    await call("POST", "/api/v1/namespaces", { metadata: { name: "wempty" } });
    const path = "/api/v1/namespaces/wempty/configmaps";
    // whether the write lands before the watch starts (initial ADDED) or after (live ADDED), one event arrives
    const events = watchEvents(`${path}?watch=true&resourceVersion=0&timeoutSeconds=5`, 1);
    await call("POST", path, { metadata: { name: "late" } });
    const ev = await events;
    assert.deepEqual(
      ev.map((e) => `${e.type}:${md(e.object as Record<string, unknown>).name}`),
      ["ADDED:late"],
    );
  });

  test("a compacted resourceVersion gets an ERROR 410 event and the stream closes", async () => {
    const s = await startApiServer({ memory: true, logger: nullLogger, historySeconds: 0, resyncMs: 50 });
    try {
      const r1 = await fetch(`${s.url}/api/v1/namespaces/default/configmaps`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ metadata: { name: "a" } }),
      });
      const rv = Number(((await r1.json()) as { metadata: { resourceVersion: string } }).metadata.resourceVersion);
      await fetch(`${s.url}/api/v1/namespaces/default/configmaps`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ metadata: { name: "b" } }),
      });
      const deadline = Date.now() + 10_000;
      while (s.store.compactedRevision <= rv && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const res = await fetch(`${s.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${rv - 1}`);
      assert.equal(res.status, 200);
      const text = await res.text(); // ends only because the server closes the stream
      const ev = JSON.parse(text.trim()) as { type: string; object: { code: number; reason: string } };
      assert.equal(ev.type, "ERROR");
      assert.equal(ev.object.code, 410);
      assert.equal(ev.object.reason, "Expired");
    } finally {
      await s.close();
    }
  });
});

describe("deletion", () => {
  test("finalizers hold the object with a deletionTimestamp until removed", async () => {
    await call("POST", VMS, vm("fin1", { finalizers: ["x/y"] }));
    const d = await call("DELETE", `${VMS}/fin1`);
    assert.equal(d.status, 200);
    assert.ok(md(d.body).deletionTimestamp);
    assert.equal((await call("GET", `${VMS}/fin1`)).status, 200);
    await call(
      "PATCH",
      `${VMS}/fin1`,
      { metadata: { finalizers: null } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal((await call("GET", `${VMS}/fin1`)).status, 404);
  });

  test("preconditions mismatch is a Conflict", async () => {
    await call("POST", VMS, vm("pre1"));
    const d = await call("DELETE", `${VMS}/pre1`, { preconditions: { uid: "00000000-0000-0000-0000-000000000000" } });
    assert.equal(d.status, 409);
  });

  async function waitGone(path: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((await call("GET", path)).status !== 404) {
      if (Date.now() > deadline) assert.fail(`${path} still exists`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  test("garbage collection: background deletes dependents, orphan keeps them, foreground waits", async () => {
    for (const policy of ["Background", "Orphan", "Foreground"]) {
      const owner = (await call("POST", VMS, vm(`own-${policy.toLowerCase()}`))).body;
      const ref = {
        apiVersion: "kubevirt.io/v1",
        kind: "VirtualMachine",
        name: md(owner).name,
        uid: md(owner).uid,
        controller: true,
        blockOwnerDeletion: true,
      };
      const child = await call("POST", "/api/v1/namespaces/default/configmaps", {
        metadata: { name: `child-${policy.toLowerCase()}`, ownerReferences: [ref] },
      });
      assert.equal(child.status, 201, JSON.stringify(child.body));
      const childPath = `/api/v1/namespaces/default/configmaps/child-${policy.toLowerCase()}`;
      const del = await call("DELETE", `${VMS}/own-${policy.toLowerCase()}`, { propagationPolicy: policy });
      assert.equal(del.status, 200);
      if (policy === "Orphan") {
        await waitGone(`${VMS}/own-orphan`);
        const c = await call("GET", childPath);
        assert.equal(c.status, 200);
        assert.equal(md(c.body).ownerReferences, undefined);
      } else {
        if (policy === "Foreground") assert.ok((md(del.body).finalizers as string[]).includes("foregroundDeletion"));
        await waitGone(childPath);
        await waitGone(`${VMS}/own-${policy.toLowerCase()}`);
      }
    }
  });

  test("deletecollection: in one namespace by label; across namespaces and of namespaces 405, as kube-apiserver", async () => {
    for (const [n, grp] of [
      ["dc1", "x"],
      ["dc2", "x"],
      ["dc3", "y"],
    ])
      await call("POST", "/api/v1/namespaces/default/configmaps", { metadata: { name: n, labels: { dc: grp } } });
    const d = await call("DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=dc%3Dx");
    assert.equal(d.status, 200);
    assert.deepEqual((d.body.items as Record<string, unknown>[]).map((i) => md(i).name).sort(), ["dc1", "dc2"]);
    assert.equal((await call("GET", "/api/v1/namespaces/default/configmaps/dc1")).status, 404);
    assert.equal((await call("GET", "/api/v1/namespaces/default/configmaps/dc3")).status, 200);
    for (const p of ["/api/v1/configmaps", "/apis/kubevirt.io/v1/virtualmachines", "/api/v1/namespaces"]) {
      const r = await call("DELETE", p);
      assert.equal(r.status, 405, p);
      assert.equal(r.body.reason, "MethodNotAllowed");
    }
    assert.equal((await call("GET", "/api/v1/namespaces/default/configmaps/dc3")).status, 200);
  });

  test("namespace deletion empties the namespace first, then removes it", async () => {
    await call("POST", "/api/v1/namespaces", { metadata: { name: "nsdel" } });
    await call("POST", "/apis/kubevirt.io/v1/namespaces/nsdel/virtualmachines", vm("a", { finalizers: ["hold/it"] }));
    const d = await call("DELETE", "/api/v1/namespaces/nsdel");
    assert.equal((d.body.status as Record<string, unknown>).phase, "Terminating");
    const create = await call("POST", "/api/v1/namespaces/nsdel/configmaps", { metadata: { name: "late" } });
    assert.equal(create.status, 403);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const v = await call("GET", "/apis/kubevirt.io/v1/namespaces/nsdel/virtualmachines/a");
      if (md(v.body).deletionTimestamp) break;
      if (Date.now() > deadline) assert.fail("VM in terminating namespace not marked for deletion");
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await call("GET", "/api/v1/namespaces/nsdel")).status, 200, "held by the VM's finalizer");
    await call(
      "PATCH",
      "/apis/kubevirt.io/v1/namespaces/nsdel/virtualmachines/a",
      { metadata: { finalizers: null } },
      { "content-type": "application/merge-patch+json" },
    );
    await waitGone("/api/v1/namespaces/nsdel");
    // the server's view of the namespace follows every write: gone, then back
    assert.equal((await call("POST", "/api/v1/namespaces/nsdel/configmaps", { metadata: { name: "c" } })).status, 404);
    await call("POST", "/api/v1/namespaces", { metadata: { name: "nsdel" } });
    assert.equal((await call("POST", "/api/v1/namespaces/nsdel/configmaps", { metadata: { name: "c" } })).status, 201);
    assert.equal((await call("DELETE", "/api/v1/namespaces/default")).status, 403);
  });
});

describe("pods and VMIs", () => {
  const pod = (name: string) => ({ metadata: { name }, spec: { containers: [{ name: "compute", image: "x" }] } });

  test("only pods/binding sets spec.nodeName; the rest of the spec is immutable", async () => {
    const c = await call("POST", PODS, pod("pb1"));
    assert.equal(c.status, 201);
    assert.equal((c.body.status as Record<string, unknown>).phase, "Pending");
    const viaPatch = await call(
      "PATCH",
      `${PODS}/pb1`,
      { spec: { nodeName: "n1" } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(viaPatch.status, 422);
    const b = await call("POST", `${PODS}/pb1/binding`, {
      apiVersion: "v1",
      kind: "Binding",
      metadata: { name: "pb1" },
      target: { kind: "Node", name: "n1" },
    });
    assert.equal(b.status, 201);
    assert.equal(((await call("GET", `${PODS}/pb1`)).body.spec as Record<string, unknown>).nodeName, "n1");
    const again = await call("POST", `${PODS}/pb1/binding`, { target: { name: "n2" } });
    assert.equal(again.status, 409);
  });

  test("deleting a bound pod is graceful until the node agent deletes with gracePeriodSeconds=0", async () => {
    await call("POST", PODS, pod("gd1"));
    await call("POST", `${PODS}/gd1/binding`, { target: { name: "n1" } });
    const d = await call("DELETE", `${PODS}/gd1`);
    assert.equal(d.status, 200);
    assert.ok(md(d.body).deletionTimestamp);
    assert.equal(md(d.body).deletionGracePeriodSeconds, 30);
    assert.equal((await call("GET", `${PODS}/gd1`)).status, 200);
    const forced = await call("DELETE", `${PODS}/gd1`, { gracePeriodSeconds: 0 });
    assert.equal(forced.status, 200);
    assert.equal((await call("GET", `${PODS}/gd1`)).status, 404);
    await call("POST", PODS, pod("ub1"));
    await call("DELETE", `${PODS}/ub1`);
    assert.equal((await call("GET", `${PODS}/ub1`)).status, 404, "unbound pods go at once");
  });

  test("VMI: no status subresource, status written with an RV precondition, spec immutable", async () => {
    const path = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances";
    const c = await call("POST", path, { metadata: { name: "vmi1" }, spec: { domain: { devices: {} } } });
    assert.equal(c.status, 201);
    assert.equal((await call("GET", `${path}/vmi1/status`)).status, 404);
    const rv = md(c.body).resourceVersion;
    const ok = await call(
      "PATCH",
      `${path}/vmi1`,
      [
        { op: "test", path: "/metadata/resourceVersion", value: rv },
        { op: "add", path: "/status", value: { phase: "Scheduled" } },
      ],
      { "content-type": "application/json-patch+json" },
    );
    assert.equal(ok.status, 200);
    const stale = await call(
      "PATCH",
      `${path}/vmi1`,
      { metadata: { resourceVersion: rv }, status: { phase: "Running" } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(stale.status, 409);
    const spec = await call(
      "PATCH",
      `${path}/vmi1`,
      { spec: { hostname: "x" } },
      { "content-type": "application/merge-patch+json" },
    );
    assert.equal(spec.status, 422);
  });

  test("pods/log is proxied to the agent endpoint the Node publishes", async (t) => {
    const agent = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`log for ${req.url}\n`);
    });
    await new Promise<void>((r) => agent.listen(0, "127.0.0.1", () => r()));
    t.after(() => new Promise<void>((r) => agent.close(() => r())));
    const port = (agent.address() as AddressInfo).port;
    await call("POST", "/api/v1/nodes", { metadata: { name: "logn" } });
    await call(
      "PATCH",
      "/api/v1/nodes/logn/status",
      {
        status: {
          addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
          daemonEndpoints: { kubeletEndpoint: { Port: port } },
        },
      },
      { "content-type": "application/merge-patch+json" },
    );
    await call("POST", PODS, {
      metadata: { name: "lp" },
      spec: { nodeName: "logn", containers: [{ name: "compute", image: "x" }] },
    });
    const log = await call("GET", `${PODS}/lp/log?container=compute&tailLines=5`);
    assert.equal(log.status, 200);
    assert.equal(log.text, "log for /containerLogs/default/lp/compute?tailLines=5\n");
  });
});

describe("CRDs, events, metrics, limits", () => {
  test("a CRD created through the API is served by the same code", async () => {
    const crd = {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "widgets.example.com" },
      spec: {
        group: "example.com",
        scope: "Namespaced",
        names: { plural: "widgets", singular: "widget", kind: "Widget", shortNames: ["wd"] },
        versions: [
          {
            name: "v1",
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: "object",
                properties: { spec: { type: "object", properties: { size: { type: "integer" } } } },
              },
            },
            selectableFields: [{ jsonPath: ".spec.size" }],
            additionalPrinterColumns: [{ name: "Size", type: "integer", jsonPath: ".spec.size" }],
          },
        ],
      },
    };
    assert.equal((await call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)).status, 201);
    const w = await call("POST", "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict", {
      apiVersion: "example.com/v1",
      kind: "Widget",
      metadata: { name: "w1" },
      spec: { size: 3 },
    });
    assert.equal(w.status, 201, JSON.stringify(w.body));
    const sel = await call("GET", "/apis/example.com/v1/namespaces/default/widgets?fieldSelector=spec.size%3D3");
    assert.equal((sel.body.items as unknown[]).length, 1);
    const badType = await call("POST", "/apis/example.com/v1/namespaces/default/widgets", {
      metadata: { name: "w2" },
      spec: { size: "big" },
    });
    assert.equal(badType.status, 422);
    assert.equal(
      (await call("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")).status,
      200,
    );
    assert.equal((await call("GET", "/apis/example.com/v1/namespaces/default/widgets")).status, 404);
  });

  test("events expire after the TTL", async () => {
    await call("POST", "/api/v1/namespaces/default/events", {
      metadata: { name: "ev1" },
      involvedObject: { kind: "Pod", name: "x", namespace: "default" },
      reason: "Test",
      message: "m",
      lastTimestamp: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, "Z"),
    });
    const deadline = Date.now() + 10_000;
    while ((await call("GET", "/api/v1/namespaces/default/events/ev1")).status !== 404) {
      if (Date.now() > deadline) assert.fail("event did not expire");
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  test("metrics count requests by verb, resource, code and client", async () => {
    await call("GET", `${VMS}/nope`, undefined, { "user-agent": "metrics-test/1.0" });
    const m = await call("GET", "/metrics");
    assert.match(
      m.text,
      /apiserver_request_total\{verb="GET",group="kubevirt.io",resource="virtualmachines",subresource="",code="404",client="metrics-test"\} 1/,
    );
    assert.match(m.text, /apiserver_request_duration_seconds_bucket\{/);
  });

  test("oversized and malformed bodies are 413/400 Status objects", async () => {
    const big = await call(
      "POST",
      "/api/v1/namespaces/default/configmaps",
      JSON.stringify({ metadata: { name: "big" }, data: { a: "x".repeat(4 * 1024 * 1024) } }),
    );
    assert.equal(big.status, 413);
    assert.equal(big.body.kind, "Status");
    const bad = await call("POST", "/api/v1/namespaces/default/configmaps", "{not json");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.kind, "Status");
  });

  test("a token-protected server answers anonymous requests 401", async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "tok-"));
    writeFileSync(join(dir, "token"), "s3cret\n");
    const s = await startApiServer({ memory: true, logger: nullLogger, tokenFile: join(dir, "token") });
    try {
      assert.equal((await fetch(`${s.url}/api/v1/namespaces`)).status, 401);
      assert.equal(
        (await fetch(`${s.url}/api/v1/namespaces`, { headers: { authorization: "Bearer s3cret" } })).status,
        200,
      );
      await assert.rejects(startApiServer({ memory: true, logger: nullLogger, listen: "0.0.0.0:0" }), /requires/);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
