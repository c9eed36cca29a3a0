// KubeVirt's well-known label and annotation names, shared by virt-controller and virt-handler.
export const SCHEDULABLE_LABEL = "kubevirt.io/schedulable";
export const HEARTBEAT_ANNOTATION = "kubevirt.io/heartbeat";
