/**
 * The frame of a test that runs `f2s dev` against a real broker: a Kafka 3.9 broker, a
 * kafkajs client on it and a temp functions folder; afterwards the control plane is
 * stopped, no function process is left, and the folder and the broker are gone, also when
 * the test fails half-way.
 */

// @ts-types="../../control/kafka/kafkajs.d.ts"
import type { Kafka } from "kafkajs";
import { type ControlPlane, processesMatching } from "../harness/dev.ts";
import { type Broker, KAFKA_VERSIONS, startBroker } from "./broker.ts";
import { testKafka, waitFor } from "./helpers.ts";

export interface DevWithBroker {
  broker: Broker;
  kafka: Kafka;
  dir: string;
  /** Hands the started control plane over, to be stopped at the end. */
  started(dev: ControlPlane): ControlPlane;
}

export async function withDevAndBroker(
  prefix: string,
  body: (ctx: DevWithBroker) => Promise<void>,
): Promise<void> {
  const broker = await startBroker({ version: KAFKA_VERSIONS["3.9"] });
  const dir = await Deno.makeTempDir({ prefix });
  let dev: ControlPlane | undefined;
  try {
    await body({
      broker,
      kafka: testKafka(broker.bootstrap),
      dir,
      started: (d) => (dev = d),
    });
  } finally {
    await dev?.stop();
    await waitFor("no function process left", () => processesMatching(dir).length === 0, 20_000)
      .catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await broker.stop();
  }
}
