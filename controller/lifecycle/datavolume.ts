// A DataVolume's state as KubeVirt reads it (kubevirt-lifecycle-2.md §7): failed, provisioning, startable on.
import type { DataVolume } from "../../client/index.js";

function dvCondition(dv: DataVolume, type: string) {
  return dv.status?.conditions?.find((c) => c.type === type);
}

/** KubeVirt's DataVolumeError: a DataVolume Failed, or its Running condition False with Error/ImagePullFailed. */
export function dataVolumeError(dv: DataVolume): boolean {
  if (dv.status?.phase === "Failed") return true;
  const r = dvCondition(dv, "Running");
  return r?.status === "False" && (r.reason === "Error" || r.reason === "ImagePullFailed");
}

/** KubeVirt's provisioning: neither Succeeded nor PendingPopulation; a WaitForFirstConsumer one not Bound is not. */
export function dataVolumeProvisioning(dv: DataVolume): boolean {
  const phase = dv.status?.phase;
  if (phase === "Succeeded" || phase === "PendingPopulation") return false;
  if (phase === "WaitForFirstConsumer" && dvCondition(dv, "Bound")?.status !== "True") return false;
  return true;
}

/** A VMI may be started on this DataVolume (KubeVirt: Succeeded, WaitForFirstConsumer or PendingPopulation). */
export function dataVolumeStartable(dv: DataVolume): boolean {
  const phase = dv.status?.phase;
  return phase === "Succeeded" || phase === "WaitForFirstConsumer" || phase === "PendingPopulation";
}

/** "name (phase P)": no progress, so conditions quoting it change with the phase, not every second of a copy. */
export function describeDataVolume(dv: DataVolume): string {
  return `${dv.metadata.name} (phase ${dv.status?.phase || "Pending"})`;
}
