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
 */

import { Socket } from "node:net";

/** The read end of a pipe as a byte stream; ends at the writer's EOF. */
export function pipeReadable(fd: number): ReadableStream<Uint8Array> {
  const socket = new Socket({ fd, readable: true, writable: false });
  let settled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
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
