// planEvacuation: which VMIs of a node get an evacuation migration, within which limits, and which marks are stale.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defaultConfiguration, type KubeVirtConfiguration } from "../../api/index.js";
import type { Node, Pod, VirtualMachineInstance } from "../../client/index.js";
import { newNode, newPod, newVmi } from "../testing/factories.js";
import { type EvacuationWorld, evacuationMigration, planEvacuation, type Vmim } from "./plan.js";

interface VmiOpts {
  node?: string;
  strategy?: "None" | "LiveMigrate" | "LiveMigrateIfPossible" | "External";
  migratable?: boolean;
  marked?: string;
  migrating?: boolean;
  phase?: "Running" | "Failed" | "Succeeded";
}

function vmi(name: string, o: VmiOpts = {}): VirtualMachineInstance {
  return newVmi(name, (v) => {
    v.metadata.uid = `uid-${name}`;
    if (o.strategy) v.spec.evictionStrategy = o.strategy;
    v.status = {
      phase: o.phase ?? "Running",
      nodeName: o.node ?? "node01",
      conditions: [{ type: "LiveMigratable", status: o.migratable === false ? "False" : "True" }],
      ...(o.marked ? { evacuationNodeName: o.marked } : {}),
      ...(o.migrating ? { migrationState: { startTimestamp: "2026-12-07T07:00:00Z" } } : {}),
    };
  });
}

function migration(vmiName: string, phase = "Running"): Vmim {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: { name: `m-${vmiName}-${phase}`, namespace: "default" },
    spec: { vmiName },
    status: { phase: phase as never },
  };
}

function launcher(v: VirtualMachineInstance, phase: "Running" | "Succeeded" = "Running"): Pod {
  const p = newPod(`virt-launcher-${v.metadata.name}-${phase}`, { nodeName: "node01", phase });
  p.metadata.labels = { "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": v.metadata.uid ?? "" };
  return p;
}

const NOW = Date.parse("2026-12-07T10:00:00Z");
const at = (s: number) => new Date(NOW + s * 1000).toISOString();

/** A finished evacuation migration of `vmiName` that ended `endedS` seconds from NOW. */
function evacuation(vmiName: string, phase: "Failed" | "Succeeded", endedS: number): Vmim {
  const m = migration(vmiName, phase);
  m.metadata.name = `${m.metadata.name}${endedS}`;
  m.metadata.annotations = { "kubevirt.io/evacuationMigration": "node01" };
  m.metadata.creationTimestamp = at(endedS - 30);
  m.status = { phase, phaseTransitionTimestamps: [{ phase, phaseTransitionTimestamp: at(endedS) }] };
  return m;
}

function world(o: Partial<EvacuationWorld> & { cfg?: Partial<KubeVirtConfiguration> } = {}): EvacuationWorld {
  const config = { ...defaultConfiguration(), ...(o.cfg ?? {}) };
  return { node: newNode("node01"), vmis: [], migrations: [], pods: [], nowMs: NOW, ...o, config };
}

function created(w: EvacuationWorld): string[] {
  return planEvacuation(w)
    .actions.filter((a) => a.kind === "createMigration")
    .map((a) => (a.kind === "createMigration" ? a.vmi.name : ""));
}

const marked = (name: string, o: VmiOpts = {}) => vmi(name, { strategy: "LiveMigrate", marked: "node01", ...o });

describe("planEvacuation", () => {
  test("a VMI marked for eviction from its node gets KubeVirt's evacuation migration", () => {
    const v = marked("a");
    const plan = planEvacuation(world({ vmis: [v], pods: [launcher(v)] }));
    assert.deepEqual(plan.actions, [
      {
        kind: "createMigration",
        vmi: { namespace: "default", name: "a" },
        migration: {
          apiVersion: "kubevirt.io/v1",
          kind: "VirtualMachineInstanceMigration",
          metadata: {
            generateName: "kubevirt-evacuation-",
            namespace: "default",
            annotations: { "kubevirt.io/evacuationMigration": "node01" },
          },
          spec: { vmiName: "a", priority: "system-critical" },
        },
      },
    ]);
  });

  test("descheduler evictions get priority system-maintenance", () => {
    const v = marked("d");
    v.metadata.annotations = { "kubevirt.io/eviction-source": "descheduler" };
    assert.equal(evacuationMigration(v, "node01").spec.priority, "system-maintenance");
  });

  test("nothing for unmarked VMIs, VMIs marked for another node, or other nodes' VMIs", () => {
    assert.deepEqual(created(world({ vmis: [vmi("a", { strategy: "LiveMigrate" })] })), []);
    assert.deepEqual(created(world({ vmis: [marked("b", { node: "node02", marked: "node02" })] })), []);
  });

  test("strategy: LiveMigrate and migratable LiveMigrateIfPossible migrate; None, External, not migratable do not", () => {
    const vmis = [
      marked("lm"),
      marked("lmip", { strategy: "LiveMigrateIfPossible" }),
      marked("lmip-no", { strategy: "LiveMigrateIfPossible", migratable: false }),
      marked("ext", { strategy: "External" }),
      marked("none", { strategy: "None" }),
      marked("lm-no", { migratable: false }),
    ];
    const w = world({
      vmis,
      cfg: { migrations: { parallelMigrationsPerCluster: 10, parallelOutboundMigrationsPerNode: 10 } },
    });
    assert.deepEqual(created(w), ["lm", "lmip"]);
    assert.deepEqual(planEvacuation(w).notMigratable, ["default/lm-no"]);
  });

  test("the cluster's strategy applies to VMIs without one", () => {
    const v = vmi("c", { marked: "node01" });
    assert.deepEqual(created(world({ vmis: [v] })), []);
    assert.deepEqual(created(world({ vmis: [v], cfg: { evictionStrategy: "LiveMigrate" } })), ["c"]);
  });

  test("one migration per VMI; none while migrating, final, deleting, or with two active launcher pods", () => {
    const a = marked("a");
    const b = marked("b", { migrating: true });
    const c = marked("c", { phase: "Failed" });
    const d = marked("d");
    d.metadata.deletionTimestamp = "2026-12-07T07:00:00Z";
    const e = marked("e");
    const f = marked("f");
    const w = world({
      vmis: [a, b, c, d, e, f],
      migrations: [migration("a"), migration("f", "Failed")],
      pods: [
        launcher(e),
        { ...launcher(e), metadata: { ...launcher(e).metadata, name: "target" } },
        launcher(f),
        launcher(f, "Succeeded"),
      ],
      cfg: { migrations: { parallelMigrationsPerCluster: 10, parallelOutboundMigrationsPerNode: 10 } },
    });
    assert.deepEqual(created(w), ["f"], "a failed migration does not count; a finished pod does not either");
  });

  test("limits: outbound per node (default 2) and per cluster (default 5), counting unfinished migrations", () => {
    const vmis = ["a", "b", "c", "d"].map((n) => marked(n));
    assert.deepEqual(created(world({ vmis })), ["a", "b"]);
    assert.equal(planEvacuation(world({ vmis })).waiting, 2);
    const busy = world({ vmis: [...vmis, marked("x", { migrating: true })], migrations: [migration("x")] });
    assert.deepEqual(created(busy), ["a"]);
    const elsewhere = ["p", "q", "r", "s"].map((n) => migration(n));
    assert.deepEqual(created(world({ vmis, migrations: elsewhere })), ["a"], "cluster: 5 - 4 running elsewhere");
    assert.deepEqual(
      created(
        world({ vmis, cfg: { migrations: { parallelMigrationsPerCluster: 5, parallelOutboundMigrationsPerNode: 3 } } }),
      ),
      ["a", "b", "c"],
    );
  });

  test("the drain taint evacuates every VMI of the node that migrates on eviction", () => {
    const node: Node = newNode("node01");
    node.spec = { taints: [{ key: "kubevirt.io/drain", effect: "NoSchedule" }] };
    const vmis = [vmi("a", { strategy: "LiveMigrate" }), vmi("b", { strategy: "None" })];
    assert.deepEqual(created(world({ node, vmis })), ["a"]);
    node.spec = { taints: [{ key: "kubevirt.io/drain", effect: "NoExecute" }] };
    assert.deepEqual(created(world({ node, vmis })), [], "only NoSchedule, as KubeVirt matches it");
    node.spec = { taints: [{ key: "example.com/drain", effect: "NoSchedule" }] };
    assert.deepEqual(created(world({ node, vmis, cfg: { migrations: { nodeDrainTaintKey: "example.com/drain" } } })), [
      "a",
    ]);
  });

  test("back-off after failed evacuation migrations: 20 s after the last failure, doubling per failure since a success", () => {
    const v = marked("v");
    const cfg = { migrations: { parallelMigrationsPerCluster: 10, parallelOutboundMigrationsPerNode: 10 } };
    // one failure 15 s ago: 5 s left; 20 s ago: go
    const once = world({ vmis: [v], migrations: [evacuation("v", "Failed", -15)], cfg });
    assert.deepEqual(created(once), []);
    assert.deepEqual(planEvacuation(once).backingOff, [{ vmi: "default/v", remainingMs: 5_000, failures: 1 }]);
    assert.deepEqual(created(world({ vmis: [v], migrations: [evacuation("v", "Failed", -20)], cfg })), ["v"]);
    // three failures in a row (after an older success): 80 s from the newest
    const three = [
      evacuation("v", "Succeeded", -900),
      evacuation("v", "Failed", -600),
      evacuation("v", "Failed", -300),
      evacuation("v", "Failed", -70),
    ];
    const w = world({ vmis: [v], migrations: three, cfg });
    assert.deepEqual(planEvacuation(w).backingOff, [{ vmi: "default/v", remainingMs: 10_000, failures: 3 }]);
    assert.deepEqual(created({ ...w, nowMs: NOW + 10_000 }), ["v"]);
    // a success since the failures resets it; other VMIs' and non-evacuation failures do not count
    const reset = [...three, evacuation("v", "Succeeded", -5)];
    assert.deepEqual(created(world({ vmis: [v], migrations: reset, cfg })), ["v"]);
    const others = [evacuation("other", "Failed", -1), migration("v", "Failed")];
    assert.deepEqual(created(world({ vmis: [v], migrations: others, cfg })), ["v"]);
    // the other VMIs go on meanwhile
    assert.deepEqual(created(world({ vmis: [v, marked("w")], migrations: [evacuation("v", "Failed", -1)], cfg })), [
      "w",
    ]);
  });

  test("a mark naming a node the VMI has left is cleared", () => {
    const moved = vmi("m", { strategy: "LiveMigrate", marked: "node02" });
    assert.deepEqual(planEvacuation(world({ vmis: [moved] })).actions, [
      { kind: "clearEvacuation", namespace: "default", name: "m", uid: "uid-m" },
    ]);
  });
});
