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

/** The namespace KubeVirt (and tsvirt) runs its components in; it holds the `kubevirt` settings object. */
export const KUBEVIRT_NAMESPACE = "kubevirt";

/** KubeVirt's component service accounts (pkg/virt-operator/resource/generate/components). */
export const SERVICE_ACCOUNTS = {
  controller: "kubevirt-controller",
  handler: "kubevirt-handler",
  apiserver: "kubevirt-apiserver",
} as const;
export type Component = keyof typeof SERVICE_ACCOUNTS;

/** The username a service account's token authenticates as. */
export function serviceAccountUser(sa: string, namespace = KUBEVIRT_NAMESPACE): string {
  return `system:serviceaccount:${namespace}:${sa}`;
}

/** KubeVirt's webhooks.IsKubeVirtServiceAccount: virt-api, virt-handler or virt-controller. */
export function isKubeVirtServiceAccount(username: string): boolean {
  return Object.values(SERVICE_ACCOUNTS).some((sa) => serviceAccountUser(sa) === username);
}

/** KubeVirt's label on a VM's DataVolumes (and VMIs): the uid of the VM that created them. */
export const CREATED_BY_LABEL = "kubevirt.io/created-by";

/**
 * tsvirt's retained disks (issue 11): a deleted VM's dataVolumeTemplate DataVolumes and their claims stay, without the
 * VM's ownerReference, labelled with its name and annotated with its uid and last spec (what `virtctl recover` reads).
 */
export const RetainedDisks = {
  /** On the VM while its disks still have to be released before the garbage collector sees it gone. */
  finalizer: "tsvirt.io/retain-disks",
  /** Label on a retained DataVolume and its PVC: the name of the VM they belonged to. */
  fromVmLabel: "tsvirt.io/retained-from-vm",
  uidAnnotation: "tsvirt.io/retained-vm-uid",
  /** The VM's last spec, JSON. */
  specAnnotation: "tsvirt.io/retained-vm-spec",
  /**
   * "true" on a VM: its disks go with it (KubeVirt's way). A VirtualMachinePool's members' disks go with them unless
   * the pool carries it as "false" (its members are interchangeable).
   */
  deleteWithVmAnnotation: "tsvirt.io/delete-disks-with-vm",
} as const;

/** KubeVirt's live-migration names (pkg/virt-controller/watch/migration, api/core/v1/types.go). */
export const Migration = {
  /** On a VMIM: the VMI it migrates (the create mutator adds it; migrate-cancel finds the VMIM by it). */
  vmiNameLabel: "kubevirt.io/vmi-name",
  /** On the target launcher pod: the uid of the VMIM it was made for. */
  jobUidLabel: "kubevirt.io/migrationJobUID",
  /** On the target launcher pod: the VMIM's name. */
  jobNameAnnotation: "kubevirt.io/migrationJobName",
  /** On the VMI while a migration is active: the target node (the target node agent selects VMIs by it). */
  targetNodeLabel: "kubevirt.io/migrationTargetNodeName",
  /** On a VMIM, added by the migration controller; removed once the VMIM is final. */
  finalizer: "kubevirt.io/migrationJobFinalize",
  /** tsvirt: on a VMIM naming a stopped VM (cold migration); the live migration controller ignores it. */
  modeLabel: "tsvirt.io/migration-mode",
  /** KubeVirt's defaultFinalizedMigrationGarbageCollectionBuffer: finished VMIMs kept per VMI. */
  finishedKeptPerVmi: 5,
} as const;

/**
 * tsvirt's cold migration (issue 12 item 6): a VirtualMachineInstanceMigration whose spec.vmiName names a stopped VM
 * (no VMI) moves the VM's node-local disks to another node. The create mutator labels it; the live migration
 * controller leaves such VMIMs alone, the cold migration controller (controller/coldmigration) drives them.
 */
export const ColdMigration = {
  /** VMIM label: how the migration moves the VM ("Cold"; absent: live). */
  modeLabel: Migration.modeLabel,
  mode: "Cold",
  /**
   * VM condition while a cold migration holds it: True = its disks are being copied, a start waits (printableStatus
   * Migrating); False once it ended (reason says how). The message names the VMIM.
   */
  condition: "ColdMigration",
} as const;

/** Whether a VMIM is a cold migration (labelled by admission). */
export function isColdMigration(vmim: { metadata?: { labels?: Record<string, string> } }): boolean {
  return vmim.metadata?.labels?.[ColdMigration.modeLabel] === ColdMigration.mode;
}
