// A binary min-heap of items ordered by ready time, for the delaying queue's single timer.

export interface Timed<T> {
  readyAt: number;
  item: T;
}

export class TimerHeap<T> {
  private readonly a: Timed<T>[] = [];

  get size(): number {
    return this.a.length;
  }
  peek(): Timed<T> | undefined {
    return this.a[0];
  }
  push(e: Timed<T>): void {
    const a = this.a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.readyAt <= a[i]!.readyAt) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): Timed<T> | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.readyAt < a[m]!.readyAt) m = l;
        if (r < a.length && a[r]!.readyAt < a[m]!.readyAt) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}
