import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RegistryHealth } from "./breaker.js";

describe("RegistryHealth", () => {
  it("skips a failed registry until its back-off ends, then admits one probe", () => {
    let now = 1000;
    const h = new RegistryHealth({ baseMs: 100, maxMs: 1000, now: () => now });
    assert.ok(h.tryAcquire("a"));
    h.failure("a");
    assert.ok(!h.tryAcquire("a"));
    assert.equal(h.remainingMs("a"), 100);
    now += 100;
    assert.ok(h.tryAcquire("a"), "probe after back-off");
    assert.ok(!h.tryAcquire("a"), "one probe at a time");
    h.failure("a");
    assert.equal(h.remainingMs("a"), 200, "back-off doubles");
    now += 200;
    assert.ok(h.tryAcquire("a"));
    h.success("a");
    assert.equal(h.state("a").state, "closed");
    assert.ok(h.tryAcquire("a"));
  });
  it("uses Retry-After when given and caps the back-off", () => {
    const now = 0;
    const h = new RegistryHealth({ baseMs: 100, maxMs: 300, now: () => now });
    h.failure("a", 5000);
    assert.equal(h.remainingMs("a"), 5000);
    for (let i = 0; i < 10; i++) h.failure("b");
    assert.equal(h.remainingMs("b"), 300);
  });
  it("frees a probe that ended without a verdict", () => {
    let now = 0;
    const h = new RegistryHealth({ baseMs: 10, now: () => now });
    h.failure("a");
    now = 10;
    assert.ok(h.tryAcquire("a"));
    h.release("a");
    assert.ok(h.tryAcquire("a"));
  });
});
