// core/v1 Pod: hand-written, closed, with the fields kubectl and our controllers use (virt-launcher pods).
import type { Static } from "@sinclair/typebox";
import { Condition, TypeMeta } from "../../meta/v1/object-meta.js";
import {
  Bool,
  Enum,
  Int32,
  Int64,
  ListOf,
  Preserve,
  Quantity,
  Str,
  StrMap,
  Struct,
  Time,
} from "../../meta/v1/schema.js";
import {
  Affinity,
  ConfigMapKeySelector,
  DownwardAPIVolumeFile,
  ExecAction,
  GRPCAction,
  HTTPGetAction,
  KeyToPath,
  LocalObjectReference,
  ObjectFieldSelector,
  PodDNSConfig,
  ResourceFieldSelector,
  ResourceRequirements,
  SecretKeySelector,
  TCPSocketAction,
  Toleration,
  TopologySpreadConstraint,
} from "./common.js";

export const EnvVar = Struct(
  {
    name: Str,
    value: Str,
    valueFrom: Struct({
      fieldRef: ObjectFieldSelector,
      resourceFieldRef: ResourceFieldSelector,
      configMapKeyRef: ConfigMapKeySelector,
      secretKeyRef: SecretKeySelector,
      fileKeyRef: Preserve(),
    }),
  },
  ["name"],
);
export const EnvFromSource = Struct({
  prefix: Str,
  configMapRef: Struct({ name: Str, optional: Bool }),
  secretRef: Struct({ name: Str, optional: Bool }),
});
export const ContainerPort = Struct({ name: Str, hostPort: Int32, containerPort: Int32, protocol: Str, hostIP: Str }, [
  "containerPort",
]);
export const VolumeMount = Struct(
  {
    name: Str,
    readOnly: Bool,
    recursiveReadOnly: Str,
    mountPath: Str,
    subPath: Str,
    mountPropagation: Str,
    subPathExpr: Str,
  },
  ["name", "mountPath"],
);
export const VolumeDevice = Struct({ name: Str, devicePath: Str }, ["name", "devicePath"]);
export const Probe = Struct({
  exec: ExecAction,
  httpGet: HTTPGetAction,
  tcpSocket: TCPSocketAction,
  grpc: GRPCAction,
  initialDelaySeconds: Int32,
  timeoutSeconds: Int32,
  periodSeconds: Int32,
  successThreshold: Int32,
  failureThreshold: Int32,
  terminationGracePeriodSeconds: Int64,
});
const LifecycleHandler = Struct({
  exec: ExecAction,
  httpGet: HTTPGetAction,
  tcpSocket: TCPSocketAction,
  sleep: Struct({ seconds: Int64 }, ["seconds"]),
});
export const Capabilities = Struct({ add: ListOf(Str), drop: ListOf(Str) });
export const SELinuxOptions = Struct({ user: Str, role: Str, type: Str, level: Str });
export const SeccompProfile = Struct({ type: Str, localhostProfile: Str }, ["type"]);
export const SecurityContext = Struct({
  capabilities: Capabilities,
  privileged: Bool,
  seLinuxOptions: SELinuxOptions,
  windowsOptions: Preserve(),
  runAsUser: Int64,
  runAsGroup: Int64,
  runAsNonRoot: Bool,
  readOnlyRootFilesystem: Bool,
  allowPrivilegeEscalation: Bool,
  procMount: Str,
  seccompProfile: SeccompProfile,
  appArmorProfile: SeccompProfile,
});
export const Container = Struct(
  {
    name: Str,
    image: Str,
    command: ListOf(Str),
    args: ListOf(Str),
    workingDir: Str,
    ports: ListOf(ContainerPort),
    envFrom: ListOf(EnvFromSource),
    env: ListOf(EnvVar),
    resources: ResourceRequirements,
    resizePolicy: ListOf(Struct({ resourceName: Str, restartPolicy: Str }, ["resourceName", "restartPolicy"])),
    restartPolicy: Str,
    restartPolicyRules: ListOf(Preserve()),
    volumeMounts: ListOf(VolumeMount),
    volumeDevices: ListOf(VolumeDevice),
    livenessProbe: Probe,
    readinessProbe: Probe,
    startupProbe: Probe,
    lifecycle: Struct({ postStart: LifecycleHandler, preStop: LifecycleHandler, stopSignal: Str }),
    terminationMessagePath: Str,
    terminationMessagePolicy: Str,
    imagePullPolicy: Str,
    securityContext: SecurityContext,
    stdin: Bool,
    stdinOnce: Bool,
    tty: Bool,
  },
  ["name"],
);
export type Container = Static<typeof Container>;

export const PodVolume = Struct(
  {
    name: Str,
    emptyDir: Struct({ medium: Str, sizeLimit: Quantity }),
    hostPath: Struct({ path: Str, type: Str }, ["path"]),
    configMap: Struct({ name: Str, items: ListOf(KeyToPath), defaultMode: Int32, optional: Bool }),
    secret: Struct({ secretName: Str, items: ListOf(KeyToPath), defaultMode: Int32, optional: Bool }),
    persistentVolumeClaim: Struct({ claimName: Str, readOnly: Bool }, ["claimName"]),
    downwardAPI: Struct({ items: ListOf(DownwardAPIVolumeFile), defaultMode: Int32 }),
    projected: Struct({ sources: ListOf(Preserve()), defaultMode: Int32 }),
    ephemeral: Struct({ volumeClaimTemplate: Preserve() }),
    image: Struct({ reference: Str, pullPolicy: Str }),
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
    gitRepo: Preserve(),
    glusterfs: Preserve(),
    iscsi: Preserve(),
    nfs: Preserve(),
    photonPersistentDisk: Preserve(),
    portworxVolume: Preserve(),
    quobyte: Preserve(),
    rbd: Preserve(),
    scaleIO: Preserve(),
    storageos: Preserve(),
    vsphereVolume: Preserve(),
  },
  ["name"],
);

export const PodSecurityContext = Struct({
  seLinuxOptions: SELinuxOptions,
  windowsOptions: Preserve(),
  runAsUser: Int64,
  runAsGroup: Int64,
  runAsNonRoot: Bool,
  supplementalGroups: ListOf(Int64),
  supplementalGroupsPolicy: Str,
  fsGroup: Int64,
  sysctls: ListOf(Struct({ name: Str, value: Str }, ["name", "value"])),
  fsGroupChangePolicy: Str,
  seccompProfile: SeccompProfile,
  appArmorProfile: SeccompProfile,
  seLinuxChangePolicy: Str,
});

export const PodSpec = Struct(
  {
    volumes: ListOf(PodVolume),
    initContainers: ListOf(Container),
    containers: ListOf(Container),
    ephemeralContainers: ListOf(Preserve()),
    restartPolicy: Str,
    terminationGracePeriodSeconds: Int64,
    activeDeadlineSeconds: Int64,
    dnsPolicy: Str,
    nodeSelector: StrMap,
    serviceAccountName: Str,
    serviceAccount: Str,
    automountServiceAccountToken: Bool,
    nodeName: Str,
    hostNetwork: Bool,
    hostPID: Bool,
    hostIPC: Bool,
    shareProcessNamespace: Bool,
    securityContext: PodSecurityContext,
    imagePullSecrets: ListOf(LocalObjectReference),
    hostname: Str,
    hostnameOverride: Str,
    subdomain: Str,
    affinity: Affinity,
    schedulerName: Str,
    tolerations: ListOf(Toleration),
    hostAliases: ListOf(Struct({ ip: Str, hostnames: ListOf(Str) }, ["ip"])),
    priorityClassName: Str,
    priority: Int32,
    dnsConfig: PodDNSConfig,
    readinessGates: ListOf(Struct({ conditionType: Str }, ["conditionType"])),
    runtimeClassName: Str,
    enableServiceLinks: Bool,
    preemptionPolicy: Str,
    overhead: StrMap,
    topologySpreadConstraints: ListOf(TopologySpreadConstraint),
    setHostnameAsFQDN: Bool,
    os: Struct({ name: Str }, ["name"]),
    hostUsers: Bool,
    schedulingGates: ListOf(Struct({ name: Str }, ["name"])),
    resourceClaims: ListOf(Preserve()),
    resources: ResourceRequirements,
  },
  ["containers"],
);
export type PodSpec = Static<typeof PodSpec>;

export const PodPhase = Enum(["Pending", "Running", "Succeeded", "Failed", "Unknown"] as const);
export type PodPhase = Static<typeof PodPhase>;

const ContainerStateDetail = Struct({
  waiting: Struct({ reason: Str, message: Str }),
  running: Struct({ startedAt: Time }),
  terminated: Struct(
    { exitCode: Int32, signal: Int32, reason: Str, message: Str, startedAt: Time, finishedAt: Time, containerID: Str },
    ["exitCode"],
  ),
});
export const ContainerStatus = Struct(
  {
    name: Str,
    state: ContainerStateDetail,
    lastState: ContainerStateDetail,
    ready: Bool,
    restartCount: Int32,
    image: Str,
    imageID: Str,
    containerID: Str,
    started: Bool,
    allocatedResources: StrMap,
    resources: ResourceRequirements,
    volumeMounts: ListOf(Preserve()),
    user: Preserve(),
    allocatedResourcesStatus: ListOf(Preserve()),
    stopSignal: Str,
  },
  ["name"],
);
export type ContainerStatus = Static<typeof ContainerStatus>;

export const PodStatus = Struct({
  observedGeneration: Int64,
  phase: PodPhase,
  conditions: ListOf(Condition),
  message: Str,
  reason: Str,
  nominatedNodeName: Str,
  hostIP: Str,
  hostIPs: ListOf(Struct({ ip: Str })),
  podIP: Str,
  podIPs: ListOf(Struct({ ip: Str })),
  startTime: Time,
  initContainerStatuses: ListOf(ContainerStatus),
  containerStatuses: ListOf(ContainerStatus),
  qosClass: Str,
  ephemeralContainerStatuses: ListOf(ContainerStatus),
  resize: Str,
  resourceClaimStatuses: ListOf(Preserve()),
  extendedResourceClaimStatus: Preserve(),
});
export type PodStatus = Static<typeof PodStatus>;

export const Pod = Struct({ ...TypeMeta, spec: PodSpec, status: PodStatus });
export type Pod = Static<typeof Pod>;

/** Binding (pods/binding): the only way to set spec.nodeName. */
export const Binding = Struct(
  { ...TypeMeta, target: Struct({ kind: Str, name: Str, namespace: Str, apiVersion: Str, uid: Str }) },
  ["target"],
);
export type Binding = Static<typeof Binding>;

export const PodTemplateSpec = Struct({ metadata: TypeMeta.metadata, spec: PodSpec });
