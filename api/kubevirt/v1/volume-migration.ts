// Volume migration names and the claim each volume uses during a live migration that moves node-local disks
// (issue 12 item 4; KubeVirt's StorageMigratedVolumeInfo shape). Shared by the migration controllers (live and cold:
// the new claims' names) and the node agents (which claim a node prepares while it is the target). Pure.
import { createHash } from "node:crypto";
import type { Static } from "@sinclair/typebox";
import type { StorageMigratedVolumeInfo, VirtualMachineInstance, Volume } from "./vmi.js";

export type MigratedVolume = Static<typeof StorageMigratedVolumeInfo>;

/** Short hash of a VMIM uid: it names the new claims and ties a record of the move to its VMIM. */
export function shortHash(uid: string): string {
  return createHash("sha256").update(uid).digest("hex").slice(0, 6);
}

const SUFFIX = /-m[0-9a-f]{6}$/;

/** `<claim>-m<hash>`: a claim moved before loses its old suffix (names do not grow with each move); ≤ 63 chars. */
export function movedClaimName(claim: string, hash: string): string {
  let base = claim.replace(SUFFIX, "");
  if (base.length > 55) base = base.slice(0, 55).replace(/[-.]+$/, "");
  return `${base}-m${hash}`;
}

/** Of a list of migratedVolumes, those the migration of this VMIM uid moves (their destinations carry its hash). */
export function movedByMigration(all: readonly MigratedVolume[] | undefined, uid: string): MigratedVolume[] {
  if (!uid) return [];
  const hash = shortHash(uid);
  return (all ?? []).filter((m) => m.destinationPVCInfo?.claimName?.endsWith(`-m${hash}`));
}

function claimOf(v: Volume): string | undefined {
  return v.dataVolume?.name ?? v.persistentVolumeClaim?.claimName;
}

/** The volumes with each moved one naming its destination claim (only those still naming the source claim). */
export function withMovedClaims(volumes: readonly Volume[], moved: readonly MigratedVolume[]): Volume[] {
  return volumes.map((v) => {
    const m = moved.find((x) => x.volumeName === v.name);
    const to = m?.destinationPVCInfo?.claimName;
    if (!m || !to || claimOf(v) !== m.sourcePVCInfo?.claimName) return v;
    const out = structuredClone(v);
    if (out.dataVolume) out.dataVolume.name = to;
    else if (out.persistentVolumeClaim) out.persistentVolumeClaim.claimName = to;
    return out;
  });
}

/**
 * The VMI's volumes as a node uses them: on the target node of a live migration that has not failed, the moved
 * volumes name their new claims (the VMI's spec names the old ones until the controller swaps it after the move).
 */
export function volumesOnNode(vmi: VirtualMachineInstance, node: string | undefined): Volume[] {
  const volumes = vmi.spec.volumes ?? [];
  const ms = vmi.status?.migrationState;
  if (!node || !ms?.migrationUid || ms.targetNode !== node || ms.failed) return volumes;
  return withMovedClaims(volumes, movedByMigration(vmi.status?.migratedVolumes, ms.migrationUid));
}
