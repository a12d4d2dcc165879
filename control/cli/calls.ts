/**
 * `f2s fn calls NAME`: the recent asynchronous calls of a function and its next scheduled
 * runs, as a table or JSON. Kept apart from control/cli/fn.ts, which only dispatches to it.
 */

export interface CallsClient {
  request(path: string, init?: RequestInit): Promise<Response>;
}

interface CallRow {
  id: string;
  state: string;
  attempts: number;
  status?: number;
  source: string;
  createdAt: string;
  durationMs?: number;
  error?: string;
}

/** Prints the calls; returns the exit code (the failure printer handles non-2xx). */
export async function showCalls(
  client: CallsClient,
  name: string,
  output: string,
  failure: (res: Response) => Promise<number>,
): Promise<number> {
  const res = await client.request(`/functions/${encodeURIComponent(name)}/calls?limit=50`);
  if (!res.ok) return failure(res);
  const body = await res.json() as {
    calls: CallRow[];
    schedule?: { expression: string; timeZone?: string; nextRuns: string[] };
  };
  if (output === "json") {
    console.log(JSON.stringify(body, null, 2));
    return 0;
  }
  const rows = [["CALL", "STATE", "ATTEMPTS", "STATUS", "SOURCE", "CREATED", "MS"]];
  for (const c of body.calls) {
    rows.push([
      c.id,
      c.state,
      String(c.attempts),
      c.status === undefined ? "-" : String(c.status),
      c.source,
      c.createdAt,
      c.durationMs === undefined ? "-" : String(c.durationMs),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
  if (body.schedule) {
    const tz = body.schedule.timeZone ? ` (${body.schedule.timeZone})` : "";
    console.log(`\nschedule ${body.schedule.expression}${tz}; next runs:`);
    for (const t of body.schedule.nextRuns) console.log(`  ${t}`);
  }
  return 0;
}
