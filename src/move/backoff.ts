/**
 * The mirror's retry delays: exponential from `baseMs` to `maxMs` with full jitter, so a
 * mirror waiting out an outage neither hammers the store nor retries in step with others.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  #attempt = 0;

  constructor(baseMs = 200, maxMs = 15_000) {
    this.#baseMs = baseMs;
    this.#maxMs = maxMs;
  }

  /** The delay before the next attempt. */
  next(): number {
    const cap = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(this.#attempt++, 20));
    return Math.round(cap / 2 + (Math.random() * cap) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
