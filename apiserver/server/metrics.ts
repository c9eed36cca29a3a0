// Prometheus text metrics: apiserver_request_total and apiserver_request_duration_seconds.
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface RequestLabels {
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  code: string;
  client: string;
}

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export class Metrics {
  #counts = new Map<string, number>();
  #hist = new Map<string, { buckets: number[]; sum: number; count: number }>();
  readonly started = Date.now();

  observe(l: RequestLabels, seconds: number): void {
    const key = `verb="${esc(l.verb)}",group="${esc(l.group)}",resource="${esc(l.resource)}",subresource="${esc(l.subresource)}",code="${esc(l.code)}",client="${esc(l.client)}"`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    const hkey = `verb="${esc(l.verb)}",group="${esc(l.group)}",resource="${esc(l.resource)}",subresource="${esc(l.subresource)}"`;
    let h = this.#hist.get(hkey);
    if (!h) {
      h = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#hist.set(hkey, h);
    }
    for (let i = 0; i < BUCKETS.length; i++)
      if (seconds <= (BUCKETS[i] as number)) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
    h.sum += seconds;
    h.count++;
  }

  /** Sum of apiserver_request_total, optionally filtered (benchmarks count API calls here). */
  total(filter: Partial<RequestLabels> = {}): number {
    let n = 0;
    for (const [k, v] of this.#counts) {
      if (Object.entries(filter).every(([fk, fv]) => k.includes(`${fk}="${esc(String(fv))}"`))) n += v;
    }
    return n;
  }

  render(extra: string[] = []): string {
    const out: string[] = [];
    out.push(
      "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, group, resource, subresource, HTTP response code and client.",
    );
    out.push("# TYPE apiserver_request_total counter");
    for (const [k, v] of this.#counts) out.push(`apiserver_request_total{${k}} ${v}`);
    out.push(
      "# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb, group, resource and subresource.",
    );
    out.push("# TYPE apiserver_request_duration_seconds histogram");
    for (const [k, h] of this.#hist) {
      for (let i = 0; i < BUCKETS.length; i++) {
        out.push(`apiserver_request_duration_seconds_bucket{${k},le="${BUCKETS[i]}"} ${h.buckets[i]}`);
      }
      out.push(`apiserver_request_duration_seconds_bucket{${k},le="+Inf"} ${h.count}`);
      out.push(`apiserver_request_duration_seconds_sum{${k}} ${h.sum}`);
      out.push(`apiserver_request_duration_seconds_count{${k}} ${h.count}`);
    }
    out.push(...extra);
    return `${out.join("\n")}\n`;
  }
}
