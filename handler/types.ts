// The object shapes the node agent reads and writes, named as client/ names them. Until client/ lands on main these
// are local structural copies (only the fields used here); they are assignable from client/'s types and api/'s.

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
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
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

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  [k: string]: unknown;
}

export interface PodSpec {
  nodeName?: string;
  containers: Container[];
  restartPolicy?: "Always" | "OnFailure" | "Never";
  readinessGates?: { conditionType: string }[];
  terminationGracePeriodSeconds?: number;
  [k: string]: unknown;
}

export type PodPhase = "Pending" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount?: number;
  image?: string;
  imageID?: string;
  started?: boolean;
  state?: {
    waiting?: { reason?: string; message?: string };
    running?: { startedAt?: string };
    terminated?: { exitCode: number; reason?: string; message?: string; startedAt?: string; finishedAt?: string };
  };
  [k: string]: unknown;
}

export interface PodStatus {
  phase?: PodPhase;
  conditions?: Condition[];
  reason?: string;
  message?: string;
  podIP?: string;
  podIPs?: { ip: string }[];
  hostIP?: string;
  hostIPs?: { ip: string }[];
  startTime?: string;
  containerStatuses?: ContainerStatus[];
  [k: string]: unknown;
}

export interface Pod extends KObject {
  spec: PodSpec;
  status?: PodStatus;
}

export type VmiPhase = "" | "Pending" | "Scheduling" | "Scheduled" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface VmiStatus {
  phase?: VmiPhase;
  reason?: string;
  nodeName?: string;
  conditions?: Condition[];
  phaseTransitionTimestamps?: { phase: VmiPhase; phaseTransitionTimestamp: string }[];
  interfaces?: { ipAddress?: string; ipAddresses?: string[]; name?: string; [k: string]: unknown }[];
  [k: string]: unknown;
}

export interface VirtualMachineInstance extends KObject {
  spec: {
    terminationGracePeriodSeconds?: number;
    volumes?: {
      name: string;
      containerDisk?: { image: string; imagePullPolicy?: string; path?: string };
      [k: string]: unknown;
    }[];
    networks?: { name: string; pod?: Record<string, unknown>; [k: string]: unknown }[];
    domain?: {
      devices?: { interfaces?: { name: string; masquerade?: unknown; [k: string]: unknown }[] };
      [k: string]: unknown;
    };
    [k: string]: unknown;
  };
  status?: VmiStatus;
}

export interface Node extends KObject {
  spec?: { podCIDR?: string; podCIDRs?: string[]; unschedulable?: boolean; [k: string]: unknown };
  status?: {
    capacity?: Record<string, string>;
    allocatable?: Record<string, string>;
    conditions?: Condition[];
    addresses?: { type: string; address: string }[];
    daemonEndpoints?: { kubeletEndpoint?: { Port: number } };
    nodeInfo?: Record<string, string>;
    [k: string]: unknown;
  };
}

export interface Lease extends KObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** libvirt's domain state and reason as the launcher reports them (KubeVirt's LifeCycle and reason names). */
export interface DomainStatus {
  state: "NoState" | "Running" | "Blocked" | "Paused" | "ShuttingDown" | "Shutoff" | "Crashed" | "PMSuspended";
  reason: string;
}

/** metav1.Time: RFC 3339 with second precision, as Kubernetes serializes it. */
export function nowRfc3339(d: Date = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}
