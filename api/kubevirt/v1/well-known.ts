// KubeVirt's well-known label and annotation names, shared by virt-controller and virt-handler.
export const SCHEDULABLE_LABEL = "kubevirt.io/schedulable";
export const HEARTBEAT_ANNOTATION = "kubevirt.io/heartbeat";
/** Admission puts it on every VMI; virt-controller removes it once the VMI's pods are gone. */
export const VMI_FINALIZER = "foregroundDeleteVirtualMachine";

/** VMI phases in lifecycle order; a phase never moves to a lower rank (Succeeded and Failed are both final). */
export const VMI_PHASE_RANK: Readonly<Record<string, number>> = {
  "": 0,
  Pending: 1,
  Scheduling: 2,
  Scheduled: 3,
  Running: 4,
  Succeeded: 5,
  Failed: 5,
};
