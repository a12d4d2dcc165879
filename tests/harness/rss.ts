/** A process's resident memory from /proc: how tests check that input costs no memory spike. */

export function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** The process's peak RSS (MiB) while `work` runs, sampled every `everyMs`. */
export async function peakRss(
  pid: number,
  work: () => Promise<void>,
  everyMs = 50,
): Promise<number> {
  let peak = rssMiB(pid);
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, rssMiB(pid));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  try {
    await work();
  } finally {
    running = false;
    await sampler;
  }
  return peak;
}
