// A work queue with client-go's semantics (util/workqueue): a key is queued at most once (dedup); a key added while
// it is being processed is only marked dirty and requeued on done(); addAfter() goes through one timer heap;
// addRateLimited() waits the rate limiter's delay; forget() clears the failure history; shutdown() wakes waiters.

import { TimerHeap } from "./heap.js";
import { defaultControllerRateLimiter, type RateLimiter } from "./ratelimiter.js";

export interface WorkQueueOptions<T> {
  rateLimiter?: RateLimiter<T>;
  now?: () => number;
}

export class WorkQueue<T = string> {
  private readonly queue: T[] = [];
  private readonly dirty = new Set<T>();
  private readonly processing = new Set<T>();
  private readonly waiters: ((item: T | undefined) => void)[] = [];
  private readonly heap = new TimerHeap<T>();
  private readonly waitingReadyAt = new Map<T, number>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private shutting = false;
  readonly rateLimiter: RateLimiter<T>;
  private readonly now: () => number;

  constructor(opts: WorkQueueOptions<T> = {}) {
    this.now = opts.now ?? Date.now;
    this.rateLimiter = opts.rateLimiter ?? defaultControllerRateLimiter<T>(this.now);
  }

  /** Queues the key unless it is already queued; while it is processing it is only marked dirty. */
  add(item: T): void {
    if (this.shutting || this.dirty.has(item)) return;
    this.dirty.add(item);
    if (this.processing.has(item)) return;
    const w = this.waiters.shift();
    if (w) {
      this.dirty.delete(item);
      this.processing.add(item);
      w(item);
      return;
    }
    this.queue.push(item);
  }

  /** The number of keys ready to be processed. */
  len(): number {
    return this.queue.length;
  }

  /** The number of keys waiting in the delay heap. */
  delayedLen(): number {
    return this.waitingReadyAt.size;
  }

  /** Takes the next key, waiting for one; `undefined` once the queue is shut down. */
  get(): Promise<T | undefined> {
    const item = this.tryGet();
    if (item !== undefined || this.shutting) return Promise.resolve(item);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Takes the next key if one is ready, without waiting. */
  tryGet(): T | undefined {
    if (this.queue.length === 0) return undefined;
    const item = this.queue.shift() as T;
    this.dirty.delete(item);
    this.processing.add(item);
    return item;
  }

  /** Marks the key processed; if it was added meanwhile it goes back on the queue. */
  done(item: T): void {
    this.processing.delete(item);
    if (this.dirty.has(item)) {
      this.dirty.delete(item);
      this.add(item);
    }
  }

  /** Adds the key after `delayMs`; an earlier pending time for the same key wins. */
  addAfter(item: T, delayMs: number): void {
    if (this.shutting) return;
    if (delayMs <= 0) {
      this.add(item);
      return;
    }
    const readyAt = this.now() + delayMs;
    const existing = this.waitingReadyAt.get(item);
    if (existing !== undefined && existing <= readyAt) return;
    this.waitingReadyAt.set(item, readyAt);
    this.heap.push({ readyAt, item });
    this.arm();
  }

  addRateLimited(item: T): void {
    this.addAfter(item, this.rateLimiter.when(item));
  }

  forget(item: T): void {
    this.rateLimiter.forget(item);
  }

  numRequeues(item: T): number {
    return this.rateLimiter.numRequeues(item);
  }

  shutdown(): void {
    this.shutting = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  get shuttingDown(): boolean {
    return this.shutting;
  }

  private arm(): void {
    const top = this.heap.peek();
    if (!top) return;
    if (this.timer && this.timerAt <= top.readyAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = top.readyAt;
    this.timer = setTimeout(() => this.fire(), Math.max(0, top.readyAt - this.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const t = this.now();
    for (let top = this.heap.peek(); top && top.readyAt <= t; top = this.heap.peek()) {
      this.heap.pop();
      // A stale heap entry (the key got an earlier time since) is skipped.
      if (this.waitingReadyAt.get(top.item) !== top.readyAt) continue;
      this.waitingReadyAt.delete(top.item);
      this.add(top.item);
    }
    this.arm();
  }
}

/** What a reconcile asks of the queue: nothing (forget), or a requeue after a delay. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** An error that must not be retried (client-go's TerminalError): it is logged and the key forgotten. */
export class TerminalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TerminalError";
  }
}

export type Reconciler<T> = (item: T) => Promise<ReconcileResult | undefined>;

/**
 * Processes one key: get, reconcile, then forget on success, addRateLimited on error, addAfter on a requested
 * requeue; done() always. Returns false once the queue is shut down. Exported so tests can step a controller.
 */
export async function processNextItem<T>(
  queue: WorkQueue<T>,
  reconcile: Reconciler<T>,
  onError?: (item: T, err: unknown) => void,
): Promise<boolean> {
  const item = await queue.get();
  if (item === undefined) return false;
  try {
    const res = await reconcile(item);
    queue.forget(item);
    if (res && res.requeueAfterMs !== undefined) queue.addAfter(item, res.requeueAfterMs);
  } catch (err) {
    onError?.(item, err);
    if (err instanceof TerminalError) queue.forget(item);
    else queue.addRateLimited(item);
  } finally {
    queue.done(item);
  }
  return true;
}

/** Runs `workers` loops of processNextItem until the queue shuts down. */
export async function runWorkers<T>(
  queue: WorkQueue<T>,
  workers: number,
  reconcile: Reconciler<T>,
  onError?: (item: T, err: unknown) => void,
): Promise<void> {
  const loop = async (): Promise<void> => {
    while (await processNextItem(queue, reconcile, onError)) {
      /* next */
    }
  };
  await Promise.all(Array.from({ length: workers }, loop));
}
