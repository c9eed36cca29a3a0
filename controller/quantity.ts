// Kubernetes resource quantities ("128Mi", "1G", "500m", "2") as numbers: bytes for memory, millicores for CPU.
import { formatBytes, parseQuantity as parse } from "../api/index.js";

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

export { formatBytes };

export function formatMillicores(m: number): string {
  return m % 1000 === 0 ? String(m / 1000) : `${m}m`;
}
