// storage.k8s.io/v1 StorageClass and CSIStorageCapacity, and the well-known names of Kubernetes' volume binding that
// tsvirt's binder, provisioner and scheduler share. Hand-written and closed.
import type { Static } from "@sinclair/typebox";
import { LabelSelector, TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Enum, ListOf, Quantity, Str, StrMap, Struct } from "../../meta/v1/schema.js";

export const PERSISTENT_VOLUME_RECLAIM_POLICIES = ["Delete", "Retain", "Recycle"] as const;
export const VOLUME_BINDING_MODES = ["Immediate", "WaitForFirstConsumer"] as const;
export type VolumeBindingMode = (typeof VOLUME_BINDING_MODES)[number];

export const TopologySelectorTerm = Struct({
  matchLabelExpressions: ListOf(Struct({ key: Str, values: ListOf(Str) }, ["key", "values"])),
});

export const StorageClass = Struct(
  {
    ...TypeMeta,
    provisioner: Str,
    parameters: StrMap,
    reclaimPolicy: Enum(PERSISTENT_VOLUME_RECLAIM_POLICIES),
    mountOptions: ListOf(Str),
    allowVolumeExpansion: Bool,
    volumeBindingMode: Enum(VOLUME_BINDING_MODES),
    allowedTopologies: ListOf(TopologySelectorTerm),
  },
  ["provisioner"],
);
export type StorageClass = Static<typeof StorageClass>;

/** The free space of one storage class in one topology segment (here: one node), as a provisioner publishes it. */
export const CSIStorageCapacity = Struct(
  {
    ...TypeMeta,
    nodeTopology: LabelSelector,
    storageClassName: Str,
    capacity: Quantity,
    maximumVolumeSize: Quantity,
  },
  ["storageClassName"],
);
export type CSIStorageCapacity = Static<typeof CSIStorageCapacity>;

/** Annotations and labels of Kubernetes' volume binding (k8s pkg/controller/volume/persistentvolume/util). */
export const StorageAnnotations = {
  /** StorageClass: the class PVCs without storageClassName get. */
  isDefaultClass: "storageclass.kubernetes.io/is-default-class",
  /** PVC: the node the scheduler chose for a WaitForFirstConsumer claim. */
  selectedNode: "volume.kubernetes.io/selected-node",
  /** PVC: the provisioner expected to provision it. */
  storageProvisioner: "volume.kubernetes.io/storage-provisioner",
  /** PVC: binding finished (set by the binder). */
  bindCompleted: "pv.kubernetes.io/bind-completed",
  /** PVC and PV: the binder, not the user, set volumeName/claimRef. */
  boundByController: "pv.kubernetes.io/bound-by-controller",
  /** PV: the provisioner that made it (its deleter). */
  provisionedBy: "pv.kubernetes.io/provisioned-by",
} as const;
