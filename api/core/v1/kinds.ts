// core/v1 kinds other than Pod: Node, Namespace, PersistentVolumeClaim, PersistentVolume, ConfigMap, Secret,
// ServiceAccount, Service, Event. Hand-written and closed.
import type { Static } from "@sinclair/typebox";
import { ConditionStatus, TypeMeta } from "../../meta/v1/object-meta.js";
import {
  Bool,
  Enum,
  Int32,
  Int64,
  IntOrString,
  ListOf,
  Preserve,
  QuantityMap,
  Str,
  StrMap,
  Struct,
  Time,
} from "../../meta/v1/schema.js";
import { PERSISTENT_VOLUME_RECLAIM_POLICIES } from "../../storage/v1/storage.js";
import {
  LocalObjectReference,
  NodeSelector,
  ObjectReference,
  PersistentVolumeAccessMode,
  PersistentVolumeClaimSpec,
  PersistentVolumeMode,
  Taint,
} from "./common.js";

const conditionBase = { type: Str, status: ConditionStatus, lastTransitionTime: Time, reason: Str, message: Str };
/** NodeCondition, NamespaceCondition, PersistentVolumeClaimCondition and metav1.Condition differ in their times. */
export const NodeCondition = Struct({ ...conditionBase, lastHeartbeatTime: Time }, ["type", "status"]);
export type NodeCondition = Static<typeof NodeCondition>;
export const NamespaceCondition = Struct(conditionBase, ["type", "status"]);
export const PersistentVolumeClaimCondition = Struct({ ...conditionBase, lastProbeTime: Time }, ["type", "status"]);
export const MetaV1Condition = Struct({ ...conditionBase, observedGeneration: Int64 }, ["type", "status"]);

export const NodeAddress = Struct({ type: Str, address: Str }, ["type", "address"]);
export type NodeAddress = Static<typeof NodeAddress>;
export const NodeSpec = Struct({
  podCIDR: Str,
  podCIDRs: ListOf(Str),
  providerID: Str,
  unschedulable: Bool,
  taints: ListOf(Taint),
  configSource: Preserve(),
  externalID: Str,
});
export const NodeSystemInfo = Struct({
  machineID: Str,
  systemUUID: Str,
  bootID: Str,
  kernelVersion: Str,
  osImage: Str,
  containerRuntimeVersion: Str,
  kubeletVersion: Str,
  kubeProxyVersion: Str,
  operatingSystem: Str,
  architecture: Str,
  swap: Preserve(),
});
export const NodeStatus = Struct({
  capacity: QuantityMap,
  allocatable: QuantityMap,
  phase: Str,
  conditions: ListOf(NodeCondition),
  addresses: ListOf(NodeAddress),
  daemonEndpoints: Struct({ kubeletEndpoint: Struct({ Port: Int32 }, ["Port"]) }),
  nodeInfo: NodeSystemInfo,
  images: ListOf(Struct({ names: ListOf(Str), sizeBytes: Int64 })),
  volumesInUse: ListOf(Str),
  volumesAttached: ListOf(Struct({ name: Str, devicePath: Str }, ["name", "devicePath"])),
  config: Preserve(),
  runtimeHandlers: ListOf(Preserve()),
  features: Preserve(),
});
export const Node = Struct({ ...TypeMeta, spec: NodeSpec, status: NodeStatus });
export type Node = Static<typeof Node>;
export type NodeStatus = Static<typeof NodeStatus>;

export const Namespace = Struct(
  {
    ...TypeMeta,
    spec: Struct({ finalizers: ListOf(Str) }),
    status: Struct({ phase: Enum(["Active", "Terminating"] as const), conditions: ListOf(NamespaceCondition) }),
  },
  [],
);
export type Namespace = Static<typeof Namespace>;

export const PersistentVolumeClaimStatus = Struct({
  phase: Enum(["Pending", "Bound", "Lost"] as const),
  accessModes: ListOf(PersistentVolumeAccessMode),
  capacity: QuantityMap,
  conditions: ListOf(PersistentVolumeClaimCondition),
  allocatedResources: QuantityMap,
  allocatedResourceStatuses: StrMap,
  currentVolumeAttributesClassName: Str,
  modifyVolumeStatus: Preserve(),
});
export const PersistentVolumeClaim = Struct(
  { ...TypeMeta, spec: PersistentVolumeClaimSpec, status: PersistentVolumeClaimStatus },
  [],
);
export type PersistentVolumeClaim = Static<typeof PersistentVolumeClaim>;

export const PersistentVolumeSpec = Struct({
  capacity: QuantityMap,
  accessModes: ListOf(PersistentVolumeAccessMode),
  claimRef: ObjectReference,
  persistentVolumeReclaimPolicy: Enum(PERSISTENT_VOLUME_RECLAIM_POLICIES),
  storageClassName: Str,
  mountOptions: ListOf(Str),
  volumeMode: PersistentVolumeMode,
  nodeAffinity: Struct({ required: NodeSelector }),
  volumeAttributesClassName: Str,
  hostPath: Struct({ path: Str, type: Str }, ["path"]),
  local: Struct({ path: Str, fsType: Str }, ["path"]),
  nfs: Struct({ server: Str, path: Str, readOnly: Bool }, ["server", "path"]),
  csi: Preserve(),
  // other in-tree volume sources: accepted and kept as sent
  awsElasticBlockStore: Preserve(),
  azureDisk: Preserve(),
  azureFile: Preserve(),
  cephfs: Preserve(),
  cinder: Preserve(),
  fc: Preserve(),
  flexVolume: Preserve(),
  flocker: Preserve(),
  gcePersistentDisk: Preserve(),
  glusterfs: Preserve(),
  iscsi: Preserve(),
  photonPersistentDisk: Preserve(),
  portworxVolume: Preserve(),
  quobyte: Preserve(),
  rbd: Preserve(),
  scaleIO: Preserve(),
  storageos: Preserve(),
  vsphereVolume: Preserve(),
});
export const PersistentVolume = Struct(
  {
    ...TypeMeta,
    spec: PersistentVolumeSpec,
    status: Struct({
      phase: Enum(["Pending", "Available", "Bound", "Released", "Failed"] as const),
      message: Str,
      reason: Str,
      lastPhaseTransitionTime: Time,
    }),
  },
  [],
);
export type PersistentVolume = Static<typeof PersistentVolume>;
export type PersistentVolumeSpec = Static<typeof PersistentVolumeSpec>;
export type PersistentVolumeClaimStatus = Static<typeof PersistentVolumeClaimStatus>;

export const ConfigMap = Struct({ ...TypeMeta, immutable: Bool, data: StrMap, binaryData: StrMap });
export type ConfigMap = Static<typeof ConfigMap>;

export const Secret = Struct({ ...TypeMeta, immutable: Bool, data: StrMap, stringData: StrMap, type: Str }, [
  "metadata",
]);
export type Secret = Static<typeof Secret>;

export const ServiceAccount = Struct(
  {
    ...TypeMeta,
    secrets: ListOf(ObjectReference),
    imagePullSecrets: ListOf(LocalObjectReference),
    automountServiceAccountToken: Bool,
  },
  [],
);
export type ServiceAccount = Static<typeof ServiceAccount>;

export const ServicePort = Struct(
  { name: Str, protocol: Str, appProtocol: Str, port: Int32, targetPort: IntOrString, nodePort: Int32 },
  ["port"],
);
export const ServiceSpec = Struct({
  ports: ListOf(ServicePort),
  selector: StrMap,
  clusterIP: Str,
  clusterIPs: ListOf(Str),
  type: Str,
  externalIPs: ListOf(Str),
  sessionAffinity: Str,
  loadBalancerIP: Str,
  loadBalancerSourceRanges: ListOf(Str),
  externalName: Str,
  externalTrafficPolicy: Str,
  healthCheckNodePort: Int32,
  publishNotReadyAddresses: Bool,
  sessionAffinityConfig: Struct({ clientIP: Struct({ timeoutSeconds: Int32 }) }),
  ipFamilies: ListOf(Str),
  ipFamilyPolicy: Str,
  allocateLoadBalancerNodePorts: Bool,
  loadBalancerClass: Str,
  internalTrafficPolicy: Str,
  trafficDistribution: Str,
});
export const Service = Struct(
  {
    ...TypeMeta,
    spec: ServiceSpec,
    status: Struct({ loadBalancer: Struct({ ingress: ListOf(Preserve()) }), conditions: ListOf(MetaV1Condition) }),
  },
  [],
);
export type Service = Static<typeof Service>;

export const EventSource = Struct({ component: Str, host: Str });
export const Event = Struct(
  {
    ...TypeMeta,
    involvedObject: ObjectReference,
    reason: Str,
    message: Str,
    source: EventSource,
    firstTimestamp: Time,
    lastTimestamp: Time,
    count: Int32,
    type: Str,
    eventTime: Time,
    series: Struct({ count: Int32, lastObservedTime: Time }),
    action: Str,
    related: ObjectReference,
    reportingComponent: Str,
    reportingInstance: Str,
  },
  ["involvedObject"],
);
export type Event = Static<typeof Event>;
