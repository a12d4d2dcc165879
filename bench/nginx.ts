/**
 * nginx (Debian package) for benchmarks: a static file server and/or a keep-alive reverse
 * proxy in front of a given upstream, in a temp prefix, on free loopback ports.
 */

import { freePort } from "../common/self.ts";

export interface Nginx {
  /** Port of the static server (when `staticBody` was given). */
  staticPort?: number;
  /** Port of the reverse proxy (when `proxyTo` was given). */
  proxyPort?: number;
  stop(): Promise<void>;
}

export async function nginxPath(): Promise<string | null> {
  for (const p of ["/usr/sbin/nginx", "/usr/bin/nginx"]) {
    try {
      await Deno.stat(p);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

export async function startNginx(opts: { staticBody?: string; proxyTo?: string }): Promise<Nginx> {
  const bin = await nginxPath();
  if (!bin) throw new Error("nginx is not installed: run bash tests/deps/nginx.sh");
  const work = await Deno.makeTempDir({ prefix: "f2s-bench-nginx-" });
  await Deno.mkdir(`${work}/logs`);
  await Deno.mkdir(`${work}/www`);
  // nginx's workers run as an unprivileged user and must read the static file.
  await Deno.chmod(work, 0o755);
  await Deno.chmod(`${work}/www`, 0o755);
  const staticPort = opts.staticBody !== undefined ? freePort() : undefined;
  const proxyPort = opts.proxyTo ? freePort() : undefined;
  if (opts.staticBody !== undefined) {
    await Deno.writeTextFile(`${work}/www/index.html`, opts.staticBody);
  }
  const servers: string[] = [];
  if (staticPort) {
    servers.push(`server { listen 127.0.0.1:${staticPort}; root ${work}/www;
      location / { default_type text/plain; try_files /index.html =404; } }`);
  }
  if (proxyPort) {
    servers.push(
      `upstream backend { server ${opts.proxyTo!.replace(/^https?:\/\//, "")}; keepalive 64; }
    server { listen 127.0.0.1:${proxyPort};
      location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
        proxy_buffering off; proxy_request_buffering off; client_max_body_size 0; } }`,
    );
  }
  await Deno.writeTextFile(
    `${work}/nginx.conf`,
    `worker_processes 1;
daemon off;
pid ${work}/nginx.pid;
error_log ${work}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${work}/body;
  proxy_temp_path ${work}/proxy;
  fastcgi_temp_path ${work}/fastcgi;
  uwsgi_temp_path ${work}/uwsgi;
  scgi_temp_path ${work}/scgi;
  ${servers.join("\n  ")}
}
`,
  );
  const child = new Deno.Command(bin, {
    args: ["-p", work, "-c", `${work}/nginx.conf`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  for (const port of [staticPort, proxyPort]) {
    if (!port) continue;
    const deadline = Date.now() + 10_000;
    while (true) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  return {
    staticPort,
    proxyPort,
    async stop() {
      try {
        child.kill("SIGQUIT");
      } catch {
        // gone
      }
      await child.status;
      await child.stderr.cancel().catch(() => {});
      await Deno.remove(work, { recursive: true }).catch(() => {});
    },
  };
}
