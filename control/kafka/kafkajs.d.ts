/**
 * The part of kafkajs 2.2's API that F2S uses, typed against Deno's own Node types.
 *
 * Why not kafkajs' bundled types: they start with `/// <reference types="node" />`, which
 * pulls npm's @types/node into the whole program and breaks type checking of unrelated
 * modules (node:assert overloads, CryptoKey). Imports of "kafkajs" use this file through
 * `// @ts-types="…/kafkajs.d.ts"`. Names and shapes follow kafkajs' own index.d.ts.
 */

import type { Buffer } from "node:buffer";

export enum logLevel {
  NOTHING = 0,
  ERROR = 1,
  WARN = 2,
  INFO = 4,
  DEBUG = 5,
}

export interface LogEntry {
  namespace: string;
  level: logLevel;
  label: string;
  log: { timestamp: string; message: string; [key: string]: unknown };
}

export type LogCreator = (level: logLevel) => (entry: LogEntry) => void;

export interface RetryOptions {
  maxRetryTime?: number;
  initialRetryTime?: number;
  factor?: number;
  multiplier?: number;
  retries?: number;
}

export interface KafkaConfig {
  brokers: string[];
  clientId?: string;
  connectionTimeout?: number;
  requestTimeout?: number;
  retry?: RetryOptions;
  logLevel?: logLevel;
  logCreator?: LogCreator;
}

export interface IHeaders {
  [key: string]: Buffer | string | (Buffer | string)[] | undefined;
}

export interface KafkaMessage {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  offset: string;
  headers?: IHeaders;
}

export interface Message {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  partition?: number;
  headers?: IHeaders;
  timestamp?: string;
}

export type ICustomPartitioner = () => (args: unknown) => number;

export const Partitioners: {
  DefaultPartitioner: ICustomPartitioner;
  LegacyPartitioner: ICustomPartitioner;
};

export interface ProducerConfig {
  createPartitioner?: ICustomPartitioner;
  allowAutoTopicCreation?: boolean;
  idempotent?: boolean;
  retry?: RetryOptions;
}

export interface RecordMetadata {
  topicName: string;
  partition: number;
  errorCode: number;
  baseOffset?: string;
}

export interface Producer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(record: { topic: string; messages: Message[]; acks?: number }): Promise<RecordMetadata[]>;
  sendBatch(batch: {
    topicMessages: { topic: string; messages: Message[] }[];
    acks?: number;
  }): Promise<RecordMetadata[]>;
}

export interface ConsumerConfig {
  groupId: string;
  sessionTimeout?: number;
  rebalanceTimeout?: number;
  heartbeatInterval?: number;
  maxWaitTimeInMs?: number;
  allowAutoTopicCreation?: boolean;
  retry?: RetryOptions & { restartOnFailure?: (err: Error) => Promise<boolean> };
}

export interface EachMessagePayload {
  topic: string;
  partition: number;
  message: KafkaMessage;
  heartbeat(): Promise<void>;
  pause(): () => void;
}

export interface ConsumerEvents {
  GROUP_JOIN: "consumer.group_join";
  CRASH: "consumer.crash";
  REBALANCING: "consumer.rebalancing";
  CONNECT: "consumer.connect";
  DISCONNECT: "consumer.disconnect";
  STOP: "consumer.stop";
}

export interface GroupJoinEvent {
  payload: {
    groupId: string;
    memberId: string;
    isLeader: boolean;
    memberAssignment: Record<string, number[]>;
  };
}

export interface CrashEvent {
  payload: { error: Error; groupId: string; restart: boolean };
}

export interface Consumer {
  readonly events: ConsumerEvents;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  subscribe(options: { topics: (string | RegExp)[]; fromBeginning?: boolean }): Promise<void>;
  run(options: {
    autoCommit?: boolean;
    autoCommitInterval?: number | null;
    autoCommitThreshold?: number | null;
    partitionsConsumedConcurrently?: number;
    eachMessage: (payload: EachMessagePayload) => Promise<void>;
  }): Promise<void>;
  commitOffsets(offsets: { topic: string; partition: number; offset: string }[]): Promise<void>;
  pause(topics: { topic: string; partitions?: number[] }[]): void;
  resume(topics: { topic: string; partitions?: number[] }[]): void;
  on(event: "consumer.group_join", listener: (e: GroupJoinEvent) => void): () => void;
  on(event: "consumer.crash", listener: (e: CrashEvent) => void): () => void;
  on(
    event: "consumer.rebalancing" | "consumer.connect" | "consumer.disconnect" | "consumer.stop",
    listener: (e: { payload: unknown }) => void,
  ): () => void;
}

export interface GroupDescription {
  groupId: string;
  state: string;
  protocol: string;
  protocolType: string;
  members: { memberId: string; clientId: string; clientHost: string }[];
}

export interface Admin {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  describeCluster(): Promise<{
    brokers: { nodeId: number; host: string; port: number }[];
    controller: number | null;
    clusterId: string;
  }>;
  createTopics(options: {
    topics: {
      topic: string;
      numPartitions?: number;
      replicationFactor?: number;
      configEntries?: { name: string; value: string }[];
    }[];
    waitForLeaders?: boolean;
    timeout?: number;
  }): Promise<boolean>;
  /** Per partition: `high` the next offset to be written, `low` the earliest kept. */
  fetchTopicOffsets(topic: string): Promise<
    { partition: number; offset: string; high: string; low: string }[]
  >;
  fetchOffsets(options: { groupId: string; topics?: string[] }): Promise<
    { topic: string; partitions: { partition: number; offset: string }[] }[]
  >;
  describeGroups(groupIds: string[]): Promise<{ groups: GroupDescription[] }>;
  /** `type` is kafkajs' ConfigResourceTypes (2: TOPIC). */
  describeConfigs(options: {
    resources: { type: number; name: string; configNames?: string[] }[];
    includeSynonyms: boolean;
  }): Promise<{
    resources: {
      resourceName: string;
      configEntries: { configName: string; configValue: string }[];
    }[];
  }>;
}

export class Kafka {
  constructor(config: KafkaConfig);
  producer(config?: ProducerConfig): Producer;
  consumer(config: ConsumerConfig): Consumer;
  admin(config?: { retry?: RetryOptions }): Admin;
}
