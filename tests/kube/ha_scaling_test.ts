/**
 * Two `f2s serve` replicas on the real test cluster, with the default timings (lease 15 s,
 * renew deadline 10 s, retry period 2 s) and the default `local` scaling source:
 *
 * - the leader scales on the load of both: a slow function (minReplicas 0, idleTimeout 15 s)
 *   that gets one request of 2 s each second on the other replica only is never scaled
 *   down while that goes on, and is scaled to zero once, after it stops;
 * - the API unreachable for 30 s (both replicas reach it through a TCP forwarder the test
 *   cuts): a handful of lease requests, not a spin; the leader steps down; both report
 *   not ready; once the API is back a leader holds the lease again within the lease
 *   duration plus the retry period.
 */

import { startCluster } from "../cluster/harness.ts";
import type { KubeObject } from "../cluster/kube.ts";
import { assert, assertEquals } from "../harness/assert.ts";
import { startTcpProxy } from "../harness/tcp_proxy.ts";
import {
  eventually,
  FIXTURES,
  installCrd,
  leaseHolder,
  paths,
  platformGap,
  seedFunction,
  sequentialSteps,
  type ServeProcess,
  startServe,
} from "./helpers.ts";

const gap = await platformGap();
if (gap) console.warn(`SKIPPING tests/kube: ${gap}`);

const LEASE_MS = 15_000;
const RETRY_MS = 2_000;
const IDLE_MS = 15_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// deno-lint-ignore no-explicit-any
async function json(url: string): Promise<any> {
  const res = await fetch(url);
  return await res.json();
}

async function readyStatus(p: ServeProcess): Promise<number> {
  const res = await fetch(`${p.url}/ready`);
  await res.body?.cancel();
  return res.status;
}

const leaseAttemptsFailed = (p: ServeProcess) =>
  p.logs().filter((l) => l.includes('"msg":"lease attempt failed"')).length;

Deno.test({
  name: "kubernetes HA: the leader scales on every replica's load and backs off without the API",
  ignore: gap !== undefined,
  async fn(t) {
    const cluster = await startCluster({ images: { "f2s-test/": FIXTURES } });
    const api = cluster.client;
    const proxy = startTcpProxy("127.0.0.1", cluster.ports.apiserver);
    const tmp = await Deno.makeTempDir({ prefix: "f2s-kube-ha-scaling-" });
    const replicas: ServeProcess[] = [];
    const step = sequentialSteps(t);
    const holder = () => leaseHolder(api);
    try {
      await installCrd(cluster);
      // The admin credential, through the forwarder the test can cut.
      const kubeconfig = `${tmp}/proxied.kubeconfig`;
      await Deno.writeTextFile(
        kubeconfig,
        (await Deno.readTextFile(cluster.kubeconfig)).replace(
          cluster.server,
          `https://127.0.0.1:${proxy.port}`,
        ),
      );
      const start = async (identity: string) => {
        const p = await startServe({
          kubeconfig,
          identity,
          config: "f2s: { autoscaling: { tick: 500ms } }",
        });
        replicas.push(p);
        return p;
      };
      const a = await start("a");
      await eventually("a to lead", async () => (await holder()) === "a" ? true : undefined);
      const b = await start("b");

      await step("a function busy on the follower only is not scaled down", async () => {
        await cluster.kubectl(
          ["apply", "-f", "-"],
          seedFunction("slowfn", {
            containerImage: "f2s-test/clock:1",
            minReplicas: 0,
            maxReplicas: 1,
            scaling: { idleTimeout: `${IDLE_MS / 1000}s` },
          }),
        );
        await eventually("slowfn to be deployed", () => api.find(paths.deployment("slowfn")));
        await eventually(
          "b to know slowfn",
          async () => (await json(`${b.url}/functions/slowfn`)).metadata?.name,
        );
        const downs = async () => {
          const all: KubeObject[] = [];
          for (const p of [a, b]) {
            all.push(...await json(`${p.url}/events?type=scaling.decision&function=slowfn`));
          }
          return all.filter((e) => e.data?.direction === "down");
        };
        // One request per second, 2 s each, to b only, for 75 s.
        const latencies: number[] = [];
        const pending: Promise<void>[] = [];
        const began = Date.now();
        for (let i = 0; i < 75; i++) {
          const sent = Date.now();
          pending.push(
            fetch(`${b.url}/invoke/slowfn?sleep=2000`).then(async (res) => {
              await res.body?.cancel();
              assertEquals(res.status, 200, `request ${i}`);
              latencies.push(Date.now() - sent);
            }),
          );
          await sleep(Math.max(0, began + (i + 1) * 1000 - Date.now()));
        }
        // The leader measures b's load as its own: two requests in flight on average.
        const metrics = await (await fetch(`${a.url}/metrics`)).text();
        const observed = Number(
          /f2s_autoscaler_observed_concurrency\{function="slowfn",window="stable"\} (\S+)/
            .exec(metrics)?.[1],
        );
        console.log(`the leader's stable concurrency of slowfn (all on b): ${observed}`);
        assert(observed >= 1.5 && observed <= 2.5, `observed ${observed}`);
        await Promise.all(pending);
        const stoppedAt = Date.now();
        const during = await downs();
        latencies.sort((x, y) => x - y);
        const pods = (await api.get(paths.pods("slowfn"))).items.length;
        console.log(
          `trickle on the follower: ${during.length} scale-downs in 75 s, latency median ` +
            `${latencies[latencies.length >> 1]} ms, max ${latencies.at(-1)} ms, ${pods} pod(s)`,
        );
        assertEquals(during.map((e) => e.message), [], "no scale-down while b serves slowfn");
        const down = await eventually(
          "the leader to scale slowfn to zero after the trickle",
          async () => {
            const d = await downs();
            return d.length ? d : undefined;
          },
          60_000,
          200,
        );
        const after = Date.now() - stoppedAt;
        console.log(`trickle stopped → scaled to zero after ${after} ms: ${down[0].message}`);
        assertEquals(down.length, 1);
        assertEquals(down[0].data.to, 0);
        assertEquals(down[0].data.reason, "idle");
        assert(after >= IDLE_MS - 1_000, `scaled to zero ${after} ms after the last request`);
        await sleep(3_000);
        assertEquals((await downs()).length, 1, "and only once");
      });

      await step("30 s without the API: few lease requests, then a leader again", async () => {
        assertEquals(await holder(), "a");
        assertEquals(await readyStatus(a), 200);
        assertEquals(await readyStatus(b), 200);
        const before = [leaseAttemptsFailed(a), leaseAttemptsFailed(b)];
        const connectionsBefore = proxy.counts().refused;
        const lostBefore = (await json(`${a.url}/events?type=leader.lost`)).length;
        const cutAt = Date.now();
        proxy.setDown(true);
        await sleep(12_000);
        // Past the renew deadline: the leader stopped acting; neither replica is ready.
        assertEquals((await json(`${a.url}/events?type=leader.lost`)).length, lostBefore + 1);
        assertEquals(await readyStatus(a), 503);
        assertEquals(await readyStatus(b), 503);
        const why = await json(`${b.url}/ready`);
        assert(/no answer from the Kubernetes API/.test(why.reason), JSON.stringify(why));
        // /health stays a liveness probe.
        assertEquals((await fetch(`${a.url}/health`).then((r) => r.json())).status, "ok");
        await sleep(Math.max(0, cutAt + 30_000 - Date.now()));
        const attempts = [leaseAttemptsFailed(a) - before[0], leaseAttemptsFailed(b) - before[1]];
        const refused = proxy.counts().refused - connectionsBefore;
        const backAt = Date.now();
        proxy.setDown(false);
        console.log(
          `API unreachable for ${backAt - cutAt} ms: lease attempts a ${attempts[0]}, ` +
            `b ${attempts[1]}; connections refused (all requests) ${refused}`,
        );
        for (const n of attempts) assert(n >= 3 && n <= 20, `lease attempts: ${attempts}`);
        const lease = await eventually(
          "a leader to renew the lease after the API is back",
          async () => {
            const l = await api.find(paths.lease());
            return l && Date.parse(l.spec.renewTime) >= backAt &&
                (l.spec.holderIdentity === "a" || l.spec.holderIdentity === "b")
              ? l
              : undefined;
          },
          60_000,
          50,
        );
        const takeover = Date.parse(lease.spec.renewTime) - backAt;
        console.log(
          `API back → ${lease.spec.holderIdentity} holds the lease after ${takeover} ms ` +
            `(lease duration ${LEASE_MS} ms + retry period ${RETRY_MS} ms)`,
        );
        // The protocol's promise, with 1 s for a busy machine's timers.
        assert(takeover <= LEASE_MS + RETRY_MS + 1_000, `took over after ${takeover} ms`);
        for (const p of [a, b]) {
          await eventually("ready again", async () => await readyStatus(p) === 200 || undefined);
        }
      });
    } finally {
      for (const p of replicas) await p.stop("SIGKILL");
      await proxy.close();
      await cluster.stop();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
