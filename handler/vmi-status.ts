// The VMI status the node agent writes, from Running on (pure). Inputs are what the handler observed: the domain
// state the launcher reports (already mapped to a phase), the pod's readiness and IP, and image-pull trouble.
// Returns undefined when the status would not change, so the handler writes as rarely as possible.
import { isDeepStrictEqual } from "node:util";
import {
  type Condition,
  setCondition,
  type VirtualMachineInstance,
  VMI_PHASE_RANK,
  type VmiPhase,
  type VirtualMachineInstanceStatus as VmiStatus,
} from "../api/index.js";
import type { DomainStatus } from "../launcher/index.js";
import { isFinal, isPaused } from "./phase.js";
import { withContainerDiskDigests } from "./prepare.js";

export type PullTrouble = { reason: "ErrImagePull" | "ImagePullBackOff"; message: string };

export interface VmiObservation {
  nodeName: string;
  /** The launcher pod's IP (masquerade: the guest is behind NAT on it). */
  podIP?: string;
  domain?: DomainStatus;
  /** Phase for the domain state, from handler/phase.ts; undefined while no domain was reported yet. */
  phase?: VmiPhase;
  podReady: boolean;
  pull?: PullTrouble;
  /** The launcher refused the VMI (KubeVirt: Synchronized=False, reason SyncFailed). */
  syncError?: string;
  /** containerDisk volume → the manifest digest the node prepared it at (recorded in volumeStatus). */
  containerDiskDigests?: Readonly<Record<string, string>>;
  now: string;
}

function dropCondition(list: Condition[], type: string): Condition[] {
  return list.filter((c) => c.type !== type);
}

/** The pod network's interface name: the VMI's pod network, else KubeVirt's default "default". */
export function podInterfaceName(vmi: VirtualMachineInstance): string {
  const net = vmi.spec.networks?.find((n) => n.pod !== undefined);
  return net?.name ?? "default";
}

export function computeVmiStatus(vmi: VirtualMachineInstance, obs: VmiObservation): VmiStatus | undefined {
  const old: VmiStatus = vmi.status ?? {};
  let phase: VmiPhase = old.phase ?? "";
  // Never regress: a final phase stays; Running is not undone by a late report of an earlier state.
  if (obs.phase !== undefined && !isFinal(phase) && (VMI_PHASE_RANK[obs.phase] ?? 0) >= (VMI_PHASE_RANK[phase] ?? 0))
    phase = obs.phase;
  const next: VmiStatus = { ...old };
  let conditions: Condition[] = [...(old.conditions ?? [])];
  const running = phase === "Running";
  if (phase !== old.phase && (VMI_PHASE_RANK[phase] ?? 0) >= VMI_PHASE_RANK.Running!) {
    next.phase = phase;
    next.phaseTransitionTimestamps = [
      ...(old.phaseTransitionTimestamps ?? []),
      { phase, phaseTransitionTimestamp: obs.now },
    ];
    if (phase === "Failed" && obs.domain) next.reason = obs.domain.reason;
  }
  if ((VMI_PHASE_RANK[phase] ?? 0) >= VMI_PHASE_RANK.Running!) {
    next.nodeName = obs.nodeName;
    if (obs.podIP) {
      const name = podInterfaceName(vmi);
      const rest = (old.interfaces ?? []).filter((i) => i.name !== name);
      const prev = (old.interfaces ?? []).find((i) => i.name === name) ?? {};
      next.interfaces = [
        { ...prev, name, ipAddress: obs.podIP, ipAddresses: [obs.podIP], infoSource: "domain" },
        ...rest,
      ];
    }
    const paused = isPaused(obs.domain);
    const ms = old.migrationState;
    // the source's guest paused so its live migration can finish (allowWorkloadDisruption): KubeVirt's condition
    const byMigration =
      obs.domain?.state === "Paused" &&
      obs.domain.reason === "Migration" &&
      ms?.mode === "Paused" &&
      !ms.completed &&
      ms.sourceNode === obs.nodeName;
    if (paused || byMigration) {
      conditions = setCondition(
        conditions,
        byMigration
          ? {
              type: "Paused",
              status: "True",
              reason: "PausedByMigrationMonitor",
              message: "VMI was paused by the migration monitor",
            }
          : { type: "Paused", status: "True", reason: "PausedByUser", message: "VMI was paused by user" },
        obs.now,
      );
    } else {
      conditions = dropCondition(conditions, "Paused");
    }
    const ready = running && obs.podReady && !paused;
    conditions = setCondition(
      conditions,
      ready
        ? { type: "Ready", status: "True" }
        : {
            type: "Ready",
            status: "False",
            reason: paused ? "PodNotReady" : isFinal(phase) ? "PodTerminating" : "PodNotReady",
          },
      obs.now,
    );
  } else if (obs.pull) {
    conditions = setCondition(
      conditions,
      { type: "Ready", status: "False", reason: obs.pull.reason, message: obs.pull.message },
      obs.now,
    );
  } else {
    // Pull trouble cleared (or none yet) before the domain runs: leave the controller's conditions alone, but
    // remove a pull failure we reported earlier.
    const r = conditions.find((c) => c.type === "Ready");
    if (r && (r.reason === "ErrImagePull" || r.reason === "ImagePullBackOff"))
      conditions = dropCondition(conditions, "Ready");
  }
  if (obs.syncError && !running) {
    conditions = setCondition(
      conditions,
      { type: "Synchronized", status: "False", reason: "SyncFailed", message: obs.syncError },
      obs.now,
    );
  } else {
    conditions = dropCondition(conditions, "Synchronized");
  }
  if (conditions.length > 0 || old.conditions !== undefined) next.conditions = conditions;
  // Recorded with the first status the agent writes (Running): later pulls for this VMI use these digests.
  if (obs.containerDiskDigests && Object.keys(obs.containerDiskDigests).length && running) {
    next.volumeStatus = withContainerDiskDigests(vmi, obs.containerDiskDigests);
  }
  return isDeepStrictEqual(next, old) ? undefined : next;
}
