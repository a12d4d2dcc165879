/** The Kafka trigger scenarios against an Apache Kafka 4.x broker (KRaft only since 4.0). */

import { KAFKA_VERSIONS } from "./broker.ts";
import { kafkaTriggerSuite } from "./suite.ts";

kafkaTriggerSuite(KAFKA_VERSIONS["4"]);
