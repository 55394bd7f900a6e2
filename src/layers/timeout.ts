import { StorageError, type StorageOp } from "../errors.js";
import { raceSignal } from "../internal/signal.js";
import type { CleanListPageOptions, CleanPutOptions, CleanBatchEntry, CleanDeleteOptions, CleanWriteOptions } from "../store.js";
import type { ChangeEvent, GetOptions, ListPage, ObjectInfo, OperationOptions, Store, VersionInfo } from "../types.js";
import { LayerStore } from "./layer.js";

/**
 * A deadline for every operation, combined with the caller's signal: whichever comes first
 * ends the call. A deadline rejects with a `transient` StorageError ("timed out after N ms"),
 * which `withRetry` (stacked outside) retries; a caller's abort rejects with the caller's
 * reason, as everywhere.
 *
 * What the deadline covers:
 * - one call, from start to result, for put/get/list/delete/stat/versions/listPage and batches;
 * - for `getStream`, opening the stream, then each chunk: the stream fails when no chunk
 *   arrives for `ms` (an idle timeout, so a long download of a steady stream is fine);
 * - for `putStream`, the same idle timeout, restarted by every chunk the store reads;
 * - for `watch`, establishing the feed only (the feed then lives until the caller's signal).
 *
 * The store is told through the signal it receives, so it can cancel what it started, and
 * writes also carry the deadline itself (`deadline`, epoch ms), so a backend that can check it
 * on the server (PostgreSQL) never applies a write that arrives after its call timed out.
 *
 * @example
 * const store = withTimeout(await openStore("s3://bucket?endpoint=…"), 5_000);
 */
export class TimeoutStore extends LayerStore {
  /** The deadline in milliseconds. */
  readonly ms: number;

  constructor(inner: Store, ms: number) {
    super(inner);
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) {
      throw new StorageError("invalid", `timeout must be a positive number of milliseconds, got ${String(ms)}`, { op: "open" });
    }
    this.ms = ms;
  }

  protected override _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    return this.#bounded("put", key, options.signal, (signal) => super._put(key, data, { ...options, signal, deadline: this.#deadline(options) }));
  }

  protected override _get(key: string, options: GetOptions): Promise<Uint8Array> {
    return this.#bounded("get", key, options.signal, (signal) => super._get(key, { ...options, signal }));
  }

  protected override _list(prefix: string, options: OperationOptions): Promise<string[]> {
    return this.#bounded("list", undefined, options.signal, (signal) => super._list(prefix, { ...options, signal }));
  }

  protected override _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    return this.#bounded("delete", key, options.signal, (signal) => super._delete(key, { ...options, signal, deadline: this.#deadline(options) }));
  }

  protected override _stat(key: string, options: OperationOptions): Promise<ObjectInfo> {
    return this.#bounded("stat", key, options.signal, (signal) => super._stat(key, { ...options, signal }));
  }

  protected override _versions(key: string, options: OperationOptions): Promise<VersionInfo[]> {
    return this.#bounded("versions", key, options.signal, (signal) => super._versions(key, { ...options, signal }));
  }

  protected override _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    return this.#bounded("list", undefined, options.signal, (signal) => super._listPage(prefix, { ...options, signal }));
  }

  protected override _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    return this.#bounded("putMany", undefined, options.signal, (signal) => super._putMany(entries, { ...options, signal, deadline: this.#deadline(options) }));
  }

  protected override _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    return this.#bounded("getMany", undefined, options.signal, (signal) => super._getMany(keys, { ...options, signal }));
  }

  protected override _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    return this.#bounded("deleteMany", undefined, options.signal, (signal) => super._deleteMany(keys, { ...options, signal, deadline: this.#deadline(options) }));
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    const deadline = new Deadline(this.ms, options.signal);
    const ticking = async function* () {
      for await (const chunk of source) {
        deadline.restart();
        yield chunk;
      }
    };
    try {
      return await deadline.race(super._putStream(key, ticking(), { ...options, signal: deadline.signal }));
    } catch (err) {
      throw deadline.explain(err, "putStream", key, "no progress for");
    } finally {
      deadline.clear();
    }
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const deadline = new Deadline(this.ms, options.signal);
    let body: AsyncIterable<Uint8Array>;
    try {
      body = await deadline.race(super._getStream(key, { ...options, signal: deadline.signal }));
    } catch (err) {
      deadline.clear();
      throw deadline.explain(err, "getStream", key, "timed out after");
    }
    // The store keeps reading under deadline.signal: keep following the caller's signal until
    // the body is finished (idleBounded clears it then).
    deadline.pause();
    return idleBounded(body, deadline, key);
  }

  protected override async _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    // The feed outlives the deadline: it gets a signal that follows the caller's, and is ended
    // by the deadline only when it was not established in time (so a late feed cannot leak).
    const deadline = new Deadline(this.ms, options.signal);
    const feed = new AbortController();
    const follow = () => feed.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", follow, { once: true });
    try {
      return await deadline.race(super._watch(prefix, { ...options, signal: feed.signal }));
    } catch (err) {
      feed.abort(err);
      options.signal?.removeEventListener("abort", follow);
      throw deadline.explain(err, "watch", undefined, "timed out after");
    } finally {
      deadline.clear();
    }
  }

  /** This call's deadline as a time: now plus the timeout, or the caller's if that is sooner. */
  #deadline(options: CleanWriteOptions): number {
    const own = Date.now() + this.ms;
    return options.deadline !== undefined && options.deadline < own ? options.deadline : own;
  }

  async #bounded<T>(op: StorageOp, key: string | undefined, signal: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = new Deadline(this.ms, signal);
    try {
      return await deadline.race(work(deadline.signal));
    } catch (err) {
      throw deadline.explain(err, op, key, "timed out after");
    } finally {
      deadline.clear();
    }
  }
}

/** Wraps `store` in a {@link TimeoutStore} with a deadline of `ms` milliseconds per operation. */
export function withTimeout(store: Store, ms: number): TimeoutStore {
  return new TimeoutStore(store, ms);
}

/**
 * One timer plus the caller's signal, as one AbortSignal. A plain controller and timer rather
 * than `AbortSignal.any([caller, AbortSignal.timeout(ms)])`: the timer is cleared as soon as
 * the call settles, so a fast store does not leave thousands of pending timers behind.
 */
class Deadline {
  readonly #controller = new AbortController();
  readonly #caller: AbortSignal | undefined;
  readonly #ms: number;
  #timer: NodeJS.Timeout | undefined;
  #timedOut = false;
  readonly #onCallerAbort = () => this.#controller.abort(this.#caller?.reason);

  constructor(ms: number, caller: AbortSignal | undefined) {
    this.#ms = ms;
    this.#caller = caller;
    if (caller?.aborted) this.#controller.abort(caller.reason);
    else caller?.addEventListener("abort", this.#onCallerAbort, { once: true });
    this.restart();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Starts the countdown again (stream progress). */
  restart(): void {
    if (this.#controller.signal.aborted) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#controller.abort(new StorageError("transient", `timed out after ${this.#ms} ms`, { op: "timeout" }));
    }, this.#ms);
  }

  /** Stops the countdown (restart() arms it again). */
  pause(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Settles with `work`, or rejects as soon as the deadline or the caller aborts. */
  race<T>(work: Promise<T>): Promise<T> {
    return raceSignal(this.#controller.signal, () => work);
  }

  /** Releases the timer and the listener on the caller's signal. */
  clear(): void {
    this.pause();
    this.#caller?.removeEventListener("abort", this.#onCallerAbort);
  }

  /** The error to throw for `err`: the caller's reason, a transient timeout, or `err` as is. */
  explain(err: unknown, op: StorageOp, key: string | undefined, phrase: string): unknown {
    if (this.#caller?.aborted) return this.#caller.reason;
    if (this.#timedOut) return new StorageError("transient", `${phrase} ${this.#ms} ms`, { op, key, cause: err });
    return err;
  }
}

/** Iterates `body`, failing with a transient timeout when one chunk takes longer than the deadline. */
async function* idleBounded(body: AsyncIterable<Uint8Array>, deadline: Deadline, key: string): AsyncGenerator<Uint8Array> {
  const iterator = body[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      deadline.restart();
      let next: IteratorResult<Uint8Array>;
      try {
        next = await deadline.race(iterator.next());
      } catch (err) {
        throw deadline.explain(err, "getStream", key, "no data for");
      } finally {
        deadline.pause();
      }
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } finally {
    deadline.clear();
    if (!done) await iterator.return?.();
  }
}
