import { randomUUID } from "node:crypto";
import { StorageError, type StorageOp } from "../errors.js";
import { sleep } from "../internal/signal.js";
import type { CleanListPageOptions, CleanPutOptions, CleanBatchEntry, CleanDeleteOptions, CleanWriteOptions } from "../store.js";
import type { ChangeEvent, GetOptions, WriteConditions, ListPage, ObjectInfo, OperationOptions, Store, VersionInfo } from "../types.js";
import { LayerStore } from "./layer.js";

export interface RetryOptions {
  /** Attempts in all, the first included (default 4). 1 disables retrying. */
  maxAttempts?: number;
  /** Backoff before the first retry, in ms (default 50); it doubles after each attempt. */
  baseDelayMs?: number;
  /** The longest single backoff, in ms (default 2000). */
  maxDelayMs?: number;
  /**
   * Time budget for one call, in ms (default 10 000): no retry starts when its backoff would end
   * past this much time since the first attempt; the last error is thrown instead.
   */
  maxElapsedMs?: number;
  /**
   * Full jitter (default true): each backoff is uniform in [0, cap) rather than the cap itself,
   * so clients that failed together do not retry together.
   */
  jitter?: boolean;
  /** Called before each backoff, for logging (`attempt` is the one that just failed, from 1). */
  onRetry?: (info: RetryInfo) => void;
}

export interface RetryInfo {
  op: StorageOp;
  key?: string;
  attempt: number;
  delayMs: number;
  error: StorageError;
}

interface ResolvedRetryOptions {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxElapsedMs: number;
  jitter: boolean;
  onRetry: ((info: RetryInfo) => void) | undefined;
}

/**
 * Retries operations that failed with a `transient` {@link StorageError}, with exponential
 * backoff and full jitter, at most `maxAttempts` times and within `maxElapsedMs`. Other kinds
 * (`invalid`, `not_found`, `fatal`, `unsupported`) and aborts are passed on at once. An abort
 * during a backoff rejects immediately with `signal.reason`.
 *
 * - `putStream` is never retried: the body is consumed by the first attempt and cannot be
 *   replayed (re-sending a half-read body is how stores lose data). It runs once.
 * - `getStream` is retried only until its first chunk arrived; a failure later in the stream
 *   is the caller's (restart the read).
 * - `put`, `putMany`, `delete`, `deleteMany` are retried: they are idempotent overwrites. Every
 *   attempt of one call carries the same `writeId`, so a backend that can tell (NATS, within
 *   JetStream's duplicate window; PostgreSQL, within its `dedupeWindow`) applies it once even
 *   when an earlier attempt took effect and only its reply was lost; elsewhere a versioned
 *   store may keep one extra, identical version.
 * - A conditional write (`ifMatch`/`ifNoneMatch`) that fails with `conflict` after an attempt
 *   that failed without an answer may have been applied by that attempt: the `conflict` says so
 *   in its message. Read the key to find out.
 * - `watch` retries establishing the feed only.
 *
 * @example
 * const store = withRetry(await openStore("nats://127.0.0.1:4222/DATA"), { maxAttempts: 5 });
 */
export class RetryStore extends LayerStore {
  readonly #options: ResolvedRetryOptions;

  constructor(inner: Store, options: RetryOptions = {}) {
    super(inner);
    this.#options = resolveRetryOptions(options);
  }

  protected override _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const once = withWriteId(options);
    return this.#retry("put", key, options.signal, () => super._put(key, data, once), conditional(once));
  }

  protected override _get(key: string, options: GetOptions): Promise<Uint8Array> {
    return this.#retry("get", key, options.signal, () => super._get(key, options));
  }

  protected override _list(prefix: string, options: OperationOptions): Promise<string[]> {
    return this.#retry("list", undefined, options.signal, () => super._list(prefix, options));
  }

  protected override _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    const once = withWriteId(options);
    return this.#retry("delete", key, options.signal, () => super._delete(key, once), conditional(once));
  }

  protected override _stat(key: string, options: OperationOptions): Promise<ObjectInfo> {
    return this.#retry("stat", key, options.signal, () => super._stat(key, options));
  }

  protected override _versions(key: string, options: OperationOptions): Promise<VersionInfo[]> {
    return this.#retry("versions", key, options.signal, () => super._versions(key, options));
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    // Open and pull the first chunk inside the retry: some stores only fail on the first read.
    return this.#retry("getStream", key, options.signal, async () => {
      const body = await super._getStream(key, options);
      const iterator = body[Symbol.asyncIterator]();
      const first = await iterator.next();
      return resumed(first, iterator);
    });
  }

  protected override _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    return this.#retry("list", undefined, options.signal, () => super._listPage(prefix, options));
  }

  protected override _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    const once = withWriteId(options);
    return this.#retry("putMany", undefined, options.signal, () => super._putMany(entries, once), entries.some(conditional));
  }

  protected override _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    return this.#retry("getMany", undefined, options.signal, () => super._getMany(keys, options));
  }

  protected override _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    const once = withWriteId(options);
    return this.#retry("deleteMany", undefined, options.signal, () => super._deleteMany(keys, once));
  }

  protected override _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    return this.#retry("watch", undefined, options.signal, () => super._watch(prefix, options));
  }

  async #retry<T>(op: StorageOp, key: string | undefined, signal: AbortSignal | undefined, attempt: () => Promise<T>, conditional = false): Promise<T> {
    const { maxAttempts, baseDelayMs, maxDelayMs, maxElapsedMs, jitter, onRetry } = this.#options;
    const started = performance.now();
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (conditional && n > 1 && err instanceof StorageError && err.kind === "conflict") throw maybeOwnConflict(err, n);
        if (!(err instanceof StorageError) || err.kind !== "transient" || n >= maxAttempts || signal?.aborted) throw err;
        const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1));
        const delayMs = jitter ? Math.random() * cap : cap;
        if (performance.now() - started + delayMs > maxElapsedMs) throw err;
        onRetry?.({ op, key, attempt: n, delayMs, error: err });
        await sleep(delayMs, signal);
      }
    }
  }
}

/** The options with a `writeId` for every attempt of this call (the caller's, else a new one). */
function withWriteId<T extends CleanWriteOptions>(options: T): T {
  return options.writeId !== undefined ? options : { ...options, writeId: randomUUID() };
}

function conditional(options: WriteConditions): boolean {
  return options.ifMatch !== undefined || options.ifNoneMatch !== undefined;
}

/** A conflict seen by a retry: the attempt that failed without an answer may have caused it. */
function maybeOwnConflict(err: StorageError, attempt: number): StorageError {
  return new StorageError("conflict", `${err.detail} (on attempt ${attempt}: an earlier attempt failed without an answer and may have applied this write)`, { op: err.op, key: err.key, cause: err });
}

/** Wraps `store` in a {@link RetryStore}. */
export function withRetry(store: Store, options: RetryOptions = {}): RetryStore {
  return new RetryStore(store, options);
}

function resolveRetryOptions(options: RetryOptions): ResolvedRetryOptions {
  const resolved = {
    maxAttempts: options.maxAttempts ?? 4,
    baseDelayMs: options.baseDelayMs ?? 50,
    maxDelayMs: options.maxDelayMs ?? 2000,
    maxElapsedMs: options.maxElapsedMs ?? 10_000,
    jitter: options.jitter ?? true,
    onRetry: options.onRetry,
  };
  const bad = (message: string) => new StorageError("invalid", `retry: ${message}`, { op: "open" });
  if (!Number.isInteger(resolved.maxAttempts) || resolved.maxAttempts < 1) throw bad(`maxAttempts must be a positive integer, got ${String(resolved.maxAttempts)}`);
  for (const name of ["baseDelayMs", "maxDelayMs", "maxElapsedMs"] as const) {
    const value = resolved[name];
    if (typeof value !== "number" || !(value >= 0) || value === Infinity) throw bad(`${name} must be a finite number of milliseconds >= 0, got ${String(value)}`);
  }
  return resolved;
}

/** An iterable that yields an already-pulled first result, then the rest of `iterator`. */
function resumed(first: IteratorResult<Uint8Array>, iterator: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  return {
    async *[Symbol.asyncIterator]() {
      if (first.done) return;
      let completed = false;
      try {
        yield first.value;
        for (;;) {
          const next = await iterator.next();
          if (next.done) {
            completed = true;
            return;
          }
          yield next.value;
        }
      } finally {
        // The caller stopped early (break / throw): let the store release the stream.
        if (!completed) await iterator.return?.();
      }
    },
  };
}
