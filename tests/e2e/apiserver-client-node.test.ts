// @kubernetes/client-node 1.x (the official TypeScript client) against the embedded API server: CRUD, every patch
// type, and an informer that sees adds/updates/deletes, recovers from a forced 410 and reconnects after a restart.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { type ApiServer, startApiServer } from "../../apiserver/index.js";
import { freePort, removeDir, tempDir } from "../../apiserver/testutil.js";
import { nullLogger } from "../../lib/log.js";

const G = { group: "kubevirt.io", version: "v1", namespace: "default", plural: "virtualmachines" };

function vm(name: string, app = "cn"): Record<string, unknown> {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name, labels: { app } },
    spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
  };
}

async function until(what: string, fn: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function clients(kubeconfig: string): { kc: KubeConfig; custom: CustomObjectsApi; core: CoreV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return { kc, custom: kc.makeApiClient(CustomObjectsApi), core: kc.makeApiClient(CoreV1Api) };
}

test("client-node: CRUD and every patch type", async (t) => {
  const dir = tempDir("tsvirt-cn-");
  const api = await startApiServer({ dataDir: dir, logger: nullLogger });
  t.after(async () => {
    await api.close();
    removeDir(dir);
  });
  const { custom, core } = clients(join(dir, "kubeconfig"));
  const created = (await custom.createNamespacedCustomObject({ ...G, body: vm("cn-vm") })) as KubernetesObject;
  assert.equal(created.metadata?.name, "cn-vm");
  await assert.rejects(
    custom.createNamespacedCustomObject({ ...G, body: vm("cn-vm") }),
    (e: { code?: number }) => e.code === 409,
  );
  await assert.rejects(
    custom.getNamespacedCustomObject({ ...G, name: "missing" }),
    (e: { code?: number }) => e.code === 404,
  );
  const list = (await custom.listNamespacedCustomObject({ ...G, labelSelector: "app=cn" })) as {
    items: KubernetesObject[];
  };
  assert.deepEqual(
    list.items.map((i) => i.metadata?.name),
    ["cn-vm"],
  );
  // JSON patch is client-node's default content type
  const jp = (await custom.patchNamespacedCustomObject({
    ...G,
    name: "cn-vm",
    body: [{ op: "add", path: "/metadata/labels/json", value: "yes" }],
  })) as KubernetesObject;
  assert.equal(jp.metadata?.labels?.json, "yes");
  const mp = (await custom.patchNamespacedCustomObject(
    { ...G, name: "cn-vm", body: { metadata: { labels: { merge: "yes" } } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  )) as KubernetesObject;
  assert.equal(mp.metadata?.labels?.merge, "yes");
  await assert.rejects(
    custom.patchNamespacedCustomObject(
      { ...G, name: "cn-vm", body: { metadata: { labels: { smp: "x" } } } },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    ),
    (e: { code?: number }) => e.code === 415,
  );
  const ssa = (await custom.patchNamespacedCustomObject(
    { ...G, name: "cn-ssa", body: vm("cn-ssa", "ssa"), fieldManager: "cn-controller", force: true },
    setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
  )) as KubernetesObject;
  assert.equal(ssa.metadata?.managedFields?.[0]?.manager, "cn-controller");
  const st = (await custom.patchNamespacedCustomObjectStatus(
    { ...G, name: "cn-vm", body: { status: { printableStatus: "Stopped" } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  )) as { status?: { printableStatus?: string } };
  assert.equal(st.status?.printableStatus, "Stopped");
  // strategic merge patch on a built-in kind
  await core.createNamespacedConfigMap({
    namespace: "default",
    body: { metadata: { name: "cn-cm" }, data: { a: "1" } },
  });
  const cm = await core.patchNamespacedConfigMap(
    { namespace: "default", name: "cn-cm", body: { data: { b: "2" } } },
    setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
  );
  assert.deepEqual(cm.data, { a: "1", b: "2" });
  // update with a stale resourceVersion conflicts
  const cur = (await custom.getNamespacedCustomObject({ ...G, name: "cn-vm" })) as KubernetesObject;
  const replaced = (await custom.replaceNamespacedCustomObject({ ...G, name: "cn-vm", body: cur })) as KubernetesObject;
  assert.equal(replaced.metadata?.resourceVersion, cur.metadata?.resourceVersion, "no-op PUT keeps the RV");
  await custom.patchNamespacedCustomObject(
    { ...G, name: "cn-vm", body: { spec: { runStrategy: "Always" } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  await assert.rejects(
    custom.replaceNamespacedCustomObject({ ...G, name: "cn-vm", body: cur }),
    (e: { code?: number }) => e.code === 409,
  );
  await core.createNamespacedEvent({
    namespace: "default",
    body: {
      metadata: { generateName: "cn-" },
      involvedObject: { kind: "VirtualMachine", name: "cn-vm" },
      reason: "Test",
    },
  });
  await custom.deleteNamespacedCustomObject({ ...G, name: "cn-vm" });
  await assert.rejects(
    custom.deleteNamespacedCustomObject({ ...G, name: "cn-vm" }),
    (e: { code?: number }) => e.code === 404,
  );
});

test("client-node informer: add/update/delete, recovers from a forced 410, reconnects after a restart", {
  timeout: 120_000,
}, async (t) => {
  const dir = tempDir("tsvirt-inf-");
  const port = await freePort();
  const opts = {
    dataDir: dir,
    listen: `127.0.0.1:${port}`,
    logger: nullLogger,
    historySeconds: 0,
    resyncMs: 100,
    maxWatchSeconds: 2,
  };
  let api: ApiServer = await startApiServer(opts);
  let stopped = false;
  t.after(async () => {
    stopped = true;
    await informer.stop();
    await api.close();
    removeDir(dir);
  });
  const { kc, custom, core } = clients(join(dir, "kubeconfig"));
  const informer = makeInformer<KubernetesObject>(
    kc,
    "/apis/kubevirt.io/v1/namespaces/default/virtualmachines",
    () => custom.listNamespacedCustomObject(G) as never,
  );
  const seen: string[] = [];
  informer.on("add", (o) => seen.push(`add:${o.metadata?.name}`));
  informer.on("update", (o) => seen.push(`update:${o.metadata?.name}:${o.metadata?.labels?.step ?? ""}`));
  informer.on("delete", (o) => seen.push(`delete:${o.metadata?.name}`));
  // client-node stops an informer on a connection error; its documented remedy is to start it again
  informer.on("error", () => {
    if (!stopped) setTimeout(() => void informer.start().catch(() => {}), 300);
  });
  await informer.start();
  await custom.createNamespacedCustomObject({ ...G, body: vm("inf-1") });
  await until("add", () => seen.includes("add:inf-1"));
  await custom.patchNamespacedCustomObject(
    { ...G, name: "inf-1", body: { metadata: { labels: { step: "2" } } } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  await until("update", () => seen.includes("update:inf-1:2"));
  await custom.deleteNamespacedCustomObject({ ...G, name: "inf-1" });
  await until("delete", () => seen.includes("delete:inf-1"));

  // forced 410: while the VM watch is idle, other writes advance and compact the event log past the informer's RV;
  // the server closes the watch (maxWatchSeconds), the re-watch gets ERROR 410, the informer relists
  const listsBefore = api.metrics.total({ verb: "LIST", resource: "virtualmachines" });
  for (let i = 0; i < 8; i++) {
    await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: `gap-${i}` } } });
  }
  await until(
    "relist after 410",
    () => api.metrics.total({ verb: "LIST", resource: "virtualmachines" }) > listsBefore,
    30_000,
  );
  await custom.createNamespacedCustomObject({ ...G, body: vm("after-410") });
  await until("add after 410", () => seen.includes("add:after-410"));

  // restart: the informer's watch breaks, it reconnects to the new process on the same port
  await api.close();
  api = await startApiServer(opts);
  await custom.createNamespacedCustomObject({ ...G, body: vm("after-restart") });
  await until("add after restart", () => seen.includes("add:after-restart"), 60_000);
});
