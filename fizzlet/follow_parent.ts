/**
 * Ties the fizzlet's life to the process that started it, when that process asks for it
 * (`f2s dev` sets F2S_PARENT_PID to its own pid): the kernel then sends the fizzlet SIGTERM
 * the moment its parent dies, even by SIGKILL or the OOM killer (prctl PR_SET_PDEATHSIG), and
 * the fizzlet stops as on any SIGTERM, its app and scripts with it. Without it, the instances
 * of a killed `f2s dev` ran on, holding their ports, sockets and apps until someone found them.
 *
 * The kernel watches the thread that started the fizzlet, not the process; Deno starts child
 * processes from its main thread, which lives as long as the process.
 *
 * In Kubernetes nothing sets the variable: the container's end ends the fizzlet anyway.
 */

import { openLibc } from "../common/libc.ts";

/** Whether the parent is being followed, was gone already, or cannot be (no FFI or glibc). */
export type Following = "following" | "gone" | "unsupported";

const PR_SET_PDEATHSIG = 1;
const SIGTERM = 15;

const SYMBOLS = {
  // prctl is variadic; its arguments after the first are unsigned longs (integers only).
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  getppid: { parameters: [], result: "i32" },
} as const;

/**
 * Asks for SIGTERM when the parent dies, then checks that `parentPid` is still the parent:
 * a parent that died before the request was made sends nothing ("gone": stop now).
 */
export function followParent(parentPid: number): Following {
  const libc = openLibc(SYMBOLS);
  if (!libc) return "unsupported";
  try {
    const { prctl, getppid } = libc.symbols;
    if (prctl(PR_SET_PDEATHSIG, BigInt(SIGTERM), 0n, 0n, 0n) !== 0) return "unsupported";
    // Reparented (to init or a subreaper) means the parent is gone.
    return getppid() === parentPid ? "following" : "gone";
  } finally {
    libc.close();
  }
}
