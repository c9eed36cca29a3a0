// Controller expectations (client-go's ControllerExpectations): after creating or deleting children, a controller
// waits until its informer has observed them before acting on the same key again, so a slow cache never leads to a
// duplicate pod or VMI. Expectations expire (5 minutes) so a lost event cannot wedge a key forever.

interface Expectation {
  add: number;
  del: number;
  at: number;
}

export class Expectations {
  private readonly m = new Map<string, Expectation>();
  constructor(
    private readonly ttlMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  expectCreations(key: string, n = 1): void {
    const e = this.m.get(key) ?? { add: 0, del: 0, at: 0 };
    this.m.set(key, { add: e.add + n, del: e.del, at: this.now() });
  }

  expectDeletions(key: string, n = 1): void {
    const e = this.m.get(key) ?? { add: 0, del: 0, at: 0 };
    this.m.set(key, { add: e.add, del: e.del + n, at: this.now() });
  }

  creationObserved(key: string): void {
    const e = this.m.get(key);
    if (e && e.add > 0) e.add--;
  }

  deletionObserved(key: string): void {
    const e = this.m.get(key);
    if (e && e.del > 0) e.del--;
  }

  satisfied(key: string): boolean {
    const e = this.m.get(key);
    if (!e) return true;
    if ((e.add <= 0 && e.del <= 0) || this.now() - e.at > this.ttlMs) {
      this.m.delete(key);
      return true;
    }
    return false;
  }

  delete(key: string): void {
    this.m.delete(key);
  }
}
