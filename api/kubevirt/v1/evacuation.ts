// KubeVirt's names for node drain: the pod-eviction webhook marks a VMI for evacuation, the evacuation controller
// migrates it away (pkg/virt-api/webhooks/validating-webhook/admitters/pod-eviction-admitter.go,
// pkg/virt-controller/watch/drain/evacuation/evacuation.go, api/core/v1 types.go).
import type { EvictionStrategy } from "./vmi.js";

export const Evacuation = {
  /** The name KubeVirt registers its eviction webhook under (the descheduler matches its messages). */
  webhookName: "virt-launcher-eviction-interceptor.kubevirt.io",
  /** On a VMIM the evacuation controller created: the node it evacuates (virtv1.EvacuationMigrationAnnotation). */
  migrationAnnotation: "kubevirt.io/evacuationMigration",
  /** generateName of those VMIMs. */
  migrationGenerateName: "kubevirt-evacuation-",
  /** On a VMI: who asked for the eviction ("descheduler"); its migration then gets priority system-maintenance. */
  evictionSourceAnnotation: "kubevirt.io/eviction-source",
  /** On an Eviction: the component that sent it; the descheduler sets it to requestedByDescheduler. */
  requestedByAnnotation: "requested-by",
  requestedByDescheduler: "sigs.k8s.io/descheduler",
} as const;

/** migrations.VMIEvictionStrategy: the VMI's own strategy, else the cluster's (KubeVirt object), else None. */
export function vmiEvictionStrategy(
  vmi: { spec?: { evictionStrategy?: EvictionStrategy | undefined } | undefined },
  clusterStrategy: EvictionStrategy | undefined,
): EvictionStrategy {
  return vmi.spec?.evictionStrategy ?? clusterStrategy ?? "None";
}

/** vmi.IsMigratable(): the LiveMigratable condition is True. */
export function isLiveMigratable(vmi: {
  status?: { conditions?: readonly { type: string; status: string }[] | undefined } | undefined;
}): boolean {
  return (vmi.status?.conditions ?? []).some((c) => c.type === "LiveMigratable" && c.status === "True");
}

/** migrations.VMIMigratableOnEviction: the strategy asks for a live migration (LiveMigrateIfPossible: if it can). */
export function migratesOnEviction(strategy: EvictionStrategy, liveMigratable: boolean): boolean {
  return strategy === "LiveMigrate" || (strategy === "LiveMigrateIfPossible" && liveMigratable);
}
