// The differential reference for tests/wire: Node's node:http server (llhttp) run by a
// real `node`. Two recording servers, "ref" (fed the raw corpus bytes directly) and "app"
// (the app behind a fizzlet), and a control port: GET /records?port=ref returns what that
// server received since the last call (and forgets it). Each record is one request that
// started: method, url, raw header pairs (names lower-cased), body as base64, and whether
// the body arrived complete. Prints {"ref":port,"app":port,"control":port} once listening.
import http from "node:http";

const records = { ref: [], app: [] };

function recorder(name) {
  return http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    const record = {
      method: req.method,
      url: req.url,
      headers: [],
      body: "",
      complete: false,
    };
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      record.headers.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
    }
    records[name].push(record);
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      record.body = Buffer.concat(chunks).toString("base64");
      record.complete = true;
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    });
    req.on("error", () => {});
  });
}

const servers = { ref: recorder("ref"), app: recorder("app") };
const control = http.createServer((req, res) => {
  const name = new URL(req.url, "http://x").searchParams.get("port");
  const list = records[name] ?? [];
  records[name] = [];
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(list));
});

const ports = {};
for (const [name, server] of [...Object.entries(servers), ["control", control]]) {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  ports[name] = server.address().port;
}
process.stdout.write(JSON.stringify(ports) + "\n");
