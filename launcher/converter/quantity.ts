// resource.Quantity → a number (bytes for memory, cores for CPU), as apimachinery reads it.
const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = {
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

/** Parses "128Mi", "1024M", "1.5", "500m", "1e3"; returns undefined for malformed input. */
export function parseQuantity(q: string | number): number | undefined {
  if (typeof q === "number") return Number.isFinite(q) ? q : undefined;
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([KMGTPE]i)|([numkMGTPE]?)|[eE]([+-]?\d+))$/.exec(q.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  if (m[2] !== undefined) return n * (BINARY[m[2]] ?? Number.NaN);
  if (m[4] !== undefined) return n * 10 ** Number(m[4]);
  return n * (DECIMAL[m[3] ?? ""] ?? Number.NaN);
}
