// Test fixtures of the migration tests: a VMI migrating from n1 to n2.
import type { VirtualMachineInstance } from "../ports.js";
import type { MigrationState } from "./plan.js";

export const MIG = "mig-1";

/** The VMI "default/vm1" with a containerDisk, an emptyDisk, a claim and a cloud-init disk, migrating n1 → n2. */
export function migratingVmi(ms: Partial<MigrationState>, nodeName = "n1"): VirtualMachineInstance {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "vm1", namespace: "default", uid: "vmi-uid", labels: { "kubevirt.io/nodeName": nodeName } },
    spec: {
      domain: { devices: {} },
      volumes: [
        { name: "containerdisk", containerDisk: { image: "reg/guest:1" } },
        { name: "scratch", emptyDisk: { capacity: "1Gi" } },
        { name: "data", persistentVolumeClaim: { claimName: "data" } },
        { name: "cloudinit", cloudInitNoCloud: { userData: "x" } },
      ],
    },
    status: {
      phase: "Running",
      nodeName,
      interfaces: [{ name: "default", ipAddress: "10.244.0.7", ipAddresses: ["10.244.0.7"] }],
      migrationState: {
        migrationUid: MIG,
        sourceNode: "n1",
        targetNode: "n2",
        sourcePod: "src",
        targetPod: "tgt",
        ...ms,
      },
    },
  };
}
