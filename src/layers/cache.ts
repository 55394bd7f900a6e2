import { LRUCache } from "lru-cache";
import { StorageError } from "../errors.js";
import { sleep } from "../internal/signal.js";
import { resolveRange, type CleanPutOptions, type CleanBatchEntry, type CleanDeleteOptions, type CleanWriteOptions } from "../store.js";
import type { GetOptions, OperationOptions, Store } from "../types.js";
import { LayerStore } from "./layer.js";

/** How entries leave the cache besides deletes and invalidations. */
export type CacheStrategy = "lru" | "ttl" | "hybrid";

export interface CacheOptions {
  /**
   * - `lru`: at most `maxEntries` entries, least recently used evicted first; no expiry.
   * - `ttl`: entries expire `ttlMs` after they were cached; no entry-count bound unless
   *   `maxEntries` is given.
   * - `hybrid` (default): both.
   *
   * Every strategy is also bounded by `maxBytes`.
   */
  strategy?: CacheStrategy;
  /** Most entries (default 1000). */
  maxEntries?: number;
  /** Most bytes of cached values in all (default 64 MiB); least recently used go first. */
  maxBytes?: number;
  /** Values larger than this are never cached (default 1 MiB, at most `maxBytes`). */
  maxEntryBytes?: number;
  /** Time an entry may be served after it was cached, in ms (default 300 000 = 5 min). */
  ttlMs?: number;
  /**
   * Follow the store's change feed (`watch("")`) and drop an entry as soon as any writer, in
   * any process, changes its key. Default: true when `store.capabilities.watch`. Without it,
   * only this cache's own writes invalidate, and other writers' changes are seen after `ttlMs`.
   */
  invalidateFromWatch?: boolean;
}

export interface CacheStats {
  /** `get`s (and `getMany` keys) served from the cache. */
  hits: number;
  /** `get`s (and `getMany` keys) that went to the store. */
  misses: number;
  /** Entries dropped to stay within `maxEntries` / `maxBytes`. */
  evictions: number;
  /** Entries found expired (`ttlMs`). */
  expirations: number;
  /** Entries held now. */
  size: number;
  /** Bytes of values held now. */
  bytes: number;
  /** True while the cache serves entries (with `invalidateFromWatch`: while the feed is live). */
  active: boolean;
}

interface ResolvedCacheOptions {
  strategy: CacheStrategy;
  maxEntries: number | undefined;
  maxBytes: number;
  maxEntryBytes: number;
  ttlMs: number | undefined;
  invalidateFromWatch: boolean;
}

/** Bookkeeping for a key with operations in flight; dropped when none is. */
interface KeyState {
  /** Bumped by every write start, write end and invalidation of the key. */
  gen: number;
  readers: number;
  writers: number;
}

const FEED_RETRY_MIN_MS = 100;
const FEED_RETRY_MAX_MS = 5_000;

/**
 * A read cache in front of a store, on `lru-cache`. Values are copied in and out: a caller
 * mutating a buffer it passed to `put` or got from `get` never changes what the cache holds.
 *
 * Consistency:
 * - A read is cached only if no write or invalidation of its key happened while it was in
 *   flight, so a slow `get` racing a `put` never leaves the older value behind.
 * - Own writes (`put`, `delete`, `putStream`, batches) drop the key when they start and when
 *   they end. Without a change feed, a successful `put` then caches the value written
 *   (write-through), unless another write of the key overlapped it.
 * - With a change feed (`invalidateFromWatch`, the default on stores that declare `watch`):
 *   the cache serves entries only while the feed is live; every event drops its key, so no
 *   entry is served after the feed delivered a change to it, whoever wrote it. Own writes are
 *   not written through then (their own event, arriving later, would drop them anyway).
 *   Until the feed is first live (`await cache.ready`) and whenever it breaks, reads go to the
 *   store; on a break the cache is emptied and the feed re-subscribed with backoff.
 * - Failed reads, `not_found`, reads of a `version` or a `range`, `getStream`, `stat` and
 *   listings are never cached; a `range` of a cached value is cut from the cache.
 * - Every hit is a fresh copy that owns its memory (its `.buffer` holds nothing else).
 *
 * @example
 * const store = withCache(await openStore("nats://127.0.0.1:4222/DATA"), { maxBytes: 256 * MiB });
 * await store.ready;               // the change feed is live: other writers' changes invalidate
 * await store.get("config/app");   // miss: read from NATS
 * await store.get("config/app");   // hit: ~1 µs
 * store.cacheStats();              // { hits: 1, misses: 1, ... }
 */
export class CachedStore extends LayerStore {
  /**
   * Resolves once the cache serves entries: at once without a change feed, once the feed is
   * live with one. Reads before that are correct, only uncached.
   */
  readonly ready: Promise<void>;
  readonly #options: ResolvedCacheOptions;
  readonly #lru: LRUCache<string, Uint8Array>;
  readonly #keys = new Map<string, KeyState>();
  readonly #feed = new AbortController();
  /** Bumped when the whole cache is emptied, so reads in flight then are not cached. */
  #epoch = 0;
  #active = false;
  #hits = 0;
  #misses = 0;
  #evictions = 0;
  #expirations = 0;

  constructor(inner: Store, options: CacheOptions = {}) {
    super(inner);
    this.#options = resolveCacheOptions(options, inner.capabilities.watch);
    const { strategy, maxEntries, maxBytes, maxEntryBytes, ttlMs } = this.#options;
    this.#lru = new LRUCache<string, Uint8Array>({
      ...(strategy !== "ttl" || maxEntries !== undefined ? { max: maxEntries } : {}),
      ...(strategy !== "lru" ? { ttl: ttlMs } : {}),
      maxSize: maxBytes,
      maxEntrySize: maxEntryBytes,
      sizeCalculation: (value) => Math.max(1, value.byteLength),
      dispose: (_value, _key, reason) => {
        if (reason === "evict") this.#evictions++;
        else if (reason === "expire") this.#expirations++;
      },
    });
    if (this.#options.invalidateFromWatch) {
      this.ready = this.#follow();
    } else {
      this.#active = true;
      this.ready = Promise.resolve();
    }
  }

  /** Hit, miss and eviction counts and the current size. */
  cacheStats(): CacheStats {
    this.#lru.purgeStale();
    return {
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      expirations: this.#expirations,
      size: this.#lru.size,
      bytes: this.#lru.calculatedSize,
      active: this.#active,
    };
  }

  /** Empties the cache (counts stay). */
  clear(): void {
    this.#epoch++;
    this.#lru.clear();
  }

  /**
   * The hit path skips the wrapper's validation: only valid keys are ever cached, so a key
   * found in the cache is valid. Anything else (a miss, a version, an aborted signal, a closed
   * store) takes the validating path.
   */
  override get(key: string, options?: GetOptions): Promise<Uint8Array> {
    if (this.#active && options?.version === undefined && options?.range === undefined && !options?.signal?.aborted && !this.closed) {
      const hit = this.#lru.get(key);
      if (hit !== undefined) {
        this.#hits++;
        return Promise.resolve(hit.slice());
      }
    }
    return super.get(key, options);
  }

  protected override async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    if (options.version !== undefined) return super._get(key, options);
    if (this.#active) {
      const hit = this.#lru.get(key);
      if (hit !== undefined) {
        this.#hits++;
        if (options.range === undefined) return hit.slice();
        const { start, end } = resolveRange(options.range, hit.byteLength, "get", key);
        return hit.slice(start, end);
      }
    }
    this.#misses++;
    if (options.range !== undefined) return super._get(key, options);
    return this.#read(key, () => super._get(key, options));
  }

  protected override async _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    const out = new Array<Uint8Array | undefined>(keys.length);
    const missing: number[] = [];
    keys.forEach((key, i) => {
      const hit = this.#active ? this.#lru.get(key) : undefined;
      if (hit === undefined) missing.push(i);
      else out[i] = hit.slice();
    });
    this.#hits += keys.length - missing.length;
    this.#misses += missing.length;
    if (missing.length === 0) return out;
    const missingKeys = missing.map((i) => keys[i]!);
    const reading = this.#beginReads(missingKeys);
    try {
      const values = await super._getMany(missingKeys, options);
      missing.forEach((i, j) => {
        out[i] = values[j];
        if (values[j] !== undefined) this.#fill(missingKeys[j]!, reading[j]!, values[j]);
      });
      return out;
    } finally {
      for (let j = 0; j < missingKeys.length; j++) this.#endRead(missingKeys[j]!, reading[j]!.state);
    }
  }

  protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const copy = this.#writeThrough ? new Uint8Array(data) : undefined;
    return this.#write([key], () => super._put(key, data, options), copy && [copy]);
  }

  protected override async _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    const copies = this.#writeThrough ? entries.map((e) => new Uint8Array(e.data)) : undefined;
    return this.#write(entries.map((e) => e.key), () => super._putMany(entries, options), copies);
  }

  protected override async _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    return this.#write([key], () => super._delete(key, options));
  }

  protected override async _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    return this.#write(keys, () => super._deleteMany(keys, options));
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    return this.#write([key], () => super._putStream(key, source, options));
  }

  protected override async _close(): Promise<void> {
    this.#active = false;
    this.#feed.abort(new StorageError("fatal", "the store is closed", { op: "watch" }));
    this.clear();
    return super._close();
  }

  get #writeThrough(): boolean {
    return !this.#options.invalidateFromWatch && this.#active;
  }

  /** A miss: read through, caching the value unless the key changed meanwhile. */
  async #read(key: string, read: () => Promise<Uint8Array>): Promise<Uint8Array> {
    if (!this.#active) return read();
    const [reading] = this.#beginReads([key]);
    try {
      const data = await read();
      this.#fill(key, reading!, data);
      return data;
    } finally {
      this.#endRead(key, reading!.state);
    }
  }

  #beginReads(keys: string[]): { state: KeyState; gen: number; epoch: number }[] {
    return keys.map((key) => {
      const state = this.#state(key);
      state.readers++;
      return { state, gen: state.gen, epoch: this.#epoch };
    });
  }

  #fill(key: string, reading: { state: KeyState; gen: number; epoch: number }, data: Uint8Array): void {
    const { state, gen, epoch } = reading;
    if (this.#active && state.gen === gen && state.writers === 0 && this.#epoch === epoch) {
      this.#lru.set(key, new Uint8Array(data));
    }
  }

  #endRead(key: string, state: KeyState): void {
    state.readers--;
    this.#release(key, state);
  }

  /**
   * Runs an own write of `keys`: they are dropped before and after it; with `values`, a
   * successful write caches them unless another write or invalidation of the key overlapped.
   */
  async #write(keys: string[], work: () => Promise<void>, values?: Uint8Array[]): Promise<void> {
    const epoch = this.#epoch;
    const started = keys.map((key) => {
      const state = this.#state(key);
      state.writers++;
      const gen = ++state.gen;
      this.#lru.delete(key);
      return { state, gen };
    });
    let ok = false;
    try {
      await work();
      ok = true;
    } finally {
      keys.forEach((key, i) => {
        const { state, gen } = started[i]!;
        const alone = state.gen === gen && state.writers === 1 && this.#epoch === epoch;
        state.writers--;
        state.gen++;
        this.#lru.delete(key);
        const value = values?.[i];
        if (ok && alone && value && this.#active) this.#lru.set(key, value);
        this.#release(key, state);
      });
    }
  }

  /** Drops `key` on behalf of another writer (a change-feed event). */
  #invalidate(key: string): void {
    const state = this.#keys.get(key);
    if (state) state.gen++;
    this.#lru.delete(key);
  }

  #state(key: string): KeyState {
    let state = this.#keys.get(key);
    if (!state) {
      state = { gen: 0, readers: 0, writers: 0 };
      this.#keys.set(key, state);
    }
    return state;
  }

  #release(key: string, state: KeyState): void {
    if (state.readers === 0 && state.writers === 0 && this.#keys.get(key) === state) this.#keys.delete(key);
  }

  /**
   * Follows the change feed for the cache's lifetime: serves entries while it is live, and on
   * a break empties the cache, stops serving and subscribes again with backoff. Resolves when
   * the feed is first live (or the store closed first).
   */
  #follow(): Promise<void> {
    const signal = this.#feed.signal;
    return new Promise<void>((resolve) => {
      signal.addEventListener("abort", () => resolve(), { once: true });
      const loop = async () => {
        let delay = FEED_RETRY_MIN_MS;
        while (!signal.aborted) {
          try {
            const feed = await this.inner.watch("", { signal });
            this.clear();
            this.#active = true;
            delay = FEED_RETRY_MIN_MS;
            resolve();
            for await (const event of feed) this.#invalidate(event.key);
          } catch {
            // A failed subscription or a broken feed: handled below like a feed that ended.
          }
          this.#active = false;
          this.clear();
          if (signal.aborted) return;
          await sleep(delay * (0.5 + Math.random() / 2), signal).catch(() => undefined);
          delay = Math.min(FEED_RETRY_MAX_MS, delay * 2);
        }
      };
      void loop();
    });
  }
}

/**
 * Wraps `store` in a {@link CachedStore}. Returns at once; with a change feed, caching starts
 * when the feed is live (`await cached.ready` to wait for it).
 */
export function withCache(store: Store, options: CacheOptions = {}): CachedStore {
  return new CachedStore(store, options);
}

function resolveCacheOptions(options: CacheOptions, canWatch: boolean): ResolvedCacheOptions {
  const bad = (message: string) => new StorageError("invalid", `cache: ${message}`, { op: "open" });
  const strategy = options.strategy ?? "hybrid";
  if (strategy !== "lru" && strategy !== "ttl" && strategy !== "hybrid") throw bad(`strategy must be "lru", "ttl" or "hybrid", got ${JSON.stringify(strategy)}`);
  const positiveInt = (name: string, value: number | undefined) => {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw bad(`${name} must be a positive integer, got ${String(value)}`);
    return value;
  };
  const maxEntries = positiveInt("maxEntries", options.maxEntries) ?? (strategy === "ttl" ? undefined : 1000);
  const maxBytes = positiveInt("maxBytes", options.maxBytes) ?? 64 * 1024 * 1024;
  const maxEntryBytes = Math.min(positiveInt("maxEntryBytes", options.maxEntryBytes) ?? 1024 * 1024, maxBytes);
  const ttlMs = positiveInt("ttlMs", options.ttlMs) ?? (strategy === "lru" ? undefined : 300_000);
  const invalidateFromWatch = options.invalidateFromWatch ?? canWatch;
  if (invalidateFromWatch && !canWatch) throw bad("invalidateFromWatch needs a store with a change feed (capabilities.watch)");
  return { strategy, maxEntries, maxBytes, maxEntryBytes, ttlMs, invalidateFromWatch };
}
