import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isNotFound } from "../lib/errors.js";
import { Informer } from "./informer.js";
import { loadConfig, parseKubeconfig } from "./kubeconfig.js";
import { resources } from "./resources.js";
import { RestClient } from "./rest.js";
import type { VirtualMachine, WatchEvent } from "./types.js";

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  type: string | undefined;
  body: string;
}

/** A scripted HTTP server speaking just enough of the wire protocol for the client's requests. */
async function server(handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void) {
  const seen: Seen[] = [];
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      seen.push({
        method: req.method!,
        url: req.url!,
        auth: req.headers.authorization,
        type: req.headers["content-type"],
        body,
      });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  return {
    seen,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

const vm = (name: string, rv: string): VirtualMachine => ({
  apiVersion: "kubevirt.io/v1",
  kind: "VirtualMachine",
  metadata: { name, namespace: "default", resourceVersion: rv },
  spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
});

describe("RestClient", () => {
  it("sends KubeVirt paths, bearer token, patch content types and turns a Status into a StatusError", async (t) => {
    const s = await server((req, res) => {
      res.setHeader("Content-Type", "application/json");
      if (req.method === "GET" && req.url?.endsWith("/virtualmachines/missing")) {
        res.statusCode = 404;
        res.end(
          JSON.stringify({
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            reason: "NotFound",
            code: 404,
            message: 'virtualmachines.kubevirt.io "missing" not found',
          }),
        );
        return;
      }
      if (req.url?.includes("/start")) {
        res.statusCode = 202;
        res.end();
        return;
      }
      res.end(JSON.stringify(vm("vm1", "5")));
    });
    t.after(() => s.close());
    const c = new RestClient({ server: s.url, namespace: "default", token: "secret" });
    t.after(() => c.close());
    await assert.rejects(c.get(resources.vms, "default", "missing"), (e) => {
      assert.ok(isNotFound(e));
      assert.equal((e as Error).message, 'virtualmachines.kubevirt.io "missing" not found');
      return true;
    });
    await c.patch(resources.vms, "default", "vm1", "json", [
      { op: "replace", path: "/spec/runStrategy", value: "Always" },
    ]);
    await c.patch(resources.vms, "default", "vm1", "merge", { status: { ready: true } }, { subresource: "status" });
    await c.putSubresource(resources.vms, "default", "vm1", "start", {});
    await c.delete(resources.pods, "default", "p1", { gracePeriodSeconds: 0 });
    await c.createSubresource(resources.pods, "default", "p1", "binding", { target: { kind: "Node", name: "n1" } });
    assert.deepEqual(
      s.seen.map((x) => `${x.method} ${x.url} ${x.type ?? "-"}`),
      [
        "GET /apis/kubevirt.io/v1/namespaces/default/virtualmachines/missing -",
        "PATCH /apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1 application/json-patch+json",
        "PATCH /apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1/status application/merge-patch+json",
        "PUT /apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/vm1/start application/json",
        "DELETE /api/v1/namespaces/default/pods/p1 application/json",
        "POST /api/v1/namespaces/default/pods/p1/binding application/json",
      ],
    );
    assert.ok(s.seen.every((x) => x.auth === "Bearer secret"));
    assert.equal(JSON.parse(s.seen[4]!.body).gracePeriodSeconds, 0);
  });

  it("a non-Status error body still becomes a StatusError with the code", async (t) => {
    const s = await server((_req, res) => {
      res.statusCode = 503;
      res.end("overloaded");
    });
    t.after(() => s.close());
    const c = new RestClient({ server: s.url, namespace: "default" });
    t.after(() => c.close());
    await assert.rejects(c.list(resources.pods, "default"), (e: { code?: number; message?: string }) => {
      assert.equal(e.code, 503);
      assert.match(e.message ?? "", /overloaded/);
      return true;
    });
  });

  it("an informer over HTTP: list, watch with bookmarks, relist after a 410 ERROR event", async (t) => {
    let watches = 0;
    const s = await server((req, res) => {
      const u = new URL(req.url!, "http://x");
      res.setHeader("Content-Type", "application/json");
      if (u.searchParams.get("watch") !== "1") {
        const items = watches === 0 ? [vm("a", "1"), vm("b", "2")] : [vm("b", "2")];
        res.end(
          JSON.stringify({
            kind: "VirtualMachineList",
            metadata: { resourceVersion: watches === 0 ? "2" : "9" },
            items,
          }),
        );
        return;
      }
      watches++;
      const send = (ev: WatchEvent<unknown>) => res.write(`${JSON.stringify(ev)}\n`);
      if (watches === 1) {
        assert.equal(u.searchParams.get("allowWatchBookmarks"), "true");
        assert.equal(u.searchParams.get("resourceVersion"), "2");
        send({
          type: "ADDED",
          object: { ...vm("c", "3"), metadata: { ...vm("c", "3").metadata, managedFields: [{}] } },
        });
        send({ type: "BOOKMARK", object: { metadata: { resourceVersion: "4" } } });
        send({ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message: "too old" } });
        res.end();
        return;
      }
      // Keep later watches open until the test ends.
    });
    t.after(() => s.close());
    const c = new RestClient({ server: s.url, namespace: "default" });
    t.after(() => c.close());
    const inf = new Informer<VirtualMachine>(c, resources.vms, { minBackoffMs: 5 });
    const deletes: string[] = [];
    inf.addEventHandler({ onDelete: (o) => deletes.push(o.metadata.name!) });
    inf.start();
    t.after(() => inf.stop());
    const end = Date.now() + 10_000;
    while (watches < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(watches, 2);
    assert.deepEqual(deletes.sort(), ["a", "c"], "both vanished objects are delivered as deletes after the relist");
    assert.deepEqual(inf.keys(), ["default/b"]);
    assert.equal(inf.resourceVersion, "9");
  });
});

describe("kubeconfig", () => {
  it("reads server, token, namespace and insecure flag of the current context; KUBECONFIG and overrides", (t) => {
    const dir = mkdtempSync(join(tmpdir(), "kc-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const text = [
      "apiVersion: v1",
      "kind: Config",
      "current-context: tsvirt",
      "clusters:",
      "- name: c1",
      "  cluster: { server: 'http://127.0.0.1:6443/', insecure-skip-tls-verify: true }",
      "contexts:",
      "- name: tsvirt",
      "  context: { cluster: c1, user: u1, namespace: vms }",
      "users:",
      "- name: u1",
      "  user: { token: abc }",
    ].join("\n");
    const cfg = parseKubeconfig(text, dir);
    assert.deepEqual(cfg, {
      server: "http://127.0.0.1:6443",
      namespace: "vms",
      insecureSkipTLSVerify: true,
      token: "abc",
    });
    writeFileSync(join(dir, "config"), text);
    const viaEnv = loadConfig({ env: { KUBECONFIG: `${join(dir, "nope")}:${join(dir, "config")}` } });
    assert.equal(viaEnv.namespace, "vms");
    assert.equal(loadConfig({ kubeconfig: join(dir, "config"), namespace: "other" }).namespace, "other");
    assert.throws(() => loadConfig({ env: { HOME: dir, KUBECONFIG: join(dir, "nope") } }), /no kubeconfig/);
    // JSON (what the API server writes) reads the same, and YAML's flow style still goes to the YAML parser
    const json = JSON.stringify({
      "current-context": "tsvirt",
      clusters: [{ name: "c1", cluster: { server: "http://127.0.0.1:6443/", "insecure-skip-tls-verify": true } }],
      contexts: [{ name: "tsvirt", context: { cluster: "c1", user: "u1", namespace: "vms" } }],
      users: [{ name: "u1", user: { token: "abc" } }],
    });
    assert.deepEqual(parseKubeconfig(json, dir), cfg);
    assert.deepEqual(parseKubeconfig(json.replace(/"/g, "'"), dir), cfg);
  });
});
