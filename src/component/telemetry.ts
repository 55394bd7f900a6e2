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
  readonly #requests: Counter<"component" | "operation" | "outcome">;
  readonly #duration: Histogram<"component" | "operation">;
  readonly #bytes: Counter<"component" | "direction">;
  readonly #inFlight: Gauge<"component">;
  readonly #component: string;

  /** @param registry where the metrics register (a fresh Registry when not given). */
  constructor(component: string, registry = new Registry()) {
    this.#component = component;
    this.registry = registry;
    const registers = [registry];
    this.#requests = reuse(registry, "stowage_component_messages_total", () =>
      new Counter({ name: "stowage_component_messages_total", help: "Requests and write-port messages handled, by operation and outcome (ok or an error kind)", labelNames: ["component", "operation", "outcome"], registers }),
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
    this.#bytes = reuse(registry, "stowage_component_bytes_total", () =>
      new Counter({ name: "stowage_component_bytes_total", help: "Payload bytes received (in) and sent (out)", labelNames: ["component", "direction"], registers }),
    );
    this.#inFlight = reuse(registry, "stowage_component_in_flight", () =>
      new Gauge({ name: "stowage_component_in_flight", help: "Requests and messages being handled now", labelNames: ["component"], registers }),
    );
  }

  /** Records one handled message; `error` is the kind it failed with, if it did. */
  record(operation: Operation, bytesIn: number, bytesOut: number, seconds: number, error?: { kind: StorageErrorKind; message: string }): void {
    const component = this.#component;
    this.#requests.inc({ component, operation, outcome: error?.kind ?? "ok" });
    this.#duration.observe({ component, operation }, seconds);
    if (bytesIn > 0) this.#bytes.inc({ component, direction: "in" }, bytesIn);
    if (bytesOut > 0) this.#bytes.inc({ component, direction: "out" }, bytesOut);
    this.flow.record(bytesIn + bytesOut, error !== undefined);
    if (error) this.health.recordError(error.kind, error.message);
  }

  setInFlight(count: number): void {
    this.#inFlight.set({ component: this.#component }, count);
  }
}

// Two components in one process may share a registry: the second reuses the metric the first
// registered (labels tell them apart) instead of failing on a duplicate name.
function reuse<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
