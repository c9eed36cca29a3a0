// Kubernetes resource quantities ("128Mi", "1G", "500m", "2") as numbers: bytes for memory, millicores for CPU.

const binary: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const decimal: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** The quantity's value in base units (bytes, cores); NaN when it does not parse. */
export function parseQuantity(q: string | number | undefined): number {
  if (q === undefined) return Number.NaN;
  if (typeof q === "number") return q;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$/.exec(q.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  if (m[2]) return n * 10 ** Number(m[2].slice(1));
  const suffix = m[3] ?? "";
  return n * (binary[suffix] ?? decimal[suffix] ?? Number.NaN);
}

export function bytes(q: string | number | undefined): number {
  const v = parseQuantity(q);
  return Number.isNaN(v) ? 0 : Math.ceil(v);
}

export function millicores(q: string | number | undefined): number {
  const v = parseQuantity(q);
  return Number.isNaN(v) ? 0 : Math.ceil(v * 1000);
}

/** Bytes as the shortest exact binary quantity ("1290Mi"), or plain bytes. */
export function formatBytes(n: number): string {
  for (const [s, f] of [
    ["Gi", 2 ** 30],
    ["Mi", 2 ** 20],
    ["Ki", 2 ** 10],
  ] as const) {
    if (n % f === 0 && n >= f) return `${n / f}${s}`;
  }
  return String(n);
}

export function formatMillicores(m: number): string {
  return m % 1000 === 0 ? String(m / 1000) : `${m}m`;
}
