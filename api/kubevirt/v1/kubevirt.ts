// kubevirt.io/v1 KubeVirt: the cluster's KubeVirt settings (one object, `kubevirt/kubevirt`). Field names follow
// KubeVirt's KubeVirtSpec/KubeVirtConfiguration (staging/src/kubevirt.io/api/core/v1/types.go); the parts tsvirt
// has no use for (install placement, certificates, host devices ...) are kept as sent. Components read
// `spec.configuration` live, merged over defaultConfiguration() as KubeVirt's virt-config does.
import type { Static } from "@sinclair/typebox";
import { applyMergePatch } from "../../../lib/mergepatch.js";
import { LabelSelector, TypeMeta } from "../../meta/v1/object-meta.js";
import {
  Bool,
  Enum,
  Int32,
  Int64,
  ListOf,
  MapOf,
  Preserve,
  Quantity,
  Str,
  StrMap,
  Struct,
} from "../../meta/v1/schema.js";
import { KubevirtCondition } from "./vmi.js";

export const MigrationConfiguration = Struct({
  parallelMigrationsPerCluster: Int64,
  parallelOutboundMigrationsPerNode: Int64,
  bandwidthPerMigration: Quantity,
  completionTimeoutPerGiB: Int64,
  progressTimeout: Int64,
  unsafeMigrationOverride: Bool,
  allowAutoConverge: Bool,
  allowPostCopy: Bool,
  allowWorkloadDisruption: Bool,
  disableTLS: Bool,
  network: Str,
  matchSELinuxLevelOnMigration: Bool,
  nodeDrainTaintKey: Str,
  maxDowntimeMs: Int64,
  utilityVolumesTimeout: Int64,
});
export type MigrationConfiguration = Static<typeof MigrationConfiguration>;

export const LiveUpdateConfiguration = Struct({ maxHotplugRatio: Int64, maxCpuSockets: Int64, maxGuest: Quantity });
export type LiveUpdateConfiguration = Static<typeof LiveUpdateConfiguration>;

export const LogVerbosity = Struct({
  virtAPI: Int64,
  virtController: Int64,
  virtHandler: Int64,
  virtLauncher: Int64,
  virtOperator: Int64,
  virtSynchronizationController: Int64,
  nodeVerbosity: MapOf(Int64),
});

export const DeveloperConfiguration = Struct({
  featureGates: ListOf(Str),
  disabledFeatureGates: ListOf(Str),
  pvcTolerateLessSpaceUpToPercent: Int32,
  minimumReservePVCBytes: Int64,
  memoryOvercommit: Int32,
  nodeSelectors: StrMap,
  useEmulation: Bool,
  cpuAllocationRatio: Int32,
  minimumClusterTSCFrequency: Int64,
  diskVerification: Struct({ memoryLimit: Quantity }),
  logVerbosity: LogVerbosity,
  clusterProfiler: Bool,
});
export type DeveloperConfiguration = Static<typeof DeveloperConfiguration>;

export const NetworkConfiguration = Struct({
  defaultNetworkInterface: Str,
  permitSlirpInterface: Bool,
  permitBridgeInterfaceOnPodNetwork: Bool,
  binding: MapOf(Preserve()),
});

export const EVICTION_STRATEGIES = ["None", "LiveMigrate", "LiveMigrateIfPossible", "External"] as const;
export const VM_ROLLOUT_STRATEGIES = ["Stage", "LiveUpdate"] as const;

export const KubeVirtConfiguration = Struct({
  cpuModel: Str,
  cpuRequest: Quantity,
  developerConfiguration: DeveloperConfiguration,
  emulatedMachines: ListOf(Str),
  imagePullPolicy: Enum(["Always", "IfNotPresent", "Never"] as const),
  migrations: MigrationConfiguration,
  machineType: Str,
  network: NetworkConfiguration,
  ovmfPath: Str,
  selinuxLauncherType: Str,
  defaultRuntimeClass: Str,
  smbios: Struct({ manufacturer: Str, product: Str, version: Str, sku: Str, family: Str }),
  architectureConfiguration: Preserve(),
  evictionStrategy: Enum(EVICTION_STRATEGIES),
  additionalGuestMemoryOverheadRatio: Str,
  supportContainerResources: ListOf(Preserve()),
  supportedGuestAgentVersions: ListOf(Str),
  memBalloonStatsPeriod: Int64,
  permittedHostDevices: Preserve(),
  mediatedDevicesConfiguration: Preserve(),
  minCPUModel: Str,
  obsoleteCPUModels: MapOf(Bool),
  virtualMachineInstancesPerNode: Int64,
  apiConfiguration: Preserve(),
  webhookConfiguration: Preserve(),
  controllerConfiguration: Preserve(),
  handlerConfiguration: Preserve(),
  tlsConfiguration: Struct({ minTLSVersion: Str, ciphers: ListOf(Str) }),
  seccompConfiguration: Preserve(),
  vmStateStorageClass: Str,
  virtualMachineOptions: Preserve(),
  ksmConfiguration: Preserve(),
  autoCPULimitNamespaceLabelSelector: LabelSelector,
  liveUpdateConfiguration: LiveUpdateConfiguration,
  vmRolloutStrategy: Enum(VM_ROLLOUT_STRATEGIES),
  commonInstancetypesDeployment: Struct({ enabled: Bool }),
  instancetype: Struct({ referencePolicy: Str }),
});
export type KubeVirtConfiguration = Static<typeof KubeVirtConfiguration>;

export const KubeVirtSpec = Struct({
  imageTag: Str,
  imageRegistry: Str,
  imagePullPolicy: Str,
  imagePullSecrets: ListOf(Struct({ name: Str })),
  monitorNamespace: Str,
  serviceMonitorNamespace: Str,
  monitorAccount: Str,
  selfSignConfiguration: Preserve(),
  certificateRotateStrategy: Preserve(),
  productVersion: Str,
  productName: Str,
  productComponent: Str,
  configuration: KubeVirtConfiguration,
  infra: Preserve(),
  workloads: Preserve(),
  customizeComponents: Preserve(),
  workloadUpdateStrategy: Struct({
    workloadUpdateMethods: ListOf(Str),
    batchEvictionSize: Int64,
    batchEvictionInterval: Str,
  }),
  uninstallStrategy: Str,
  synchronizationPort: Str,
});

export const KubeVirtStatus = Struct({
  phase: Str,
  conditions: ListOf(KubevirtCondition),
  operatorVersion: Str,
  targetKubeVirtVersion: Str,
  targetKubeVirtRegistry: Str,
  targetDeploymentConfig: Str,
  targetDeploymentID: Str,
  observedKubeVirtVersion: Str,
  observedKubeVirtRegistry: Str,
  observedDeploymentConfig: Str,
  observedDeploymentID: Str,
  outdatedVirtualMachineInstanceWorkloads: Int64,
  observedGeneration: Int64,
  defaultArchitecture: Str,
  generations: ListOf(Preserve()),
});

export const KubeVirt = Struct({ ...TypeMeta, spec: KubeVirtSpec, status: KubeVirtStatus }, ["spec"], {
  description: "The cluster's KubeVirt settings; tsvirt honours the object kubevirt/kubevirt.",
});
export type KubeVirt = Static<typeof KubeVirt>;

/** The one KubeVirt object components read (KubeVirt honours only one; tsvirt names it). */
export const KUBEVIRT_NAME = "kubevirt";

// Defaults as KubeVirt's virt-config (pkg/virt-config/virt-config.go) sets them, for the fields tsvirt knows.
// network.defaultNetworkInterface differs: KubeVirt's is bridge, tsvirt's embedded pod network implements
// masquerade.

/** The configuration every component assumes when the KubeVirt object leaves a field unset. */
export function defaultConfiguration(): KubeVirtConfiguration {
  return {
    cpuRequest: "100m",
    machineType: "q35",
    memBalloonStatsPeriod: 10,
    imagePullPolicy: "IfNotPresent",
    evictionStrategy: "None",
    vmRolloutStrategy: "LiveUpdate",
    migrations: {
      parallelMigrationsPerCluster: 5,
      parallelOutboundMigrationsPerNode: 2,
      bandwidthPerMigration: "0Mi",
      completionTimeoutPerGiB: 150,
      progressTimeout: 150,
      unsafeMigrationOverride: false,
      allowAutoConverge: false,
      allowPostCopy: false,
      disableTLS: false,
      matchSELinuxLevelOnMigration: false,
      nodeDrainTaintKey: "kubevirt.io/drain",
      maxDowntimeMs: 900,
      utilityVolumesTimeout: 150,
    },
    liveUpdateConfiguration: { maxHotplugRatio: 4 },
    developerConfiguration: {
      featureGates: [],
      disabledFeatureGates: [],
      pvcTolerateLessSpaceUpToPercent: 10,
      minimumReservePVCBytes: 131072,
      memoryOvercommit: 100,
      useEmulation: false,
      cpuAllocationRatio: 10,
      logVerbosity: { virtAPI: 2, virtController: 2, virtHandler: 2, virtLauncher: 2, virtOperator: 2 },
    },
    network: { defaultNetworkInterface: "masquerade", permitBridgeInterfaceOnPodNetwork: true },
  };
}

/**
 * The configuration in effect: the object's spec.configuration merged over the defaults (no object: the
 * defaults). allowWorkloadDisruption follows allowPostCopy when unset, as in KubeVirt.
 */
export function effectiveConfiguration(kv: { spec?: { configuration?: unknown } } | undefined): KubeVirtConfiguration {
  const cfg = applyMergePatch<KubeVirtConfiguration>(defaultConfiguration(), kv?.spec?.configuration ?? {});
  const m = cfg.migrations ?? {};
  if (m.allowWorkloadDisruption === undefined) m.allowWorkloadDisruption = m.allowPostCopy ?? false;
  cfg.migrations = m;
  return cfg;
}

/** Whether a feature gate is on: listed in featureGates and not in disabledFeatureGates. */
export function featureGateEnabled(cfg: KubeVirtConfiguration, gate: string): boolean {
  const dev = cfg.developerConfiguration ?? {};
  return (dev.featureGates ?? []).includes(gate) && !(dev.disabledFeatureGates ?? []).includes(gate);
}

/** The object `tsvirt up` (the API server's first start) creates: KubeVirt's shipped CR. */
export function defaultKubeVirt(namespace: string): KubeVirt {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "KubeVirt",
    metadata: { name: KUBEVIRT_NAME, namespace },
    spec: {
      certificateRotateStrategy: {},
      workloadUpdateStrategy: {},
      configuration: { developerConfiguration: { featureGates: [] } },
    },
  };
}
