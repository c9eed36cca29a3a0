// kubevirt.io/v1 VirtualMachine, VirtualMachineInstanceReplicaSet, VirtualMachineInstanceMigration.
import { type Static, Type } from "@sinclair/typebox";
import { DataVolumeSpec, DataVolumeStatus } from "../../cdi/v1beta1/datavolume.js";
import { Condition, LabelSelector, ObjectMeta, TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Embedded, Enum, Int32, Int64, ListOf, Str, StrMap, Struct, Time } from "../../meta/v1/schema.js";
import { Disk, VirtualMachineInstanceTemplateSpec } from "./vmi.js";

export const RUN_STRATEGIES = ["Always", "Halted", "Manual", "RerunOnFailure", "Once", "WaitAsReceiver"] as const;
export const RunStrategy = Enum(RUN_STRATEGIES);
export type RunStrategy = Static<typeof RunStrategy>;

export const DataVolumeTemplateSpec = Embedded(
  Struct({ apiVersion: Str, kind: Str, metadata: ObjectMeta, spec: DataVolumeSpec, status: DataVolumeStatus }, [
    "spec",
  ]),
);

const Matcher = {
  name: Str,
  kind: Str,
  revisionName: Str,
  inferFromVolume: Str,
  inferFromVolumeFailurePolicy: Str,
};
export const InstancetypeMatcher = Struct({ ...Matcher, matchExpressionsFromInstancetype: Bool });
export const PreferenceMatcher = Struct(Matcher);

export const VirtualMachineSpec = Struct(
  {
    running: Bool,
    runStrategy: RunStrategy,
    instancetype: Struct({
      name: Str,
      kind: Str,
      revisionName: Str,
      inferFromVolume: Str,
      inferFromVolumeFailurePolicy: Str,
    }),
    preference: PreferenceMatcher,
    template: VirtualMachineInstanceTemplateSpec,
    dataVolumeTemplates: ListOf(DataVolumeTemplateSpec),
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

export const VirtualMachineStatus = Struct({
  snapshotInProgress: Str,
  restoreInProgress: Str,
  created: Bool,
  ready: Bool,
  printableStatus: PrintableStatus,
  conditions: ListOf(Condition),
  stateChangeRequests: ListOf(StateChangeRequest),
  volumeRequests: ListOf(
    Struct({
      addVolumeOptions: Struct({ name: Str, disk: Disk, volumeSource: Type.Any(), dryRun: ListOf(Str) }, [
        "name",
        "disk",
        "volumeSource",
      ]),
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
  volumeUpdateState: Type.Any(),
  instancetypeRef: Type.Any(),
  preferenceRef: Type.Any(),
  changedBlockTracking: Type.Any(),
});
export type VirtualMachineStatus = Static<typeof VirtualMachineStatus>;

export const VirtualMachine = Struct({ ...TypeMeta, spec: VirtualMachineSpec, status: VirtualMachineStatus }, ["spec"]);
export type VirtualMachine = Static<typeof VirtualMachine>;

// ---- VirtualMachineInstanceReplicaSet ----

export const VirtualMachineInstanceReplicaSetSpec = Struct(
  { replicas: Int32, selector: LabelSelector, template: VirtualMachineInstanceTemplateSpec, paused: Bool },
  ["selector", "template"],
);
export const VirtualMachineInstanceReplicaSetStatus = Struct({
  replicas: Int32,
  readyReplicas: Int32,
  conditions: ListOf(Condition),
  labelSelector: Str,
});
export const VirtualMachineInstanceReplicaSet = Struct(
  { ...TypeMeta, spec: VirtualMachineInstanceReplicaSetSpec, status: VirtualMachineInstanceReplicaSetStatus },
  ["spec"],
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
  conditions: ListOf(Condition),
  phaseTransitionTimestamps: ListOf(Struct({ phase: MigrationPhase, phaseTransitionTimestamp: Time })),
  migrationState: Type.Any(),
  synchronizationAddresses: ListOf(Str),
});
export const VirtualMachineInstanceMigration = Struct(
  { ...TypeMeta, spec: VirtualMachineInstanceMigrationSpec, status: VirtualMachineInstanceMigrationStatus },
  ["spec"],
);
export type VirtualMachineInstanceMigration = Static<typeof VirtualMachineInstanceMigration>;
