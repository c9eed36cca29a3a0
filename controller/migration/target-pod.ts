// The migration target launcher pod (KubeVirt's RenderMigrationManifest): the VMI's launcher pod (controller/vmi's
// renderLauncherPod: same labels, owner reference, resources, constraints) plus the label
// kubevirt.io/migrationJobUID and annotation kubevirt.io/migrationJobName, a required pod anti-affinity to the VMI's
// other launcher pods on kubernetes.io/hostname and a node affinity NotIn [source node] (so it never lands where the
// VMI runs), and the VMIM's addedNodeSelector under the VMI's own selectors (the VMI's win on a clash).
// Images: the source pod's compute image as it runs; the containerDisk digests the source booted from are in the
// VMI's status.volumeStatus[].containerDiskVolume.digest, which the target node agent pulls (handler/prepare.ts).
import { Migration } from "../../api/index.js";
import type {
  NodeSelectorTerm,
  Pod,
  VirtualMachineInstance,
  VirtualMachineInstanceMigration,
} from "../../client/index.js";
import { LABEL_CREATED_BY, renderLauncherPod } from "../vmi/pod.js";

export const HOSTNAME_KEY = "kubernetes.io/hostname";

export function renderTargetPod(
  vmi: VirtualMachineInstance,
  vmim: VirtualMachineInstanceMigration,
  sourceNode: string,
  sourcePod: Pod | undefined,
): Pod {
  const pod = renderLauncherPod(vmi);
  const labels: Record<string, string> = {
    ...(pod.metadata.labels ?? {}),
    [Migration.jobUidLabel]: vmim.metadata.uid ?? "",
  };
  delete labels[Migration.targetNodeLabel];
  pod.metadata.labels = labels;
  pod.metadata.annotations = {
    ...(pod.metadata.annotations ?? {}),
    [Migration.jobNameAnnotation]: vmim.metadata.name ?? "",
  };
  pod.spec.nodeSelector = { ...(vmim.spec.addedNodeSelector ?? {}), ...(pod.spec.nodeSelector ?? {}) };
  const image = sourcePod?.spec.containers.find((c) => c.name === "compute")?.image;
  const compute = pod.spec.containers.find((c) => c.name === "compute");
  if (image && compute) compute.image = image;

  const affinity = structuredClone(pod.spec.affinity ?? {});
  const notSource = { key: HOSTNAME_KEY, operator: "NotIn", values: [sourceNode] };
  const required = affinity.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  // node selector terms are ORed: the NotIn goes into each of them
  const terms: NodeSelectorTerm[] = (required?.nodeSelectorTerms ?? []).length
    ? (required?.nodeSelectorTerms ?? []).map((t) => ({
        ...t,
        matchExpressions: [...(t.matchExpressions ?? []), notSource],
      }))
    : [{ matchExpressions: [notSource] }];
  affinity.nodeAffinity = {
    ...(affinity.nodeAffinity ?? {}),
    requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms },
  };
  affinity.podAntiAffinity = {
    ...(affinity.podAntiAffinity ?? {}),
    requiredDuringSchedulingIgnoredDuringExecution: [
      ...(affinity.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []),
      { labelSelector: { matchLabels: { [LABEL_CREATED_BY]: vmi.metadata.uid ?? "" } }, topologyKey: HOSTNAME_KEY },
    ],
  };
  pod.spec.affinity = affinity;
  return pod;
}

/** Whether a pod is the target pod of this VMIM. */
export function isTargetPodOf(pod: Pod, vmim: VirtualMachineInstanceMigration): boolean {
  return pod.metadata.labels?.[Migration.jobUidLabel] === vmim.metadata.uid;
}
