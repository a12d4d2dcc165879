/**
 * A bounded closed-loop load generator for the autoscaler tests and benchmark: `workers`
 * loops each send one request at a time to a loopback URL, so the concurrency the
 * dispatcher sees is about the number of workers. The worker count can change while it
 * runs; it stops by itself at `deadlineMs` or `maxRequests`, and records every outcome.
 */

export interface LoadStats {
  sent: number;
  ok: number;
  /** Every request that did not answer 200, with what happened. */
  failures: { status: number | string; body: string; at: number }[];
  /** Requests started but not finished (0 after stop). */
  pending: number;
  slowestMs: number;
  /** When the last request was sent (ms, Date.now); 0 before the first. */
  lastSentAt: number;
}

export interface Load {
  setWorkers(n: number): void;
  stats(): LoadStats;
  /** Stops starting requests, waits for those in flight, returns the final stats. */
  stop(): Promise<LoadStats>;
}

export function startLoad(options: {
  url: string;
  workers: number;
  deadlineMs: number;
  maxRequests?: number;
  /** Per request; default 30 s. */
  timeoutMs?: number;
}): Load {
  const deadline = Date.now() + options.deadlineMs;
  const maxRequests = options.maxRequests ?? 100_000;
  const stats: LoadStats = {
    sent: 0,
    ok: 0,
    failures: [],
    pending: 0,
    slowestMs: 0,
    lastSentAt: 0,
  };
  let wanted = 0;
  let running = 0;
  let stopped = false;
  const loops = new Set<Promise<void>>();

  async function one() {
    stats.sent++;
    stats.pending++;
    const started = stats.lastSentAt = Date.now();
    try {
      const res = await fetch(options.url, {
        signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
      });
      const body = await res.text();
      if (res.status === 200) stats.ok++;
      else stats.failures.push({ status: res.status, body: body.slice(0, 300), at: started });
    } catch (e) {
      stats.failures.push({ status: "error", body: String(e), at: started });
    } finally {
      stats.pending--;
      stats.slowestMs = Math.max(stats.slowestMs, Date.now() - started);
    }
  }

  function spawn() {
    running++;
    const loop = (async () => {
      // Leaves when told to shrink, so the count drops as soon as requests finish. The
      // check and the decrement run in one step: no two loops leave for the same reason.
      while (!stopped && running <= wanted && Date.now() < deadline && stats.sent < maxRequests) {
        await one();
      }
      running--;
    })().finally(() => loops.delete(loop));
    loops.add(loop);
  }

  const load: Load = {
    setWorkers(n) {
      wanted = n;
      while (running < wanted && !stopped) spawn();
    },
    stats: () => ({ ...stats, failures: [...stats.failures] }),
    async stop() {
      stopped = true;
      while (loops.size > 0) await Promise.all([...loops]);
      return load.stats();
    },
  };
  load.setWorkers(options.workers);
  return load;
}
