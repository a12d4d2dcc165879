/**
 * Durations in configuration: a number is milliseconds (as the seed's `config.yaml`),
 * a string may carry a unit ("500ms", "30s", "2m", "1h").
 */

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds for `value`, or an error message naming what is wrong. */
export function parseDuration(value: unknown): number | string {
  if (typeof value === "number") {
    return Number.isFinite(value) && value >= 0 ? value : "must be a non-negative number of ms";
  }
  if (typeof value !== "string") return 'must be a number of ms or a string like "30s"';
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (!m) return `"${value}" is not a duration (use e.g. 500ms, 30s, 2m)`;
  return Math.round(Number(m[1]) * UNITS[m[2] ?? "ms"]);
}
