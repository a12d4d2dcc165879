// Example F2S function in reverse-proxy mode: a plain Node HTTP app (standard library only)
// on $PORT (default 8080). The fizzlet in the same image forwards every request to it.
//
//   GET  /anything?x=1        echo: method, path, query, headers, body length
//   ANY  /slow?ms=N           answers after N ms (timeouts, draining)
//   GET  /stream?bytes=N      streams N bytes of 'x' (large downloads); &ms=M pauses M ms
//                             between 64 KiB chunks (long-running streaming answers)
//   ANY  /upload?hash=1       counts (and with hash=1 hashes) the body without keeping it
//   ANY  /status?code=N       answers with status N

"use strict";
const http = require("node:http");
const crypto = require("node:crypto");

const port = Number(process.env.PORT || 8080);
const CHUNK = Buffer.alloc(64 * 1024, "x");

function json(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

/** Reads the body without keeping it: its length, and its SHA-256 when asked. */
function consume(req, hash) {
  return new Promise((resolve, reject) => {
    const digest = hash ? crypto.createHash("sha256") : null;
    let length = 0;
    req.on("data", (chunk) => {
      length += chunk.length;
      if (digest) digest.update(chunk);
    });
    req.on("end", () => resolve({ length, sha256: digest ? digest.digest("hex") : undefined }));
    req.on("error", reject);
  });
}

function stream(res, total, pauseMs) {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
  let left = total;
  const pump = () => {
    while (left > 0) {
      const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
      left -= piece.length;
      const more = res.write(piece);
      if (pauseMs > 0 && left > 0) return setTimeout(pump, pauseMs);
      if (!more) return res.once("drain", pump);
    }
    res.end();
  };
  res.on("close", () => left = 0);
  pump();
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://localhost");
  const query = Object.fromEntries(url.searchParams);
  try {
    switch (url.pathname) {
      case "/slow": {
        const ms = Math.min(Number(query.ms) || 1000, 600_000);
        await new Promise((r) => setTimeout(r, ms));
        const body = await consume(req, false);
        return json(res, 200, { slept: ms, bodyLength: body.length });
      }
      case "/stream":
        await consume(req, false);
        return stream(res, Math.max(0, Number(query.bytes) || 0), Number(query.ms) || 0);
      case "/upload": {
        const body = await consume(req, query.hash === "1");
        return json(res, 200, { bodyLength: body.length, sha256: body.sha256 });
      }
      case "/status": {
        await consume(req, false);
        return json(res, Number(query.code) || 200, { status: Number(query.code) || 200 });
      }
      default: {
        const body = await consume(req, false);
        return json(res, 200, {
          app: "hello-node",
          method: req.method,
          path: url.pathname,
          query,
          headers: req.headers,
          bodyLength: body.length,
        });
      }
    }
  } catch (e) {
    if (!res.headersSent) json(res, 500, { error: String(e) });
    else res.destroy();
  }
});

server.keepAliveTimeout = 65_000;
server.listen(port, () => console.log(`hello-node listening on ${port}`));

process.on("SIGTERM", () => {
  console.log("hello-node stopping");
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 10_000).unref();
});
