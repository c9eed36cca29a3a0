// Failures of one registry (classified for failover and back-off) and the ErrImagePull error a pull ends with.
import { type StatusCause, type StatusError, statusError } from "../lib/errors.js";

/** Why one registry failed. `notFound`, `unauthorized` and `aborted` do not put the registry in back-off. */
export type FailureKind =
  | "unreachable"
  | "serverError"
  | "throttled"
  | "timeout"
  | "stalled"
  | "digestMismatch"
  | "notFound"
  | "unauthorized"
  | "protocol"
  | "backOff"
  | "aborted";

export class RegistryError extends Error {
  readonly kind: FailureKind;
  readonly retryAfterMs: number | undefined;
  constructor(kind: FailureKind, message: string, retryAfterMs?: number) {
    super(message);
    this.name = "RegistryError";
    this.kind = kind;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Whether a failure of this kind counts against the registry's health (circuit breaker). */
export function tripsBreaker(kind: FailureKind): boolean {
  return kind !== "notFound" && kind !== "unauthorized" && kind !== "aborted" && kind !== "backOff";
}

/** Maps any thrown value to a RegistryError (network errors become `unreachable` or `timeout`). */
export function toRegistryError(e: unknown): RegistryError {
  if (e instanceof RegistryError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? "";
  if (err?.name === "AbortError" || code === "ABORT_ERR") return new RegistryError("aborted", "pull aborted");
  if (code === "ETIMEDOUT") return new RegistryError("timeout", err.message);
  if (
    /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|EPIPE|ERR_STREAM_PREMATURE_CLOSE)$/.test(
      code,
    )
  ) {
    return new RegistryError("unreachable", `${code}: ${err.message}`);
  }
  if (/^(ERR_TLS|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|EPROTO)/.test(code))
    return new RegistryError("protocol", `${code}: ${err.message}`);
  return new RegistryError("unreachable", err?.message ?? String(e));
}

/** One registry tried during a pull and why it failed. */
export interface PullAttempt {
  /** `registry/repository` as tried. */
  source: string;
  kind: FailureKind;
  message: string;
}

/** The error of a failed pull: a Status with reason `ErrImagePull` and one cause per registry tried. */
export function errImagePull(ref: string, attempts: readonly PullAttempt[]): StatusError {
  const causes: StatusCause[] = attempts.map((a) => ({ type: a.kind, field: a.source, message: a.message }));
  const summary = attempts.map((a) => `${a.source}: ${a.message}`).join("; ");
  const allMissing = attempts.length > 0 && attempts.every((a) => a.kind === "notFound");
  return statusError(
    allMissing ? 404 : 502,
    "ErrImagePull",
    `Failed to pull image "${ref}": ${summary || "no registry to pull from"}`,
    { name: ref, kind: "ContainerDiskImage", causes },
  );
}
