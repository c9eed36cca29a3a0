// snapshot.kubevirt.io/v1beta1 VirtualMachineSnapshot, VirtualMachineSnapshotContent, VirtualMachineRestore.
// Hand-written and closed like KubeVirt's OpenAPI (compared in api/kubevirt/v1/openapi-compare.test.ts).
import type { Static } from "@sinclair/typebox";
import { PersistentVolumeClaimSpec, TypedLocalObjectReference } from "../../core/v1/common.js";
import { VirtualMachineSpec, VirtualMachineStatus } from "../../kubevirt/v1/vm.js";
import { KubevirtCondition } from "../../kubevirt/v1/vmi.js";
import { ObjectMeta, TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Enum, ListOf, Str, StrMap, Struct, Time } from "../../meta/v1/schema.js";

export const SnapshotError = Struct({ time: Time, message: Str });

export const SNAPSHOT_PHASES = ["", "InProgress", "Succeeded", "Failed", "Deleting", "Unknown"] as const;

export const VirtualMachineSnapshot = Struct(
  {
    ...TypeMeta,
    spec: Struct({ source: TypedLocalObjectReference, deletionPolicy: Str, failureDeadline: Str }, ["source"]),
    status: Struct({
      sourceUID: Str,
      virtualMachineSnapshotContentName: Str,
      creationTime: Time,
      phase: Enum(SNAPSHOT_PHASES),
      readyToUse: Bool,
      error: SnapshotError,
      conditions: ListOf(KubevirtCondition),
      indications: ListOf(Str),
      sourceIndications: ListOf(Struct({ indication: Str, message: Str }, ["indication", "message"])),
      snapshotVolumes: Struct({ includedVolumes: ListOf(Str), excludedVolumes: ListOf(Str) }),
    }),
  },
  ["spec"],
);
export type VirtualMachineSnapshot = Static<typeof VirtualMachineSnapshot>;

export const VolumeBackup = Struct(
  {
    volumeName: Str,
    persistentVolumeClaim: Struct({ metadata: ObjectMeta, spec: PersistentVolumeClaimSpec }),
    volumeSnapshotName: Str,
  },
  ["volumeName", "persistentVolumeClaim"],
);

export const VirtualMachineSnapshotContent = Struct(
  {
    ...TypeMeta,
    spec: Struct(
      {
        source: Struct({
          virtualMachine: Struct({ metadata: ObjectMeta, spec: VirtualMachineSpec, status: VirtualMachineStatus }),
        }),
        virtualMachineSnapshotName: Str,
        volumeBackups: ListOf(VolumeBackup),
      },
      ["source"],
    ),
    status: Struct({
      creationTime: Time,
      readyToUse: Bool,
      error: SnapshotError,
      volumeSnapshotStatus: ListOf(
        Struct({ volumeSnapshotName: Str, creationTime: Time, readyToUse: Bool, error: SnapshotError }, [
          "volumeSnapshotName",
        ]),
      ),
    }),
  },
  ["spec"],
);
export type VirtualMachineSnapshotContent = Static<typeof VirtualMachineSnapshotContent>;

export const VirtualMachineRestore = Struct(
  {
    ...TypeMeta,
    spec: Struct(
      {
        target: TypedLocalObjectReference,
        virtualMachineSnapshotName: Str,
        patches: ListOf(Str),
        targetReadinessPolicy: Str,
        volumeRestorePolicy: Str,
        volumeOwnershipPolicy: Str,
        volumeRestoreOverrides: ListOf(
          Struct({ volumeName: Str, restoreName: Str, labels: StrMap, annotations: StrMap }),
        ),
      },
      ["target", "virtualMachineSnapshotName"],
    ),
    status: Struct({
      restores: ListOf(
        Struct({ volumeName: Str, persistentVolumeClaim: Str, volumeSnapshotName: Str, dataVolumeName: Str }, [
          "volumeName",
          "persistentVolumeClaim",
          "volumeSnapshotName",
        ]),
      ),
      restoreTime: Time,
      deletedDataVolumes: ListOf(Str),
      complete: Bool,
      conditions: ListOf(KubevirtCondition),
    }),
  },
  ["spec"],
);
export type VirtualMachineRestore = Static<typeof VirtualMachineRestore>;
