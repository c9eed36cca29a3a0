// How the benchmarks print figures: one place for the rounding and list formats they share.
import { loadavg } from "node:os";
import { median as medianOf } from "./timeline.js";

/** The median, NaN for no samples (printed as such rather than hiding a missing side). */
export const median = (xs: number[]): number => medianOf(xs) ?? Number.NaN;
export const r2 = (x: number): number => Math.round(x * 100) / 100;
export const ms = (x: number): string => `${Math.round(x)} ms`;
export const list = (xs: number[], f: (x: number) => string | number = Math.round): string => xs.map(f).join(", ");
/** The 1-minute load average, printed beside each run (the figures are only comparable at similar load). */
export const load = (): string => loadavg()[0]?.toFixed(2) ?? "?";
