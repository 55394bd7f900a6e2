import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { StorageErrorKind } from "../errors.js";
import { FlowMeter } from "./flow.js";
import { HealthTracker } from "./health.js";

/** What one handled message was, for the counters: an api action or the write port. */
export type Operation = string;

/**
 * Everything the component counts, fed from one place per handled message: the flow meter
 * (real rates for discovery), the health tracker (error count, last error) and Prometheus
 * metrics (`stowage_component_*`, labelled by component name).
 */
export class Telemetry {
  readonly flow = new FlowMeter();
  readonly health = new HealthTracker();
  readonly registry: Registry;
  readonly #duration: Histogram<"component" | "operation">;
  readonly #inFlight: Gauge<"component">;
  readonly #component: string;
  // Counts live in plain fields and reach prom-client at scrape time: the hot path does no
  // label hashing for counters.
  readonly #counts = new Map<string, { operation: string; outcome: string; count: number; reported: number }>();
  readonly #bytes = { in: 0, out: 0, reportedIn: 0, reportedOut: 0 };

  /** @param registry where the metrics register (a fresh Registry when not given). */
  constructor(component: string, registry = new Registry()) {
    this.#component = component;
    this.registry = registry;
    const registers = [registry];
    const requests = reuse(registry, "stowage_component_messages_total", () =>
      new Counter({
        name: "stowage_component_messages_total",
        help: "Requests and write-port messages handled, by operation and outcome (ok or an error kind)",
        labelNames: ["component", "operation", "outcome"],
        registers,
        collect: () => collectors.forEach((c) => c.collectCounts()),
      }),
    );
    this.#duration = reuse(registry, "stowage_component_message_duration_seconds", () =>
      new Histogram({
        name: "stowage_component_message_duration_seconds",
        help: "Time from receiving a request or write-port message to answering or acknowledging it",
        labelNames: ["component", "operation"],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers,
      }),
    );
    const bytes = reuse(registry, "stowage_component_bytes_total", () =>
      new Counter({
        name: "stowage_component_bytes_total",
        help: "Payload bytes received (in) and sent (out)",
        labelNames: ["component", "direction"],
        registers,
        collect: () => collectors.forEach((c) => c.collectBytes()),
      }),
    );
    const collectors = collectorsOf(registry);
    collectors.add({
      collectCounts: () => {
        for (const entry of this.#counts.values()) {
          if (entry.count === entry.reported) continue;
          requests.inc({ component, operation: entry.operation, outcome: entry.outcome }, entry.count - entry.reported);
          entry.reported = entry.count;
        }
      },
      collectBytes: () => {
        const b = this.#bytes;
        if (b.in > b.reportedIn) bytes.inc({ component, direction: "in" }, b.in - b.reportedIn);
        if (b.out > b.reportedOut) bytes.inc({ component, direction: "out" }, b.out - b.reportedOut);
        b.reportedIn = b.in;
        b.reportedOut = b.out;
      },
    });
    this.#inFlight = reuse(registry, "stowage_component_in_flight", () =>
      new Gauge({ name: "stowage_component_in_flight", help: "Requests and messages being handled now", labelNames: ["component"], registers }),
    );
  }

  /** Records one handled message; `error` is the kind it failed with, if it did. */
  record(operation: Operation, bytesIn: number, bytesOut: number, seconds: number, error?: { kind: StorageErrorKind; message: string }): void {
    const outcome = error?.kind ?? "ok";
    const id = `${operation}\u0000${outcome}`;
    const entry = this.#counts.get(id);
    if (entry) entry.count++;
    else this.#counts.set(id, { operation, outcome, count: 1, reported: 0 });
    this.#duration.observe({ component: this.#component, operation }, seconds);
    this.#bytes.in += bytesIn;
    this.#bytes.out += bytesOut;
    this.flow.record(bytesIn + bytesOut, error !== undefined);
    if (error) this.health.recordError(error.kind, error.message);
  }

  setInFlight(count: number): void {
    this.#inFlight.set({ component: this.#component }, count);
  }
}

interface Collector {
  collectCounts(): void;
  collectBytes(): void;
}

// Components sharing a registry share its metric families; each adds its counts at scrape time.
const collectorSets = new WeakMap<Registry, Set<Collector>>();
function collectorsOf(registry: Registry): Set<Collector> {
  let set = collectorSets.get(registry);
  if (!set) collectorSets.set(registry, (set = new Set()));
  return set;
}

// Two components in one process may share a registry: the second reuses the metric the first
// registered (labels tell them apart) instead of failing on a duplicate name.
function reuse<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
