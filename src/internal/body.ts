/**
 * The body `getStream` hands out: read once, its failures classified, and released by its
 * iterator's `return()` whether or not reading began.
 *
 * An async generator that never started runs no `finally` when `return()` is called, so a
 * caller that opened a body and then chose not to read it (its output could not be opened, a
 * deadline passed, the destination refused the write) would leave the store's file handle,
 * socket or consumer open until garbage collection, or for good. This iterator releases such a
 * body itself: a Node stream is destroyed; any other is started and stopped at once, which runs
 * the `finally` of every generator between the caller and the store.
 */
type Source = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export class StoreBody implements AsyncIterableIterator<Uint8Array> {
  readonly #source: Source;
  readonly #classify: (err: unknown) => unknown;
  readonly #signal: AbortSignal | undefined;
  #iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array> | undefined;
  #finished = false;

  /** `classify` maps what the source throws (default: as it is); `signal` ends the reading. */
  constructor(source: Source, classify: (err: unknown) => unknown = (err) => err, signal?: AbortSignal) {
    this.#source = source;
    this.#classify = classify;
    this.#signal = signal;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#finished) return { done: true, value: undefined };
    let result: IteratorResult<Uint8Array>;
    try {
      this.#iterator ??= iteratorOf(this.#source);
      result = await this.#iterator.next();
    } catch (err) {
      this.#finished = true; // a source that threw is over: it is not asked to return
      throw this.#classify(err);
    }
    if (result.done) {
      this.#finished = true;
      return result;
    }
    if (this.#signal?.aborted) {
      await this.return();
      throw this.#classify(this.#signal.reason);
    }
    return result;
  }

  async return(): Promise<IteratorResult<Uint8Array>> {
    if (this.#finished) return { done: true, value: undefined };
    this.#finished = true;
    const iterator = this.#iterator;
    if (iterator) await iterator.return?.();
    else release(this.#source);
    return { done: true, value: undefined };
  }
}

/** Releases a source nobody began to read. */
function release(source: Source): void {
  const destroy = (source as { destroy?: unknown }).destroy;
  if (typeof destroy === "function") {
    (destroy as () => void).call(source);
    return;
  }
  if (!(Symbol.asyncIterator in source)) return; // in memory: nothing held
  const iterator = source[Symbol.asyncIterator]();
  void (async () => {
    const first = await iterator.next();
    if (!first.done) await iterator.return?.();
  })().catch(() => undefined);
}

function iteratorOf(source: Source): AsyncIterator<Uint8Array> | Iterator<Uint8Array> {
  return Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
}
