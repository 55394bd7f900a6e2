import type { Store, StoreUrl } from "../types.js";
import { withCache, type CacheOptions } from "./cache.js";
import { withMetrics, type MetricsOptions } from "./metrics.js";
import { withRetry, type RetryOptions } from "./retry.js";
import { withTimeout } from "./timeout.js";

export { LayerStore, findLayer, innermost } from "./layer.js";
export { CachedStore, withCache } from "./cache.js";
export type { CacheOptions, CacheStats, CacheStrategy } from "./cache.js";
export { MetricsStore, withMetrics, LATENCY_BUCKETS } from "./metrics.js";
export type { MetricsOptions } from "./metrics.js";
export { RetryStore, withRetry } from "./retry.js";
export type { RetryOptions, RetryInfo } from "./retry.js";
export { TimeoutStore, withTimeout } from "./timeout.js";
export { PrefixStore, withPrefix } from "./prefix.js";

/** The layers `openStore` stacks on the backend when asked. */
export interface LayerOptions {
  /** A read cache (`true`: the defaults, hybrid 1000 entries / 5 min / 64 MiB). */
  cache?: boolean | CacheOptions;
  /** Prometheus metrics (`true`: into prom-client's global registry). Labels default from the URL. */
  metrics?: boolean | MetricsOptions;
  /** Retries of transient failures (`true`: the defaults, 4 attempts within 10 s). */
  retry?: boolean | RetryOptions;
  /** A deadline per operation (per attempt, under retry), in milliseconds. */
  timeout?: number;
}

/**
 * Stacks the layers named in `openStore`'s options on a freshly opened backend, innermost
 * first: backend -> timeout -> retry -> cache -> metrics.
 *
 * - timeout inside retry: the deadline bounds each attempt, so one hung attempt is retried
 *   instead of eating the whole budget; retry's `maxElapsedMs` (and the caller's signal)
 *   bound the call as a whole.
 * - cache outside retry: hits never wait on backoff, and a read is cached only once it
 *   finally succeeded.
 * - metrics outermost: it measures what the caller sees (hits, retries and timeouts
 *   included) and reads the cache's hit/miss counts beneath it.
 */
export async function applyLayers(store: Store, options: LayerOptions, target: StoreUrl): Promise<Store> {
  let stack = store;
  if (options.timeout !== undefined) stack = withTimeout(stack, options.timeout);
  if (options.retry) stack = withRetry(stack, options.retry === true ? {} : options.retry);
  if (options.cache) stack = withCache(stack, options.cache === true ? {} : options.cache);
  if (options.metrics) {
    const metrics = options.metrics === true ? {} : options.metrics;
    stack = withMetrics(stack, { ...metrics, labels: { ...labelsFor(target), ...metrics.labels } });
  }
  return stack;
}

/** Default `backend` and `bucket` labels from a store URL (never anything secret). */
function labelsFor(target: StoreUrl): { backend: string; bucket: string } {
  const backend = target.scheme === "postgresql" ? "postgres" : target.scheme;
  const firstSegment = () => {
    const segment = target.url.pathname.split("/").find((s) => s !== "") ?? "";
    try {
      return decodeURIComponent(segment);
    } catch {
      return segment;
    }
  };
  switch (backend) {
    case "nats":
      return { backend, bucket: firstSegment() };
    case "s3":
      return { backend, bucket: target.url.hostname };
    case "postgres":
      return { backend, bucket: target.url.searchParams.get("table") ?? "" };
    default:
      return { backend, bucket: "" };
  }
}
