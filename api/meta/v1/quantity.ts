// resource.Quantity parsing: "128Mi" -> 134217728, "100m" -> 0.1, "1.5G" -> 1.5e9, "1e3" -> 1000.
import { QUANTITY_PATTERN } from "./schema.js";

const QUANTITY = new RegExp(QUANTITY_PATTERN);
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

/** The numeric value of a Kubernetes quantity, or undefined when it does not parse. */
export function parseQuantity(q: string | number): number | undefined {
  if (typeof q === "number") return Number.isFinite(q) ? q : undefined;
  const s = q.trim();
  if (!QUANTITY.test(s)) return undefined;
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(.*)$/.exec(s);
  if (!m) return undefined;
  const num = Number(m[1]);
  const suffix = m[2] ?? "";
  if (suffix in BINARY) return num * (BINARY[suffix] as number);
  if (suffix in DECIMAL) return num * (DECIMAL[suffix] as number);
  if (/^[eE]/.test(suffix)) return num * 10 ** Number(suffix.slice(1));
  return undefined;
}

/** Bytes as the shortest exact binary quantity ("1290Mi"), or plain bytes. */
export function formatBytes(n: number): string {
  for (const [s, f] of [
    ["Ti", 2 ** 40],
    ["Gi", 2 ** 30],
    ["Mi", 2 ** 20],
    ["Ki", 2 ** 10],
  ] as const) {
    if (n % f === 0 && n >= f) return `${n / f}${s}`;
  }
  return String(n);
}
