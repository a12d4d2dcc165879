/**
 * Sends a signal to a process, or to a process group (a negative pid), and says whether it
 * was sent: a target that has gone is `false`, not an exception.
 *
 * Why not Deno.kill alone: streaming mode signals each script's group when the script ends,
 * and by then the group has usually gone; each miss threw, and building the NotFound error
 * was ~7% of the fizzlet's samples at 8 connections (session 8 profile). Through libc's kill
 * (Deno's FFI) a miss is an errno. Without FFI or glibc, Deno.kill with the error caught.
 */

import { openLibc } from "./libc.ts";

export type SignalName = "SIGKILL" | "SIGSTOP" | "SIGTERM";

const NUMBERS: Record<SignalName, number> = { SIGKILL: 9, SIGSTOP: 19, SIGTERM: 15 };

const SYMBOLS = { kill: { parameters: ["i32", "i32"], result: "i32" } } as const;

type Send = (pid: number, signal: SignalName) => boolean;

function denoSend(pid: number, signal: SignalName): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

let cached: Send | undefined;

function make(): Send {
  const libc = openLibc(SYMBOLS)?.symbols;
  return libc ? (pid, signal) => libc.kill(pid, NUMBERS[signal]) === 0 : denoSend;
}

/** Sends `signal` to `pid` (a group when negative); false when there was no such target. */
export function sendSignal(pid: number, signal: SignalName): boolean {
  cached ??= make();
  return cached(pid, signal);
}
