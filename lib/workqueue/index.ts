export { type Timed, TimerHeap } from "./heap.js";
export {
  processNextItem,
  type ReconcileResult,
  type Reconciler,
  runWorkers,
  TerminalError,
  WorkQueue,
  type WorkQueueOptions,
} from "./queue.js";
export {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  type RateLimiter,
} from "./ratelimiter.js";
