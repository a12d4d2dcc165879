/**
 * A real Apache Kafka broker for tests: KRaft combined mode (broker and controller in one
 * JVM, no ZooKeeper) from the jars tests/deps/kafka.sh resolved from Maven Central, storage
 * formatted with Kafka's own StorageTool, loopback ports only, a temp data dir and a small
 * heap. `stop()` kills the JVM and removes the dir; `shutdown()`/`start()` keep the data, so
 * a test can take the broker away and bring it back on the same port.
 */

/** Keep in step with VERSIONS in tests/deps/kafka.sh. */
export const KAFKA_VERSIONS = { "3.9": "3.9.2", "4": "4.2.0" } as const;

export interface Broker {
  version: string;
  /** "127.0.0.1:PORT" */
  bootstrap: string;
  /** Stops the JVM gracefully (SIGTERM, then SIGKILL) and keeps the data. */
  shutdown(): Promise<void>;
  /** Starts the JVM again on the same ports and data, and waits until it serves. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the JVM and removes its files; safe to call more than once. */
  stop(): Promise<void>;
  /** The end of the broker's own log, for failure messages. */
  logTail(lines?: number): string;
}

const READY_LINE = "Kafka Server started";
const START_TIMEOUT_MS = 90_000;
/** A broker can never outlive a test run by much, even if the test process is killed. */
const MAX_LIFETIME_S = 30 * 60;

export function kafkaLibs(version: string): string {
  const cache = Deno.env.get("F2S_CACHE") ?? `${Deno.env.get("HOME")}/.cache/f2s`;
  return `${cache}/kafka-${version}/libs`;
}

export async function startBroker(options: { version: string }): Promise<Broker> {
  const { version } = options;
  const libs = kafkaLibs(version);
  try {
    await Deno.stat(`${libs}/kafka_2.13-${version}.jar`);
  } catch {
    throw new Error(`Kafka ${version} jars not found in ${libs}; run bash tests/deps/kafka.sh`);
  }
  const dir = await Deno.makeTempDir({ prefix: `f2s-kafka-${version}-` });
  let current: Deno.ChildProcess | undefined;
  let output = "";
  let removed = false;
  try {
    const [port, controllerPort] = freePorts(2);
    const props = `${dir}/server.properties`;
    await Deno.writeTextFile(props, serverProperties(version, dir, port, controllerPort));
    await runTool(libs, dir, [
      "kafka.tools.StorageTool",
      "format",
      // "--cluster-id=…" in one word: an id starting with "-" would read as an option.
      `--cluster-id=${clusterId()}`,
      "-c",
      props,
    ]);

    let starts = 0;
    const startJvm = async () => {
      output = "";
      // Each run gets a fresh log, so readiness is read from this run's lines only.
      if (starts++ > 0) {
        await Deno.rename(`${dir}/broker.log`, `${dir}/broker.${starts - 1}.log`).catch(() => {});
      }
      const child = new Deno.Command("timeout", {
        args: [
          "--kill-after=10",
          String(MAX_LIFETIME_S),
          "java",
          ...jvmOptions(dir),
          "-cp",
          `${libs}/*`,
          "kafka.Kafka",
          props,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      current = child;
      const keep = (s: string) => (output = (output + s).slice(-20_000));
      drain(child.stdout, keep);
      drain(child.stderr, keep);
      await waitReady(child, dir, port);
    };

    const shutdown = async () => {
      const child = current;
      current = undefined;
      if (!child) return;
      await terminate(child);
    };

    await startJvm();
    const bootstrap = `127.0.0.1:${port}`;
    const broker: Broker = {
      version,
      bootstrap,
      shutdown,
      async start() {
        if (!current) await startJvm();
      },
      async restart() {
        await shutdown();
        await startJvm();
      },
      async stop() {
        await shutdown();
        if (!removed) {
          removed = true;
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
      },
      logTail: (lines = 40) => tail(dir, lines, output),
    };
    return broker;
  } catch (e) {
    const logs = tail(dir, 40, output);
    if (current) await terminate(current).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(`Kafka ${version} did not start: ${(e as Error).message}\n${logs}`);
  }
}

function serverProperties(version: string, dir: string, port: number, cport: number): string {
  const lines = [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${cport}`,
    `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
    "controller.listener.names=CONTROLLER",
    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "inter.broker.listener.name=PLAINTEXT",
    `log.dirs=${dir}/data`,
    "num.partitions=1",
    "default.replication.factor=1",
    // The defaults (50 partitions, replication 3) are for clusters: slow and impossible here.
    "offsets.topic.replication.factor=1",
    "offsets.topic.num.partitions=4",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "transaction.state.log.num.partitions=4",
    // Tests kill consumers on purpose: let short sessions and fast first joins through.
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=1000",
    "auto.create.topics.enable=true",
    "log.retention.hours=1",
  ];
  if (!version.startsWith("3.")) {
    lines.push(
      "share.coordinator.state.topic.replication.factor=1",
      "share.coordinator.state.topic.min.isr=1",
    );
  }
  return lines.join("\n") + "\n";
}

function jvmOptions(dir: string): string[] {
  return [
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    // C1 only: a test broker lives seconds to minutes, so start-up time matters most.
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
    `-Dorg.slf4j.simpleLogger.logFile=${dir}/broker.log`,
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
  ];
}

async function runTool(libs: string, dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("timeout", {
    args: ["60", "java", "-Xmx256m", ...jvmOptions(dir), "-cp", `${libs}/*`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    throw new Error(`${args[0]} ${args[1]} failed (exit ${out.code}): ${text.slice(-3000)}`);
  }
}

async function waitReady(child: Deno.ChildProcess, dir: string, port: number): Promise<void> {
  let exited: Deno.CommandStatus | undefined;
  child.status.then((s) => (exited = s));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`broker exited with code ${exited.code} while starting`);
    const log = await Deno.readTextFile(`${dir}/broker.log`).catch(() => "");
    if (log.includes(READY_LINE) && await accepts(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`broker not ready within ${START_TIMEOUT_MS} ms`);
}

async function accepts(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM (timeout(1) passes it on to the JVM), then SIGKILL to both after 20 s. */
async function terminate(child: Deno.ChildProcess): Promise<void> {
  const javaPids = childPids(child.pid);
  try {
    child.kill("SIGTERM");
  } catch {
    // Already gone.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([
    child.status.then(() => true),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), 20_000))),
  ]);
  clearTimeout(timer);
  if (!done) {
    for (const pid of [...javaPids, child.pid]) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    await child.status;
  }
}

function childPids(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** Kafka cluster ids are 16 random bytes in URL-safe base64 without padding. */
function clusterId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function drain(stream: ReadableStream<Uint8Array>, sink: (s: string) => void): void {
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) sink(decoder.decode(chunk, { stream: true }));
  })().catch(() => {});
}

function tail(dir: string, lines: number, output: string): string {
  let log = "";
  try {
    log = Deno.readTextFileSync(`${dir}/broker.log`);
  } catch {
    // Not written yet, or removed.
  }
  const last = log.split("\n").slice(-lines).join("\n");
  return `--- broker log (last ${lines} lines)\n${last}\n--- broker output\n${output.slice(-2000)}`;
}
