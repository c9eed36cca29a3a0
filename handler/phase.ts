// libvirt domain state + reason (as the launcher reports it) → VMI phase, with KubeVirt's rules
// (virt-handler/vm.go calculateVmPhaseForStatusReason). Pure: no retries, no clocks.
import type { VmiPhase } from "../api/index.js";

export type DomainLifeCycle =
  | "NoState"
  | "Running"
  | "Blocked"
  | "Paused"
  | "ShuttingDown"
  | "Shutoff"
  | "Crashed"
  | "PMSuspended";

export interface DomainState {
  state: DomainLifeCycle;
  reason: string;
}

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

/** Whether the VMI has reached a final phase (no domain of it will run again). */
export function isFinal(phase: VmiPhase): boolean {
  return phase === "Succeeded" || phase === "Failed";
}
