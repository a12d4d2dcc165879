/**
 * libc through Deno's FFI, for the few calls where Deno has no API or its API costs too much
 * on the request path: posix_spawn (fizzlet/spawn.ts), files opened without following links
 * (fizzlet/request_files.ts), /proc reads and kill without an exception per gone process
 * (proc_read.ts, signal.ts), prctl (fizzlet/follow_parent.ts). Each module names the symbols
 * it needs and keeps a fallback on Deno's own calls for where libc cannot be loaded: not
 * Linux with glibc, or no FFI permission.
 */

/** libc.so.6 with `symbols`, or undefined where it cannot be loaded. */
export function openLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    return Deno.dlopen("libc.so.6", symbols);
  } catch {
    return undefined;
  }
}
