import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defaultConfiguration, Migration } from "../../api/index.js";
import type {
  MigrationPolicy,
  PersistentVolumeClaim,
  Pod,
  VirtualMachineInstance,
  VirtualMachineInstanceMigration,
} from "../../client/index.js";
import { newPod } from "../testing/factories.js";
import { migratability } from "./migratable.js";
import { type MigrationInput, planMigration } from "./plan.js";
import { effectiveMigrationConfiguration, matchPolicy } from "./policy.js";
import { renderTargetPod } from "./target-pod.js";

const NOW = "2026-12-07T07:00:00Z";
const NOW_MS = Date.parse(NOW);

function vmi(o: Partial<VirtualMachineInstance["status"]> = {}, labels: Record<string, string> = {}) {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: {
      name: "vm1",
      namespace: "default",
      uid: "vmi-uid",
      labels: { "kubevirt.io/nodeName": "node01", ...labels },
    },
    spec: {
      domain: { resources: { requests: { memory: "128Mi" } }, devices: {} },
      volumes: [{ name: "root", containerDisk: { image: "registry:5000/cirros" } }],
    },
    status: { phase: "Running", nodeName: "node01", ...o },
  } as VirtualMachineInstance;
}

function vmim(name = "mig1", o: Partial<VirtualMachineInstanceMigration> = {}): VirtualMachineInstanceMigration {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: {
      name,
      namespace: "default",
      uid: `${name}-uid`,
      creationTimestamp: "2026-12-07T06:59:00Z",
      labels: { [Migration.vmiNameLabel]: "vm1" },
      finalizers: [Migration.finalizer],
      ...o.metadata,
    },
    spec: { vmiName: "vm1", ...o.spec },
    ...(o.status ? { status: o.status } : {}),
  };
}

function pod(name: string, node?: string, extra: Partial<Pod["metadata"]> = {}, phase = "Running"): Pod {
  const p = newPod(name, { ...(node ? { nodeName: node } : {}), phase: phase as "Running" });
  p.metadata = {
    ...p.metadata,
    uid: `${name}-uid`,
    creationTimestamp: "2026-12-07T06:59:30Z",
    labels: { "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": "vmi-uid", ...extra.labels },
    ...(extra.deletionTimestamp ? { deletionTimestamp: extra.deletionTimestamp } : {}),
  };
  p.spec.containers = [{ name: "compute", image: "tsvirt/virt-launcher@sha256:abc" }];
  return p;
}
const source = pod("virt-launcher-vm1-aaaaa", "node01");
const targetLabels = (m = "mig1") => ({ labels: { [Migration.jobUidLabel]: `${m}-uid` } });

function input(o: Partial<MigrationInput>): MigrationInput {
  return {
    vmim: vmim(),
    vmi: vmi(),
    pods: [source],
    migratable: { condition: { type: "LiveMigratable", status: "True" }, method: "BlockMigration" },
    config: defaultConfiguration().migrations ?? {},
    policies: [],
    others: [],
    now: NOW,
    nowMs: NOW_MS,
    ...o,
  };
}

const phases = (s: { phaseTransitionTimestamps?: { phase?: string }[] }) =>
  (s.phaseTransitionTimestamps ?? []).map((t) => t.phase);

const handedOff = (o: Record<string, unknown> = {}) =>
  vmi(
    {
      migrationState: {
        migrationUid: "mig1-uid",
        sourceNode: "node01",
        sourcePod: source.metadata.name!,
        targetNode: "node02",
        targetPod: "virt-launcher-vm1-bbbbb",
        mode: "PreCopy",
        ...o,
      },
    },
    { [Migration.targetNodeLabel]: "node02" },
  );
const target = pod("virt-launcher-vm1-bbbbb", "node02", targetLabels());

describe("migration planner", () => {
  it("ignores cold migrations (tsvirt.io/migration-mode=Cold)", () => {
    const m = vmim("cold", { metadata: { labels: { [Migration.modeLabel]: "Cold" } } });
    assert.equal(planMigration(input({ vmim: m })).ignore, true);
  });

  it("new VMIM: finalizer added, target pod planned, Pending → Scheduling", () => {
    const m = vmim("mig1", {
      metadata: { finalizers: [] },
      spec: { vmiName: "vm1", addedNodeSelector: { zone: "b" } },
    });
    const p = planMigration(input({ vmim: m }));
    assert.equal(p.addFinalizer, true);
    assert.equal(p.status.phase, "Scheduling");
    assert.deepEqual(phases(p.status), ["Pending", "Scheduling"]);
    const t = p.createPod!;
    assert.equal(t.metadata.labels?.[Migration.jobUidLabel], "mig1-uid");
    assert.equal(t.metadata.annotations?.[Migration.jobNameAnnotation], "mig1");
    assert.equal(t.metadata.ownerReferences?.[0]?.uid, "vmi-uid");
    assert.equal(t.spec.nodeSelector?.zone, "b");
    assert.equal(t.spec.containers[0]?.image, "tsvirt/virt-launcher@sha256:abc", "the source pod's pinned image");
    assert.deepEqual(t.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms, [
      { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "NotIn", values: ["node01"] }] },
    ]);
    assert.deepEqual(t.spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution, [
      {
        labelSelector: { matchLabels: { "kubevirt.io/created-by": "vmi-uid" } },
        topologyKey: "kubernetes.io/hostname",
      },
    ]);
    assert.equal(t.metadata.labels?.["kubevirt.io/nodeName"], undefined);
  });

  it("waits in Pending while the VMI is not Running", () => {
    const p = planMigration(input({ vmi: vmi({ phase: "Scheduled" }) }));
    assert.equal(p.status.phase, "Pending");
    assert.equal(p.createPod, undefined);
    assert.ok(p.requeueAfterMs);
  });

  it("a VMI that is not LiveMigratable fails the migration with KubeVirt's reason", () => {
    const p = planMigration(
      input({
        migratable: {
          condition: {
            type: "LiveMigratable",
            status: "False",
            reason: "DisksNotLiveMigratable",
            message: "PVC x is not shared",
          },
          method: "LiveMigration",
        },
      }),
    );
    assert.equal(p.status.phase, "Failed");
    assert.match(p.status.migrationState?.failureReason ?? "", /Reason: DisksNotLiveMigratable, Message: PVC x/);
    assert.equal(p.removeFinalizer, true);
    assert.equal(p.createPod, undefined);
  });

  it("a VMI that is gone or final fails the migration", () => {
    assert.equal(planMigration(input({ vmi: undefined })).status.phase, "Failed");
    assert.equal(planMigration(input({ vmi: vmi({ phase: "Succeeded" }) })).status.phase, "Failed");
  });

  it("a VMI that no longer exists: the migration ends Failed and is deleted (KubeVirt's), finished or not", () => {
    const gone = planMigration(input({ vmi: undefined }));
    assert.equal(gone.status.phase, "Failed");
    assert.match(gone.status.migrationState?.failureReason ?? "", /VMI vm1 does not exist/);
    assert.equal(gone.deleteOrphan, true);
    for (const phase of ["Succeeded", "Failed"] as const) {
      const p = planMigration(input({ vmim: vmim("mig1", { status: { phase } }), vmi: undefined }));
      assert.equal(p.deleteOrphan, true, `${phase}: deleted with its VMI`);
      assert.equal(p.status.phase, phase, "a finished migration keeps its outcome");
    }
    // a VMI still there (even final, or being deleted) keeps its migrations; a VMIM already being deleted is not
    // deleted again; a cold migration (no VMI by design) is never the live controller's
    assert.equal(planMigration(input({ vmi: vmi({ phase: "Succeeded" }) })).deleteOrphan, false);
    assert.equal(planMigration(input({})).deleteOrphan, false);
    const deleting = vmim("mig1", { metadata: { deletionTimestamp: NOW }, status: { phase: "Failed" } });
    assert.equal(planMigration(input({ vmim: deleting, vmi: undefined })).deleteOrphan, false);
    const cold = vmim("cold", { metadata: { labels: { [Migration.modeLabel]: "Cold" } } });
    assert.equal(planMigration(input({ vmim: cold, vmi: undefined })).deleteOrphan, false);
  });

  it("limits: parallelMigrationsPerCluster (5) and parallelOutboundMigrationsPerNode (2) keep it Pending", () => {
    const running = (i: number, node: string) => ({
      vmim: vmim(`other${i}`, { spec: { vmiName: `vm-o${i}` }, status: { phase: "Running" } }),
      sourceNode: node,
    });
    const cluster = planMigration(input({ others: [1, 2, 3, 4, 5].map((i) => running(i, `n${i}`)) }));
    assert.equal(cluster.status.phase, "Pending");
    assert.equal(cluster.createPod, undefined);
    assert.equal(cluster.requeueAfterMs, 3000);
    const node = planMigration(input({ others: [running(1, "node01"), running(2, "node01")] }));
    assert.equal(node.status.phase, "Pending");
    assert.equal(node.createPod, undefined);
    // four in flight elsewhere, one from node01: room on both limits
    assert.ok(
      planMigration(input({ others: [1, 2, 3].map((i) => running(i, `n${i}`)).concat(running(4, "node01")) }))
        .createPod,
    );
    // the KubeVirt object's settings win over the defaults
    const cfg = { ...defaultConfiguration().migrations, parallelOutboundMigrationsPerNode: 1 };
    assert.equal(planMigration(input({ config: cfg, others: [running(1, "node01")] })).createPod, undefined);
    // finished and cold migrations hold no slot
    const done = { vmim: vmim("d", { spec: { vmiName: "x" }, status: { phase: "Succeeded" } }), sourceNode: "node01" };
    const cold = {
      vmim: vmim("c", {
        metadata: { labels: { [Migration.modeLabel]: "Cold" } },
        spec: { vmiName: "y" },
        status: { phase: "Running" },
      }),
      sourceNode: "node01",
    };
    assert.ok(planMigration(input({ others: [done, done, cold, cold] })).createPod);
  });

  it("another active migration of the same VMI fails the newer one", () => {
    const first = vmim("mig0", {
      metadata: { creationTimestamp: "2026-12-07T06:00:00Z" },
      status: { phase: "Scheduling" },
    });
    const p = planMigration(input({ others: [{ vmim: first, sourceNode: "node01" }] }));
    assert.equal(p.status.phase, "Failed");
    assert.match(p.status.migrationState?.failureReason ?? "", /another migration job is in progress: mig0/);
  });

  it("Scheduling: an unbound target pod waits; unschedulable for 300 s fails and deletes it", () => {
    const t = pod("virt-launcher-vm1-bbbbb", undefined, targetLabels(), "Pending");
    t.status = {
      phase: "Pending",
      conditions: [
        {
          type: "PodScheduled",
          status: "False",
          reason: "Unschedulable",
          message: "0/1 nodes are available",
          lastTransitionTime: "2026-12-07T06:58:00Z",
        },
      ],
    };
    const m = vmim("mig1", { status: { phase: "Scheduling" } });
    const waiting = planMigration(input({ vmim: m, pods: [source, t] }));
    assert.equal(waiting.status.phase, "Scheduling");
    assert.equal(waiting.requeueAfterMs, 180_000);
    const late = planMigration(input({ vmim: m, pods: [source, t], nowMs: NOW_MS + 240_000 }));
    assert.equal(late.status.phase, "Failed");
    assert.match(late.status.migrationState?.failureReason ?? "", /unschedulable for 300s: 0\/1 nodes are available/);
    assert.deepEqual(
      late.deletePods.map((x) => x.metadata.name),
      ["virt-launcher-vm1-bbbbb"],
    );
    // the annotation overrides the bound
    const short = vmim("mig1", {
      metadata: { annotations: { "kubevirt.io/migrationUnschedulablePodTimeoutSeconds": "60" } },
      status: { phase: "Scheduling" },
    });
    assert.equal(planMigration(input({ vmim: short, pods: [source, t] })).status.phase, "Failed");
  });

  it("Scheduled: the handoff writes the VMI's migrationState and label, then PreparingTarget", () => {
    const m = vmim("mig1", { status: { phase: "Scheduling" } });
    const policy: MigrationPolicy = {
      apiVersion: "migrations.kubevirt.io/v1alpha1",
      kind: "MigrationPolicy",
      metadata: { name: "slow" },
      spec: {
        selectors: { virtualMachineInstanceSelector: { tier: "gold" } },
        bandwidthPerMigration: "5Mi",
        allowAutoConverge: true,
      },
    };
    const p = planMigration(
      input({ vmim: m, vmi: vmi({}, { tier: "gold" }), pods: [source, target], policies: [policy] }),
    );
    assert.equal(p.status.phase, "PreparingTarget");
    assert.deepEqual(phases(p.status), ["Scheduled", "PreparingTarget"]);
    assert.equal(p.vmi?.targetNodeLabel, "node02");
    const s = p.vmi?.migrationState;
    assert.equal(s?.migrationUid, "mig1-uid");
    assert.equal(s?.sourceNode, "node01");
    assert.equal(s?.sourcePod, source.metadata.name);
    assert.equal(s?.targetNode, "node02");
    assert.equal(s?.targetPod, "virt-launcher-vm1-bbbbb");
    assert.equal(s?.mode, "PreCopy");
    assert.equal(s?.migrationPolicyName, "slow");
    assert.equal(s?.migrationConfiguration?.bandwidthPerMigration, "5Mi");
    assert.equal(s?.migrationConfiguration?.allowAutoConverge, true);
    assert.equal(s?.migrationConfiguration?.completionTimeoutPerGiB, 150);
    assert.equal(s?.migrationConfiguration?.progressTimeout, 150);
  });

  it("migrating back: the source pod is the former target pod (it keeps its migrationJobUID label)", () => {
    const m = vmim("mig1", { status: { phase: "Scheduling" } });
    const former = pod("virt-launcher-vm1-bbbbb", "node02", targetLabels("mig0"));
    const back = pod("virt-launcher-vm1-ccccc", "node01", targetLabels("mig1"));
    const gone = pod("virt-launcher-vm1-aaaaa", "node01", {}, "Succeeded");
    const p = planMigration(input({ vmim: m, vmi: vmi({ nodeName: "node02" }), pods: [gone, former, back] }));
    assert.equal(p.vmi?.migrationState?.sourceNode, "node02");
    assert.equal(p.vmi?.migrationState?.sourcePod, former.metadata.name);
    assert.equal(p.vmi?.migrationState?.targetPod, back.metadata.name);
  });

  it("PreparingTarget → TargetReady → Running → Succeeded as the agents write", () => {
    const m = (phase: string) => vmim("mig1", { status: { phase: phase as "Running" } });
    const pods = [source, target];
    assert.equal(
      planMigration(input({ vmim: m("PreparingTarget"), vmi: handedOff(), pods })).status.phase,
      "PreparingTarget",
    );
    const ready = planMigration(
      input({ vmim: m("PreparingTarget"), vmi: handedOff({ targetNodeAddress: "10.244.2.5" }), pods }),
    );
    assert.equal(ready.status.phase, "TargetReady");
    const running = planMigration(
      input({ vmim: m("TargetReady"), vmi: handedOff({ targetNodeAddress: "x", startTimestamp: NOW }), pods }),
    );
    assert.equal(running.status.phase, "Running");
    // completed but not handed over yet: still Running
    const half = planMigration(
      input({
        vmim: m("Running"),
        vmi: handedOff({ targetNodeAddress: "x", startTimestamp: NOW, completed: true }),
        pods,
      }),
    );
    assert.equal(half.status.phase, "Running");
    const after = handedOff({ targetNodeAddress: "x", startTimestamp: NOW, completed: true, endTimestamp: NOW });
    after.status!.nodeName = "node02";
    const done = planMigration(input({ vmim: m("Running"), vmi: after, pods }));
    assert.equal(done.status.phase, "Succeeded");
    assert.equal(done.vmi?.targetNodeLabel, null);
    assert.equal(done.status.migrationState?.completed, true);
    assert.deepEqual(
      done.deletePods.map((p) => p.metadata.name),
      [source.metadata.name],
    );
    assert.equal(done.removeFinalizer, true);
  });

  it("a controller that was down passes every phase in one round, each with its timestamp", () => {
    const after = handedOff({ targetNodeAddress: "x", startTimestamp: NOW });
    const p = planMigration(
      input({ vmim: vmim("mig1", { status: { phase: "Scheduled" } }), vmi: after, pods: [source, target] }),
    );
    assert.equal(p.status.phase, "Running");
    assert.deepEqual(phases(p.status), ["PreparingTarget", "TargetReady", "Running"]);
  });

  it("failed → Failed: the target pod is deleted, the label removed, the VMI stays", () => {
    const p = planMigration(
      input({
        vmim: vmim("mig1", { status: { phase: "Running" } }),
        vmi: handedOff({ startTimestamp: NOW, failed: true, failureReason: "progress timeout" }),
        pods: [source, target],
      }),
    );
    assert.equal(p.status.phase, "Failed");
    assert.equal(p.status.migrationState?.failureReason, "progress timeout");
    assert.deepEqual(
      p.deletePods.map((x) => x.metadata.name),
      [target.metadata.name],
    );
    assert.equal(p.vmi?.targetNodeLabel, null);
    assert.equal(p.vmi?.migrationState, undefined, "the VMI's migrationState is kept");
  });

  it("a target pod that goes down before the start fails the migration (KubeVirt: Target pod is down)", () => {
    const down = pod(target.metadata.name!, "node02", targetLabels(), "Failed");
    const p = planMigration(
      input({ vmim: vmim("mig1", { status: { phase: "PreparingTarget" } }), vmi: handedOff(), pods: [source, down] }),
    );
    assert.equal(p.status.phase, "Failed");
    assert.equal(p.vmi?.migrationState?.failed, true);
    assert.equal(p.vmi?.migrationState?.failureReason, "Target pod is down");
  });

  it("cancel before the handoff: target pod deleted, abort condition, Failed, finalizer released", () => {
    const m = vmim("mig1", { metadata: { deletionTimestamp: NOW }, status: { phase: "Scheduling" } });
    const unbound = pod(target.metadata.name!, undefined, targetLabels(), "Pending");
    const p = planMigration(input({ vmim: m, pods: [source, unbound] }));
    assert.equal(p.status.phase, "Failed");
    assert.equal(p.status.conditions?.find((c) => c.type === "migrationAbortRequested")?.status, "True");
    assert.deepEqual(
      p.deletePods.map((x) => x.metadata.name),
      [target.metadata.name],
    );
    assert.equal(p.removeFinalizer, true);
    assert.equal(p.addFinalizer, false);
  });

  it("cancel while Running: abortRequested on the VMI; the source's abort ends it Failed", () => {
    const m = vmim("mig1", { metadata: { deletionTimestamp: NOW }, status: { phase: "Running" } });
    const p = planMigration(
      input({ vmim: m, vmi: handedOff({ targetNodeAddress: "x", startTimestamp: NOW }), pods: [source, target] }),
    );
    assert.equal(p.status.phase, "Running");
    assert.equal(p.vmi?.migrationState?.abortRequested, true);
    assert.equal(p.removeFinalizer, false);
    const aborted = handedOff({
      targetNodeAddress: "x",
      startTimestamp: NOW,
      abortRequested: true,
      abortStatus: "Succeeded",
      failed: true,
    });
    const end = planMigration(input({ vmim: m, vmi: aborted, pods: [source, target] }));
    assert.equal(end.status.phase, "Failed");
    assert.equal(end.status.migrationState?.abortStatus, "Succeeded");
    assert.equal(end.removeFinalizer, true);
  });

  it("cancel after the handoff but before the target published its address: the controller ends it", () => {
    const m = vmim("mig1", { metadata: { deletionTimestamp: NOW }, status: { phase: "PreparingTarget" } });
    const p = planMigration(input({ vmim: m, vmi: handedOff(), pods: [source, target] }));
    assert.equal(p.status.phase, "Failed");
    assert.equal(p.vmi?.migrationState?.abortStatus, "Succeeded");
    assert.equal(p.vmi?.migrationState?.failed, true);
    assert.equal(p.vmi?.targetNodeLabel, null);
  });

  it("final VMIMs: finalizer removed, leftovers cleaned, and only the 5 newest finished per VMI kept", () => {
    const finished = [1, 2, 3, 4, 5, 6].map((i) =>
      vmim(`old${i}`, {
        metadata: { creationTimestamp: `2026-12-07T0${i}:00:00Z`, finalizers: [] },
        status: { phase: "Succeeded" },
      }),
    );
    const m = vmim("mig1", { metadata: { creationTimestamp: "2026-12-07T06:59:00Z" }, status: { phase: "Failed" } });
    const p = planMigration(input({ vmim: m, others: finished.map((v) => ({ vmim: v })), pods: [source, target] }));
    assert.equal(p.removeFinalizer, true);
    assert.deepEqual(
      p.garbage.map((g) => g.metadata.name),
      ["old2", "old1"],
    );
    assert.deepEqual(
      p.deletePods.map((x) => x.metadata.name),
      [target.metadata.name],
    );
  });
});

describe("MigrationPolicy matching", () => {
  const pol = (name: string, vmiSel?: Record<string, string>, nsSel?: Record<string, string>): MigrationPolicy => ({
    apiVersion: "migrations.kubevirt.io/v1alpha1",
    kind: "MigrationPolicy",
    metadata: { name },
    spec: {
      selectors: {
        ...(vmiSel ? { virtualMachineInstanceSelector: vmiSel } : {}),
        ...(nsSel ? { namespaceSelector: nsSel } : {}),
      },
    },
  });
  it("most matched labels wins; ties go to VMI labels, then the smaller name; a mismatch never matches", () => {
    const vmiLabels = { a: "1", b: "2" };
    const nsLabels = { team: "x" };
    assert.equal(
      matchPolicy([pol("one", { a: "1" }), pol("two", { a: "1", b: "2" })], vmiLabels, nsLabels)?.metadata.name,
      "two",
    );
    assert.equal(
      matchPolicy([pol("ns", undefined, { team: "x" }), pol("vmi", { a: "1" })], vmiLabels, nsLabels)?.metadata.name,
      "vmi",
    );
    assert.equal(matchPolicy([pol("b", { a: "1" }), pol("a", { b: "2" })], vmiLabels, nsLabels)?.metadata.name, "a");
    assert.equal(matchPolicy([pol("no", { a: "9" })], vmiLabels, nsLabels), undefined);
    assert.equal(matchPolicy([pol("both", { a: "1" }, { team: "y" })], vmiLabels, nsLabels), undefined);
    assert.equal(matchPolicy([pol("any", {})], vmiLabels, nsLabels)?.metadata.name, "any");
  });
  it("the policy's set fields override the cluster's", () => {
    const cluster = defaultConfiguration().migrations ?? {};
    const p = pol("p", {});
    p.spec.completionTimeoutPerGiB = 10;
    p.spec.allowPostCopy = true;
    const eff = effectiveMigrationConfiguration(cluster, p);
    assert.equal(eff.completionTimeoutPerGiB, 10);
    assert.equal(eff.allowPostCopy, true);
    assert.equal(eff.allowWorkloadDisruption, true);
    assert.equal(eff.bandwidthPerMigration, "0Mi");
    assert.equal(effectiveMigrationConfiguration(cluster, undefined).completionTimeoutPerGiB, 150);
  });
});

describe("LiveMigratable and migrationMethod", () => {
  const claims: Record<string, PersistentVolumeClaim> = {
    rwx: {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "rwx" },
      spec: { accessModes: ["ReadWriteMany"] },
    },
    rwo: {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "rwo" },
      spec: { accessModes: ["ReadWriteOnce"], storageClassName: "san" },
    },
    local: {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "local" },
      spec: { accessModes: ["ReadWriteOnce"], storageClassName: "tsvirt-local" },
    },
  };
  const of = (v: VirtualMachineInstance) => migratability(v, (n) => claims[n]);
  it("containerDisk/cloud-init: True, BlockMigration; shared PVCs only: LiveMigration", () => {
    const v = vmi();
    v.spec.volumes?.push({ name: "ci", cloudInitNoCloud: { userData: "#cloud-config" } });
    assert.deepEqual(of(v), { condition: { type: "LiveMigratable", status: "True" }, method: "BlockMigration" });
    v.spec.volumes = [{ name: "d", persistentVolumeClaim: { claimName: "rwx" } }];
    assert.equal(of(v).method, "LiveMigration");
  });
  it("a node-local (tsvirt-local) PVC or DataVolume moves with the VM: True, BlockMigration", () => {
    const v = vmi();
    v.spec.volumes = [
      { name: "d", dataVolume: { name: "local" } },
      { name: "s", persistentVolumeClaim: { claimName: "rwx" } },
    ];
    assert.deepEqual(of(v), { condition: { type: "LiveMigratable", status: "True" }, method: "BlockMigration" });
  });
  it("an RWO PVC of another class, a missing claim or a non-shared hostDisk: DisksNotLiveMigratable", () => {
    const v = vmi();
    v.spec.volumes = [{ name: "d", dataVolume: { name: "rwo" } }];
    const r = of(v);
    assert.equal(r.condition.status, "False");
    assert.equal(r.condition.reason, "DisksNotLiveMigratable");
    assert.match(r.condition.message ?? "", /PVC rwo is not shared/);
    v.spec.volumes = [{ name: "d", dataVolume: { name: "nowhere" } }];
    assert.equal(of(v).condition.reason, "DisksNotLiveMigratable");
    v.spec.volumes = [{ name: "h", hostDisk: { path: "/x", type: "Disk" } }];
    assert.equal(of(v).condition.reason, "DisksNotLiveMigratable");
  });
  it("bridge on the pod network: InterfaceNotLiveMigratable unless annotated; masquerade is fine", () => {
    const v = vmi();
    v.spec.networks = [{ name: "default", pod: {} }];
    v.spec.domain.devices = { interfaces: [{ name: "default", bridge: {} }] };
    assert.equal(of(v).condition.reason, "InterfaceNotLiveMigratable");
    v.metadata.annotations = { "kubevirt.io/allow-pod-bridge-network-live-migration": "" };
    assert.equal(of(v).condition.status, "True");
    v.spec.domain.devices = { interfaces: [{ name: "default", masquerade: {} }] };
    delete v.metadata.annotations;
    assert.equal(of(v).condition.status, "True");
  });
});

describe("target pod", () => {
  it("adds NotIn [source] to each of the VMI's node affinity terms and merges addedNodeSelector under the VMI's", () => {
    const v = vmi();
    v.spec.nodeSelector = { zone: "a" };
    v.spec.affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "disk", operator: "In", values: ["ssd"] }] },
            { matchExpressions: [] },
          ],
        },
      },
    };
    const t = renderTargetPod(
      v,
      vmim("m", { spec: { vmiName: "vm1", addedNodeSelector: { zone: "b", rack: "1" } } }),
      "node01",
      undefined,
    );
    assert.deepEqual(t.spec.nodeSelector, { zone: "a", rack: "1", "kubevirt.io/schedulable": "true" });
    const terms =
      t.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
    assert.equal(terms.length, 2);
    for (const term of terms)
      assert.deepEqual(term.matchExpressions?.at(-1), {
        key: "kubernetes.io/hostname",
        operator: "NotIn",
        values: ["node01"],
      });
  });
});
