// The callback address rules on their own (pure functions): which addresses count as
// internal, and which URLs are refused before any DNS lookup.
import { assert, assertEquals } from "../harness/assert.ts";
import { callbackRefusal, isSpecial } from "../../control/async/callback.ts";
import { ipBytes } from "../../control/async/config.ts";

Deno.test("callbacks: internal addresses are recognised in every spelling", () => {
  for (
    const a of [
      "127.0.0.1",
      "10.20.30.40",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::1",
      "::",
      "fd00::1",
      "fe80::1",
      "ff02::1",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
      "not-an-address",
    ]
  ) assert(isSpecial(a), `${a} must count as internal`);
  for (const a of ["8.8.8.8", "172.32.0.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"]) {
    assert(!isSpecial(a), `${a} is public`);
  }
  assertEquals(ipBytes("1.2.3.256"), undefined);
  assertEquals(ipBytes("1::2::3"), undefined);
  assertEquals(ipBytes("::ffff:1.2.3.4")?.slice(10), [255, 255, 1, 2, 3, 4]);
});

Deno.test("callbacks: the allow-list and the resolved addresses decide", async () => {
  const config = {
    allow: ["*.example.com", "hooks.test:8443"],
    allowNetworks: ["10.9.0.0/16"],
    maxAttempts: 1,
    timeout: 1000,
  };
  const resolve = (host: string) =>
    Promise.resolve(
      host === "in.example.com"
        ? ["10.9.1.1"]
        : host === "evil.example.com"
        ? ["93.184.216.34", "127.0.0.1"]
        : ["93.184.216.34"],
    );
  const refusal = (url: string) => callbackRefusal(url, config, resolve);
  assertEquals(await refusal("https://a.example.com/x"), undefined);
  assertEquals(await refusal("https://in.example.com/x"), undefined, "allowed network");
  assertEquals(await refusal("https://hooks.test:8443/x"), undefined);
  for (
    const url of [
      "https://example.com.attacker.net/", // suffix trick
      "https://hooks.test/x", // wrong port
      "https://evil.example.com/", // one of its addresses is loopback
      "file:///etc/passwd",
      "https://u:p@a.example.com/",
    ]
  ) assert(await refusal(url), `${url} must be refused`);
});
