// core/v1 building blocks shared by Pod, PersistentVolumeClaim and KubeVirt's VMI spec (affinity, tolerations,
// probes, resources, selectors).
import type { Static } from "@sinclair/typebox";
import { LabelSelector } from "../../meta/v1/object-meta.js";
import {
  Bool,
  Enum,
  Int32,
  Int64,
  IntOrString,
  ListOf,
  Quantity,
  QuantityMap,
  Str,
  Struct,
  Time,
} from "../../meta/v1/schema.js";

export const LocalObjectReference = Struct({ name: Str });
export const ObjectReference = Struct({
  kind: Str,
  namespace: Str,
  name: Str,
  uid: Str,
  apiVersion: Str,
  resourceVersion: Str,
  fieldPath: Str,
});
export type ObjectReference = Static<typeof ObjectReference>;
export const TypedLocalObjectReference = Struct({ apiGroup: Str, kind: Str, name: Str }, ["kind", "name"]);
export const TypedObjectReference = Struct({ apiGroup: Str, kind: Str, name: Str, namespace: Str }, ["kind", "name"]);

export const NodeSelectorRequirement = Struct({ key: Str, operator: Str, values: ListOf(Str) }, ["key", "operator"]);
export type NodeSelectorRequirement = Static<typeof NodeSelectorRequirement>;
export const NodeSelectorTerm = Struct({
  matchExpressions: ListOf(NodeSelectorRequirement),
  matchFields: ListOf(NodeSelectorRequirement),
});
export type NodeSelectorTerm = Static<typeof NodeSelectorTerm>;
export const NodeSelector = Struct({ nodeSelectorTerms: ListOf(NodeSelectorTerm) }, ["nodeSelectorTerms"]);
export const NodeAffinity = Struct({
  requiredDuringSchedulingIgnoredDuringExecution: NodeSelector,
  preferredDuringSchedulingIgnoredDuringExecution: ListOf(
    Struct({ weight: Int32, preference: NodeSelectorTerm }, ["weight", "preference"]),
  ),
});
export const PodAffinityTerm = Struct(
  {
    labelSelector: LabelSelector,
    namespaces: ListOf(Str),
    topologyKey: Str,
    namespaceSelector: LabelSelector,
    matchLabelKeys: ListOf(Str),
    mismatchLabelKeys: ListOf(Str),
  },
  ["topologyKey"],
);
export type PodAffinityTerm = Static<typeof PodAffinityTerm>;
export const WeightedPodAffinityTerm = Struct({ weight: Int32, podAffinityTerm: PodAffinityTerm }, [
  "weight",
  "podAffinityTerm",
]);
export const PodAffinity = Struct({
  requiredDuringSchedulingIgnoredDuringExecution: ListOf(PodAffinityTerm),
  preferredDuringSchedulingIgnoredDuringExecution: ListOf(WeightedPodAffinityTerm),
});
export type PodAffinity = Static<typeof PodAffinity>;
export const Affinity = Struct({ nodeAffinity: NodeAffinity, podAffinity: PodAffinity, podAntiAffinity: PodAffinity });
export type Affinity = Static<typeof Affinity>;

export const Toleration = Struct({ key: Str, operator: Str, value: Str, effect: Str, tolerationSeconds: Int64 });
export type Toleration = Static<typeof Toleration>;

export const TopologySpreadConstraint = Struct(
  {
    maxSkew: Int32,
    topologyKey: Str,
    whenUnsatisfiable: Str,
    labelSelector: LabelSelector,
    minDomains: Int32,
    nodeAffinityPolicy: Str,
    nodeTaintsPolicy: Str,
    matchLabelKeys: ListOf(Str),
  },
  ["maxSkew", "topologyKey", "whenUnsatisfiable"],
);

export const PodDNSConfig = Struct({
  nameservers: ListOf(Str),
  searches: ListOf(Str),
  options: ListOf(Struct({ name: Str, value: Str })),
});

export const ExecAction = Struct({ command: ListOf(Str) });
export const HTTPHeader = Struct({ name: Str, value: Str }, ["name", "value"]);
export const HTTPGetAction = Struct(
  { path: Str, port: IntOrString, host: Str, scheme: Str, httpHeaders: ListOf(HTTPHeader) },
  ["port"],
);
export const TCPSocketAction = Struct({ port: IntOrString, host: Str }, ["port"]);
export const GRPCAction = Struct({ port: Int32, service: Str }, ["port"]);

export const ResourceClaim = Struct({ name: Str, request: Str }, ["name"]);
export const ResourceRequirements = Struct({
  limits: QuantityMap,
  requests: QuantityMap,
  claims: ListOf(ResourceClaim),
});
export type ResourceRequirements = Static<typeof ResourceRequirements>;
/** requests/limits: resource name → quantity. */
export type ResourceList = Static<typeof QuantityMap>;
export const VolumeResourceRequirements = Struct({ limits: QuantityMap, requests: QuantityMap });

export const PERSISTENT_VOLUME_ACCESS_MODES = [
  "ReadWriteOnce",
  "ReadOnlyMany",
  "ReadWriteMany",
  "ReadWriteOncePod",
] as const;
export const PersistentVolumeAccessMode = Enum(PERSISTENT_VOLUME_ACCESS_MODES);
export const PERSISTENT_VOLUME_MODES = ["Filesystem", "Block"] as const;
export const PersistentVolumeMode = Enum(PERSISTENT_VOLUME_MODES);

export const PersistentVolumeClaimSpec = Struct({
  accessModes: ListOf(PersistentVolumeAccessMode),
  selector: LabelSelector,
  resources: VolumeResourceRequirements,
  volumeName: Str,
  storageClassName: Str,
  volumeMode: PersistentVolumeMode,
  dataSource: TypedLocalObjectReference,
  dataSourceRef: TypedObjectReference,
  volumeAttributesClassName: Str,
});
export type PersistentVolumeClaimSpec = Static<typeof PersistentVolumeClaimSpec>;

export const KeyToPath = Struct({ key: Str, path: Str, mode: Int32 }, ["key", "path"]);
export const SecretKeySelector = Struct({ name: Str, key: Str, optional: Bool }, ["key"]);
export const ConfigMapKeySelector = SecretKeySelector;
export const ObjectFieldSelector = Struct({ apiVersion: Str, fieldPath: Str }, ["fieldPath"]);
export const ResourceFieldSelector = Struct({ containerName: Str, resource: Str, divisor: Quantity }, ["resource"]);
export const DownwardAPIVolumeFile = Struct(
  { path: Str, fieldRef: ObjectFieldSelector, resourceFieldRef: ResourceFieldSelector, mode: Int32 },
  ["path"],
);

export const Taint = Struct({ key: Str, value: Str, effect: Str, timeAdded: Time }, ["key", "effect"]);
export type Taint = Static<typeof Taint>;
