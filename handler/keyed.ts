// Per-key serialisation with coalescing: at most one sync per key runs at a time; triggers that arrive while it
// runs collapse into one more run afterwards (level-triggered: the sync reads the latest state itself).
export class KeyedRunner {
  private readonly running = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private readonly onError: (key: string, err: unknown) => void;

  constructor(onError: (key: string, err: unknown) => void) {
    this.onError = onError;
  }

  trigger(key: string, fn: () => Promise<void>): Promise<void> {
    const cur = this.running.get(key);
    if (cur) {
      this.dirty.add(key);
      return cur;
    }
    const p = (async () => {
      try {
        do {
          this.dirty.delete(key);
          try {
            await fn();
          } catch (e) {
            this.onError(key, e);
          }
        } while (this.dirty.has(key));
      } finally {
        this.running.delete(key);
      }
    })();
    this.running.set(key, p);
    return p;
  }

  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()]);
  }
}
