/** Prometheus metrics of the gateway: requests by route, method and status, and their latency. */
import { Counter, Histogram, Registry } from "prom-client";

export interface GatewayMetrics {
  registry: Registry;
  /** Records one finished request. */
  observe(route: string, method: string, status: number, seconds: number): void;
}

export function createGatewayMetrics(registry = new Registry()): GatewayMetrics {
  // A registry shared with another gateway (or the component) already holds them: reuse.
  const requests =
    (registry.getSingleMetric("stowage_http_requests_total") as Counter<"route" | "method" | "status"> | undefined) ??
    new Counter({ name: "stowage_http_requests_total", help: "HTTP requests answered, by route, method and status", labelNames: ["route", "method", "status"], registers: [registry] });
  const duration =
    (registry.getSingleMetric("stowage_http_request_duration_seconds") as Histogram<"route" | "method"> | undefined) ??
    new Histogram({
      name: "stowage_http_request_duration_seconds",
      help: "time from a request's arrival until its response ended, by route and method",
      labelNames: ["route", "method"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
  return {
    registry,
    observe(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      duration.observe({ route, method }, seconds);
    },
  };
}
