// Minimal object shapes the client, controllers and virtctl read and write. The API's TypeBox types (api/index.ts)
// describe the full kinds; these interfaces name only the fields this side of the wall touches, so they stay
// assignable from the full types once those land.

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: unknown[];
}

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface KList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: ListMeta;
  items: T[];
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastTransitionTime?: string | null;
  lastProbeTime?: string | null;
  lastHeartbeatTime?: string | null;
}

export type ResourceList = Record<string, string | number>;

export interface ResourceRequirements {
  requests?: ResourceList;
  limits?: ResourceList;
}

export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute" | "";
  tolerationSeconds?: number;
}

export interface NodeSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt";
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface Affinity {
  nodeAffinity?: {
    requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: NodeSelectorTerm[] };
    preferredDuringSchedulingIgnoredDuringExecution?: { weight: number; preference: NodeSelectorTerm }[];
  };
  podAffinity?: PodAffinity;
  podAntiAffinity?: PodAffinity;
}

export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface PodAffinityTerm {
  labelSelector?: LabelSelectorObject | null;
  namespaces?: string[];
  namespaceSelector?: LabelSelectorObject | null;
  topologyKey: string;
}

export interface PodAffinity {
  requiredDuringSchedulingIgnoredDuringExecution?: PodAffinityTerm[];
  preferredDuringSchedulingIgnoredDuringExecution?: { weight: number; podAffinityTerm: PodAffinityTerm }[];
}

// ---- kubevirt.io/v1 -------------------------------------------------------------------------------------------

export type VmiPhase = "" | "Pending" | "Scheduling" | "Scheduled" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface VmiSpec {
  domain: {
    resources?: ResourceRequirements & { overcommitGuestOverhead?: boolean };
    memory?: { guest?: string; hugepages?: { pageSize: string } };
    cpu?: { sockets?: number; cores?: number; threads?: number; dedicatedCpuPlacement?: boolean; model?: string };
    devices?: { autoattachGraphicsDevice?: boolean; [k: string]: unknown };
    [k: string]: unknown;
  };
  nodeSelector?: Record<string, string>;
  affinity?: Affinity;
  tolerations?: Toleration[];
  terminationGracePeriodSeconds?: number;
  hostname?: string;
  subdomain?: string;
  schedulerName?: string;
  priorityClassName?: string;
  volumes?: { name: string; [k: string]: unknown }[];
  [k: string]: unknown;
}

export interface PhaseTransitionTimestamp {
  phase: VmiPhase;
  phaseTransitionTimestamp: string;
}

export interface VmiStatus {
  phase?: VmiPhase;
  reason?: string;
  nodeName?: string;
  conditions?: Condition[];
  phaseTransitionTimestamps?: PhaseTransitionTimestamp[];
  interfaces?: { ipAddress?: string; name?: string; [k: string]: unknown }[];
  migrationState?: { completed?: boolean; failed?: boolean; [k: string]: unknown };
  [k: string]: unknown;
}

export interface VirtualMachineInstance extends KObject {
  spec: VmiSpec;
  status?: VmiStatus;
}

export type RunStrategy = "Always" | "RerunOnFailure" | "Manual" | "Halted" | "Once" | "WaitAsReceiver";

export interface StateChangeRequest {
  action: "Start" | "Stop";
  uid?: string;
  data?: Record<string, string>;
}

export type PrintableStatus =
  | "Stopped"
  | "Provisioning"
  | "Starting"
  | "Running"
  | "Paused"
  | "Stopping"
  | "Terminating"
  | "CrashLoopBackOff"
  | "Migrating"
  | "Unknown"
  | "ErrorUnschedulable"
  | "ErrImagePull"
  | "ImagePullBackOff"
  | "ErrorPvcNotFound"
  | "DataVolumeError"
  | "WaitingForVolumeBinding"
  | "WaitingForReceiver";

export interface VirtualMachineStatus {
  created?: boolean;
  ready?: boolean;
  printableStatus?: PrintableStatus;
  runStrategy?: RunStrategy;
  conditions?: Condition[];
  stateChangeRequests?: StateChangeRequest[];
  startFailure?: { retryAfterTimestamp?: string; consecutiveFailCount?: number; lastFailedVMIUID?: string };
  observedGeneration?: number;
  desiredGeneration?: number;
  [k: string]: unknown;
}

export interface VirtualMachine extends KObject {
  spec: {
    running?: boolean;
    runStrategy?: RunStrategy;
    template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: VmiSpec };
    dataVolumeTemplates?: unknown[];
    [k: string]: unknown;
  };
  status?: VirtualMachineStatus;
}

export interface VirtualMachineInstanceReplicaSet extends KObject {
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string>; matchExpressions?: NodeSelectorRequirement[] };
    template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: VmiSpec };
    paused?: boolean;
  };
  status?: { replicas?: number; readyReplicas?: number; labelSelector?: string; conditions?: Condition[] };
}

// ---- core/v1 --------------------------------------------------------------------------------------------------

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  resources?: ResourceRequirements;
  [k: string]: unknown;
}

export interface PodSpec {
  nodeName?: string;
  nodeSelector?: Record<string, string>;
  affinity?: Affinity;
  tolerations?: Toleration[];
  containers: Container[];
  restartPolicy?: "Always" | "OnFailure" | "Never";
  readinessGates?: { conditionType: string }[];
  terminationGracePeriodSeconds?: number;
  schedulerName?: string;
  hostname?: string;
  subdomain?: string;
  priorityClassName?: string;
  automountServiceAccountToken?: boolean;
  [k: string]: unknown;
}

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface PodStatus {
  phase?: PodPhase;
  conditions?: Condition[];
  reason?: string;
  message?: string;
  podIP?: string;
  hostIP?: string;
  startTime?: string;
  containerStatuses?: {
    name: string;
    ready: boolean;
    state?: { waiting?: { reason?: string; message?: string }; running?: unknown; terminated?: unknown };
    [k: string]: unknown;
  }[];
  [k: string]: unknown;
}

export interface Pod extends KObject {
  spec: PodSpec;
  status?: PodStatus;
}

export interface Taint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export interface Node extends KObject {
  spec?: { podCIDR?: string; podCIDRs?: string[]; unschedulable?: boolean; taints?: Taint[]; [k: string]: unknown };
  status?: {
    capacity?: ResourceList;
    allocatable?: ResourceList;
    conditions?: Condition[];
    addresses?: { type: string; address: string }[];
    [k: string]: unknown;
  };
}

export interface ObjectReference {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  resourceVersion?: string;
  fieldPath?: string;
}

export interface Event extends KObject {
  involvedObject: ObjectReference;
  reason?: string;
  message?: string;
  type?: "Normal" | "Warning";
  source?: { component?: string; host?: string };
  firstTimestamp?: string;
  lastTimestamp?: string;
  eventTime?: string | null;
  count?: number;
  reportingComponent?: string;
  reportingInstance?: string;
}

export interface Lease extends KObject {
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface Binding extends KObject {
  target: { apiVersion?: string; kind: string; name: string };
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchEvent<T = KObject> {
  type: WatchEventType;
  object: T;
}
