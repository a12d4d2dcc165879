/**
 * Web streams over the fizzlet's end of a pipe to a spawned script (spawn.ts), read and
 * written on the event loop. Deno has no API to adopt a raw descriptor, but node:net's
 * `Socket({ fd })` takes a pipe's and registers it with the runtime's epoll like its own
 * sockets: reads and writes wait there instead of holding a thread of the blocking pool each,
 * as a pipe reopened through /proc as a Deno.FsFile does (a thread hop per read or write,
 * about five per request in streaming mode, tens of µs each on a 2-core VM).
 *
 * Both streams own their descriptor: it is closed when the stream ends, fails or is
 * cancelled, never twice.
 *
 * A script's output pipe can also be read without waiting (`pipeOutput`): once a short run
 * has exited, what it wrote is in the pipe, and reading it there with plain `read` calls
 * costs a fraction of making a socket to wait on it (construction, epoll registration and
 * teardown were ~15% of the fizzlet's CPU per streaming-mode request). The socket is made
 * only when the run goes on or something else still holds the pipe open.
 */

import { Socket } from "node:net";

/** The read end of a pipe as a byte stream; ends at the writer's EOF. */
export function pipeReadable(fd: number, prefix: Uint8Array[] = []): ReadableStream<Uint8Array> {
  const socket = new Socket({ fd, readable: true, writable: false });
  let settled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of prefix) controller.enqueue(chunk);
      socket.on("data", (chunk: Uint8Array) => {
        if (settled) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        // Backpressure: stop reading the pipe until the consumer asks for more.
        if ((controller.desiredSize ?? 1) <= 0) socket.pause();
      });
      socket.on("end", () => {
        if (settled) return;
        settled = true;
        controller.close();
        socket.destroy();
      });
      socket.on("error", (e: Error) => {
        if (settled) return;
        settled = true;
        controller.error(e);
        socket.destroy();
      });
    },
    pull() {
      socket.resume();
    },
    cancel() {
      settled = true;
      socket.destroy();
    },
  }, { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength });
}

/** Plain, non-blocking reads and close of a descriptor (libc's, through FFI: spawn.ts). */
export interface RawPipe {
  /** Bytes read into `buf`; 0 at EOF, -1 when nothing is there now (or it failed). */
  read(fd: number, buf: Uint8Array): number;
  close(fd: number): void;
  /** Asks for a pipe buffer of `bytes` (F_SETPIPE_SZ); false when refused (a quota, a limit). */
  resize(fd: number, bytes: number): boolean;
}

/** What an output pipe held when it was read without waiting. */
export interface ReadNow {
  chunks: Uint8Array[];
  /** Every writer has closed the pipe: there is nothing more to come. */
  eof: boolean;
}

/** The fizzlet's (non-blocking) end of a script's output pipe. */
export interface PipeOutput {
  /**
   * What the pipe holds now, without waiting, up to about `max` bytes (a writer as fast as the
   * reads would hold them for ever). Not after `stream`.
   */
  readNow(max?: number): ReadNow;
  /**
   * One read into `buf`, without waiting: the bytes read, 0 at the end, -1 when nothing is
   * there now. Not after `stream`.
   */
  read(buf: Uint8Array): number;
  /** The rest as a stream that owns the descriptor (`prefix` first). Once. */
  stream(prefix?: Uint8Array[]): ReadableStream<Uint8Array>;
  /** Closes the descriptor, unless a stream owns it. */
  close(): void;
  /** Asks for a larger pipe buffer (`RawPipe.resize`); false when refused. */
  resize(bytes: number): boolean;
}

/** Read by `readNow` in pieces of this size (a pipe holds 64 KiB by default). */
const READ_NOW_BYTES = 64 * 1024;
let scratch: Uint8Array | undefined;

/** `fd` (non-blocking, its own to close) as a PipeOutput. */
export function pipeOutput(fd: number, raw: RawPipe): PipeOutput {
  let owner: "us" | "stream" | "closed" = "us";
  return {
    readNow(max = Infinity) {
      scratch ??= new Uint8Array(new ArrayBuffer(READ_NOW_BYTES));
      const chunks: Uint8Array[] = [];
      for (let got = 0; got < max;) {
        const n = this.read(scratch);
        if (n === 0) return { chunks, eof: true };
        if (n < 0) break;
        chunks.push(scratch.slice(0, n));
        got += n;
      }
      return { chunks, eof: false };
    },
    read(buf) {
      if (owner !== "us") throw new Error("the pipe is no longer read directly");
      return raw.read(fd, buf);
    },
    stream(prefix = []) {
      if (owner !== "us") throw new Error("the pipe is no longer read directly");
      owner = "stream";
      return pipeReadable(fd, prefix);
    },
    close() {
      if (owner !== "us") return;
      owner = "closed";
      raw.close(fd);
    },
    resize: (bytes) => owner === "us" && raw.resize(fd, bytes),
  };
}

/** A stream as a PipeOutput that never has anything to read now (Deno.Command's pipes). */
export function streamOutput(stream: ReadableStream<Uint8Array>): PipeOutput {
  return {
    readNow: () => ({ chunks: [], eof: false }),
    read: () => -1,
    stream(prefix = []) {
      if (prefix.length === 0) return stream;
      throw new Error("a stream output has nothing read before it");
    },
    close: () => void stream.cancel().catch(() => {}),
    resize: () => false,
  };
}

/**
 * The write end of a pipe as a byte stream: each chunk is handed to the pipe as it comes (a
 * write resolves once the pipe took it or node:net buffered it under its high-water mark),
 * close sends EOF. A reader that went away (EPIPE) fails the next write or the close.
 */
export function pipeWritable(fd: number): WritableStream<Uint8Array> {
  const socket = new Socket({ fd, readable: false, writable: true });
  let failure: Error | undefined;
  socket.on("error", (e: Error) => {
    failure ??= e;
    socket.destroy();
  });
  const whenDrained = () =>
    new Promise<void>((resolve, reject) => {
      const done = () => {
        socket.off("drain", done);
        socket.off("close", done);
        if (failure) reject(failure);
        else resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  return new WritableStream<Uint8Array>({
    write(chunk) {
      if (failure) throw failure;
      if (socket.destroyed) throw new Error("the pipe is closed");
      if (!socket.write(chunk)) return whenDrained();
    },
    close() {
      if (failure) throw failure;
      return new Promise<void>((resolve, reject) => {
        socket.end(() => {
          socket.destroy();
          if (failure) reject(failure);
          else resolve();
        });
        socket.once("close", () => failure ? reject(failure) : resolve());
      });
    },
    abort() {
      socket.destroy();
    },
  });
}
