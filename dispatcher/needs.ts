/**
 * What the dispatcher consumes from the platform around it: its timeouts, the instances it
 * routes to, the metric series it keeps and the event recorder it writes to. Declared here
 * so dependencies point one way (control/ implements these, the dispatcher never imports
 * control/; tests/arch/imports_test.ts checks it).
 */

import type client from "prom-client";
import type { LabelledCounter, LabelledHistogram } from "../common/metric_series.ts";

export interface Timeouts {
  /** Whole request, from arrival to the last byte of the answer (ms). */
  requestTimeout: number;
  /** Waiting for the function's response headers once forwarded (ms). */
  httpTimeout: number;
  /** Waiting for a ready instance when scaling from zero (ms). */
  scalingTimeout: number;
}

/** starting → ready → draining → gone; an instance may also go straight to gone. */
export type InstanceState = "starting" | "ready" | "draining" | "gone";

/**
 * Why a function's instances do not start, like Kubernetes' `Ready=False reason=…`: shown
 * in the function's status, and the answer held requests get at once instead of waiting
 * out scaling_timeout. Cleared when an instance becomes ready.
 */
export interface StartFailure {
  /** CamelCase, e.g. NoLocalFolder, StartFailed, ExitedBeforeReady. */
  reason: string;
  message: string;
  /** ISO time of the failure. */
  at: string;
}

export interface Instance {
  /** Unique for the life of the runtime (process id, pod name). */
  id: string;
  /** The function's name. */
  function: string;
  /** Base URL of the instance's fizzlet, e.g. http://127.0.0.1:40123 or http://10.0.0.5:9092. */
  url: string;
  /** A Unix socket the fizzlet serves on as well (`f2s dev`), used instead of `url`. */
  socket?: string;
  state: InstanceState;
  /** On a "gone" event: the instance never became ready, and this is why. */
  failure?: StartFailure;
}

/** The series the dispatcher keeps (control/metrics.ts has them and the rest). */
export interface DispatchMetrics {
  /** Finished invocations by function and HTTP status code (counted per request). */
  invocations: LabelledCounter<"function" | "code">;
  /** Whole-request duration as the dispatcher sees it (observed per request). */
  duration: LabelledHistogram<"function">;
  /** Requests being served or held, per function (the autoscaler's local signal). */
  inflight: client.Gauge<"function">;
  /** Requests waiting for a ready instance (scale from zero), per function. */
  held: client.Gauge<"function">;
  coldStarts: client.Counter<"function">;
  coldStartDuration: client.Histogram<"function">;
  readyInstances: client.Gauge<"function">;
  /** Runs `hook` before every scrape (values kept elsewhere are brought up to date). */
  onCollect(hook: () => void): () => void;
}

/** Where the dispatcher writes platform events (control/events.ts keeps and serves them). */
export interface EventRecorder {
  record(
    type: string,
    message: string,
    fields?: { function?: string; data?: Record<string, unknown> },
  ): void;
}
