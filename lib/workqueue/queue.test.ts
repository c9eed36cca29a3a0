import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { BucketRateLimiter, ExponentialFailureRateLimiter, MaxOfRateLimiter, TimerHeap } from "./index.js";
import { processNextItem, TerminalError, WorkQueue } from "./queue.js";

describe("WorkQueue", () => {
  it("dedups a key added twice before it is taken", async () => {
    const q = new WorkQueue<string>();
    q.add("default/a");
    q.add("default/a");
    q.add("default/b");
    assert.equal(q.len(), 2);
    assert.equal(await q.get(), "default/a");
    assert.equal(await q.get(), "default/b");
    assert.equal(q.len(), 0);
  });

  it("marks a key added while processing dirty and requeues it on done", async () => {
    const q = new WorkQueue<string>();
    q.add("k");
    const k = await q.get();
    q.add("k");
    assert.equal(q.len(), 0, "not queued while processing");
    q.done(k!);
    assert.equal(q.len(), 1);
    assert.equal(q.tryGet(), "k");
  });

  it("hands a key straight to a waiting getter", async () => {
    const q = new WorkQueue<string>();
    const p = q.get();
    q.add("x");
    assert.equal(await p, "x");
  });

  it("shutdown wakes waiters with undefined and ignores later adds", async () => {
    const q = new WorkQueue<string>();
    const p = q.get();
    q.shutdown();
    assert.equal(await p, undefined);
    q.add("late");
    assert.equal(q.len(), 0);
    assert.equal(await q.get(), undefined);
  });

  it("addAfter releases keys in time order through one timer", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
    const q = new WorkQueue<string>();
    q.addAfter("late", 300);
    q.addAfter("early", 100);
    q.addAfter("late", 500); // a later time for a waiting key does not postpone it
    assert.equal(q.delayedLen(), 2);
    t.mock.timers.tick(99);
    assert.equal(q.len(), 0);
    t.mock.timers.tick(1);
    assert.deepEqual([q.tryGet()], ["early"]);
    t.mock.timers.tick(200);
    assert.equal(q.tryGet(), "late");
    assert.equal(q.delayedLen(), 0);
  });

  it("addAfter with an earlier time moves the key forward", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
    const q = new WorkQueue<string>();
    q.addAfter("k", 1000);
    q.addAfter("k", 10);
    t.mock.timers.tick(10);
    assert.equal(q.tryGet(), "k");
    q.done("k");
    t.mock.timers.tick(2000);
    assert.equal(q.len(), 0, "the stale heap entry is skipped");
  });

  it("addRateLimited backs off 5 ms × 2^n per key and forget resets it", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
    const q = new WorkQueue<string>({ rateLimiter: new ExponentialFailureRateLimiter<string>() });
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      q.addRateLimited("k");
      let waited = 0;
      while (q.len() === 0) {
        t.mock.timers.tick(1);
        waited++;
      }
      delays.push(waited);
      q.done(q.tryGet()!);
    }
    assert.deepEqual(delays, [5, 10, 20, 40]);
    assert.equal(q.numRequeues("k"), 4);
    q.forget("k");
    assert.equal(q.numRequeues("k"), 0);
  });
});

describe("rate limiters", () => {
  it("exponential back-off caps at 1000 s", () => {
    const rl = new ExponentialFailureRateLimiter<string>();
    let last = 0;
    for (let i = 0; i < 40; i++) last = rl.when("k");
    assert.equal(last, 1_000_000);
    assert.equal(rl.when("other"), 5, "per key");
  });

  it("the token bucket allows a burst, then paces at qps", () => {
    let now = 0;
    const rl = new BucketRateLimiter<string>(10, 3, () => now);
    assert.deepEqual([rl.when("a"), rl.when("b"), rl.when("c")], [0, 0, 0]);
    assert.equal(rl.when("d"), 100);
    assert.equal(rl.when("e"), 200);
    now = 1000;
    assert.equal(rl.when("f"), 0, "refilled after a second");
  });

  it("max-of takes the larger delay", () => {
    const now = 0;
    const rl = new MaxOfRateLimiter<string>(
      new ExponentialFailureRateLimiter<string>(),
      new BucketRateLimiter<string>(10, 1, () => now),
    );
    assert.equal(rl.when("a"), 5);
    assert.equal(rl.when("a"), 100);
  });
});

describe("processNextItem", () => {
  it("forgets on success, rate-limits on error, forgets a terminal error, honours requeueAfter", async () => {
    mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
    try {
      const q = new WorkQueue<string>({ rateLimiter: new ExponentialFailureRateLimiter<string>() });
      const seen: string[] = [];
      let mode: "ok" | "fail" | "terminal" | "requeue" = "fail";
      const reconcile = async (k: string) => {
        seen.push(`${k}:${mode}`);
        if (mode === "fail") throw new Error("boom");
        if (mode === "terminal") throw new TerminalError("bad selector");
        if (mode === "requeue") return { requeueAfterMs: 1000 };
        return {};
      };
      q.add("k");
      assert.equal(await processNextItem(q, reconcile), true);
      assert.equal(q.numRequeues("k"), 1);
      assert.equal(q.delayedLen(), 1);
      mock.timers.tick(5);
      mode = "terminal";
      await processNextItem(q, reconcile);
      assert.equal(q.numRequeues("k"), 0);
      assert.equal(q.len() + q.delayedLen(), 0);
      q.add("k");
      mode = "requeue";
      await processNextItem(q, reconcile);
      assert.equal(q.delayedLen(), 1);
      mock.timers.tick(1000);
      mode = "ok";
      await processNextItem(q, reconcile);
      assert.equal(q.len() + q.delayedLen(), 0);
      assert.deepEqual(seen, ["k:fail", "k:terminal", "k:requeue", "k:ok"]);
      q.shutdown();
      assert.equal(await processNextItem(q, reconcile), false);
    } finally {
      mock.timers.reset();
    }
  });
});

describe("TimerHeap", () => {
  it("pops in readyAt order", () => {
    const h = new TimerHeap<number>();
    const xs = [5, 3, 9, 1, 7, 2, 8];
    for (const x of xs) h.push({ readyAt: x, item: x });
    const out: number[] = [];
    while (h.size) out.push(h.pop()!.item);
    assert.deepEqual(
      out,
      [...xs].sort((a, b) => a - b),
    );
  });
});
