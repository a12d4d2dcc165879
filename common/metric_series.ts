/**
 * A counter and a histogram for the hot paths (the dispatcher's and the fizzlet's), registered in a prom-client
 * registry and exposed exactly like prom-client's own. prom-client validates and hashes
 * the labels on every `inc`/`observe`, even through a `labels(...)` child; here a child is
 * its numbers, so counting a request is a few additions.
 */

import type client from "prom-client";

export interface CounterSeries {
  inc(by?: number): void;
}

export interface HistogramSeries {
  observe(value: number): void;
}

export interface LabelledCounter<L extends string> {
  /** The series for these label values (in `labelNames` order), made on first use. */
  labels(...values: string[]): CounterSeries;
  inc(labels: Record<L, string>, by?: number): void;
  /** Forgets the series with these label values. */
  remove(...values: string[]): void;
}

export interface LabelledHistogram<L extends string> {
  labels(...values: string[]): HistogramSeries;
  observe(labels: Record<L, string>, value: number): void;
  remove(...values: string[]): void;
}

interface Options<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: client.Registry[];
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** Series by their label values joined with a separator no label value contains. */
function seriesMap<S>(labelNames: readonly string[], make: () => S) {
  const series = new Map<string, { labels: Record<string, string>; data: S }>();
  const keyOf = (values: string[]) => values.join("\u0000");
  return {
    series,
    get(values: string[]): S {
      const key = keyOf(values);
      let entry = series.get(key);
      if (!entry) {
        if (values.length !== labelNames.length) {
          throw new Error(`expected ${labelNames.length} label values, got ${values.length}`);
        }
        const labels: Record<string, string> = {};
        labelNames.forEach((name, i) => labels[name] = values[i]);
        entry = { labels, data: make() };
        series.set(key, entry);
      }
      return entry.data;
    },
    valuesOf(labels: Record<string, string>): string[] {
      return labelNames.map((name) => {
        const v = labels[name];
        if (v === undefined) throw new Error(`label "${name}" is missing`);
        return String(v);
      });
    },
    remove(values: string[]) {
      series.delete(keyOf(values));
    },
  };
}

/**
 * Series made by `make`, registered as one metric: `expose` writes each series' lines in
 * prom-client's shape when the registry is scraped.
 */
function registeredSeries<L extends string, S>(
  options: Options<L>,
  type: "counter" | "histogram",
  make: () => S,
  expose: (labels: Record<string, string>, data: S, out: MetricValue[]) => void,
) {
  const map = seriesMap(options.labelNames, make);
  const metric = {
    name: options.name,
    help: options.help,
    type,
    aggregator: "sum",
    get() {
      const values: MetricValue[] = [];
      for (const { labels, data } of map.series.values()) expose(labels, data, values);
      return Promise.resolve({ ...metric, values });
    },
    reset() {
      map.series.clear();
    },
  };
  // The registry needs only these members of a metric.
  for (const r of options.registers) r.registerMetric(metric as unknown as client.Metric);
  return map;
}

export function createCounter<L extends string>(options: Options<L>): LabelledCounter<L> {
  const map = registeredSeries(options, "counter", () => ({
    value: 0,
    inc(by = 1) {
      this.value += by;
    },
  }), (labels, data, out) => out.push({ labels: { ...labels }, value: data.value }));
  return {
    labels: (...values) => map.get(values),
    inc: (labels, by) => map.get(map.valuesOf(labels)).inc(by),
    remove: (...values) => map.remove(values),
  };
}

export function createHistogram<L extends string>(
  options: Options<L> & { buckets: number[] },
): LabelledHistogram<L> {
  const bounds = [...options.buckets].sort((a, b) => a - b);
  const make = () => ({
    counts: new Float64Array(bounds.length + 1), // the last one is +Inf
    sum: 0,
    count: 0,
    observe(value: number) {
      if (!Number.isFinite(value)) throw new TypeError(`not a finite number: ${value}`);
      let i = 0;
      while (i < bounds.length && value > bounds[i]) i++;
      this.counts[i]++;
      this.sum += value;
      this.count++;
    },
  });
  const map = registeredSeries(options, "histogram", make, (labels, data, out) => {
    let cumulative = 0;
    for (let i = 0; i <= bounds.length; i++) {
      cumulative += data.counts[i];
      out.push({
        labels: { le: i < bounds.length ? bounds[i] : "+Inf", ...labels },
        value: cumulative,
        metricName: `${options.name}_bucket`,
      });
    }
    out.push({ labels: { ...labels }, value: data.sum, metricName: `${options.name}_sum` });
    out.push({ labels: { ...labels }, value: data.count, metricName: `${options.name}_count` });
  });
  return {
    labels: (...values) => map.get(values),
    observe: (labels, value) => map.get(map.valuesOf(labels)).observe(value),
    remove: (...values) => map.remove(values),
  };
}
