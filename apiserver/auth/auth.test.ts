// Identities end to end over HTTP: tokens → users, the static table (requests and SelfSubjectAccessReview agree),
// KubeVirt's caller-dependent admission rules, and the token files a data dir gets.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import type { Component } from "../../api/index.js";
import { createLogger, nullLogger } from "../../lib/log.js";
import { type ApiServer, startApiServer } from "../index.js";
import { ADMIN, Authenticator, authorize, memoryIdentities, serviceAccountInfo } from "./index.js";

let api: ApiServer;
const VMIM = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancemigrations";
const VMI = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances";
const SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

function token(c: Component): string {
  const id = api.identities.find((i) => i.component === c);
  assert.ok(id, c);
  return id.token;
}

async function call(
  method: string,
  path: string,
  o: { as?: Component | string; body?: unknown; ct?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { "content-type": o.ct ?? "application/json" };
  if (o.as) headers.authorization = `Bearer ${o.as.startsWith("raw:") ? o.as.slice(4) : token(o.as as Component)}`;
  const r = await fetch(api.url + path, {
    method,
    headers,
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function canI(as: Component | undefined, attrs: Record<string, string>): Promise<boolean> {
  const r = await call("POST", SSAR, {
    ...(as ? { as } : {}),
    body: {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SelfSubjectAccessReview",
      spec: { resourceAttributes: attrs },
    },
  });
  assert.equal(r.status, 201);
  return (r.body.status as { allowed: boolean }).allowed;
}

describe("identities", () => {
  before(async () => {
    api = await startApiServer({ memory: true, logger: nullLogger });
  });
  after(() => api.close());

  test("a token that is not ours is 401; each component's token is its service account", async () => {
    assert.equal((await call("GET", "/api/v1/namespaces", { as: "raw:nope" })).status, 401);
    assert.equal((await call("GET", "/api/v1/namespaces", { as: "handler" })).status, 200);
    const ids = api.identities.map((i) => i.user.username).sort();
    assert.deepEqual(ids, [
      "system:serviceaccount:kubevirt:kubevirt-apiserver",
      "system:serviceaccount:kubevirt:kubevirt-controller",
      "system:serviceaccount:kubevirt:kubevirt-handler",
    ]);
  });

  test("SelfSubjectAccessReview tells each identity what its requests get", async () => {
    const createVm = { verb: "create", group: "kubevirt.io", resource: "virtualmachines", namespace: "default" };
    const bind = { verb: "create", group: "", resource: "pods", subresource: "binding", namespace: "default" };
    const podStatus = { verb: "update", group: "", resource: "pods", subresource: "status", namespace: "default" };
    assert.equal(await canI(undefined, createVm), true, "admin");
    assert.equal(await canI("controller", createVm), true);
    assert.equal(await canI("controller", bind), true);
    assert.equal(await canI("handler", createVm), false);
    assert.equal(await canI("handler", podStatus), true);
    assert.equal(await canI("handler", bind), false);
    assert.equal(await canI("apiserver", { verb: "delete", group: "", resource: "pods", namespace: "default" }), false);
    // the request itself gets the same answer
    const vm = {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachine",
      metadata: { name: "x" },
      spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
    };
    const denied = await call("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachines", {
      as: "handler",
      body: vm,
    });
    assert.equal(denied.status, 403);
    assert.match(String(denied.body.message), /kubevirt-handler" cannot create resource "virtualmachines"/);
    assert.equal(
      (await call("POST", "/apis/kubevirt.io/v1/namespaces/default/virtualmachines", { as: "controller", body: vm }))
        .status,
      201,
    );
  });

  test("authorize(): admin everything, unknown users nothing", () => {
    const a = { verb: "delete", group: "", resource: "namespaces", name: "x" };
    assert.equal(authorize(ADMIN, a).allowed, true);
    assert.equal(authorize(serviceAccountInfo("default", "default"), a).allowed, false);
    assert.equal(authorize(serviceAccountInfo("kubevirt-handler"), a).allowed, false);
  });

  test("authorize(): what the storage controllers and the node's volume work need", () => {
    const controller = serviceAccountInfo("kubevirt-controller");
    const handler = serviceAccountInfo("kubevirt-handler");
    const can = (u: typeof controller, verb: string, group: string, resource: string) =>
      authorize(u, { verb, group, resource }).allowed;
    for (const r of ["storageclasses", "csistoragecapacities"]) {
      assert.ok(can(controller, "list", "storage.k8s.io", r), r);
      assert.ok(can(controller, "create", "storage.k8s.io", r), r);
    }
    for (const r of ["persistentvolumes", "persistentvolumes/status", "persistentvolumeclaims/status"])
      assert.ok(can(controller, "update", "", r), r);
    assert.ok(can(handler, "patch", "", "persistentvolumes"));
    assert.ok(!can(handler, "delete", "", "persistentvolumes"));
    assert.ok(!can(handler, "create", "storage.k8s.io", "storageclasses"));
  });

  test("authorize(): the DataVolume controller and the node's worker pods (storage/datavolume, handler/workers)", () => {
    const controller = serviceAccountInfo("kubevirt-controller");
    const handler = serviceAccountInfo("kubevirt-handler");
    const can = (u: typeof controller, verb: string, group: string, resource: string) =>
      authorize(u, { verb, group, resource }).allowed;
    // the controller: DVs and their status, the CDIConfig singleton, the claims, the worker pods
    for (const r of ["datavolumes", "datavolumes/status", "cdiconfigs", "cdiconfigs/status"]) {
      for (const v of ["create", "update", "patch", "list", "watch"])
        assert.ok(can(controller, v, "cdi.kubevirt.io", r), `${v} ${r}`);
    }
    for (const v of ["create", "update", "patch", "delete"]) {
      assert.ok(can(controller, v, "", "persistentvolumeclaims"), v);
      assert.ok(can(controller, v, "", "pods"), v);
    }
    // the node: reads the DV, its claim and volume, the sources' Secrets/ConfigMaps; relays progress onto its pods
    for (const [g, r] of [
      ["cdi.kubevirt.io", "datavolumes"],
      ["", "persistentvolumeclaims"],
      ["", "persistentvolumes"],
      ["", "secrets"],
      ["", "configmaps"],
    ] as const) {
      assert.ok(can(handler, "get", g, r), r);
    }
    assert.ok(can(handler, "patch", "", "pods"));
    assert.ok(!can(handler, "update", "cdi.kubevirt.io", "datavolumes/status"), "only the controller writes DV status");
    assert.ok(!can(handler, "delete", "cdi.kubevirt.io", "datavolumes"));
    assert.ok(!can(handler, "update", "", "secrets"));
  });

  test("only the controller sets a migration's priority: the handler's request is refused by admission", async () => {
    // one VMI per accepted migration: admission refuses a second one in flight for a VMI
    for (const name of ["m1", "m2"]) {
      const vmi = await call("POST", VMI, { body: { metadata: { name }, spec: { domain: { devices: {} } } } });
      assert.equal(vmi.status, 201);
    }
    const mig = (name: string, priority?: string) => ({
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstanceMigration",
      metadata: { name },
      spec: { vmiName: name === "p-none" ? "m2" : "m1", ...(priority ? { priority } : {}) },
    });
    const byAdmin = await call("POST", VMIM, { body: mig("p-admin", "system-critical") });
    assert.equal(byAdmin.status, 422);
    assert.equal((byAdmin.body.details as { causes: { field: string }[] }).causes[0]?.field, "spec.priority");
    assert.equal((await call("POST", VMIM, { as: "controller", body: mig("p-ctl", "system-critical") })).status, 201);
    assert.equal((await call("POST", VMIM, { body: mig("p-none") })).status, 201);
    // the handler may update migrations, but not their priority
    const patch = (as: Component) =>
      call("PATCH", `${VMIM}/p-none`, {
        as,
        body: { spec: { priority: "user-triggered" } },
        ct: "application/merge-patch+json",
      });
    const byHandler = await patch("handler");
    assert.equal(byHandler.status, 422);
    assert.match(String(byHandler.body.message), /migration-update-validator\.kubevirt\.io.*spec\.priority/);
    assert.equal((await patch("controller")).status, 200);
  });

  test("a VMI's spec changes only through KubeVirt's service accounts", async () => {
    await call("POST", VMI, { body: { metadata: { name: "s1" }, spec: { domain: { devices: {} } } } });
    const change = (as?: Component) =>
      call("PATCH", `${VMI}/s1`, {
        ...(as ? { as } : {}),
        body: { spec: { hostname: `h-${as ?? "admin"}` } },
        ct: "application/merge-patch+json",
      });
    const byAdmin = await change();
    assert.equal(byAdmin.status, 422);
    assert.match(String(byAdmin.body.message), /update of VMI object is restricted/);
    assert.equal((await change("handler")).status, 200);
    assert.equal((await change("controller")).status, 200);
  });
});

test("a data dir gets one token and one kubeconfig per component, mode 0600, kept across restarts", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ids-"));
  try {
    const s1 = await startApiServer({ dataDir: dir, logger: nullLogger });
    const first = s1.identities.map((i) => i.token);
    await s1.close();
    for (const sa of ["kubevirt-controller", "kubevirt-handler", "kubevirt-apiserver"]) {
      for (const f of [`${sa}.token`, `${sa}.kubeconfig`]) {
        const st = statSync(join(dir, "identities", f));
        assert.equal(st.mode & 0o777, 0o600, f);
      }
    }
    assert.equal(statSync(join(dir, "identities")).mode & 0o777, 0o700);
    const s2 = await startApiServer({ dataDir: dir, logger: nullLogger });
    try {
      assert.deepEqual(
        s2.identities.map((i) => i.token),
        first,
      );
      const kc = parse(readFileSync(join(dir, "identities", "kubevirt-handler.kubeconfig"), "utf8"));
      assert.equal(
        kc.users[0].user.token,
        readFileSync(join(dir, "identities", "kubevirt-handler.token"), "utf8").trim(),
      );
      assert.equal(kc.clusters[0].cluster.server, s2.url);
      const user = parse(readFileSync(join(dir, "kubeconfig"), "utf8"));
      assert.equal(user.users[0].user.token, undefined, "the user's kubeconfig stays the administrator's");
    } finally {
      await s2.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("Authenticator: malformed or unknown credentials never fall back to a user", () => {
  const ids = memoryIdentities();
  const open = new Authenticator({ identities: ids, anonymous: "admin" });
  assert.equal(open.authenticate(undefined), ADMIN, "no token, no --token-file: the administrator");
  assert.equal(open.authenticate("Basic Zm9vOmJhcg=="), undefined);
  assert.equal(open.authenticate("Bearer"), undefined);
  assert.equal(open.authenticate("Bearer a b"), undefined);
  assert.equal(open.authenticate(`Bearer ${ids[0]?.token}x`), undefined);
  assert.deepEqual(open.authenticate(`bearer ${ids[1]?.token}`), ids[1]?.user);
  const closed = new Authenticator({ adminToken: "s3cret", identities: ids, anonymous: "unauthorized" });
  assert.equal(closed.authenticate(undefined), undefined, "with --token-file every request needs a token");
  assert.equal(closed.authenticate("Bearer s3cret"), ADMIN);
  assert.throws(
    () => new Authenticator({ adminToken: "s3cret", identities: ids, anonymous: "admin" }),
    /requests without a token cannot be the administrator/,
  );
});

test("anonymous access is explicit: single-user mode says so at start; with --token-file no token is a 401 Status", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tsv-anon-"));
  const lines: string[] = [];
  const logger = createLogger({ component: "virt-api" }, { write: (l) => lines.push(l) });
  try {
    const open = await startApiServer({ memory: true, logger });
    try {
      const warn = lines.map((l) => JSON.parse(l) as { level: string; msg: string }).find((l) => l.level === "warn");
      assert.match(warn?.msg ?? "", /^single-user mode: a request without a token acts as the administrator/);
      assert.equal((await fetch(`${open.url}/api/v1/namespaces`)).status, 200);
    } finally {
      await open.close();
    }
    lines.length = 0;
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "s3cret\n");
    const closed = await startApiServer({ memory: true, logger, tokenFile });
    try {
      assert.ok(!lines.some((l) => l.includes("single-user")), lines.join(""));
      assert.ok(
        lines.some((l) => l.includes('"anonymous":"unauthorized"')),
        lines.join(""),
      );
      const r = await fetch(`${closed.url}/api/v1/namespaces`);
      assert.equal(r.status, 401);
      assert.deepEqual(await r.json(), {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: "Unauthorized",
        reason: "Unauthorized",
        code: 401,
      });
      assert.equal((await fetch(`${closed.url}/healthz`)).status, 200, "health checks need no token");
      const ok = await fetch(`${closed.url}/api/v1/namespaces`, { headers: { authorization: "Bearer s3cret" } });
      assert.equal(ok.status, 200);
    } finally {
      await closed.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
