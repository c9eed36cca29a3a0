// Node-local disks that move with a live migration (issue 12 item 4; KubeVirt's volume-migration shape), pure. The
// steps, each decided again from API state (the VMIM's uid-derived hash names the new claims; the VMI's nodeName
// says where the guest runs), so a controller killed between any two writes converges:
//
//   before the target pod  1. the record: VMI status.migratedVolumes old → new (`<claim>-m<hash>`), written first
//                          2. one blank DataVolume per local claim (same size, volumeMode, class; controlled by the
//                             VM like the old one, so the retained-disk rules hold), unbound: WaitForFirstConsumer
//                          3. the target pod names the new claims: the scheduler places the pod and its claims
//                             together (room, the VMI's constraints, away from the source) — no second node choice
//   on success             4. (completed, the VMI runs on the target) the VMI's volumes swapped, then the VM's
//                             record (status.volumeUpdateState) and its volumes/dataVolumeTemplates, then Succeeded
//                          5. the old DataVolumes/claims deleted (their files freed on the source) → finalizer off
//   on failure / cancel    the new DataVolumes deleted, the VMI's record cleared → finalizer off; the VM untouched
//
// Until step 4 the VMI's spec names the old claims; the target node agent uses the new ones (api volumesOnNode).

import { isDeepStrictEqual } from "node:util";
import { type MigratedVolume, movedByMigration, shortHash, type Volume, withMovedClaims } from "../../api/index.js";
import type {
  DataVolume,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineInstanceMigration,
} from "../../client/index.js";
import {
  type ColdLookup,
  isSwapped,
  LIVE_UID_LABEL,
  localDisks,
  migratedVolumes,
  movedBy,
  movedTemplate,
  type Ref,
  release,
  swappedVmSpec,
} from "../coldmigration/index.js";
import { dataVolumeFromTemplate } from "../vm/disks.js";

export interface VolumeContext {
  vmim: VirtualMachineInstanceMigration;
  vmi: VirtualMachineInstance;
  /** The VMI's VM (only when it controls the VMI). */
  vm?: VirtualMachine;
  lookup: ColdLookup;
  /** The DataVolumes of the namespace labelled with this VMIM's uid (the new ones). */
  own: readonly DataVolume[];
}

/** A VM-shaped view of a VMI (the cold migration's disk helpers read a VM). */
function asVm(vmi: VirtualMachineInstance): VirtualMachine {
  return { metadata: vmi.metadata, spec: { template: { spec: vmi.spec } } } as VirtualMachine;
}

const uidOf = (ctx: VolumeContext) => ctx.vmim.metadata.uid ?? "";
const claimOf = (v: Volume) => v.dataVolume?.name ?? v.persistentVolumeClaim?.claimName;

/** The VM controlling the VMI, if it is that one. */
export function owningVm(vmi: VirtualMachineInstance, vm: VirtualMachine | undefined): VirtualMachine | undefined {
  const ref = vmi.metadata.ownerReferences?.find((r) => r.controller && r.kind === "VirtualMachine");
  return vm && ref && ref.uid === vm.metadata.uid ? vm : undefined;
}

export type BeforeTarget =
  /** No node-local disk: the target pod as usual. */
  | { kind: "none" }
  | { kind: "error"; message: string }
  | { kind: "record"; migratedVolumes: MigratedVolume[] }
  | { kind: "create"; dvs: DataVolume[] }
  | { kind: "wait"; why: string }
  /** Everything made: the target pod renders from this VMI (its volumes naming the new claims). */
  | { kind: "ready"; vmi: VirtualMachineInstance };

function newDataVolume(ctx: VolumeContext, m: MigratedVolume): DataVolume {
  const tpl = movedTemplate(ctx.vm ?? asVm(ctx.vmi), m, undefined, uidOf(ctx));
  if (ctx.vm) return dataVolumeFromTemplate(ctx.vm, tpl);
  const dv = dataVolumeFromTemplate(asVm(ctx.vmi), tpl);
  // a bare VMI's new disk stands alone, as its old one did
  delete dv.metadata.ownerReferences;
  return dv;
}

/** Steps 1–3: what to write before the target pod, or the VMI the target pod is made from. */
export function beforeTarget(ctx: VolumeContext): BeforeTarget {
  const found = localDisks(asVm(ctx.vmi), ctx.lookup);
  if ("error" in found) return { kind: "error", message: found.error };
  if (found.disks.length === 0) return { kind: "none" };
  const source = ctx.vmi.status?.nodeName;
  const away = found.disks.find((d) => d.node !== source);
  if (away) return { kind: "error", message: `volume ${away.volumeName} is on node ${away.node}, not ${source}` };
  const ns = ctx.vmim.metadata.namespace ?? "";
  const want = migratedVolumes(found.disks, shortHash(uidOf(ctx)));
  const recorded = movedByMigration(ctx.vmi.status?.migratedVolumes, uidOf(ctx));
  if (!isDeepStrictEqual(recorded, want)) return { kind: "record", migratedVolumes: want };
  const missing: DataVolume[] = [];
  for (const m of want) {
    const name = m.destinationPVCInfo?.claimName ?? "";
    const dv = ctx.lookup.dv(ctx.vmim.metadata.namespace ?? "", name);
    if (!dv) missing.push(newDataVolume(ctx, m));
    else if (dv.metadata.labels?.[LIVE_UID_LABEL] !== uidOf(ctx))
      return { kind: "error", message: `DataVolume ${name} exists and is not this migration's` };
    else if (dv.metadata.deletionTimestamp || dv.status?.phase === "Failed")
      return { kind: "error", message: `DataVolume ${name} is ${dv.status?.phase ?? "being deleted"}` };
  }
  if (missing.length > 0) return { kind: "create", dvs: missing };
  // the scheduler places the target pod with its claims: they must exist first (the DataVolume controller makes them)
  const unmade = want.find((m) => !ctx.lookup.claim(ns, m.destinationPVCInfo?.claimName ?? ""));
  if (unmade) return { kind: "wait", why: `claim ${unmade.destinationPVCInfo?.claimName} not made yet` };
  return {
    kind: "ready",
    vmi: { ...ctx.vmi, spec: { ...ctx.vmi.spec, volumes: withMovedClaims(ctx.vmi.spec.volumes ?? [], want) } },
  };
}

export interface SwapWrites {
  /** The VMI's volumes naming the new claims. */
  vmiVolumes?: Volume[];
  /** The VM's record of the move (status.volumeUpdateState.volumeMigrationState.migratedVolumes). */
  vmMigratedVolumes?: MigratedVolume[];
  /** The VM's spec naming the new claims (volumes and dataVolumeTemplates). */
  vmSpec?: VirtualMachine["spec"];
}

/** Step 4: the writes still missing once the guest runs on the target (empty: all done). */
export function swapWrites(ctx: VolumeContext): SwapWrites {
  const moved = movedByMigration(ctx.vmi.status?.migratedVolumes, uidOf(ctx));
  const out: SwapWrites = {};
  if (moved.length === 0) return out;
  const volumes = withMovedClaims(ctx.vmi.spec.volumes ?? [], moved);
  if (!isDeepStrictEqual(volumes, ctx.vmi.spec.volumes ?? [])) out.vmiVolumes = volumes;
  const vm = ctx.vm;
  if (vm) {
    if (movedBy(vm, shortHash(uidOf(ctx))).length === 0) out.vmMigratedVolumes = moved;
    if (!isSwapped(vm, moved)) {
      const templates = moved.map((m) => movedTemplate(vm, m, undefined, uidOf(ctx)));
      out.vmSpec = swappedVmSpec(vm, moved, templates);
    }
  }
  return out;
}

export interface Cleanup {
  dvs: Ref[];
  claims: Ref[];
  /** The VMI's record of this migration to clear (a failure). */
  clearRecord: boolean;
  /** Still something to wait for or do: the finalizer stays. */
  pending: boolean;
}

/** Step 5 after a success (the old claims, once the VMI runs on the target), or the rollback after a failure. */
export function cleanup(
  ctx: Omit<VolumeContext, "vmi"> & { vmi?: VirtualMachineInstance },
  succeeded: boolean,
  targetNode: string | undefined,
): Cleanup {
  const out: Cleanup = { dvs: [], claims: [], clearRecord: false, pending: false };
  const uid = ctx.vmim.metadata.uid ?? "";
  const moved = movedByMigration(ctx.vmi?.status?.migratedVolumes, uid);
  if (succeeded) {
    const vmMoved = ctx.vm ? movedBy(ctx.vm, shortHash(uid)) : [];
    const all = moved.length > 0 ? moved : vmMoved;
    if (all.length === 0 || !targetNode) return out;
    const step = release(
      { vmim: ctx.vmim, ...(ctx.vmi ? { vmi: ctx.vmi } : {}), ...(ctx.vm ? { vm: ctx.vm } : {}), lookup: ctx.lookup },
      all,
      targetNode,
    );
    if (step?.kind === "delete") return { ...out, dvs: step.dvs, claims: step.claims, pending: true };
    if (step?.kind === "none") return { ...out, pending: true };
    return out;
  }
  // Failed: never a disk the VMI or the VM names
  const named = new Set([
    ...(ctx.vmi?.spec.volumes ?? []).map(claimOf),
    ...(ctx.vm?.spec.template.spec?.volumes ?? []).map(claimOf),
  ]);
  for (const dv of ctx.own) {
    const name = dv.metadata.name ?? "";
    if (named.has(name)) continue;
    out.pending = true;
    if (!dv.metadata.deletionTimestamp) out.dvs.push({ name, uid: dv.metadata.uid ?? "" });
  }
  if (moved.length > 0 && !moved.some((m) => named.has(m.destinationPVCInfo?.claimName))) {
    out.clearRecord = true;
    out.pending = true;
  }
  return out;
}

/** KubeVirt's VMI condition while its volumes move (v1.VirtualMachineInstanceVolumesChange). */
export const VOLUMES_CHANGE = "VolumesChange";

/**
 * The VolumesChange condition as KubeVirt writes it: True ("migrate volumes") from the moment the move is recorded
 * (status.migratedVolumes), removed with the record once the move is done (virt-handler's removeMigratedVolumes at
 * the end of the migration), False with reason VolumesChangeCancellation when the move is abandoned (KubeVirt's
 * cancelVolumeMigration: here a failed or cancelled migration, whose new disks are deleted).
 */
export function volumesChangeCondition(step: "recorded" | "cancelled"): {
  type: string;
  status: "True" | "False";
  reason?: string;
  message: string;
} {
  return step === "recorded"
    ? { type: VOLUMES_CHANGE, status: "True", message: "migrate volumes" }
    : {
        type: VOLUMES_CHANGE,
        status: "False",
        reason: "VolumesChangeCancellation",
        message: "the migration of the volumes failed or was cancelled: the VMI keeps its volumes",
      };
}
