/**
 * What the component tells about itself: log lines ({@link Logger}), health (state, error
 * counts, last error), flow rates over a sliding window, and Prometheus metrics, optionally
 * served over HTTP. {@link Telemetry} is fed from one place per handled message.
 */
import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { StorageErrorKind } from "../errors.js";
import { listenOn } from "../internal/listen.js";
import type { MirrorHealth } from "./mirroring.js";
import type { RetentionHealth } from "./retention.js";

/** Where operational messages go: what cannot be answered to anyone (unexpected errors, dropped messages). */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** JSON lines on stderr: `{"time":…,"level":"info","component":"objectstore","msg":"started",…}`. */
export function stderrLogger(component: string): Logger {
  const write = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, component, msg, ...fields })}\n`);
  };
  return { info: write("info"), warn: write("warn"), error: write("error") };
}

/** A logger that drops everything (tests, embedding without logs). */
export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** The component's health as discovery reports it. */
export interface Health {
  /** Running, connected to NATS, and the store is open. */
  healthy: boolean;
  /** `stopped`, `starting`, `running` or `stopping`. */
  state: ComponentState;
  /** Failures that were the component's or the backend's (kinds `transient` and `fatal`). */
  errorCount: number;
  /** Requests refused for the caller's mistake (kinds `invalid`, `not_found`, `unsupported`). */
  rejectedCount: number;
  lastError?: { message: string; kind: StorageErrorKind; at: string };
  /** Seconds since start (0 when stopped). */
  uptimeSeconds: number;
  /** When the component started (ISO 8601). */
  startedAt?: string;
  /** The configured mirrors: state and lag of each (destination URLs redacted). */
  mirrors?: MirrorHealth[];
  /** The configured retention rules: the last run of each. */
  retention?: RetentionHealth[];
}

export type ComponentState = "stopped" | "starting" | "running" | "stopping";

/**
 * Error bookkeeping for health. Client mistakes are counted apart: a flood of bad requests says
 * nothing about whether the component works.
 */
export class HealthTracker {
  #errors = 0;
  #rejected = 0;
  #lastError: Health["lastError"];
  #startedAt: number | undefined;

  started(): void {
    this.#startedAt = Date.now();
  }

  stopped(): void {
    this.#startedAt = undefined;
  }

  recordError(kind: StorageErrorKind, message: string): void {
    if (kind === "transient" || kind === "fatal") {
      this.#errors++;
      this.#lastError = { message, kind, at: new Date().toISOString() };
    } else {
      this.#rejected++;
    }
  }

  report(state: ComponentState, connected: boolean, storeOpen: boolean): Health {
    const started = this.#startedAt;
    return {
      healthy: state === "running" && connected && storeOpen,
      state,
      errorCount: this.#errors,
      rejectedCount: this.#rejected,
      lastError: this.#lastError,
      uptimeSeconds: started === undefined ? 0 : (Date.now() - started) / 1000,
      startedAt: started === undefined ? undefined : new Date(started).toISOString(),
    };
  }
}

/** Rates over the sliding window, as discovery reports them. */
export interface FlowMetrics {
  /** Messages (requests and write-port messages) per second. */
  messagesPerSecond: number;
  /** Payload bytes in and out per second. */
  bytesPerSecond: number;
  /** Failed messages per second. */
  errorsPerSecond: number;
  /** Failed / all messages over the window, 0..1 (0 when idle). */
  errorRate: number;
  /** The window the rates cover, seconds. */
  windowSeconds: number;
  /** Totals since start. */
  totalMessages: number;
  totalBytes: number;
  totalErrors: number;
  /** When the last message was seen (ISO 8601), if any. */
  lastActivity?: string;
}

/**
 * Flow metrics with real rates: counts kept in one-second buckets of a ring, so a rate is the
 * sum over the last `windowSeconds` divided by the time actually covered (a component up for
 * 3 s reports over 3 s, not over the whole window).
 */
export class FlowMeter {
  readonly #window: number;
  readonly #messages: Float64Array;
  readonly #bytes: Float64Array;
  readonly #errors: Float64Array;
  readonly #now: () => number;
  readonly #started: number;
  #second: number; // the absolute second the head bucket counts
  #totalMessages = 0;
  #totalBytes = 0;
  #totalErrors = 0;
  #last: number | undefined;

  /** @param windowSeconds the sliding window (default 60 s); `now` is for tests (ms). */
  constructor(windowSeconds = 60, now: () => number = Date.now) {
    this.#window = windowSeconds;
    this.#messages = new Float64Array(windowSeconds);
    this.#bytes = new Float64Array(windowSeconds);
    this.#errors = new Float64Array(windowSeconds);
    this.#now = now;
    this.#started = now();
    this.#second = Math.floor(this.#started / 1000);
  }

  /** Counts one message of `bytes` payload bytes; `failed` when it was answered with an error. */
  record(bytes: number, failed: boolean): void {
    const i = this.#advance();
    this.#messages[i]! += 1;
    this.#bytes[i]! += bytes;
    this.#totalMessages += 1;
    this.#totalBytes += bytes;
    if (failed) {
      this.#errors[i]! += 1;
      this.#totalErrors += 1;
    }
    this.#last = this.#now();
  }

  snapshot(): FlowMetrics {
    this.#advance();
    const elapsed = (this.#now() - this.#started) / 1000;
    const covered = Math.max(1, Math.min(this.#window, elapsed));
    const messages = sum(this.#messages);
    const errors = sum(this.#errors);
    return {
      messagesPerSecond: messages / covered,
      bytesPerSecond: sum(this.#bytes) / covered,
      errorsPerSecond: errors / covered,
      errorRate: messages === 0 ? 0 : errors / messages,
      windowSeconds: this.#window,
      totalMessages: this.#totalMessages,
      totalBytes: this.#totalBytes,
      totalErrors: this.#totalErrors,
      lastActivity: this.#last === undefined ? undefined : new Date(this.#last).toISOString(),
    };
  }

  /** Moves the head to the current second, zeroing the buckets that fell out; returns its index. */
  #advance(): number {
    const second = Math.floor(this.#now() / 1000);
    const steps = Math.min(second - this.#second, this.#window);
    for (let s = 1; s <= steps; s++) {
      const i = (this.#second + s) % this.#window;
      this.#messages[i] = 0;
      this.#bytes[i] = 0;
      this.#errors[i] = 0;
    }
    if (second > this.#second) this.#second = second;
    return this.#second % this.#window;
  }
}

function sum(values: Float64Array): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

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

export interface MetricsServer {
  /** `http://host:port/metrics`. */
  url: string;
  close(): Promise<void>;
}

/** Serves `registry` at `GET /metrics` (Prometheus text format); anything else is 404. */
export async function startMetricsServer(registry: Registry, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  const address = await listenOn(server, port, host);
  return {
    url: `http://${address.host}:${address.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
