// Stock kubectl against a minimal in-memory ConfigMap server built from this folder's libraries: client-side apply,
// its migration to server-side apply, apply conflicts and force, strategic/merge/JSON patches. What kubectl prints
// is what a user would check.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { conflict, isStatusError, notFound, type StatusError, statusError } from "../../lib/errors.js";
import { requirePrereqs } from "../../tests/lib/prereqs.js";
import {
  applyJsonPatch,
  applyMergePatch,
  applyServerSide,
  applyStrategicMergePatch,
  type JsonObject,
  resourceVersionPrecondition,
  updateManagedFields,
} from "./index.js";

type Obj = JsonObject & { metadata: JsonObject };

interface Kind {
  group: string;
  version: string;
  kind: string;
  resource: string;
  shortName: string;
  /** Built-in kinds take strategic merge patches; custom resources do not (kubectl then sends merge patches). */
  builtin: boolean;
}

const kinds: Kind[] = [
  { group: "", version: "v1", kind: "ConfigMap", resource: "configmaps", shortName: "cm", builtin: true },
  {
    group: "kubevirt.io",
    version: "v1",
    kind: "VirtualMachine",
    resource: "virtualmachines",
    shortName: "vm",
    builtin: false,
  },
];

const gvPath = (k: Kind) => (k.group ? `apis/${k.group}/${k.version}` : `api/${k.version}`);
const gvString = (k: Kind) => (k.group ? `${k.group}/${k.version}` : k.version);

function openapiFor(k: Kind) {
  const patchTypes = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];
  if (k.builtin) patchTypes.push("application/strategic-merge-patch+json");
  const gvk = { group: k.group, version: k.version, kind: k.kind };
  const schemaName = `${k.group || "core"}.${k.version}.${k.kind}`;
  const ref = { $ref: `#/components/schemas/${schemaName}` };
  const params = ["dryRun", "fieldManager", "fieldValidation", "force"].map((name) => ({
    name,
    in: "query",
    schema: { type: "string" },
  }));
  const ok = { "200": { content: { "application/json": { schema: ref } } } };
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: "v1.32.4" },
    paths: {
      [`/${gvPath(k)}/namespaces/{namespace}/${k.resource}/{name}`]: {
        get: { "x-kubernetes-group-version-kind": gvk, responses: ok },
        patch: {
          "x-kubernetes-group-version-kind": gvk,
          "x-kubernetes-action": "patch",
          parameters: params,
          requestBody: {
            content: Object.fromEntries(patchTypes.map((t) => [t, { schema: { type: "object" } }])),
            required: true,
          },
          responses: ok,
        },
      },
      [`/${gvPath(k)}/namespaces/{namespace}/${k.resource}`]: {
        post: {
          "x-kubernetes-group-version-kind": gvk,
          parameters: params,
          requestBody: { content: { "*/*": { schema: ref } } },
          responses: ok,
        },
      },
    },
    components: {
      schemas: {
        [schemaName]: {
          type: "object",
          "x-kubernetes-group-version-kind": [gvk],
          "x-kubernetes-preserve-unknown-fields": true,
          properties: { apiVersion: { type: "string" }, kind: { type: "string" }, metadata: { type: "object" } },
        },
      },
    },
  };
}

class Store {
  objects = new Map<string, Obj>();
  rv = 10;
  constructor(readonly kind: Kind) {}

  get gr() {
    return { group: this.kind.group, resource: this.kind.resource };
  }

  create(body: Obj, manager: string): Obj {
    const name = String(body.metadata.name);
    if (this.objects.has(name))
      throw statusError(409, "AlreadyExists", `${this.kind.resource} "${name}" already exists`);
    const obj = {
      ...body,
      metadata: {
        ...body.metadata,
        namespace: "default",
        uid: `uid-${name}`,
        resourceVersion: String(++this.rv),
        creationTimestamp: "2026-11-25T10:00:00Z",
      },
    } as Obj;
    const r = updateManagedFields({ before: undefined, after: obj, manager });
    this.objects.set(name, r.object as Obj);
    return r.object as Obj;
  }

  patch(name: string, contentType: string, body: string, q: URLSearchParams): { obj: Obj; created: boolean } {
    const cur = this.objects.get(name);
    const manager = q.get("fieldManager") ?? "unknown";
    if (contentType === "application/apply-patch+yaml") {
      const applied = parseYaml(body) as Obj;
      const r = applyServerSide({ live: cur, applied, manager, force: q.get("force") === "true" });
      let obj = r.object as Obj;
      if (!cur) return { obj: this.create(obj, manager), created: true };
      if (r.changed) obj = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
      this.objects.set(name, obj);
      return { obj, created: false };
    }
    if (contentType === "application/strategic-merge-patch+json" && !this.kind.builtin) {
      throw statusError(
        415,
        "UnsupportedMediaType",
        `${contentType} is not supported by ${gvString(this.kind)}, Kind=${this.kind.kind}`,
      );
    }
    if (!cur) throw notFound(this.gr, name);
    const patch = JSON.parse(body);
    const patched = (
      contentType === "application/json-patch+json"
        ? applyJsonPatch(cur, patch)
        : contentType === "application/merge-patch+json"
          ? applyMergePatch(cur, patch)
          : applyStrategicMergePatch(cur, patch)
    ) as Obj;
    if (resourceVersionPrecondition(cur, patched)) {
      throw conflict(
        this.gr,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
      );
    }
    const r = updateManagedFields({ before: cur, after: patched, manager });
    let obj = r.object as Obj;
    if (r.changed) obj = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
    this.objects.set(name, obj);
    return { obj, created: false };
  }
}

function send(w: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  w.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  w.end(text);
}

async function startServer(stores: Store[]) {
  const docs: Record<string, unknown> = {
    "/version": { major: "1", minor: "32", gitVersion: "v1.32.4", platform: "linux/amd64" },
    "/api": {
      kind: "APIVersions",
      versions: ["v1"],
      serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "127.0.0.1:0" }],
    },
    "/apis": {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: kinds
        .filter((k) => k.group)
        .map((k) => ({
          name: k.group,
          versions: [{ groupVersion: gvString(k), version: k.version }],
          preferredVersion: { groupVersion: gvString(k), version: k.version },
        })),
    },
    "/openapi/v3": {
      paths: Object.fromEntries(
        kinds.map((k) => [gvPath(k), { serverRelativeURL: `/openapi/v3/${gvPath(k)}?hash=0123` }]),
      ),
    },
  };
  for (const k of kinds) {
    docs[`/${gvPath(k)}`] = {
      kind: "APIResourceList",
      groupVersion: gvString(k),
      resources: [
        {
          name: k.resource,
          singularName: k.kind.toLowerCase(),
          namespaced: true,
          kind: k.kind,
          verbs: ["create", "get", "list", "patch", "update", "delete"],
          shortNames: [k.shortName],
        },
      ],
    };
    docs[`/openapi/v3/${gvPath(k)}`] = openapiFor(k);
  }
  const handle = (req: IncomingMessage, body: string, w: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (process.env.KFLOWS_DEBUG)
      console.error(req.method, req.url, req.headers["content-type"] ?? "", body.slice(0, 2000));
    const path = url.pathname;
    try {
      if (req.method === "GET" && Object.hasOwn(docs, path)) return send(w, 200, docs[path]);
      const store = stores.find((st) => path.startsWith(`/${gvPath(st.kind)}/namespaces/default/${st.kind.resource}`));
      const m =
        store &&
        new RegExp(`^/${gvPath(store.kind)}/namespaces/default/${store.kind.resource}(?:/([^/]+))?$`).exec(path);
      if (!store || !m) return send(w, 404, notFound({ group: "", resource: path }, path).status);
      const name = m[1];
      const manager = url.searchParams.get("fieldManager") ?? "unknown";
      if (req.method === "POST" && !name) return send(w, 201, store.create(JSON.parse(body), manager));
      if (req.method === "GET" && name) {
        const o = store.objects.get(name);
        return o ? send(w, 200, o) : send(w, 404, notFound(store.gr, name).status);
      }
      if (req.method === "PATCH" && name) {
        const ct = (req.headers["content-type"] ?? "").split(";")[0]!;
        const { obj, created } = store.patch(name, ct, body, url.searchParams);
        return send(w, created ? 201 : 200, obj);
      }
      send(w, 405, statusError(405, "MethodNotAllowed", "not allowed").status);
    } catch (e) {
      if (isStatusError(e)) return send(w, (e as StatusError).code, (e as StatusError).status);
      send(w, 500, statusError(500, "InternalError", String(e)).status);
    }
  };
  const server = createServer((req, w) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => handle(req, body, w));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function kubectl(env: NodeJS.ProcessEnv, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("kubectl", args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const cm = (data: Record<string, string>) =>
  JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "demo" }, data });

describe("kubectl against the patch and field-management libraries", () => {
  it("apply, apply --server-side (migration), conflicts, force, and every patch type", {
    timeout: 600_000,
  }, async (t) => {
    requirePrereqs("kubectl");
    const store = new Store(kinds[0]!);
    const vms = new Store(kinds[1]!);
    const server = await startServer([store, vms]);
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-kflows-"));
    t.after(async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    });
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${server.url}"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]\ncurrent-context: x\n`,
    );
    const env = { ...process.env, KUBECONFIG: kubeconfig, KUBECACHEDIR: join(dir, "cache"), HOME: dir };
    const file = join(dir, "cm.json");
    const run = async (args: string[], want = 0) => {
      const r = await kubectl(env, args);
      assert.equal(r.code, want, `kubectl ${args.join(" ")}\n${r.stdout}\n${r.stderr}`);
      return r;
    };
    const live = () => store.objects.get("demo")!;
    const managers = () =>
      ((live().metadata.managedFields ?? []) as { manager: string; operation: string }[]).map(
        (m) => `${m.manager}/${m.operation}`,
      );

    await writeFile(file, cm({ a: "1" }));
    assert.match((await run(["apply", "-f", file])).stdout, /configmap\/demo created/);
    assert.deepEqual(managers(), ["kubectl-client-side-apply/Update"]);

    await writeFile(file, cm({ a: "2", b: "3" }));
    assert.match((await run(["apply", "-f", file])).stdout, /configmap\/demo configured/);
    assert.deepEqual(live().data, { a: "2", b: "3" });
    assert.match((await run(["apply", "-f", file])).stdout, /configmap\/demo unchanged/);

    await writeFile(file, cm({ a: "5", b: "3" }));
    assert.match((await run(["apply", "--server-side", "-f", file])).stdout, /configmap\/demo serverside-applied/);
    assert.deepEqual(live().data, { a: "5", b: "3" });
    assert.ok(managers().includes("kubectl/Apply"), managers().join());
    assert.ok(!managers().includes("kubectl-client-side-apply/Update"), managers().join());

    await writeFile(file, cm({ a: "6" }));
    const c = await run(["apply", "--server-side", "--field-manager=other", "-f", file], 1);
    assert.match(c.stderr, /Apply failed with 1 conflict: conflict with "kubectl": \.data\.a/);
    await run(["apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", file]);
    assert.equal((live().data as JsonObject).a, "6");
    assert.equal((live().data as JsonObject).b, "3", "b stays: kubectl still owns it");

    // A field only client-side apply owns: the conflict names it with its API version, as kube-apiserver does.
    const other = join(dir, "other.json");
    await writeFile(
      other,
      JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "csa" }, data: { x: "1" } }),
    );
    await run(["apply", "-f", other]);
    await writeFile(
      other,
      JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "csa" }, data: { x: "2" } }),
    );
    const c2 = await run(["apply", "--server-side", "--field-manager=other", "-f", other], 1);
    assert.match(
      c2.stderr,
      /Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: \.data\.x/,
    );

    await run(["patch", "cm", "demo", "-p", '{"data":{"c":"7"}}']);
    assert.equal((live().data as JsonObject).c, "7");
    const noop = await run(["patch", "cm", "demo", "--type", "merge", "-p", '{"data":{"c":"7"}}']);
    assert.match(noop.stdout, /patched \(no change\)/);
    const failed = await run(
      ["patch", "cm", "demo", "--type", "json", "-p", '[{"op":"test","path":"/data/c","value":"8"}]'],
      1,
    );
    assert.match(failed.stderr, /testing value \/data\/c failed/);
    await run(["label", "cm", "demo", "team=virt"]);
    assert.deepEqual((live().metadata.labels as JsonObject).team, "virt");
    assert.ok(managers().includes("kubectl-label/Update"), managers().join());

    // A custom resource: client-side apply sends merge patches, and conflicts name kubevirt.io/v1.
    const vmFile = join(dir, "vm.json");
    const vm = (runStrategy: string, labels: Record<string, string>) =>
      JSON.stringify({
        apiVersion: "kubevirt.io/v1",
        kind: "VirtualMachine",
        metadata: { name: "testvm", labels },
        spec: {
          runStrategy,
          template: { spec: { domain: { devices: { disks: [{ name: "root", disk: { bus: "virtio" } }] } } } },
        },
      });
    const liveVm = () => vms.objects.get("testvm")!;
    await writeFile(vmFile, vm("Halted", { app: "demo" }));
    assert.match((await run(["apply", "-f", vmFile])).stdout, /virtualmachine.kubevirt.io\/testvm created/);
    await writeFile(vmFile, vm("Always", { app: "demo2" }));
    assert.match((await run(["apply", "-f", vmFile])).stdout, /virtualmachine.kubevirt.io\/testvm configured/);
    assert.equal((liveVm().spec as JsonObject).runStrategy, "Always");
    await writeFile(vmFile, vm("Manual", { app: "demo2" }));
    const vc = await run(["apply", "--server-side", "--field-manager=other", "-f", vmFile], 1);
    assert.match(
      vc.stderr,
      /Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using kubevirt.io\/v1: \.spec\.runStrategy/,
    );
    assert.match(
      (await run(["apply", "--server-side", "-f", vmFile])).stdout,
      /virtualmachine.kubevirt.io\/testvm serverside-applied/,
    );
    assert.equal((liveVm().spec as JsonObject).runStrategy, "Manual");
    const p415 = await run(["patch", "vm", "testvm", "-p", '{"spec":{"runStrategy":"Halted"}}'], 1);
    assert.match(p415.stderr, /strategic-merge-patch\+json is not supported/);
    await run(["patch", "vm", "testvm", "--type", "merge", "-p", '{"spec":{"runStrategy":"Halted"}}']);
    assert.equal((liveVm().spec as JsonObject).runStrategy, "Halted");
  });
});
