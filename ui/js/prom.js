/**
 * A small parser for the Prometheus text exposition format (what `GET /metrics` answers):
 * enough for the UI's charts, which need sample names, labels and values.
 */

/** @typedef {{ name: string, labels: Record<string, string>, value: number }} Sample */

/**
 * Every sample in `text`; comments, blank and malformed lines are skipped (a partial
 * answer should still chart what it has).
 * @param {string} text
 * @returns {Sample[]}
 */
export function parsePrometheus(text) {
  const out = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const sample = parseLine(line);
    if (sample) out.push(sample);
  }
  return out;
}

function parseLine(line) {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) return undefined;
  const name = nameMatch[0];
  let at = name.length;
  /** @type {Record<string, string>} */
  const labels = {};
  if (line[at] === "{") {
    at++;
    for (;;) {
      while (line[at] === " " || line[at] === ",") at++;
      if (line[at] === "}") {
        at++;
        break;
      }
      const key = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(at));
      if (!key || line[at + key[0].length] !== "=" || line[at + key[0].length + 1] !== '"') {
        return undefined;
      }
      at += key[0].length + 2;
      let value = "";
      for (;;) {
        const c = line[at++];
        if (c === undefined) return undefined;
        if (c === '"') break;
        if (c === "\\") {
          const n = line[at++];
          value += n === "n" ? "\n" : n;
        } else value += c;
      }
      labels[key[0]] = value;
    }
  }
  const rest = line.slice(at).trim().split(/\s+/);
  const value = parseValue(rest[0]);
  if (value === undefined) return undefined;
  return { name, labels, value };
}

function parseValue(text) {
  if (text === undefined || text === "") return undefined;
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  const v = Number(text);
  return Number.isNaN(v) ? undefined : v;
}
