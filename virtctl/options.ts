// Subresource bodies (subresources.kubevirt.io/v1 *Options) and the argument check shared by pause/unpause.

export const SUBRESOURCE_API_VERSION = "subresources.kubevirt.io/v1";

export function dryRunField(d: boolean | undefined): { dryRun?: string[] } {
  return d ? { dryRun: ["All"] } : {};
}

export type PauseTarget = "vm" | "vmi";

export function pauseTarget(kind: string): PauseTarget {
  const k = kind.toLowerCase();
  if (k === "vm" || k === "vms" || k === "virtualmachine") return "vm";
  if (k === "vmi" || k === "vmis" || k === "virtualmachineinstance") return "vmi";
  throw new Error(`unsupported resource type "${kind}": use vm or vmi`);
}

export function parseGracePeriod(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`invalid --grace-period "${v}": must be a non-negative integer`);
  return n;
}
