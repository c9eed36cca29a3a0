// Kubernetes resource quantities ("128Mi", "1G", "500m", "2") as numbers: bytes for memory, millicores for CPU.
import { parseQuantity as parse } from "../api/index.js";

/** The quantity's value in base units (bytes, cores); NaN when absent or it does not parse. */
export function parseQuantity(q: string | number | undefined): number {
  return (q === undefined ? undefined : parse(q)) ?? Number.NaN;
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
