// Per-registry circuit breaker: a registry that failed is skipped until its back-off ends, then probed again
// (one pull at a time) and closed on success. Back-off doubles per consecutive failure, capped; a 429's
// Retry-After sets it directly.

export type BreakerState =
  | { readonly state: "closed" }
  | { readonly state: "open"; readonly failures: number; readonly until: number }
  | { readonly state: "probing"; readonly failures: number };

export interface BreakerOptions {
  /** First back-off after a failure. Default 30 s. */
  baseMs?: number;
  /** Longest back-off. Default 5 min. */
  maxMs?: number;
  now?: () => number;
}

const closed: BreakerState = { state: "closed" };

/** Pure transition on failure. */
export function onFailure(
  s: BreakerState,
  now: number,
  baseMs: number,
  maxMs: number,
  retryAfterMs?: number,
): BreakerState {
  const failures = s.state === "closed" ? 1 : s.failures + 1;
  const backoff = retryAfterMs ?? Math.min(maxMs, baseMs * 2 ** (failures - 1));
  return { state: "open", failures, until: now + backoff };
}

/** Pure: may a pull try this registry now? Returns the state to store (open → probing once the back-off ends). */
export function admit(s: BreakerState, now: number): { allowed: boolean; next: BreakerState } {
  switch (s.state) {
    case "closed":
      return { allowed: true, next: s };
    case "open":
      return now >= s.until
        ? { allowed: true, next: { state: "probing", failures: s.failures } }
        : { allowed: false, next: s };
    case "probing":
      return { allowed: false, next: s };
  }
}

export class RegistryHealth {
  private readonly states = new Map<string, BreakerState>();
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;
  constructor(opts: BreakerOptions = {}) {
    this.baseMs = opts.baseMs ?? 30_000;
    this.maxMs = opts.maxMs ?? 300_000;
    this.now = opts.now ?? Date.now;
  }
  state(host: string): BreakerState {
    return this.states.get(host) ?? closed;
  }
  /** Whether to try `host` now; a registry whose back-off ended is admitted once as a probe. */
  tryAcquire(host: string): boolean {
    const { allowed, next } = admit(this.state(host), this.now());
    this.states.set(host, next);
    return allowed;
  }
  /** Milliseconds until `host` may be tried again (0 if now). */
  remainingMs(host: string): number {
    const s = this.state(host);
    return s.state === "open" ? Math.max(0, s.until - this.now()) : 0;
  }
  success(host: string): void {
    this.states.delete(host);
  }
  failure(host: string, retryAfterMs?: number): void {
    this.states.set(host, onFailure(this.state(host), this.now(), this.baseMs, this.maxMs, retryAfterMs));
  }
  /** A probe that ended without a verdict (e.g. aborted, or the image was not there) frees the probe slot. */
  release(host: string): void {
    const s = this.state(host);
    if (s.state === "probing") this.states.set(host, { state: "open", failures: s.failures, until: this.now() });
  }
}
