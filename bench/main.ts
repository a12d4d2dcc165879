/**
 * `deno task bench [NAME…]`: runs the named benchmarks (all when none is named). Each
 * benchmark is bench/NAME.ts exporting `run()`, and prints its figures as ratios against a
 * reference measured in the same run, so results compare across machines.
 */

const BENCHMARKS: Record<string, () => Promise<{ run(args: string[]): Promise<void> }>> = {
  e2e: () => import("./e2e.ts"),
  fizzlet: () => import("./fizzlet.ts"),
  dispatcher: () => import("./dispatcher.ts"),
  autoscale: () => import("./autoscale.ts"),
};

if (import.meta.main) {
  const [name, ...rest] = Deno.args;
  const names = name ? [name] : Object.keys(BENCHMARKS);
  for (const n of names) {
    const load = BENCHMARKS[n];
    if (!load) {
      console.error(`unknown benchmark "${n}"; known: ${Object.keys(BENCHMARKS).join(", ")}`);
      Deno.exit(2);
    }
    console.log(`\n### bench ${n}`);
    await (await load()).run(rest);
  }
}
