// The launcher's graceful shutdown, decided purely. One deadline per domain, set by whichever request comes first:
// the node agent's Shutdown (VMI deleted) or SIGTERM (launcher pod deleted). The two used to run separate shutdowns
// with separate timers; now a second request joins the first and may only bring its deadline closer (as a stop with
// a shorter grace period does in KubeVirt). The guest gets one ACPI power-button press, as KubeVirt sends one.

export interface ShutdownInput {
  /** The domain is running (or paused): there is something to stop. */
  active: boolean;
  /** The domain has ACPI (spec.domain.features.acpi.enabled is not false). */
  acpi: boolean;
  /** The grace period this request asks for. */
  graceMs: number;
  nowMs: number;
  /** The destroy deadline of the graceful shutdown already under way, if any. */
  deadlineMs?: number | undefined;
}

export type ShutdownStep =
  /** Nothing runs: nothing to do. */
  | { action: "none" }
  /** No ACPI, no grace period, or the deadline has passed: destroy now. */
  | { action: "destroy" }
  /** Press the power button; destroy at the deadline if the guest is still up. */
  | { action: "acpi"; deadlineMs: number }
  /** A shutdown is under way: keep waiting, until this (possibly closer) deadline. */
  | { action: "wait"; deadlineMs: number };

export function planShutdown(i: ShutdownInput): ShutdownStep {
  if (!i.active) return { action: "none" };
  const deadline = i.nowMs + Math.max(0, i.graceMs);
  if (i.deadlineMs !== undefined) {
    const next = Math.min(i.deadlineMs, deadline);
    return next <= i.nowMs ? { action: "destroy" } : { action: "wait", deadlineMs: next };
  }
  if (!i.acpi || i.graceMs <= 0) return { action: "destroy" };
  return { action: "acpi", deadlineMs: deadline };
}
