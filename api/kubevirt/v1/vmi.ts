// kubevirt.io/v1 VirtualMachineInstance: hand-written and closed, with KubeVirt's field names
// (staging/src/kubevirt.io/api/core/v1/schema.go and types.go). testdata/ holds KubeVirt's OpenAPI field paths and
// a test checks every one of them exists here.
import type { Static } from "@sinclair/typebox";
import {
  Affinity,
  DownwardAPIVolumeFile,
  ExecAction,
  HTTPGetAction,
  LocalObjectReference,
  PodDNSConfig,
  TCPSocketAction,
  Toleration,
  TopologySpreadConstraint,
} from "../../core/v1/common.js";
import { ObjectMeta, TypeMeta } from "../../meta/v1/object-meta.js";
import {
  Bool,
  Describe,
  Empty,
  Enum,
  Int32,
  Int64,
  ListOf,
  MapOf,
  Quantity,
  QuantityMap,
  Str,
  StrMap,
  Struct,
  Time,
} from "../../meta/v1/schema.js";

// ---- domain: resources, cpu, memory, machine, firmware, clock, features ----

export const ResourceRequirementsVmi = Struct({
  requests: QuantityMap,
  limits: QuantityMap,
  overcommitGuestOverhead: Bool,
});

export const CPUFeature = Struct({ name: Str, policy: Str }, ["name"]);
export const CPU = Struct({
  cores: Int32,
  sockets: Int32,
  maxSockets: Int32,
  threads: Int32,
  model: Str,
  features: ListOf(CPUFeature),
  dedicatedCpuPlacement: Bool,
  numa: Struct({ guestMappingPassthrough: Empty() }),
  isolateEmulatorThread: Bool,
  realtime: Struct({ mask: Str }),
});

export const Hugepages = Struct({ pageSize: Str });
export const Memory = Struct({
  hugepages: Hugepages,
  guest: Quantity,
  maxGuest: Quantity,
  reservedOverhead: Struct({ addedOverhead: Quantity, memLock: Str }),
});

export const Machine = Struct({ type: Str });

export const BootloaderBIOS = Struct({ useSerial: Bool });
export const BootloaderEFI = Struct({ secureBoot: Bool, persistent: Bool });
export const KernelBootContainer = Struct(
  { image: Str, imagePullSecret: Str, kernelPath: Str, initrdPath: Str, imagePullPolicy: Str },
  ["image"],
);
export const Firmware = Struct({
  uuid: Str,
  bootloader: Struct({ bios: BootloaderBIOS, efi: BootloaderEFI }),
  serial: Str,
  kernelBoot: Struct({ kernelArgs: Str, container: KernelBootContainer }),
  acpi: Struct({ slicNameRef: Str, msdmNameRef: Str }),
});

const TimerBase = { tickPolicy: Str, present: Bool };
export const Clock = Struct({
  utc: Struct({ offsetSeconds: Int32 }),
  timezone: Str,
  timer: Struct({
    hpet: Struct(TimerBase),
    kvm: Struct({ present: Bool }),
    pit: Struct(TimerBase),
    rtc: Struct({ ...TimerBase, track: Str }),
    hyperv: Struct({ present: Bool }),
  }),
});

const FeatureState = Struct({ enabled: Bool });
export const Features = Struct({
  acpi: FeatureState,
  apic: Struct({ enabled: Bool, endOfInterrupt: Bool }),
  hyperv: Struct({
    relaxed: FeatureState,
    vapic: FeatureState,
    spinlocks: Struct({ enabled: Bool, spinlocks: Int32 }),
    vpindex: FeatureState,
    runtime: FeatureState,
    synic: FeatureState,
    synictimer: Struct({ enabled: Bool, direct: FeatureState }),
    reset: FeatureState,
    vendorid: Struct({ enabled: Bool, vendorid: Str }),
    frequencies: FeatureState,
    reenlightenment: FeatureState,
    tlbflush: Struct({ enabled: Bool, direct: FeatureState, extended: FeatureState }),
    ipi: FeatureState,
    evmcs: FeatureState,
  }),
  hypervPassthrough: Struct({ enabled: Bool }),
  smm: FeatureState,
  kvm: Struct({ hidden: Bool }),
  pvspinlock: FeatureState,
});

// ---- devices ----

export const DiskBus = Enum(["virtio", "sata", "scsi", "usb"] as const);
export const DiskTarget = Struct({ bus: Str, readonly: Bool, pciAddress: Str });
export const LunTarget = Struct({ bus: Str, readonly: Bool, reservation: Bool });
export const CDRomTarget = Struct({ bus: Str, readonly: Bool, tray: Str });
export const BlockSize = Struct({
  custom: Struct({ logical: Int32, physical: Int32, discardGranularity: Int32 }, ["logical", "physical"]),
  matchVolume: FeatureState,
});
export const Disk = Struct(
  {
    name: Str,
    disk: DiskTarget,
    lun: LunTarget,
    cdrom: CDRomTarget,
    bootOrder: Int32,
    serial: Str,
    dedicatedIOThread: Bool,
    cache: Str,
    io: Str,
    tag: Str,
    blockSize: BlockSize,
    shareable: Bool,
    errorPolicy: Str,
    changedBlockTracking: Bool,
  },
  ["name"],
);
export type Disk = Static<typeof Disk>;

export const Port = Struct({ name: Str, protocol: Str, port: Int32 }, ["port"]);
export const Interface = Struct(
  {
    name: Str,
    model: Str,
    bridge: Empty(),
    slirp: Empty(),
    masquerade: Empty(),
    sriov: Empty(),
    macvtap: Empty(),
    passt: Empty(),
    passtBinding: Empty(),
    binding: Struct({ name: Str }, ["name"]),
    ports: ListOf(Port),
    portRanges: ListOf(Struct({ protocol: Str, start: Int32, end: Int32 }, ["protocol", "start", "end"])),
    macAddress: Str,
    bootOrder: Int32,
    pciAddress: Str,
    dhcpOptions: Struct({
      bootFileName: Str,
      tftpServerName: Str,
      ntpServers: ListOf(Str),
      privateOptions: ListOf(Struct({ option: Int32, value: Str }, ["option", "value"])),
    }),
    tag: Str,
    acpiIndex: Int32,
    state: Str,
  },
  ["name"],
);
export type Interface = Static<typeof Interface>;

export const Filesystem = Struct({ name: Str, virtiofs: Empty() }, ["name", "virtiofs"]);
export const Input = Struct({ bus: Str, type: Str, name: Str }, ["type", "name"]);
export const Watchdog = Struct({ name: Str, i6300esb: Struct({ action: Str }), diag288: Struct({ action: Str }) }, [
  "name",
]);
export const GPU = Struct(
  {
    name: Str,
    deviceName: Str,
    claimName: Str,
    requestName: Str,
    virtualGPUOptions: Struct({
      display: Struct({ enabled: Bool, ramFB: FeatureState }),
    }),
    tag: Str,
  },
  ["name"],
);
export const HostDevice = Struct({ name: Str, deviceName: Str, claimName: Str, requestName: Str, tag: Str }, ["name"]);
export const SoundDevice = Struct({ name: Str, model: Str }, ["name"]);
export const Devices = Struct({
  useVirtioTransitional: Bool,
  disableHotplug: Bool,
  disks: ListOf(Disk),
  watchdog: Watchdog,
  interfaces: ListOf(Interface),
  inputs: ListOf(Input),
  autoattachPodInterface: Bool,
  autoattachGraphicsDevice: Bool,
  autoattachSerialConsole: Bool,
  autoattachMemBalloon: Bool,
  autoattachInputDevice: Bool,
  autoattachVSOCK: Bool,
  logSerialConsole: Bool,
  rng: Empty(),
  blockMultiQueue: Bool,
  networkInterfaceMultiqueue: Bool,
  gpus: ListOf(GPU),
  downwardMetrics: Empty(),
  panicDevices: ListOf(Struct({ model: Str })),
  filesystems: ListOf(Filesystem),
  hostDevices: ListOf(HostDevice),
  clientPassthrough: Empty(),
  sound: SoundDevice,
  tpm: Struct({ enabled: Bool, persistent: Bool }),
  video: Struct({ type: Str }),
});

export const DomainSpec = Struct(
  {
    resources: ResourceRequirementsVmi,
    cpu: CPU,
    memory: Memory,
    machine: Machine,
    firmware: Firmware,
    clock: Clock,
    features: Features,
    devices: Devices,
    ioThreadsPolicy: Str,
    ioThreads: Struct({ supplementalPoolThreadCount: Int32 }),
    chassis: Struct({ manufacturer: Str, version: Str, serial: Str, asset: Str, sku: Str }),
    launchSecurity: Struct({
      sev: Struct({
        policy: Struct({ encryptedState: Bool }),
        attestation: Empty(),
        session: Str,
        dhCert: Str,
      }),
      snp: Empty(),
      tdx: Empty(),
    }),
    rebootPolicy: Str,
  },
  ["devices"],
);
export type DomainSpec = Static<typeof DomainSpec>;

// ---- volumes ----

const SecretRef = LocalObjectReference;
export const CloudInitNoCloud = Struct({
  userDataBase64: Str,
  secretRef: SecretRef,
  userData: Str,
  networkDataBase64: Str,
  networkDataSecretRef: SecretRef,
  networkData: Str,
});
export const ContainerDiskSource = Struct({ image: Str, imagePullSecret: Str, path: Str, imagePullPolicy: Str }, [
  "image",
]);
export const Volume = Struct(
  {
    name: Str,
    hostDisk: Struct({ path: Str, type: Str, capacity: Quantity, shared: Bool }, ["path", "type"]),
    persistentVolumeClaim: Struct({ claimName: Str, readOnly: Bool, hotpluggable: Bool }, ["claimName"]),
    cloudInitNoCloud: CloudInitNoCloud,
    cloudInitConfigDrive: CloudInitNoCloud,
    sysprep: Struct({ secret: SecretRef, configMap: SecretRef }),
    containerDisk: ContainerDiskSource,
    ephemeral: Struct({
      persistentVolumeClaim: Struct({ claimName: Str, readOnly: Bool }, ["claimName"]),
    }),
    emptyDisk: Struct({ capacity: Quantity }, ["capacity"]),
    dataVolume: Struct({ name: Str, hotpluggable: Bool }, ["name"]),
    configMap: Struct({ name: Str, optional: Bool, volumeLabel: Str }),
    secret: Struct({ secretName: Str, optional: Bool, volumeLabel: Str }),
    downwardAPI: Struct({ fields: ListOf(DownwardAPIVolumeFile), volumeLabel: Str }),
    containerPath: Struct({ path: Str, readOnly: Bool }, ["path"]),
    serviceAccount: Struct({ serviceAccountName: Str }),
    downwardMetrics: Empty(),
    memoryDump: Struct({ claimName: Str, readOnly: Bool, hotpluggable: Bool }, ["claimName"]),
  },
  ["name"],
);
export type Volume = Static<typeof Volume>;

export const Network = Struct(
  {
    name: Str,
    pod: Struct({ vmNetworkCIDR: Str, vmIPv6NetworkCIDR: Str }),
    multus: Struct({ networkName: Str, default: Bool }, ["networkName"]),
    resourceClaim: Struct({ claimName: Str, requestName: Str }),
  },
  ["name"],
);
export type Network = Static<typeof Network>;

export const VmiProbe = Struct({
  exec: ExecAction,
  httpGet: HTTPGetAction,
  tcpSocket: TCPSocketAction,
  guestAgentPing: Empty(),
  initialDelaySeconds: Int32,
  timeoutSeconds: Int32,
  periodSeconds: Int32,
  successThreshold: Int32,
  failureThreshold: Int32,
});

export const AccessCredential = Struct({
  sshPublicKey: Struct(
    {
      source: Struct({ secret: Struct({ secretName: Str }, ["secretName"]) }),
      propagationMethod: Struct({
        noCloud: Empty(),
        configDrive: Empty(),
        qemuGuestAgent: Struct({ users: ListOf(Str) }, ["users"]),
      }),
    },
    ["source", "propagationMethod"],
  ),
  userPassword: Struct(
    {
      source: Struct({ secret: Struct({ secretName: Str }, ["secretName"]) }),
      propagationMethod: Struct({ qemuGuestAgent: Empty() }),
    },
    ["source", "propagationMethod"],
  ),
});

export const EvictionStrategy = Enum(["None", "LiveMigrate", "LiveMigrateIfPossible", "External"] as const);
export type EvictionStrategy = Static<typeof EvictionStrategy>;

export const VirtualMachineInstanceSpec = Struct(
  {
    priorityClassName: Str,
    domain: Describe(DomainSpec, "The virtual hardware: CPU, memory, machine type, firmware, devices."),
    nodeSelector: StrMap,
    affinity: Affinity,
    schedulerName: Str,
    tolerations: ListOf(Toleration),
    topologySpreadConstraints: ListOf(TopologySpreadConstraint),
    evictionStrategy: EvictionStrategy,
    startStrategy: Str,
    terminationGracePeriodSeconds: Describe(
      Int64,
      "Seconds the guest gets to shut down after an ACPI shutdown request before it is powered off.",
    ),
    volumes: Describe(ListOf(Volume), "Sources of disk content; each disk names one volume."),
    livenessProbe: VmiProbe,
    readinessProbe: VmiProbe,
    hostname: Str,
    subdomain: Str,
    networks: Describe(ListOf(Network), "Networks the interfaces connect to; each interface names one network."),
    dnsPolicy: Str,
    dnsConfig: PodDNSConfig,
    accessCredentials: ListOf(AccessCredential),
    architecture: Str,
    resourceClaims: ListOf(Struct({ name: Str, resourceClaimName: Str, resourceClaimTemplateName: Str }, ["name"])),
    serviceAccountName: Str,
    utilityVolumes: ListOf(Struct({ name: Str, claimName: Str, readOnly: Bool, type: Str }, ["name", "claimName"])),
  },
  ["domain"],
);
export type VirtualMachineInstanceSpec = Static<typeof VirtualMachineInstanceSpec>;

// ---- status ----

export const VMI_PHASES = [
  "",
  "Pending",
  "Scheduling",
  "Scheduled",
  "Running",
  "Succeeded",
  "Failed",
  "WaitingForSync",
  "Unknown",
] as const;
export const VmiPhase = Enum(VMI_PHASES);
export type VmiPhase = Static<typeof VmiPhase>;

export type VmiConditionType =
  | "Ready"
  | "Paused"
  | "Synchronized"
  | "LiveMigratable"
  | "StorageLiveMigratable"
  | "AgentConnected"
  | "AgentVersionNotSupported"
  | "Provisioning"
  | "PodScheduled"
  | "Failure"
  | "DataVolumesReady"
  | "VirtualMachineInstanceIsMigratable";

export const VmiNetworkInterface = Struct({
  ipAddress: Str,
  mac: Str,
  name: Str,
  ipAddresses: ListOf(Str),
  podInterfaceName: Str,
  interfaceName: Str,
  infoSource: Str,
  queueCount: Int32,
  linkState: Str,
});
export type VmiNetworkInterface = Static<typeof VmiNetworkInterface>;

export const PhaseTransitionTimestamp = Struct({ phase: Str, phaseTransitionTimestamp: Time });
export type PhaseTransitionTimestamp = Static<typeof PhaseTransitionTimestamp>;

/** KubeVirt's condition shape (VirtualMachineInstanceCondition, VirtualMachineCondition, ...). */
export const KubevirtCondition = Struct(
  {
    type: Str,
    status: Enum(["True", "False", "Unknown"] as const),
    lastProbeTime: Time,
    lastTransitionTime: Time,
    reason: Str,
    message: Str,
  },
  ["type", "status"],
);
export type KubevirtCondition = Static<typeof KubevirtCondition>;

export const PersistentVolumeClaimInfo = Struct({
  claimName: Str,
  accessModes: ListOf(Str),
  volumeMode: Str,
  capacity: QuantityMap,
  requests: QuantityMap,
  preallocated: Bool,
  filesystemOverhead: Str,
});
export const StorageMigratedVolumeInfo = Struct(
  { volumeName: Str, sourcePVCInfo: PersistentVolumeClaimInfo, destinationPVCInfo: PersistentVolumeClaimInfo },
  ["volumeName"],
);

export const MigrationConfigurationOptions = Struct({
  nodeDrainTaintKey: Str,
  parallelOutboundMigrationsPerNode: Int64,
  parallelMigrationsPerCluster: Int64,
  allowAutoConverge: Bool,
  bandwidthPerMigration: Quantity,
  completionTimeoutPerGiB: Int64,
  progressTimeout: Int64,
  unsafeMigrationOverride: Bool,
  allowPostCopy: Bool,
  disableTLS: Bool,
  network: Str,
  matchSELinuxLevelOnMigration: Bool,
  allowWorkloadDisruption: Bool,
  maxDowntimeMs: Int64,
  utilityVolumesTimeout: Int64,
  experimental: Struct({
    compression: Str,
    downtimeTuning: Struct({ initialMs: Int64, startAfterIteration: Int64, steps: Int32, cooldownSeconds: Int32 }),
    stallDetector: Struct({
      completionTimeoutFactor: Quantity,
      ewmaAlpha: Quantity,
      patienceWindowDecayFactor: Quantity,
      precopyPossibleFactor: Quantity,
      searchLocalMinima: Bool,
      stallMargin: Int64,
      stallProgressTimeout: Int64,
      switchoverTimeout: Int64,
    }),
  }),
});

export type MigrationConfigurationOptions = Static<typeof MigrationConfigurationOptions>;

const MigrationEndpointState = {
  domainName: Str,
  domainNamespace: Str,
  migrationUID: Str,
  node: Str,
  persistentStatePVCName: Str,
  pod: Str,
  selinuxContext: Str,
  syncAddress: Str,
  virtualMachineInstanceUID: Str,
};
export const MigrationState = Struct({
  startTimestamp: Time,
  endTimestamp: Time,
  targetNodeDomainReadyTimestamp: Time,
  targetNodeDomainDetected: Bool,
  targetNodeAddress: Str,
  targetDirectMigrationNodePorts: MapOf(Int32),
  targetNode: Str,
  targetPod: Str,
  targetAttachmentPodUID: Str,
  targetMemoryOverhead: Quantity,
  sourceNode: Str,
  sourcePod: Str,
  completed: Bool,
  failed: Bool,
  abortRequested: Bool,
  abortStatus: Str,
  failureReason: Str,
  migrationUid: Str,
  mode: Str,
  migrationPolicyName: Str,
  migrationConfiguration: MigrationConfigurationOptions,
  targetCPUSet: ListOf(Int32),
  targetNodeTopology: Str,
  sourcePersistentStatePVCName: Str,
  targetPersistentStatePVCName: Str,
  sourceState: Struct({ ...MigrationEndpointState, nodeSelectors: StrMap }),
  targetState: Struct({
    ...MigrationEndpointState,
    attachmentPodUID: Str,
    cpuSet: ListOf(Int32),
    directMigrationNodePorts: MapOf(Int32),
    domainDetected: Bool,
    domainReadyTimestamp: Time,
    nodeAddress: Str,
    nodeTopology: Str,
  }),
  migrationNetworkType: Str,
});
export type MigrationState = Static<typeof MigrationState>;

export const VolumeStatus = Struct(
  {
    name: Str,
    target: Str,
    phase: Str,
    reason: Str,
    message: Str,
    persistentVolumeClaimInfo: PersistentVolumeClaimInfo,
    hotplugVolume: Struct({ attachPodName: Str, attachPodUID: Str }),
    size: Int64,
    memoryDumpVolume: Struct({ startTimestamp: Time, endTimestamp: Time, claimName: Str, targetFileName: Str }),
    // digest (tsvirt): the manifest digest the containerDisk was pulled at; later pulls for the VMI use it.
    containerDiskVolume: Struct({ checksum: Int64, digest: Str }),
  },
  ["name", "target"],
);

export const ChangedBlockTrackingStatus = Struct(
  {
    state: Str,
    backupStatus: Struct({
      backupName: Str,
      checkpointName: Str,
      backupMsg: Str,
      completed: Bool,
      failed: Bool,
      quiesceStatus: Str,
      startTimestamp: Time,
      endTimestamp: Time,
      volumes: ListOf(Struct({ volumeName: Str }, ["volumeName"])),
    }),
  },
  ["state"],
);

export const VirtualMachineInstanceStatus = Struct({
  nodeName: Str,
  reason: Str,
  conditions: ListOf(KubevirtCondition),
  phase: VmiPhase,
  phaseTransitionTimestamps: ListOf(PhaseTransitionTimestamp),
  interfaces: ListOf(VmiNetworkInterface),
  guestOSInfo: Struct({
    name: Str,
    kernelRelease: Str,
    version: Str,
    prettyName: Str,
    versionId: Str,
    kernelVersion: Str,
    machine: Str,
    id: Str,
  }),
  migrationState: MigrationState,
  migrationMethod: Str,
  migrationTransport: Str,
  qosClass: Str,
  launcherContainerImageVersion: Str,
  evacuationNodeName: Str,
  activePods: StrMap,
  volumeStatus: ListOf(VolumeStatus),
  kernelBootStatus: Struct({ kernelInfo: Struct({ checksum: Int64 }), initrdInfo: Struct({ checksum: Int64 }) }),
  fsFreezeStatus: Str,
  topologyHints: Struct({ tscFrequency: Int64 }),
  virtualMachineRevisionName: Str,
  runtimeUser: Int64,
  VSOCKCID: Int64,
  selinuxContext: Str,
  machine: Machine,
  currentCPUTopology: Struct({ cores: Int32, sockets: Int32, threads: Int32 }),
  memory: Struct({ guestAtBoot: Quantity, guestCurrent: Quantity, guestRequested: Quantity, memoryOverhead: Quantity }),
  migratedVolumes: ListOf(StorageMigratedVolumeInfo),
  changedBlockTracking: ChangedBlockTrackingStatus,
});
export type VirtualMachineInstanceStatus = Static<typeof VirtualMachineInstanceStatus>;

export const VirtualMachineInstance = Struct(
  { ...TypeMeta, spec: VirtualMachineInstanceSpec, status: VirtualMachineInstanceStatus },
  ["spec"],
  { description: "One run of a virtual machine: scheduled to a node and executed there by its launcher." },
);
export type VirtualMachineInstance = Static<typeof VirtualMachineInstance>;

/** spec.template of VMs, VMIRSs and pools. */
export const VirtualMachineInstanceTemplateSpec = Struct({ metadata: ObjectMeta, spec: VirtualMachineInstanceSpec });
export type VirtualMachineInstanceTemplateSpec = Static<typeof VirtualMachineInstanceTemplateSpec>;
