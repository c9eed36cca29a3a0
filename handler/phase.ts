// libvirt domain state + reason (as the launcher reports it) → VMI phase, with KubeVirt's rules
// (virt-handler/vm.go calculateVmPhaseForStatusReason). Pure: no retries, no clocks.
import type { VmiPhase } from "../api/index.js";
import type { DomainStatus as DomainState } from "../launcher/index.js";

export interface PhaseInput {
  /** The domain as the launcher last reported it; undefined when the launcher has none. */
  domain: DomainState | undefined;
  /** The VMI's current phase (returned when the domain tells us nothing new). */
  current: VmiPhase;
  /** Whether the domain has ACPI: a Destroyed domain with ACPI did not shut down within its grace period. */
  acpi: boolean;
}

function assertNever(x: never): never {
  throw new Error(`unexpected domain state ${JSON.stringify(x)}`);
}

function stoppedPhase(reason: string, current: VmiPhase, acpi: boolean): VmiPhase {
  switch (reason) {
    case "Crashed":
    case "Panicked":
    case "Failed":
      return "Failed";
    case "Destroyed":
      // With ACPI the guest was asked to shut down first; destroyed means the grace period ran out.
      return acpi ? "Failed" : "Succeeded";
    case "Shutdown":
    case "Saved":
    case "FromSnapshot":
      return "Succeeded";
    case "Migrated":
      // The VMI lives on elsewhere: not this node's to decide.
      return current;
    default:
      return current;
  }
}

export function phaseFor(input: PhaseInput): VmiPhase {
  const { domain, current, acpi } = input;
  if (domain === undefined) return current;
  switch (domain.state) {
    case "Running":
    case "Blocked":
    case "PMSuspended":
    case "ShuttingDown":
      return "Running";
    case "Paused":
      return domain.reason === "PostcopyFailed" ? "Failed" : "Running";
    case "Shutoff":
    case "Crashed":
      return stoppedPhase(domain.reason, current, acpi);
    case "NoState":
      return current;
    default:
      return assertNever(domain.state);
  }
}

/** The VMI fields the phase rules read (structural: the node agent's VMI and api/'s both fit). */
export interface PhaseVmi {
  spec: { terminationGracePeriodSeconds?: number; domain?: { features?: unknown; [k: string]: unknown } };
  status?: { phase?: VmiPhase; [k: string]: unknown };
}

/**
 * KubeVirt's isACPIEnabled: the guest was asked to shut down (so a Destroyed domain means the grace period ran out)
 * when the domain has ACPI (spec.domain.features.acpi.enabled is not false) and the grace period is not 0.
 */
export function acpiShutdown(vmi: PhaseVmi): boolean {
  if (vmi.spec.terminationGracePeriodSeconds === 0) return false;
  const features = vmi.spec.domain?.features as { acpi?: { enabled?: boolean } } | undefined;
  return features?.acpi?.enabled !== false;
}

/**
 * A live migration that failed after its switch to post-copy: the guest's memory was split between the nodes and
 * neither holds it whole. KubeVirt fails such a VMI whatever its domain shows ("a VMI that failed a post-copy
 * migration should never succeed"; its paused PostcopyFailed domain is destroyed as irrecoverable).
 */
export function failedInPostCopy(vmi: PhaseVmi): boolean {
  const ms = vmi.status?.migrationState as { failed?: boolean; mode?: string } | undefined;
  return ms?.failed === true && ms.mode === "PostCopy";
}

/** The VMI's phase for the domain its launcher reports (phaseFor with the VMI's current phase and ACPI). */
export function vmiPhaseFor(domain: DomainState | undefined, vmi: PhaseVmi): VmiPhase {
  if (domain && failedInPostCopy(vmi)) return "Failed";
  return phaseFor({ domain, current: vmi.status?.phase ?? "", acpi: acpiShutdown(vmi) });
}

/**
 * Whether the domain is paused in a way the VMI and its pod show (Paused condition, unpaused readiness gate False):
 * any Paused state except libvirt's StartingUp, the moment between QEMU's launch (-S) and its first `cont` that every
 * start passes through. Counting it made the pod's gate and the VMI's Paused condition flip at each start, and the
 * node agent and virt-controller then rewrote the pod's gate against each other until their caches agreed.
 */
export function isPaused(domain: DomainState | undefined): boolean {
  // Paused/Migration: the switch-over of a live migration (the source's last moment), not a user's pause either;
  // Paused/Postcopy: the source while a post-copy migration runs the guest on the target.
  return (
    domain?.state === "Paused" &&
    domain.reason !== "StartingUp" &&
    domain.reason !== "Migration" &&
    domain.reason !== "Postcopy"
  );
}

/** Whether the VMI has reached a final phase (no domain of it will run again). */
export function isFinal(phase: VmiPhase | undefined): boolean {
  return phase === "Succeeded" || phase === "Failed";
}
