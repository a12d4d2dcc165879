/**
 * A TCP forwarder the test controls, to cut a process off from a server it talks to (e.g.
 * `f2s serve` from the Kubernetes API) without touching the server: TLS passes through
 * untouched, so certificates and client certificates work as if connected directly. While
 * `down`, open connections are cut and new ones are accepted and closed at once (as a dead
 * network path answers), and counted.
 */

export interface TcpProxy {
  port: number;
  /** Connections accepted so far, and those refused while down. */
  counts(): { accepted: number; refused: number };
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export function startTcpProxy(targetHost: string, targetPort: number): TcpProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  let down = false;
  let accepted = 0;
  let refused = 0;
  const closeQuietly = (c: Deno.Conn) => {
    try {
      c.close();
    } catch {
      // Already closed.
    }
  };

  async function pipe(from: Deno.Conn, to: Deno.Conn) {
    try {
      await from.readable.pipeTo(to.writable, { preventClose: false });
    } catch {
      // One side went away: end both.
    }
    closeQuietly(from);
    closeQuietly(to);
  }

  async function handle(client: Deno.Conn) {
    let server: Deno.Conn;
    try {
      server = await Deno.connect({ hostname: targetHost, port: targetPort });
    } catch {
      closeQuietly(client);
      return;
    }
    open.add(client);
    open.add(server);
    await Promise.all([pipe(client, server), pipe(server, client)]);
    open.delete(client);
    open.delete(server);
  }

  const loop = (async () => {
    for await (const conn of listener) {
      if (down) {
        refused++;
        closeQuietly(conn);
        continue;
      }
      accepted++;
      handle(conn);
    }
  })().catch(() => {});

  return {
    port: (listener.addr as Deno.NetAddr).port,
    counts: () => ({ accepted, refused }),
    setDown(d) {
      down = d;
      if (d) { for (const c of open) closeQuietly(c); }
    },
    async close() {
      listener.close();
      for (const c of open) closeQuietly(c);
      await loop;
    },
  };
}
