// kubevirt.io/v1 VirtualMachine, VirtualMachineInstanceReplicaSet, VirtualMachineInstanceMigration.
import type { Static } from "@sinclair/typebox";
import { DataVolumeSpec } from "../../cdi/v1beta1/datavolume.js";
import { LabelSelector, ObjectMeta, TypeMeta } from "../../meta/v1/object-meta.js";
import {
  Bool,
  Describe,
  Embedded,
  Enum,
  Int32,
  Int64,
  ListOf,
  Str,
  StrMap,
  Struct,
  Time,
} from "../../meta/v1/schema.js";
import {
  ChangedBlockTrackingStatus,
  Disk,
  KubevirtCondition,
  MigrationState,
  StorageMigratedVolumeInfo,
  VirtualMachineInstanceTemplateSpec,
} from "./vmi.js";

export const RUN_STRATEGIES = ["Always", "Halted", "Manual", "RerunOnFailure", "Once", "WaitAsReceiver"] as const;
export const RunStrategy = Enum(RUN_STRATEGIES);
export type RunStrategy = Static<typeof RunStrategy>;

export const DataVolumeTemplateSpec = Embedded(
  Struct(
    {
      apiVersion: Str,
      kind: Str,
      metadata: ObjectMeta,
      spec: DataVolumeSpec,
      /** DataVolumeTemplateDummyStatus: kept only for compatibility with an old API. */
      status: Struct({}, [], { nullable: true }),
    },
    ["spec"],
  ),
);
export type DataVolumeTemplateSpec = Static<typeof DataVolumeTemplateSpec>;

const Matcher = {
  name: Str,
  kind: Str,
  revisionName: Str,
  inferFromVolume: Str,
  inferFromVolumeFailurePolicy: Str,
};
export const InstancetypeMatcher = Struct(Matcher);
export const PreferenceMatcher = Struct(Matcher);

export const VirtualMachineSpec = Struct(
  {
    running: Describe(
      Bool,
      "Deprecated: true means runStrategy Always, false means Halted. Exclusive with runStrategy.",
    ),
    runStrategy: Describe(
      RunStrategy,
      "When a VirtualMachineInstance should run: Always, Halted (the default), Manual, RerunOnFailure, Once, WaitAsReceiver.",
    ),
    instancetype: InstancetypeMatcher,
    preference: PreferenceMatcher,
    template: Describe(VirtualMachineInstanceTemplateSpec, "The VirtualMachineInstance created when the VM runs."),
    dataVolumeTemplates: Describe(
      ListOf(DataVolumeTemplateSpec),
      "DataVolumes created with the VM and deleted with it; volumes refer to them by name.",
    ),
    updateVolumesStrategy: Str,
  },
  ["template"],
);
export type VirtualMachineSpec = Static<typeof VirtualMachineSpec>;

export const PRINTABLE_STATUSES = [
  "Stopped",
  "Provisioning",
  "Starting",
  "Running",
  "Paused",
  "Stopping",
  "Terminating",
  "CrashLoopBackOff",
  "Migrating",
  "Unknown",
  "ErrorUnschedulable",
  "ErrImagePull",
  "ImagePullBackOff",
  "ErrorPvcNotFound",
  "DataVolumeError",
  "WaitingForVolumeBinding",
  "WaitingForReceiver",
] as const;
export const PrintableStatus = Enum(PRINTABLE_STATUSES);
export type PrintableStatus = Static<typeof PrintableStatus>;

export const StateChangeRequest = Struct({ action: Enum(["Start", "Stop"] as const), data: StrMap, uid: Str }, [
  "action",
]);
export type StateChangeRequest = Static<typeof StateChangeRequest>;

const StatusRef = Struct({
  name: Str,
  kind: Str,
  controllerRevisionRef: Struct({ name: Str }),
  inferFromVolume: Str,
  inferFromVolumeFailurePolicy: Str,
});

export const VirtualMachineStatus = Struct({
  snapshotInProgress: Str,
  restoreInProgress: Str,
  created: Bool,
  ready: Bool,
  printableStatus: PrintableStatus,
  conditions: ListOf(KubevirtCondition),
  stateChangeRequests: ListOf(StateChangeRequest),
  volumeRequests: ListOf(
    Struct({
      addVolumeOptions: Struct(
        {
          name: Str,
          disk: Disk,
          volumeSource: Struct({
            dataVolume: Struct({ name: Str, hotpluggable: Bool }, ["name"]),
            persistentVolumeClaim: Struct({ claimName: Str, readOnly: Bool, hotpluggable: Bool }, ["claimName"]),
          }),
          dryRun: ListOf(Str),
        },
        ["name", "disk", "volumeSource"],
      ),
      removeVolumeOptions: Struct({ name: Str, dryRun: ListOf(Str) }, ["name"]),
    }),
  ),
  volumeSnapshotStatuses: ListOf(Struct({ name: Str, enabled: Bool, reason: Str }, ["name", "enabled"])),
  startFailure: Struct({ retryAfterTimestamp: Time, consecutiveFailCount: Int32, lastFailedVMIUID: Str }),
  memoryDumpRequest: Struct(
    { claimName: Str, phase: Str, remove: Bool, startTimestamp: Time, endTimestamp: Time, fileName: Str, message: Str },
    ["claimName", "phase"],
  ),
  observedGeneration: Int64,
  desiredGeneration: Int64,
  runStrategy: RunStrategy,
  volumeUpdateState: Struct({ volumeMigrationState: Struct({ migratedVolumes: ListOf(StorageMigratedVolumeInfo) }) }),
  instancetypeRef: StatusRef,
  preferenceRef: StatusRef,
  changedBlockTracking: ChangedBlockTrackingStatus,
});
export type VirtualMachineStatus = Static<typeof VirtualMachineStatus>;

export const VirtualMachine = Struct(
  { ...TypeMeta, spec: VirtualMachineSpec, status: VirtualMachineStatus },
  ["spec"],
  {
    description:
      "A virtual machine that outlives its runs: spec.runStrategy decides when a VirtualMachineInstance is created from spec.template.",
  },
);
export type VirtualMachine = Static<typeof VirtualMachine>;

// ---- VirtualMachineInstanceReplicaSet ----

export const VirtualMachineInstanceReplicaSetSpec = Struct(
  { replicas: Int32, selector: LabelSelector, template: VirtualMachineInstanceTemplateSpec, paused: Bool },
  ["selector", "template"],
);
export const VirtualMachineInstanceReplicaSetStatus = Struct({
  replicas: Int32,
  readyReplicas: Int32,
  conditions: ListOf(KubevirtCondition),
  labelSelector: Str,
});
export const VirtualMachineInstanceReplicaSet = Struct(
  { ...TypeMeta, spec: VirtualMachineInstanceReplicaSetSpec, status: VirtualMachineInstanceReplicaSetStatus },
  ["spec"],
  { description: "Keeps spec.replicas identical VirtualMachineInstances, made from spec.template, running." },
);
export type VirtualMachineInstanceReplicaSet = Static<typeof VirtualMachineInstanceReplicaSet>;

// ---- VirtualMachineInstanceMigration ----

export const MIGRATION_PHASES = [
  "",
  "Pending",
  "Scheduling",
  "Scheduled",
  "PreparingTarget",
  "TargetReady",
  "Running",
  "Succeeded",
  "Failed",
  "WaitingForSync",
  "Synchronizing",
] as const;
export const MigrationPhase = Enum(MIGRATION_PHASES);
export type MigrationPhase = Static<typeof MigrationPhase>;

export const VirtualMachineInstanceMigrationSpec = Struct({
  vmiName: Str,
  addedNodeSelector: StrMap,
  sendTo: Struct({ connectURL: Str, migrationID: Str }, ["connectURL", "migrationID"]),
  receive: Struct({ migrationID: Str }, ["migrationID"]),
  priority: Str,
});
export const VirtualMachineInstanceMigrationStatus = Struct({
  phase: MigrationPhase,
  conditions: ListOf(KubevirtCondition),
  phaseTransitionTimestamps: ListOf(Struct({ phase: Str, phaseTransitionTimestamp: Time })),
  migrationState: MigrationState,
  synchronizationAddresses: ListOf(Str),
});
export const VirtualMachineInstanceMigration = Struct(
  { ...TypeMeta, spec: VirtualMachineInstanceMigrationSpec, status: VirtualMachineInstanceMigrationStatus },
  ["spec"],
  {
    description: "A request to move the running VirtualMachineInstance spec.vmiName to another node (live migration).",
  },
);
export type VirtualMachineInstanceMigration = Static<typeof VirtualMachineInstanceMigration>;
