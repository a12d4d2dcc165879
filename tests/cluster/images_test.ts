/**
 * How the process kubelet turns a pod's container into a function launch: image names to
 * folders, the app command from command/args (quoted so sh gets the same argv back) or
 * from function.yaml, and the pod status it reports.
 */

import { assertEquals, assertRejects, assertThrows } from "../harness/assert.ts";
import {
  defaultImageMap,
  functionFolder,
  functionLaunch,
  imageName,
  parseImageMap,
  shellJoin,
} from "./images.ts";
import type { KubeObject } from "./kube.ts";
import { podStatusPatch } from "./pod_status.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("images: names lose tag and digest, registries with ports keep their port", () => {
  assertEquals(imageName("f2s-examples/nodejs:latest"), "f2s-examples/nodejs");
  assertEquals(imageName("f2s-examples/nodejs@sha256:abc"), "f2s-examples/nodejs");
  assertEquals(imageName("registry:5000/team/fn:1.2"), "registry:5000/team/fn");
  assertEquals(imageName("registry:5000/team/fn"), "registry:5000/team/fn");
});

Deno.test("images: exact mappings win over prefixes, the longest prefix wins", () => {
  const map = {
    ...defaultImageMap("/repo"),
    ...parseImageMap("f2s-test/=/fixtures/, f2s-test/deep/=/deep, special:1=/one"),
  };
  assertEquals(functionFolder("f2s-examples/nodejs:latest", map), "/repo/examples/nodejs");
  assertEquals(functionFolder("f2s-test/podinfo:v1", map), "/fixtures/podinfo");
  assertEquals(functionFolder("f2s-test/deep/x", map), "/deep/x");
  assertEquals(functionFolder("special:1", map), "/one");
  assertEquals(functionFolder("special:2", map), undefined);
  assertEquals(functionFolder("nginx:1.27", map), undefined);
  assertEquals(functionFolder("f2s-examples/../../etc", map), undefined);
  assertThrows(() => parseImageMap("no-equals-sign"), Error, "IMAGE=FOLDER");
});

Deno.test("images: command and args reach sh as the same argv", async () => {
  const argv = ["printf", "%s|", "it's", "a b", "$HOME", "`x`", "\\n"];
  const out = await new Deno.Command("sh", { args: ["-c", shellJoin(argv)] }).output();
  assertEquals(new TextDecoder().decode(out.stdout), "it's|a b|$HOME|`x`|\\n|");
});

Deno.test("images: the launch comes from command/args, else function.yaml, else the folder", async () => {
  const nodejs = `${REPO}/examples/nodejs`;
  assertEquals(await functionLaunch(nodejs, {}), { dir: nodejs, appCommand: "node server.js" });
  assertEquals(await functionLaunch(nodejs, { command: ["node"], args: ["other.js"] }), {
    dir: nodejs,
    appCommand: "node other.js",
  });
  const bare = await Deno.makeTempDir({ prefix: "f2s-images-" });
  try {
    assertEquals(await functionLaunch(bare, {}), { dir: bare });
    await Deno.mkdir(`${bare}/app`);
    await Deno.writeTextFile(
      `${bare}/function.yaml`,
      "target:\n  local:\n    dir: ./app\n    command: ./run --fast\n",
    );
    assertEquals(await functionLaunch(bare, {}), {
      dir: `${bare}/app`,
      appCommand: "./run --fast",
    });
    await assertRejects(() => functionLaunch(`${bare}/missing`, {}), Error, "does not exist");
  } finally {
    await Deno.remove(bare, { recursive: true });
  }
});

Deno.test("pod status: conditions keep their transition time until their status changes", () => {
  const state = {
    phase: "Running" as const,
    podIp: "10.244.0.2",
    hostIp: "10.244.0.1",
    startTime: "2026-01-01T00:00:00Z",
    netReady: true,
    container: { name: "fn", image: "img", ready: false, restartCount: 0 },
  };
  const first = podStatusPatch({ status: {} }, state, "T1").status;
  const ready = (s: KubeObject) => s.conditions.find((c: KubeObject) => c.type === "Ready");
  assertEquals(ready(first), {
    type: "Ready",
    status: "False",
    lastProbeTime: null,
    lastTransitionTime: "T1",
    reason: "ContainersNotReady",
  });
  const again = podStatusPatch({ status: first }, state, "T2").status;
  assertEquals(ready(again)?.lastTransitionTime, "T1");
  const nowReady = podStatusPatch(
    { status: again },
    { ...state, container: { ...state.container, ready: true } },
    "T3",
  ).status;
  assertEquals(ready(nowReady), {
    type: "Ready",
    status: "True",
    lastProbeTime: null,
    lastTransitionTime: "T3",
  });
  assertEquals([nowReady.podIP, nowReady.podIPs], ["10.244.0.2", [{ ip: "10.244.0.2" }]]);
  assertEquals(nowReady.containerStatuses[0].state, { waiting: { reason: "ContainerCreating" } });
});
