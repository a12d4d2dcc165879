/** How the UI writes numbers, rates, durations and times for people. */

const intFormat = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });

/** 1234 → "1,234". */
export function formatCount(n) {
  return Number.isFinite(n) ? intFormat.format(n) : "–";
}

/** Requests per second with a precision that fits the size. */
export function formatRate(rps) {
  if (!Number.isFinite(rps)) return "–";
  if (rps === 0) return "0/s";
  if (rps < 0.1) return `${rps.toFixed(3)}/s`;
  if (rps < 10) return `${rps.toFixed(2)}/s`;
  return `${rps.toFixed(0)}/s`;
}

/** Milliseconds as "12 ms", "1.25 s" or "2.5 min". */
export function formatMs(ms) {
  if (!Number.isFinite(ms)) return "–";
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

/** A ratio 0…1 as a percentage; undefined (no requests) as "–". */
export function formatPercent(ratio) {
  if (ratio === undefined || !Number.isFinite(ratio)) return "–";
  if (ratio === 0) return "0 %";
  if (ratio < 0.001) return "< 0.1 %";
  return `${(ratio * 100).toFixed(ratio < 0.1 ? 1 : 0)} %`;
}

/** "just now", "12 s ago", "3 min ago", "5 h ago", "2 days ago", or "never". */
export function timeAgo(ms, now = Date.now()) {
  if (ms === undefined || !Number.isFinite(ms)) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 3) return "just now";
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** Bytes as "512 B", "12.3 KB", "4.0 MB". */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** Milliseconds as the shortest duration string the manifest accepts: 300000 → "5m". */
export function durationText(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return ms === undefined ? "" : String(ms);
  if (ms > 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms > 0 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A local wall-clock time "14:03:27" for an ISO timestamp or ms. */
export function clockTime(when) {
  const d = new Date(when);
  return Number.isNaN(d.getTime()) ? String(when) : d.toLocaleTimeString("en-GB");
}
