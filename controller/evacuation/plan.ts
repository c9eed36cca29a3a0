// The evacuation controller's decisions for one node (KubeVirt's pkg/virt-controller/watch/drain/evacuation), pure:
// the node, the VMIs, the unfinished migrations and the launcher pods in; the migrations to create and the VMIs whose
// evacuation mark is stale out.
//  - A VMI on the node is evacuated when it is marked for eviction from it (status.evacuationNodeName == its node,
//    set by the pods/eviction admission) or when the node carries the drain taint (`nodeDrainTaintKey`, default
//    kubevirt.io/drain, effect NoSchedule: KubeVirt's older, deprecated trigger, still honoured).
//  - Only VMIs that migrate on eviction (LiveMigrate; LiveMigrateIfPossible when LiveMigratable) and can migrate
//    (LiveMigratable=True); External is left to its external owner; one unfinished migration per VMI; none while the
//    VMI still has two active launcher pods (a previous migration's pods terminating).
//  - Within the limits (parallelMigrationsPerCluster, parallelOutboundMigrationsPerNode), as KubeVirt's evacuation
//    controller did before its migration queue took them over: the migration controller enforces them again.
//  - A VMI whose earlier evacuation migrations failed waits before the next one: 20 s after the last failure,
//    doubling per consecutive failure since the last success (KubeVirt's handleMigrationBackoff, there applied to a
//    pending evacuation VMIM by the migration controller; here the VMIM is not created before its time).
//  - A VMI whose status.evacuationNodeName names a node it has left gets the mark cleared (KubeVirt's target handler
//    clears it at handover; this keeps a stale mark from blocking the next drain of the new node).
import {
  Evacuation,
  type EvictionStrategy,
  isLiveMigratable,
  type KubeVirtConfiguration,
  migratesOnEviction,
  vmiEvictionStrategy,
} from "../../api/index.js";
import type { Node, Pod, VirtualMachineInstance, VirtualMachineInstanceMigration } from "../../client/index.js";

type Vmi = VirtualMachineInstance;
export type Vmim = VirtualMachineInstanceMigration;

export interface EvacuationWorld {
  node: Node;
  /** VMIs whose status.nodeName is this node. */
  vmis: readonly Vmi[];
  /** Every migration in the cluster (finished ones are ignored). */
  migrations: readonly Vmim[];
  /** Launcher pods of the node's VMIs (label kubevirt.io/created-by = VMI uid). */
  pods: readonly Pod[];
  config: KubeVirtConfiguration;
  /** Now, epoch ms (the back-off). */
  nowMs: number;
}

export type EvacuationAction =
  | { kind: "createMigration"; migration: Vmim; vmi: { namespace: string; name: string } }
  | { kind: "clearEvacuation"; namespace: string; name: string; uid: string };

export interface EvacuationPlan {
  actions: EvacuationAction[];
  /** VMIs that should leave but cannot (not LiveMigratable): reported, not acted on. */
  notMigratable: string[];
  /** Candidates left for a later pass because a limit is reached. */
  waiting: number;
  /** Candidates backing off after failed evacuation migrations, with the ms left. */
  backingOff: { vmi: string; remainingMs: number; failures: number }[];
}

const LAUNCHER_CREATED_BY = "kubevirt.io/created-by";

export function isFinishedMigration(m: Vmim): boolean {
  const p = m.status?.phase;
  return p === "Succeeded" || p === "Failed";
}

/** migrations.IsMigrating: a live migration started and has not ended. */
function isMigrating(vmi: Vmi): boolean {
  const s = vmi.status?.migrationState;
  return !!s?.startTimestamp && !s.endTimestamp;
}

function hasDrainTaint(node: Node, key: string): boolean {
  return (node.spec?.taints ?? []).some((t) => t.key === key && t.effect === "NoSchedule");
}

function activePods(vmi: Vmi, pods: readonly Pod[]): number {
  const uid = vmi.metadata.uid;
  return pods.filter(
    (p) =>
      p.metadata.labels?.[LAUNCHER_CREATED_BY] === uid &&
      p.status?.phase !== "Succeeded" &&
      p.status?.phase !== "Failed",
  ).length;
}

/** KubeVirt's first back-off after a failed evacuation migration; it doubles per consecutive failure. */
export const EVACUATION_BACKOFF_MS = 20_000;

/** When a finished migration ended: its Failed/Succeeded transition, else its creation. */
function endedAtMs(m: Vmim): number {
  const phase = m.status?.phase;
  const t = m.status?.phaseTransitionTimestamps?.find((p) => p.phase === phase)?.phaseTransitionTimestamp;
  return Date.parse(t ?? m.metadata.creationTimestamp ?? "") || 0;
}

/**
 * KubeVirt's handleMigrationBackoff for a VMI: over its finished evacuation migrations, newest first, the failures
 * since the last success → 20 s × 2^(failures-1) from the newest failure's end. Answers the ms still to wait (0: go).
 */
export function evacuationBackoff(
  vmi: Vmi,
  migrations: readonly Vmim[],
  nowMs: number,
): { remainingMs: number; failures: number } {
  const mine = migrations
    .filter(
      (m) =>
        m.metadata.namespace === vmi.metadata.namespace &&
        m.spec.vmiName === vmi.metadata.name &&
        m.metadata.annotations?.[Evacuation.migrationAnnotation] !== undefined &&
        isFinishedMigration(m),
    )
    .sort((a, b) => endedAtMs(b) - endedAtMs(a));
  let failures = 0;
  for (const m of mine) {
    if (m.status?.phase !== "Failed") break;
    failures++;
  }
  const newest = mine[0];
  if (failures === 0 || !newest) return { remainingMs: 0, failures };
  const backoff = EVACUATION_BACKOFF_MS * 2 ** (failures - 1);
  return { remainingMs: Math.max(0, endedAtMs(newest) + backoff - nowMs), failures };
}

/** KubeVirt's GenerateNewMigration. */
export function evacuationMigration(vmi: Vmi, node: string): Vmim {
  const descheduler = vmi.metadata.annotations?.[Evacuation.evictionSourceAnnotation] === "descheduler";
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: {
      generateName: Evacuation.migrationGenerateName,
      namespace: vmi.metadata.namespace ?? "default",
      annotations: { [Evacuation.migrationAnnotation]: node },
    },
    spec: { vmiName: vmi.metadata.name ?? "", priority: descheduler ? "system-maintenance" : "system-critical" },
  };
}

export function planEvacuation(w: EvacuationWorld): EvacuationPlan {
  const nodeName = w.node.metadata.name ?? "";
  const actions: EvacuationAction[] = [];
  const notMigratable: string[] = [];
  const cfg = w.config;
  const clusterStrategy = cfg.evictionStrategy as EvictionStrategy | undefined;
  const onNode = w.vmis.filter((v) => v.status?.nodeName === nodeName);

  for (const vmi of onNode) {
    const mark = vmi.status?.evacuationNodeName;
    if (mark && mark !== nodeName)
      actions.push({
        kind: "clearEvacuation",
        namespace: vmi.metadata.namespace ?? "",
        name: vmi.metadata.name ?? "",
        uid: vmi.metadata.uid ?? "",
      });
  }

  const taintKey = cfg.migrations?.nodeDrainTaintKey || "kubevirt.io/drain";
  const tainted = hasDrainTaint(w.node, taintKey);
  const toMigrate = tainted
    ? onNode
    : onNode.filter((v) => v.status?.evacuationNodeName === nodeName && !isMigrating(v));
  if (toMigrate.length === 0) return { actions, notMigratable, waiting: 0, backingOff: [] };

  const unfinished = w.migrations.filter((m) => !isFinishedMigration(m));
  const migrating = new Set(unfinished.map((m) => `${m.metadata.namespace}/${m.spec.vmiName}`));
  const candidates: Vmi[] = [];
  const backingOff: EvacuationPlan["backingOff"] = [];
  for (const vmi of toMigrate) {
    const phase = vmi.status?.phase;
    if (phase === "Succeeded" || phase === "Failed" || vmi.metadata.deletionTimestamp) continue;
    const migratable = isLiveMigratable(vmi);
    if (!migratesOnEviction(vmiEvictionStrategy(vmi, clusterStrategy), migratable)) continue;
    if (!migratable) {
      notMigratable.push(`${vmi.metadata.namespace}/${vmi.metadata.name}`);
      continue;
    }
    if (migrating.has(`${vmi.metadata.namespace}/${vmi.metadata.name}`)) continue;
    if (activePods(vmi, w.pods) > 1) continue;
    const b = evacuationBackoff(vmi, w.migrations, w.nowMs);
    if (b.remainingMs > 0) {
      backingOff.push({ vmi: `${vmi.metadata.namespace}/${vmi.metadata.name}`, ...b });
      continue;
    }
    candidates.push(vmi);
  }

  const onNodeNames = new Set(onNode.map((v) => `${v.metadata.namespace}/${v.metadata.name}`));
  const fromNode = unfinished.filter((m) => onNodeNames.has(`${m.metadata.namespace}/${m.spec.vmiName}`)).length;
  const perCluster = cfg.migrations?.parallelMigrationsPerCluster ?? 5;
  const perNode = cfg.migrations?.parallelOutboundMigrationsPerNode ?? 2;
  const room = Math.max(0, Math.min(perCluster - unfinished.length, perNode - fromNode));
  const chosen = candidates.slice(0, room);
  for (const vmi of chosen) {
    actions.push({
      kind: "createMigration",
      migration: evacuationMigration(vmi, nodeName),
      vmi: { namespace: vmi.metadata.namespace ?? "", name: vmi.metadata.name ?? "" },
    });
  }
  return { actions, notMigratable, waiting: candidates.length - chosen.length, backingOff };
}
