// Host facts the converter needs besides the VMI: what the node and the launcher prepared. Plain data.
/** How a volume's bytes reach QEMU, as the node/launcher prepared them. */
export type PreparedVolume =
  /** A file used as is (PVC/dataVolume disk.img, hostDisk, emptyDisk qcow2, an ISO). */
  | { type: "file"; path: string; format: "raw" | "qcow2" }
  /** A block device (block-mode PVC/dataVolume). */
  | { type: "block"; path: string }
  /** A qcow2 overlay the launcher creates over a read-only base (containerDisk, ephemeral). */
  | {
      type: "overlay";
      path: string;
      backing: { type: "file"; path: string; format: "raw" | "qcow2" } | { type: "block"; path: string };
    };

export interface ConverterContext {
  arch: "x86_64";
  /** /dev/kvm usable: domain type kvm; else qemu (TCG) with a TCG-safe CPU model. */
  kvm: boolean;
  /** Per VMI volume name. */
  volumes: Readonly<Record<string, PreparedVolume>>;
  /** Per VMI interface name: the tap device the node created in the pod's network namespace. */
  interfaces: Readonly<Record<string, { tap: string; mtu?: number }>>;
  /** Unix socket for serial port 0 (QEMU listens). */
  serialSocket: string;
  /** File logging serial output (spec.domain.devices.logSerialConsole). */
  serialLog?: string;
  /** Unix socket for VNC (QEMU listens). */
  vncSocket: string;
  /** Unix socket for the guest agent channel; libvirt picks one when absent. */
  guestAgentSocket?: string;
  /** kernelBoot: the kernel and initrd extracted from the kernelBoot container. */
  kernelBoot?: { kernel: string; initrd?: string };
  /** EFI: explicit loader/vars; absent → libvirt firmware auto-selection. */
  efi?: { code: string; vars: string; nvram: string };
  /** QEMU binary to name in <emulator>; libvirt's default when absent. */
  emulator?: string;
  /** Free pcie-root-ports left for hotplug (KubeVirt keeps some free). Default 3. */
  hotplugPorts?: number;
}
