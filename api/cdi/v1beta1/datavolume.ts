// cdi.kubevirt.io/v1beta1 DataVolume (containerized-data-importer-api core/v1beta1 types.go).
import type { Static } from "@sinclair/typebox";
import { PersistentVolumeClaimSpec, TypedLocalObjectReference, TypedObjectReference } from "../../core/v1/common.js";
import { LabelSelector, TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Enum, Int32, ListOf, QuantityMap, Str, Struct, Time } from "../../meta/v1/schema.js";

const CertRefs = { secretRef: Str, certConfigMap: Str };
export const DataVolumeSource = Struct({
  http: Struct(
    {
      url: Str,
      ...CertRefs,
      extraHeaders: ListOf(Str),
      secretExtraHeaders: ListOf(Str),
      // CDI v1.65's "<md5|sha1|sha256|sha512>:<hex>" of the file as served (CDI PR #4010), verified before Succeeded
      checksum: Str,
    },
    ["url"],
  ),
  s3: Struct({ url: Str, ...CertRefs }, ["url"]),
  gcs: Struct({ url: Str, secretRef: Str }, ["url"]),
  registry: Struct({
    url: Str,
    imageStream: Str,
    pullMethod: Str,
    ...CertRefs,
    platform: Struct({ architecture: Str }),
  }),
  pvc: Struct({ namespace: Str, name: Str }, ["namespace", "name"]),
  upload: Struct({}),
  blank: Struct({}),
  imageio: Struct({ url: Str, diskId: Str, ...CertRefs, insecureSkipVerify: Bool }, ["url", "diskId"]),
  vddk: Struct({
    url: Str,
    uuid: Str,
    backingFile: Str,
    thumbprint: Str,
    secretRef: Str,
    initImageURL: Str,
    extraArgs: Str,
  }),
  snapshot: Struct({ namespace: Str, name: Str }, ["namespace", "name"]),
});

export const StorageSpec = Struct({
  accessModes: ListOf(Str),
  selector: LabelSelector,
  resources: Struct({ limits: QuantityMap, requests: QuantityMap }),
  volumeName: Str,
  storageClassName: Str,
  volumeMode: Str,
  dataSource: TypedLocalObjectReference,
  dataSourceRef: TypedObjectReference,
});

export const DataVolumeSpec = Struct({
  source: DataVolumeSource,
  sourceRef: Struct({ kind: Str, namespace: Str, name: Str }, ["kind", "name"]),
  pvc: PersistentVolumeClaimSpec,
  storage: StorageSpec,
  priorityClassName: Str,
  contentType: Str,
  checkpoints: ListOf(Struct({ previous: Str, current: Str }, ["previous", "current"])),
  finalCheckpoint: Bool,
  preallocation: Bool,
});
export type DataVolumeSpec = Static<typeof DataVolumeSpec>;

export const DataVolumePhase = Enum([
  "",
  "Pending",
  "PVCBound",
  "ImportScheduled",
  "ImportInProgress",
  "CloneScheduled",
  "CloneInProgress",
  "SnapshotForSmartCloneInProgress",
  "CloneFromSnapshotSourceInProgress",
  "SmartClonePVCInProgress",
  "CSICloneInProgress",
  "ExpansionInProgress",
  "NamespaceTransferInProgress",
  "UploadScheduled",
  "UploadReady",
  "WaitForFirstConsumer",
  "PendingPopulation",
  "Succeeded",
  "Failed",
  "Unknown",
  "Paused",
  "PrepClaimInProgress",
  "RebindInProgress",
] as const);
export type DataVolumePhase = Static<typeof DataVolumePhase>;

export const DataVolumeCondition = Struct(
  { type: Str, status: Str, lastHeartbeatTime: Time, lastTransitionTime: Time, reason: Str, message: Str },
  ["type", "status"],
);
export type DataVolumeCondition = Static<typeof DataVolumeCondition>;

export const DataVolumeStatus = Struct({
  claimName: Str,
  phase: DataVolumePhase,
  progress: Str,
  restartCount: Int32,
  conditions: ListOf(DataVolumeCondition),
});

export type DataVolumeStatus = Static<typeof DataVolumeStatus>;

export const DataVolume = Struct({ ...TypeMeta, spec: DataVolumeSpec, status: DataVolumeStatus }, ["spec"]);
export type DataVolume = Static<typeof DataVolume>;
