// The virt-launcher pod for a VMI, shaped like KubeVirt's (pkg/virt-controller/services/template.go): generateName
// virt-launcher-<vmi>-, labels kubevirt.io=virt-launcher and kubevirt.io/created-by=<vmi uid>, container `compute`,
// restartPolicy Never, the readiness gate kubevirt.io/virtual-machine-unpaused, an owner reference to the VMI,
// scheduling constraints from the VMI, and requests = guest resources + KubeVirt's memory overhead (§3.3).
// The embedded pod runner never executes the image or command named here; it builds the launcher's command itself.

import type { Pod, ResourceList, Toleration, VirtualMachineInstance } from "../../client/index.js";
import { bytes, formatBytes, formatMillicores, millicores, parseQuantity } from "../quantity.js";

export const LAUNCHER_IMAGE = "tsvirt/virt-launcher";
export const READINESS_GATE = "kubevirt.io/virtual-machine-unpaused";
export const LABEL_APP = "kubevirt.io";
export const LABEL_CREATED_BY = "kubevirt.io/created-by";
export const LABEL_NODE_NAME = "kubevirt.io/nodeName";

import { controllerRef, SCHEDULABLE_LABEL } from "../../api/index.js";

export const LABEL_SCHEDULABLE = SCHEDULABLE_LABEL;
export const ANNOTATION_DOMAIN = "kubevirt.io/domain";

const Mi = 2 ** 20;

/** sockets × cores × threads; with no topology, sockets = CPU limit, else CPU request (rounded up), else 1. */
export function vcpus(vmi: VirtualMachineInstance): number {
  const cpu = vmi.spec.domain.cpu;
  if (cpu && (cpu.sockets || cpu.cores || cpu.threads))
    return (cpu.sockets || 1) * (cpu.cores || 1) * (cpu.threads || 1);
  const res = vmi.spec.domain.resources;
  const q = res?.limits?.cpu ?? res?.requests?.cpu;
  const n = Math.ceil(parseQuantity(q));
  return Number.isFinite(n) && n > 0 ? n : 1;
}

/** memory.guest ‖ requests.memory ‖ limits.memory, in bytes. */
export function guestMemory(vmi: VirtualMachineInstance): number {
  const d = vmi.spec.domain;
  return bytes(d.memory?.guest ?? d.resources?.requests?.memory ?? d.resources?.limits?.memory);
}

/**
 * KubeVirt's launcher memory overhead (HEAD, kubevirt-api.md §3.3): 25Mi monitor + 100Mi launcher + 25Mi virtlogd +
 * 40Mi virtqemud + 50Mi QEMU, guest/512 for page tables, 8Mi per vCPU, 8Mi for the IOThread, 32Mi of video RAM when
 * a graphics device is attached, 100Mi for dedicated CPUs.
 */
export function memoryOverhead(vmi: VirtualMachineInstance): number {
  let o = (25 + 100 + 25 + 40 + 50) * Mi;
  o += Math.ceil(guestMemory(vmi) / 512);
  o += 8 * Mi * vcpus(vmi);
  o += 8 * Mi;
  if (vmi.spec.domain.devices?.autoattachGraphicsDevice !== false) o += 32 * Mi;
  if (vmi.spec.domain.cpu?.dedicatedCpuPlacement) o += 100 * Mi;
  return Math.ceil(o / Mi) * Mi;
}

/** Pod requests and limits: guest memory + overhead; CPU as requested, else 100m per vCPU (allocation ratio 10). */
export function launcherResources(vmi: VirtualMachineInstance): { requests: ResourceList; limits?: ResourceList } {
  const res = vmi.spec.domain.resources;
  const overhead = memoryOverhead(vmi);
  const requests: ResourceList = {
    cpu: formatMillicores(res?.requests?.cpu !== undefined ? millicores(res.requests.cpu) : 100 * vcpus(vmi)),
    memory: formatBytes(
      bytes(res?.requests?.memory ?? vmi.spec.domain.memory?.guest ?? res?.limits?.memory) + overhead,
    ),
  };
  const limits: ResourceList = {};
  if (res?.limits?.cpu !== undefined) limits.cpu = formatMillicores(millicores(res.limits.cpu));
  if (res?.limits?.memory !== undefined) limits.memory = formatBytes(bytes(res.limits.memory) + overhead);
  return Object.keys(limits).length > 0 ? { requests, limits } : { requests };
}

export function renderLauncherPod(vmi: VirtualMachineInstance): Pod {
  const name = vmi.metadata.name!;
  const labels: Record<string, string> = {
    ...(vmi.metadata.labels ?? {}),
    [LABEL_APP]: "virt-launcher",
    [LABEL_CREATED_BY]: vmi.metadata.uid!,
    "vm.kubevirt.io/name": name,
  };
  delete labels[LABEL_NODE_NAME];
  const tolerations: Toleration[] = [...(vmi.spec.tolerations ?? [])];
  const pod: Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: `virt-launcher-${name}-`,
      namespace: vmi.metadata.namespace!,
      labels,
      annotations: { [ANNOTATION_DOMAIN]: name, "kubectl.kubernetes.io/default-container": "compute" },
      ownerReferences: [controllerRef(vmi, "kubevirt.io/v1", "VirtualMachineInstance")],
    },
    spec: {
      containers: [
        {
          name: "compute",
          image: LAUNCHER_IMAGE,
          command: [
            "/usr/bin/virt-launcher-monitor",
            "--qemu-timeout",
            "240s",
            "--name",
            name,
            "--uid",
            vmi.metadata.uid!,
            "--namespace",
            vmi.metadata.namespace!,
          ],
          resources: launcherResources(vmi),
        },
      ],
      restartPolicy: "Never",
      readinessGates: [{ conditionType: READINESS_GATE }],
      nodeSelector: { ...(vmi.spec.nodeSelector ?? {}), [LABEL_SCHEDULABLE]: "true" },
      terminationGracePeriodSeconds: (vmi.spec.terminationGracePeriodSeconds ?? 30) + 15,
      automountServiceAccountToken: false,
      hostname: vmi.spec.hostname ?? name,
    },
  };
  // The VMI's claims (a dataVolume's claim has its name), as KubeVirt's virt-launcher pod lists them: the
  // scheduler's volume binding places the pod where they are (or can be provisioned).
  const claims = (vmi.spec.volumes ?? []).flatMap((v) => {
    const claimName = v.persistentVolumeClaim?.claimName ?? v.dataVolume?.name;
    return claimName ? [{ name: v.name, persistentVolumeClaim: { claimName } }] : [];
  });
  if (claims.length > 0) pod.spec.volumes = claims;
  if (vmi.spec.affinity) pod.spec.affinity = structuredClone(vmi.spec.affinity);
  if (tolerations.length > 0) pod.spec.tolerations = tolerations;
  if (vmi.spec.subdomain) pod.spec.subdomain = vmi.spec.subdomain;
  if (vmi.spec.schedulerName) pod.spec.schedulerName = vmi.spec.schedulerName;
  if (vmi.spec.priorityClassName) pod.spec.priorityClassName = vmi.spec.priorityClassName;
  return pod;
}

export function isLauncherPodOf(pod: Pod, vmi: VirtualMachineInstance): boolean {
  return (
    pod.metadata.labels?.[LABEL_APP] === "virt-launcher" &&
    (pod.metadata.ownerReferences ?? []).some((r) => r.uid === vmi.metadata.uid && r.controller)
  );
}
