// Node drain end to end, through `tsvirt up --nodes 2` with real QEMU and stock `kubectl drain`: three VMs run on the
// first node (the second is cordoned while they start). Two have evictionStrategy LiveMigrate: kubectl drain's
// evictions of their launcher pods answer 429 "Eviction triggered evacuation of VMI" (KubeVirt's eviction webhook
// rules, in admission), the VMIs are marked with status.evacuationNodeName, the evacuation controller creates one
// kubevirt-evacuation- migration each, and they move live to the second node (same VMI, same QEMU boot). The third has
// evictionStrategy None: its launcher pod is evicted (deleted), the VMI stops and runStrategy Always starts a new one
// on the second node (the drained node is cordoned). Drain returns once the node is empty of launcher pods.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { type Cluster, collect, startCluster, until } from "../lib/up.js";

const BOOT_MS = 300_000;
const MIGRATING = ["drain-a", "drain-b"];
const STOPPING = "drain-none";

interface Vmi {
  metadata: { name: string; uid: string };
  status?: {
    phase?: string;
    nodeName?: string;
    evacuationNodeName?: string;
    migrationState?: { completed?: boolean; sourceNode?: string; targetNode?: string };
  };
}

interface Vmim {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { vmiName: string; priority?: string };
  status?: { phase?: string };
}

function vmWith(c: Cluster, name: string, strategy: string): Record<string, unknown> {
  const vm = c.vm(name, { runStrategy: "Always", memory: "128Mi" }) as {
    spec: { template: { spec: Record<string, unknown> } };
  };
  vm.spec.template.spec.evictionStrategy = strategy;
  return vm as unknown as Record<string, unknown>;
}

async function vmi(c: Cluster, name: string): Promise<Vmi> {
  return c.getJson<Vmi>("vmi", name);
}

describe("kubectl drain (tsvirt up --nodes 2)", async () => {
  it("migrates LiveMigrate VMs away, evicts a None VM (restarted elsewhere), respects the cordon, returns", {
    timeout: 1_800_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { nodes: 2, name: "drain" });
    const [n1, n2] = c.nodes as [string, string];
    // everything starts on the first node
    await c.kubectl("cordon", n2);
    for (const name of MIGRATING) await c.apply(vmWith(c, name, "LiveMigrate"));
    await c.apply(vmWith(c, STOPPING, "None"));
    const before = new Map<string, Vmi>();
    for (const name of [...MIGRATING, STOPPING]) {
      await c.waitFor(`vmi/${name}`, "{.status.phase}", "Running", BOOT_MS);
      const v = await vmi(c, name);
      assert.equal(v.status?.nodeName, n1, `${name} runs on ${n1}`);
      before.set(name, v);
    }
    await c.kubectl("uncordon", n2);
    for (const name of MIGRATING)
      await c.waitFor(`vmi/${name}`, "{.status.conditions[?(@.type=='LiveMigratable')].status}", "True", 120_000);

    const started = Date.now();
    const drain = spawn("kubectl", ["drain", n1, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=900s"], {
      env: c.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out = collect(drain, true);
    const exited = new Promise<number | null>((r) => drain.once("exit", r));
    t.after(() => drain.kill("SIGKILL"));

    await t.test("the node is cordoned and the LiveMigrate evictions answer 429: evacuation triggered", async () => {
      await c.waitFor(`node/${n1}`, "{.spec.unschedulable}", "true", 60_000);
      for (const name of MIGRATING) {
        await until(`kubectl drain reports the 429 for ${name}`, 120_000, async () =>
          out.text.includes(`Eviction triggered evacuation of VMI "default/${name}"`) ? true : undefined,
        ).catch((e: Error) => assert.fail(`${e.message}; kubectl drain printed:\n${out.text.slice(-4000)}`));
      }
      assert.match(out.text, /will retry after 5s/);
    });

    await t.test("one kubevirt-evacuation- migration per LiveMigrate VMI, none for the None VM", async () => {
      const migs = await until("evacuation migrations", 120_000, async () => {
        const l = (await c.getJson<{ items: Vmim[] }>("vmim")).items.filter((m) =>
          m.metadata.name.startsWith("kubevirt-evacuation-"),
        );
        return l.length >= MIGRATING.length ? l : undefined;
      });
      assert.deepEqual(migs.map((m) => m.spec.vmiName).sort(), [...MIGRATING].sort());
      for (const m of migs) {
        assert.equal(m.metadata.annotations?.["kubevirt.io/evacuationMigration"], n1);
        assert.equal(m.spec.priority, "system-critical");
      }
    });

    await t.test("the None VM's pod is evicted; runStrategy Always starts it again on the other node", async () => {
      const old = before.get(STOPPING) as Vmi;
      const fresh = await until(`a new ${STOPPING} VMI running on ${n2}`, BOOT_MS, async () => {
        const v = await vmi(c, STOPPING);
        return v.metadata.uid !== old.metadata.uid && v.status?.phase === "Running" && v.status.nodeName === n2
          ? v
          : undefined;
      });
      assert.equal(fresh.status?.nodeName, n2, "the cordoned node gets no new pod");
    });

    await t.test("both LiveMigrate VMIs move live to the other node and drain returns", async () => {
      for (const name of MIGRATING) {
        await c.waitFor(`vmi/${name}`, "{.status.nodeName}", n2, 900_000);
        const v = await vmi(c, name);
        assert.equal(v.metadata.uid, before.get(name)?.metadata.uid, `${name}: the same VMI, migrated`);
        assert.equal(v.status?.phase, "Running");
        assert.equal(v.status?.migrationState?.completed, true);
        assert.equal(v.status?.migrationState?.sourceNode, n1);
        await until(`${name}'s evacuation mark cleared`, 60_000, async () =>
          (await vmi(c, name)).status?.evacuationNodeName ? undefined : true,
        );
      }
      const code = await Promise.race([
        exited,
        until("kubectl drain exits", 300_000, async () => drain.exitCode ?? undefined),
      ]);
      assert.equal(code, 0, `kubectl drain failed:\n${out.text.slice(-3000)}`);
      assert.match(out.text, new RegExp(`node/${n1} drained`));
      t.diagnostic(`kubectl drain took ${Date.now() - started} ms`);
      const left = await c.getJson<{ items: unknown[] }>(
        "pods",
        "-l",
        "kubevirt.io=virt-launcher",
        "--field-selector",
        `spec.nodeName=${n1},status.phase=Running`,
      );
      assert.equal(left.items.length, 0, `no launcher pod runs on ${n1}`);
    });
    await c.kubectl("uncordon", n1);
  });
});
