// Stock `kubectl drain` against the real embedded API server (in-memory) with the evacuation controller running over
// HTTP, no QEMU: the test plays the kubelet (a deleted pod goes at once) and the migration (the VMI moves, its source
// launcher pod ends). It checks the whole drain protocol as kubectl sees it: cordon, an ordinary pod and a None VMI's
// launcher pod evicted, two LiveMigrate VMIs answered 429 "Eviction triggered evacuation" until they have left,
// one kubevirt-evacuation- migration each, the marks cleared after the move, and drain returning "drained".
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { defaultConfiguration } from "../../api/index.js";
import { startApiServer } from "../../apiserver/index.js";
import {
  Informer,
  type KObject,
  type Node,
  ownerUidIndex,
  type Pod,
  RestClient,
  resources,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { nullLogger } from "../../lib/log.js";
import { requirePrereqs } from "../../tests/lib/prereqs.js";
import { nullRecorder } from "../events/index.js";
import { Expectations } from "../expectations.js";
import { OWNER_INDEX } from "../vmi/vmi.js";
import { type EvacuationDeps, reconcileEvacuation } from "./controller.js";
import type { Vmim } from "./plan.js";

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(fn()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("kubectl drain: evictions, 429 until the LiveMigrate VMIs left, evacuation migrations, drained", {
  timeout: 240_000,
}, async (t) => {
  requirePrereqs("kubectl");
  const api = await startApiServer({ memory: true, logger: nullLogger });
  t.after(() => api.close());
  const client = new RestClient({ server: api.url, namespace: "default", userAgent: "test" });
  for (const name of ["node01", "node02"]) {
    await client.create<Node>(resources.nodes, undefined, {
      metadata: { name, labels: { "kubernetes.io/hostname": name } },
    });
  }
  // VMIs running on node01, each with its launcher pod; an ordinary pod owned by a ReplicaSet
  const vmis: Record<string, VirtualMachineInstance> = {};
  for (const [name, strategy] of [
    ["a", "LiveMigrate"],
    ["b", "LiveMigrate"],
    ["none", "None"],
  ] as const) {
    const v = await client.create<VirtualMachineInstance>(resources.vmis, "default", {
      metadata: { name },
      spec: { evictionStrategy: strategy, domain: { devices: {}, resources: { requests: { memory: "64Mi" } } } },
    });
    vmis[name] = await client.patch<VirtualMachineInstance>(resources.vmis, "default", name, "merge", {
      status: { phase: "Running", nodeName: "node01", conditions: [{ type: "LiveMigratable", status: "True" }] },
    });
    await launcher(name, "node01");
  }
  async function launcher(vmi: string, node: string, suffix = "src"): Promise<void> {
    const v = vmis[vmi] as VirtualMachineInstance;
    await client.create<Pod>(resources.pods, "default", {
      metadata: {
        name: `virt-launcher-${vmi}-${suffix}`,
        labels: { "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": v.metadata.uid ?? "" },
        annotations: { "kubevirt.io/domain": vmi },
        ownerReferences: [
          {
            apiVersion: "kubevirt.io/v1",
            kind: "VirtualMachineInstance",
            name: vmi,
            uid: v.metadata.uid ?? "",
            controller: true,
          },
        ],
      },
      spec: { nodeName: node, containers: [{ name: "compute", image: "x" }] },
    });
  }
  await client.create<Pod>(resources.pods, "default", {
    metadata: {
      name: "web",
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web", uid: "rs-uid", controller: true }],
    },
    spec: { nodeName: "node01", containers: [{ name: "web", image: "x" }] },
  });

  // the evacuation controller over HTTP, stepped every 100 ms for both nodes (level-triggered: no events needed)
  const informers = {
    nodes: new Informer<Node>(client, resources.nodes),
    vmis: new Informer<VirtualMachineInstance>(client, resources.vmis),
    pods: new Informer<Pod>(client, resources.pods, { indexers: { [OWNER_INDEX]: ownerUidIndex } }),
    migrations: new Informer<Vmim & KObject>(client, resources.vmims),
  };
  for (const i of Object.values(informers)) i.start();
  t.after(() => Promise.all(Object.values(informers).map((i) => i.stop())));
  await Promise.all(Object.values(informers).map((i) => i.waitForSync()));
  // virt-controller calls as its own service account (only it may set a migration's priority)
  const token = api.identities.find((i) => i.component === "controller")?.token;
  const controllerClient = new RestClient({
    server: api.url,
    namespace: "default",
    userAgent: "virt-controller",
    token,
  });
  const deps: EvacuationDeps = {
    client: controllerClient,
    ...informers,
    config: () => defaultConfiguration(),
    expectations: new Expectations(),
    recorder: nullRecorder,
    log: nullLogger,
  };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      for (const n of ["node01", "node02"]) await reconcileEvacuation(deps, n).catch(() => undefined);
      // the kubelet: a pod marked for deletion goes at once
      for (const p of informers.pods.list()) {
        if (p.metadata.deletionTimestamp)
          await client
            .delete(resources.pods, "default", p.metadata.name ?? "", { gracePeriodSeconds: 0 })
            .catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  t.after(async () => {
    stopped = true;
    await loop;
  });

  const kubeconfig = join(tmpdir(), `kubectl-drain-${process.pid}.kubeconfig`);
  await writeFile(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: ${api.url}\ncontexts:\n- name: c\n  context:\n    cluster: c\ncurrent-context: c\nusers: []\n`,
  );
  const out = { text: "", code: undefined as number | undefined };
  const child = execFile(
    "kubectl",
    ["--kubeconfig", kubeconfig, "drain", "node01", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=180s"],
    { timeout: 200_000 },
    (err) => {
      out.code = err ? ((err as { code?: number }).code ?? 1) : 0;
    },
  );
  child.stdout?.on("data", (d: Buffer) => {
    out.text += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out.text += d.toString();
  });
  t.after(() => child.kill("SIGKILL"));

  // cordoned; the ordinary pod and the None VMI's launcher pod are evicted (deleted)
  await until("node01 cordoned", async () =>
    (await client.get<Node>(resources.nodes, undefined, "node01")).spec?.unschedulable ? true : undefined,
  );
  for (const name of ["web", "virt-launcher-none-src"])
    await until(`${name} evicted`, () => (out.text.includes(`pod/${name} evicted`) ? true : undefined));
  // the LiveMigrate VMIs: 429 until they left, marked, one evacuation migration each
  for (const name of ["a", "b"])
    await until(`429 for ${name}`, () =>
      out.text.includes(`Eviction triggered evacuation of VMI "default/${name}"`) ? true : undefined,
    );
  assert.match(out.text, /will retry after 5s/);
  const migs = await until("two evacuation migrations", () => {
    const l = informers.migrations.list();
    return l.length === 2 ? l : undefined;
  });
  assert.deepEqual(migs.map((m) => m.spec.vmiName).sort(), ["a", "b"]);
  for (const m of migs) {
    assert.match(m.metadata.name ?? "", /^kubevirt-evacuation-/);
    assert.equal(m.metadata.annotations?.["kubevirt.io/evacuationMigration"], "node01");
  }
  for (const name of ["a", "b"])
    assert.equal(
      (await client.get<VirtualMachineInstance>(resources.vmis, "default", name)).status?.evacuationNodeName,
      "node01",
    );
  assert.equal(out.code, undefined, "drain still waits for the LiveMigrate VMIs");

  // the migrations (played): the VMI is handed over to node02, its source launcher ends
  for (const name of ["a", "b"]) {
    await launcher(name, "node02", "dst");
    await client.patch(resources.vmis, "default", name, "merge", {
      status: { nodeName: "node02", migrationState: { completed: true, sourceNode: "node01", targetNode: "node02" } },
    });
    await client.patch(
      resources.pods,
      "default",
      `virt-launcher-${name}-src`,
      "merge",
      { status: { phase: "Succeeded" } },
      {
        subresource: "status",
      },
    );
  }
  await until("kubectl drain exits", () => out.code, 120_000);
  assert.equal(out.code, 0, out.text);
  assert.match(out.text, /node\/node01 drained/);
  for (const name of ["a", "b"])
    await until(`${name}'s mark cleared`, async () =>
      (await client.get<VirtualMachineInstance>(resources.vmis, "default", name)).status?.evacuationNodeName
        ? undefined
        : true,
    );
  assert.equal(informers.migrations.list().length, 2, "no migration more");
});
