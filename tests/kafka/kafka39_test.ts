/** The Kafka trigger scenarios against an Apache Kafka 3.9.x broker (KRaft). */

import { KAFKA_VERSIONS } from "./broker.ts";
import { kafkaTriggerSuite } from "./suite.ts";

kafkaTriggerSuite(KAFKA_VERSIONS["3.9"]);
