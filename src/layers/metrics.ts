import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from "prom-client";
import { StorageError, type StorageOp } from "../errors.js";
import type { CleanFolderOptions, CleanListPageOptions, CleanPutOptions, CleanBatchEntry, CleanDeleteOptions, CleanWriteOptions } from "../store.js";
import type { ChangeEvent, GetOptions, ListPage, ObjectInfo, OperationOptions, Store, VersionInfo } from "../types.js";
import { CachedStore } from "./cache.js";
import { findLayer, innermost, LayerStore } from "./layer.js";

export interface MetricsOptions {
  /**
   * Where the metrics are registered (default: prom-client's global `register`, the one an
   * application's `/metrics` endpoint usually serves). Several stores may share a registry:
   * they share the metric families and differ by the `backend` and `bucket` labels.
   */
  registry?: Registry;
  /** Prefix of every metric name (default `"stowage_"`). */
  prefix?: string;
  /**
   * Label values for this store. `backend` defaults to the backend's kind (`memory`, `nats`…,
   * from its class name), `bucket` to `""`; `openStore` sets both from the URL.
   */
  labels?: { backend?: string; bucket?: string };
}

/** Latency buckets in seconds: 50 µs (a cache hit) to 10 s (a large transfer). */
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = { backend: string; bucket: string };
type OpLabel = "backend" | "bucket" | "op";

type BaseLabel = "backend" | "bucket";

/** The metric families of one (registry, prefix), shared by every store reporting into it. */
interface Families {
  operations: Counter<OpLabel | "outcome">;
  duration: Histogram<OpLabel>;
  errors: Counter<OpLabel | "kind">;
  bytesWritten: Counter<BaseLabel>;
  bytesRead: Counter<BaseLabel>;
  cache: CacheFamilies;
  /** The metrics layers reporting into these families, flushed when the registry is scraped. */
  stores: Set<MetricsStore>;
}

/** A count kept in a plain field on the hot path and handed to prom-client at scrape time. */
interface PendingCount {
  child: Counter.Internal;
  n: number;
}

interface CacheFamilies {
  hits: Counter<BaseLabel>;
  misses: Counter<BaseLabel>;
  evictions: Counter<BaseLabel>;
  entries: Gauge<BaseLabel>;
  bytes: Gauge<BaseLabel>;
  /** The caches under metrics layers of this registry, read when it is scraped. */
  sources: Set<CacheSource>;
}

interface CacheSource {
  labels: Labels;
  cache: CachedStore;
  reported: { hits: number; misses: number; evictions: number };
}

const families = new WeakMap<Registry, Map<string, Families>>();

/**
 * Prometheus metrics for every operation, on `prom-client`. With the default prefix:
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `stowage_operations_total` | counter | backend, bucket, op, outcome (`ok`, an error kind, `aborted`) |
 * | `stowage_operation_duration_seconds` | histogram, 50 µs–10 s | backend, bucket, op |
 * | `stowage_errors_total` | counter | backend, bucket, op, kind (error kind or `aborted`) |
 * | `stowage_bytes_written_total` / `stowage_bytes_read_total` | counter | backend, bucket |
 * | `stowage_cache_hits_total` / `_misses_total` / `_evictions_total` | counter | backend, bucket |
 * | `stowage_cache_entries` / `stowage_cache_bytes` | gauge | backend, bucket |
 *
 * The cache families are filled when a {@link CachedStore} is beneath this layer
 * (`withMetrics(withCache(store))`, what `openStore` builds), read at scrape time. Stacked
 * outermost, the layer measures what callers see, cache hits included. `getStream` and
 * `watch` are timed until the stream or feed is returned; streamed bytes count as they flow.
 *
 * @example
 * const registry = new Registry();
 * const store = withMetrics(withCache(inner), { registry, labels: { backend: "nats", bucket: "DATA" } });
 * http.createServer(async (_, res) => res.end(await registry.metrics()));
 */
export class MetricsStore extends LayerStore {
  readonly registry: Registry;
  readonly labels: Readonly<Labels>;
  readonly #families: Families;
  readonly #cache: CacheSource | undefined;
  // A prom-client update validates and hashes the labels each time, which costs more than a
  // cache hit. So operation and byte counts are plain numbers here,
  // added to the counters when the registry is scraped; only the latency is observed directly.
  readonly #outcomes = new Map<string, PendingCount>();
  readonly #durations = new Map<string, Histogram.Internal<OpLabel>>();
  readonly #errors = new Map<string, Counter.Internal>();
  readonly #written: PendingCount;
  readonly #read: PendingCount;

  constructor(inner: Store, options: MetricsOptions = {}) {
    super(inner);
    this.registry = options.registry ?? globalRegistry;
    const prefix = options.prefix ?? "stowage_";
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
      throw new StorageError("invalid", `metrics: prefix must be a Prometheus name start ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${JSON.stringify(prefix)}`, { op: "open" });
    }
    this.labels = Object.freeze({
      backend: options.labels?.backend ?? backendKind(inner),
      bucket: options.labels?.bucket ?? "",
    });
    this.#families = familiesOf(this.registry, prefix);
    this.#written = { child: this.#families.bytesWritten.labels(this.labels), n: 0 };
    this.#read = { child: this.#families.bytesRead.labels(this.labels), n: 0 };
    this.#families.stores.add(this);
    const cache = findLayer(inner, CachedStore);
    if (cache) {
      this.#cache = { labels: this.labels, cache, reported: { hits: 0, misses: 0, evictions: 0 } };
      this.#families.cache.sources.add(this.#cache);
    }
  }

  protected override _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    return this.#measure("put", options.signal, async () => {
      await super._put(key, data, options);
      this.#written.n += data.byteLength;
    });
  }

  protected override _get(key: string, options: GetOptions): Promise<Uint8Array> {
    return this.#measure("get", options.signal, async () => {
      const data = await super._get(key, options);
      this.#read.n += data.byteLength;
      return data;
    });
  }

  protected override _list(prefix: string, options: OperationOptions): Promise<string[]> {
    return this.#measure("list", options.signal, () => super._list(prefix, options));
  }

  protected override _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    return this.#measure("delete", options.signal, () => super._delete(key, options));
  }

  protected override _stat(key: string, options: OperationOptions): Promise<ObjectInfo> {
    return this.#measure("stat", options.signal, () => super._stat(key, options));
  }

  protected override _versions(key: string, options: OperationOptions): Promise<VersionInfo[]> {
    return this.#measure("versions", options.signal, () => super._versions(key, options));
  }

  protected override _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    const written = this.#written;
    const counted = async function* () {
      for await (const chunk of source) {
        written.n += chunk.byteLength;
        yield chunk;
      }
    };
    return this.#measure("putStream", options.signal, () => super._putStream(key, counted(), options));
  }

  protected override _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const read = this.#read;
    return this.#measure("getStream", options.signal, async () => {
      const body = await super._getStream(key, options);
      return {
        async *[Symbol.asyncIterator]() {
          for await (const chunk of body) {
            read.n += chunk.byteLength;
            yield chunk;
          }
        },
      };
    });
  }

  protected override _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    return this.#measure("list", options.signal, () => super._listPage(prefix, options));
  }

  protected override _listFolder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    return this.#measure("list", options.signal, () => super._listFolder(prefix, options));
  }

  protected override _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    return this.#measure("putMany", options.signal, async () => {
      await super._putMany(entries, options);
      this.#written.n += entries.reduce((sum, e) => sum + e.data.byteLength, 0);
    });
  }

  protected override _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    return this.#measure("getMany", options.signal, async () => {
      const values = await super._getMany(keys, options);
      this.#read.n += values.reduce((sum, v) => sum + (v?.byteLength ?? 0), 0);
      return values;
    });
  }

  protected override _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    return this.#measure("deleteMany", options.signal, () => super._deleteMany(keys, options));
  }

  protected override _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    return this.#measure("watch", options.signal, () => super._watch(prefix, options));
  }

  /** Hands the counts kept since the last scrape to prom-client (the registry does this when scraped). */
  flush(): void {
    for (const pending of [this.#written, this.#read, ...this.#outcomes.values()]) {
      if (pending.n === 0) continue;
      pending.child.inc(pending.n);
      pending.n = 0;
    }
  }

  protected override async _close(): Promise<void> {
    this.flush();
    this.#families.stores.delete(this);
    if (this.#cache) {
      // Report what the cache counted since the last scrape before it goes.
      collectCaches(this.#families.cache, [this.#cache], false);
      this.#families.cache.sources.delete(this.#cache);
    }
    return super._close();
  }

  async #measure<T>(op: StorageOp, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    const start = performance.now();
    let outcome = "ok";
    try {
      return await work();
    } catch (err) {
      outcome = signal?.aborted ? "aborted" : err instanceof StorageError ? err.kind : "fatal";
      this.#child(this.#errors, op, outcome, () => this.#families.errors.labels({ ...this.labels, op, kind: outcome })).inc();
      throw err;
    } finally {
      const seconds = (performance.now() - start) / 1000;
      this.#child(this.#durations, op, "", () => this.#families.duration.labels({ ...this.labels, op })).observe(seconds);
      this.#child(this.#outcomes, op, outcome, () => ({ child: this.#families.operations.labels({ ...this.labels, op, outcome }), n: 0 })).n++;
    }
  }

  #child<C>(children: Map<string, C>, op: string, extra: string, make: () => C): C {
    const id = `${op}\u0000${extra}`;
    let child = children.get(id);
    if (child === undefined) {
      child = make();
      children.set(id, child);
    }
    return child;
  }
}

/** Wraps `store` in a {@link MetricsStore}. */
export function withMetrics(store: Store, options: MetricsOptions = {}): MetricsStore {
  return new MetricsStore(store, options);
}

/** The backend's kind from its class name: `NatsStore` -> `nats`. */
function backendKind(store: Store): string {
  const name = innermost(store).constructor.name;
  return name.replace(/Store$/, "").toLowerCase() || "unknown";
}

function familiesOf(registry: Registry, prefix: string): Families {
  let byPrefix = families.get(registry);
  if (!byPrefix) {
    byPrefix = new Map();
    families.set(registry, byPrefix);
  }
  const known = byPrefix.get(prefix);
  if (known) return known;

  const registers = [registry];
  const base: BaseLabel[] = ["backend", "bucket"];
  const fresh = (name: string) => {
    if (registry.getSingleMetric(name)) {
      throw new StorageError("invalid", `metrics: the registry already has a metric ${name} that stowage did not create; use another prefix or registry`, { op: "open" });
    }
    return name;
  };
  const counter = <L extends string>(name: string, help: string, labelNames: L[], collect?: () => void) =>
    new Counter<L>({ name: fresh(`${prefix}${name}`), help, labelNames, registers, ...(collect ? { collect } : {}) });
  const gauge = (name: string, help: string, collect: () => void) =>
    new Gauge<BaseLabel>({ name: fresh(`${prefix}${name}`), help, labelNames: base, registers, collect });

  const stores = new Set<MetricsStore>();
  const flush = () => {
    for (const store of stores) store.flush();
  };
  const sources = new Set<CacheSource>();
  // Every cache family refreshes all five from the caches when scraped, so any one read alone
  // is current; refreshing is idempotent (counters get deltas, gauges are rebuilt).
  const refresh = () => collectCaches(cache, sources, true);
  const cache: CacheFamilies = {
    hits: counter("cache_hits_total", "Reads served by the cache.", base, refresh),
    misses: counter("cache_misses_total", "Reads the cache passed on to the store.", base, refresh),
    evictions: counter("cache_evictions_total", "Cache entries evicted to stay within maxEntries / maxBytes.", base, refresh),
    entries: gauge("cache_entries", "Entries held by the cache.", refresh),
    bytes: gauge("cache_bytes", "Bytes of values held by the cache.", refresh),
    sources,
  };
  const created: Families = {
    operations: counter("operations_total", "Store operations by outcome: ok, an error kind, or aborted.", [...base, "op", "outcome"], flush),
    duration: new Histogram<OpLabel>({
      name: fresh(`${prefix}operation_duration_seconds`),
      help: "Store operation latency in seconds, as callers see it.",
      labelNames: [...base, "op"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    errors: counter("errors_total", "Failed store operations by error kind (aborted: the caller's signal).", [...base, "op", "kind"]),
    bytesWritten: counter("bytes_written_total", "Bytes of values written (put, putMany, putStream).", base, flush),
    bytesRead: counter("bytes_read_total", "Bytes of values read (get, getMany, getStream), cache hits included.", base, flush),
    cache,
    stores,
  };
  byPrefix.set(prefix, created);
  return created;
}

/** Brings the cache families up to date with the caches' own counts (`all`: every source, gauges rebuilt). */
function collectCaches(f: CacheFamilies, sources: Iterable<CacheSource>, all: boolean): void {
  if (all) {
    f.entries.reset();
    f.bytes.reset();
  }
  for (const source of sources) {
    const stats = source.cache.cacheStats();
    const { reported, labels } = source;
    f.hits.labels(labels).inc(stats.hits - reported.hits);
    f.misses.labels(labels).inc(stats.misses - reported.misses);
    f.evictions.labels(labels).inc(stats.evictions - reported.evictions);
    reported.hits = stats.hits;
    reported.misses = stats.misses;
    reported.evictions = stats.evictions;
    if (all) {
      f.entries.labels(labels).inc(stats.size);
      f.bytes.labels(labels).inc(stats.bytes);
    }
  }
}
