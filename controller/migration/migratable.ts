// Whether a VMI can live-migrate and how (KubeVirt's virt-handler updateLiveMigrationConditions /
// calculateLiveMigrationCondition / checkVolumesForMigration; network: vmispec.VerifyVMIMigratable). Pure.
// In tsvirt the VMI controller (virt-controller) writes the result, not the node agent: it is the one writer of
// status.migrationMethod and the LiveMigratable condition, for every Scheduled/Running VMI.
import type { Condition, PersistentVolumeClaim, VirtualMachineInstance } from "../../client/index.js";
import { LOCAL_CLASS } from "../../storage/index.js";

export type MigrationMethod = "LiveMigration" | "BlockMigration";

export const LIVE_MIGRATABLE = "LiveMigratable";
/** KubeVirt's annotation that lets a bridge interface on the pod network migrate anyway. */
export const ALLOW_POD_BRIDGE_MIGRATION = "kubevirt.io/allow-pod-bridge-network-live-migration";

export interface Migratability {
  condition: Condition;
  method: MigrationMethod;
}

function notMigratable(reason: string, message: string, method: MigrationMethod): Migratability {
  return { condition: { type: LIVE_MIGRATABLE, status: "False", reason, message }, method };
}

/** The interface on the pod network, when it blocks migration (bridge without the annotation, SR-IOV, macvtap...). */
function interfaceBlocks(vmi: VirtualMachineInstance): boolean {
  const podNet = (vmi.spec.networks ?? []).find((n) => n.pod)?.name;
  if (!podNet) return false;
  const iface = (vmi.spec.domain.devices?.interfaces ?? []).find((i) => i.name === podNet);
  if (!iface) return false;
  if (iface.masquerade || iface.passt || iface.passtBinding) return false;
  if (iface.bridge) return vmi.metadata.annotations?.[ALLOW_POD_BRIDGE_MIGRATION] === undefined;
  // no binding named: the admission default (masquerade in tsvirt)
  return Boolean(iface.slirp || iface.sriov || iface.macvtap || iface.binding);
}

function sharedClaim(pvc: PersistentVolumeClaim | undefined): boolean {
  return (pvc?.spec.accessModes ?? []).includes("ReadWriteMany");
}

/** A node-local claim (class tsvirt-local; unset: the default class, tsvirt-local): it moves with the VM. */
export function localClaim(pvc: PersistentVolumeClaim | undefined): boolean {
  return pvc !== undefined && (pvc.spec.storageClassName ?? LOCAL_CLASS) === LOCAL_CLASS;
}

/**
 * LiveMigratable and migrationMethod of a VMI. Checked in KubeVirt's order (interfaces, host devices, then disks;
 * the first failing reason wins). `claim` looks a PVC up by name in the VMI's namespace.
 * Disks: a PVC/DataVolume must be ReadWriteMany (shared), or node-local (class tsvirt-local): those move with the VM
 * (new claims on the target, block-copied in the same job: KubeVirt's volume migration), so BlockMigration. An RWO
 * claim of another class and a non-shared hostDisk answer DisksNotLiveMigratable. Everything else that is not a
 * PVC/DV/hostDisk (containerDisk, emptyDisk, ephemeral, cloud-init, configMap, secret ...) lives in the pod and is
 * copied: BlockMigration.
 */
export function migratability(
  vmi: VirtualMachineInstance,
  claim: (name: string) => PersistentVolumeClaim | undefined,
): Migratability {
  let method: MigrationMethod = "LiveMigration";
  for (const v of vmi.spec.volumes ?? []) {
    if (!(v.persistentVolumeClaim || v.dataVolume || v.hostDisk)) method = "BlockMigration";
  }
  if ((vmi.status?.migratedVolumes ?? []).length > 0) method = "BlockMigration";
  if (interfaceBlocks(vmi)) {
    return notMigratable(
      "InterfaceNotLiveMigratable",
      "cannot migrate VMI which does not use masquerade, bridge with kubevirt.io/allow-pod-bridge-network-live-migration VM annotation or a migratable plugin to connect to the pod network",
      method,
    );
  }
  const devices = vmi.spec.domain.devices;
  if ((devices?.hostDevices ?? []).length > 0 || (devices?.gpus ?? []).length > 0) {
    return notMigratable("HostDeviceNotLiveMigratable", "VMI uses a PCI host devices", method);
  }
  for (const v of vmi.spec.volumes ?? []) {
    const claimName = v.persistentVolumeClaim?.claimName ?? v.dataVolume?.name;
    if (claimName) {
      const pvc = claim(claimName);
      if (sharedClaim(pvc)) continue;
      if (localClaim(pvc)) {
        method = "BlockMigration";
        continue;
      }
      return notMigratable(
        "DisksNotLiveMigratable",
        `cannot migrate VMI: PVC ${claimName} is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)`,
        method,
      );
    }
    if (v.hostDisk && !v.hostDisk.shared) {
      return notMigratable("DisksNotLiveMigratable", "cannot migrate VMI with non-shared HostDisk", method);
    }
  }
  return { condition: { type: LIVE_MIGRATABLE, status: "True" }, method };
}
