// Typed libvirt domain: the subset of https://libvirt.org/formatdomain.html the converter emits.
// Field names follow the XML (attributes and elements); domainToXml() writes them in a fixed order.

export type DomainType = "kvm" | "qemu";

export interface Domain {
  type: DomainType;
  name: string;
  uuid?: string;
  metadata: { kubevirt: { uid: string; namespace: string; name: string } };
  /** Bytes. */
  memory: number;
  maxMemory?: { bytes: number; slots: number };
  memoryBacking?: { hugepages?: { pageSizeKiB?: number }; source?: "memfd" | "file" | "anonymous" };
  vcpu: number;
  iothreads?: number;
  cpu: Cpu;
  os: Os;
  sysinfo?: SysInfo;
  features: Features;
  clock: Clock;
  onPoweroff: LifecycleAction;
  onReboot: LifecycleAction;
  onCrash: LifecycleAction | "coredump-destroy" | "coredump-restart";
  devices: Devices;
}

export type LifecycleAction = "destroy" | "restart" | "preserve" | "rename-restart";

export interface Cpu {
  mode: "host-model" | "host-passthrough" | "custom" | "maximum";
  /** For mode custom. */
  model?: string;
  check?: "none" | "partial" | "full";
  topology: { sockets: number; cores: number; threads: number };
  features: { policy: "force" | "require" | "optional" | "disable" | "forbid"; name: string }[];
}

export interface Os {
  arch: "x86_64" | "aarch64";
  machine: string;
  /** Firmware auto-selection (libvirt picks OVMF from its descriptors). */
  firmware?: "efi";
  firmwareFeatures?: { name: "secure-boot" | "enrolled-keys"; enabled: boolean }[];
  loader?: { path: string; readonly: boolean; secure: boolean; type: "pflash" | "rom" };
  nvram?: { path: string; template?: string };
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  bios?: { useserial: boolean };
  smbiosSysinfo: boolean;
}

export interface SysInfo {
  system: { name: "uuid" | "serial" | "manufacturer" | "family" | "product" | "sku" | "version"; value: string }[];
  chassis: { name: "manufacturer" | "version" | "serial" | "asset" | "sku"; value: string }[];
  /** SMBIOS type 11 OEM strings (QEMU: `-smbios type=11,value=…`). */
  oemStrings?: string[];
}

export type OnOff = "on" | "off";

export interface Features {
  acpi: boolean;
  apic?: { eoi?: OnOff };
  smm?: boolean;
  pvspinlock?: OnOff;
  kvmHidden?: boolean;
  vmport?: OnOff;
  /** Hyper-V enlightenments in document order: name, state and extra attributes/children. */
  hyperv?: { mode?: "custom" | "passthrough"; items: HypervItem[] };
}

export interface HypervItem {
  name: string;
  state: OnOff;
  retries?: number;
  value?: string;
  children?: { name: string; state: OnOff }[];
}

export interface Timer {
  name: "rtc" | "pit" | "hpet" | "kvmclock" | "hypervclock";
  present?: boolean;
  tickpolicy?: "delay" | "catchup" | "merge" | "discard";
  track?: "guest" | "wall" | "realtime";
}

export interface Clock {
  offset: "utc" | "variable" | "timezone";
  /** offset=variable: seconds relative to UTC. */
  adjustment?: number;
  timezone?: string;
  timers: Timer[];
}

export interface PciAddress {
  type: "pci";
  domain: number;
  bus: number;
  slot: number;
  function: number;
}
export interface DriveAddress {
  type: "drive";
  controller: number;
  bus: number;
  target: number;
  unit: number;
}

export type DiskSource = { type: "file"; file: string } | { type: "block"; dev: string };

export interface Disk {
  device: "disk" | "cdrom" | "lun";
  source: DiskSource;
  /** virtio disks: "virtio-non-transitional" / "virtio-transitional". */
  model?: string;
  target: { bus: "virtio" | "sata" | "scsi" | "usb"; dev: string; tray?: "open" | "closed" };
  driver: {
    type: "raw" | "qcow2";
    cache?: "none" | "writethrough" | "writeback" | "directsync" | "unsafe";
    io?: "native" | "threads" | "io_uring";
    errorPolicy?: "stop" | "report" | "ignore" | "enospace";
    discard?: "unmap" | "ignore";
    iothread?: number;
  };
  backingStore?: { source: DiskSource; format: "raw" | "qcow2" };
  readonly: boolean;
  shareable: boolean;
  serial?: string;
  bootOrder?: number;
  alias: string;
  blockio?: { logical: number; physical: number; discardGranularity?: number };
  address?: PciAddress | DriveAddress;
  /** lun: SCSI persistent reservations through the managed pr-helper. */
  reservations?: boolean;
}

export interface Interface {
  type: "ethernet";
  mac?: string;
  target: { dev: string; managed: false };
  model: string;
  alias: string;
  romEnabled: boolean;
  bootOrder?: number;
  address?: PciAddress;
  acpiIndex?: number;
  mtu?: number;
}

export interface Controller {
  type: "pci" | "usb" | "virtio-serial" | "scsi" | "sata";
  index: number;
  model?: string;
}

export interface Serial {
  type: "unix";
  path: string;
  port: number;
  log?: string;
}

export interface Channel {
  type: "unix";
  targetName: string;
  path?: string;
}

export interface Input {
  type: "tablet" | "keyboard" | "mouse";
  bus: "virtio" | "usb" | "ps2";
  alias?: string;
}

export interface Devices {
  emulator?: string;
  disks: Disk[];
  controllers: Controller[];
  interfaces: Interface[];
  serials: Serial[];
  /** `<console type="pty"><target type="serial" port="0"/>` mirroring serial 0, as KubeVirt does. */
  serialConsole: boolean;
  channels: Channel[];
  inputs: Input[];
  graphics?: { type: "vnc"; socket: string };
  video?: { model: "vga" | "virtio" | "bochs" | "cirrus" | "none"; heads: number; vram?: number };
  memballoon: {
    model: "virtio-non-transitional" | "virtio-transitional" | "virtio" | "none";
    freePageReporting?: boolean;
    statsPeriod?: number;
  };
  rngs: { model: string; backend: string }[];
  panics: { model: "isa" | "pvpanic" | "hyperv" }[];
  watchdog?: {
    model: "i6300esb";
    action: "poweroff" | "reset" | "shutdown" | "pause" | "none" | "dump" | "inject-nmi";
  };
}
