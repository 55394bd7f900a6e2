/**
 * A push-to-pull queue: producers `push`, one consumer iterates with `for await`. Used for
 * change feeds. Iteration ends after `end()`, when the signal aborts, or when the consumer
 * breaks out of its loop (which runs `onReturn`, so the producer can unsubscribe).
 */
export class Channel<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiting: ((result: IteratorResult<T>) => void) | undefined;
  #failWaiting: ((err: unknown) => void) | undefined;
  #ended = false;
  #error: unknown;
  #onReturn: (() => void) | undefined;

  constructor(options: { signal?: AbortSignal; onReturn?: () => void } = {}) {
    this.#onReturn = options.onReturn;
    options.signal?.addEventListener("abort", () => this.end(), { once: true });
    if (options.signal?.aborted) this.end();
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(item: T): void {
    if (this.#ended) return;
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = this.#failWaiting = undefined;
      waiting({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  /** Ends the iteration after the queued items; with an error, the consumer's loop throws it. */
  end(error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    const waiting = this.#waiting;
    const fail = this.#failWaiting;
    this.#waiting = this.#failWaiting = undefined;
    if (error !== undefined && fail) fail(error);
    else waiting?.({ value: undefined, done: true });
    const onReturn = this.#onReturn;
    this.#onReturn = undefined;
    onReturn?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift()!, done: false });
        if (this.#ended) {
          if (this.#error !== undefined) {
            const error = this.#error;
            this.#error = undefined;
            return Promise.reject(error);
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise<IteratorResult<T>>((resolve, reject) => {
          this.#waiting = resolve;
          this.#failWaiting = reject;
        });
      },
      return: () => {
        this.#items = [];
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
