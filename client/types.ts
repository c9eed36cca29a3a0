// The object types the client, controllers and virtctl read and write: api/'s TypeBox types (`Static<>`), the one
// source. Top-level objects are as the API server serves them: metadata is always there (and a Pod's spec).
import type * as api from "../api/index.js";

export type {
  Affinity,
  Binding,
  Condition,
  Container,
  ContainerStatus,
  Disk,
  DomainSpec,
  KList,
  KObject,
  LabelSelector as LabelSelectorObject,
  ListMeta,
  MigrationState,
  NodeCondition,
  NodeSelectorRequirement,
  NodeSelectorTerm,
  ObjectMeta,
  ObjectReference,
  OwnerReference,
  PhaseTransitionTimestamp,
  PodAffinity,
  PodAffinityTerm,
  PodPhase,
  PodSpec,
  PodStatus,
  PrintableStatus,
  ResourceList,
  ResourceRequirements,
  RunStrategy,
  StateChangeRequest,
  Taint,
  Toleration,
  VirtualMachineInstanceSpec as VmiSpec,
  VirtualMachineInstanceStatus as VmiStatus,
  VirtualMachineStatus,
  VmiPhase,
  Volume,
  WatchEvent,
  WatchEventType,
} from "../api/index.js";

type Stored<T> = T & { metadata: api.ObjectMeta };

export type VirtualMachineInstance = Stored<api.VirtualMachineInstance>;
export type VirtualMachine = Stored<api.VirtualMachine>;
export type VirtualMachineInstanceReplicaSet = Stored<api.VirtualMachineInstanceReplicaSet>;
export type VirtualMachineInstanceMigration = Stored<api.VirtualMachineInstanceMigration>;
export type Pod = Stored<api.Pod> & { spec: api.PodSpec };
export type Node = Stored<api.Node>;
export type Event = Stored<api.Event>;
export type PersistentVolumeClaim = Stored<api.PersistentVolumeClaim> & { spec: api.PersistentVolumeClaimSpec };
export type PersistentVolume = Stored<api.PersistentVolume> & { spec: api.PersistentVolumeSpec };
export type StorageClass = Stored<api.StorageClass>;
export type DataVolume = Stored<api.DataVolume>;
export type CSIStorageCapacity = Stored<api.CSIStorageCapacity>;
export type Lease = Stored<api.Lease> & { spec: NonNullable<api.Lease["spec"]> };
export type CDIConfig = Stored<api.CDIConfig>;
export type MigrationPolicy = Stored<api.MigrationPolicy>;
