/**
 * Deadline signals shared by requests that start within the same {@link GRANULARITY_MS}: each
 * request still gets at least its full timeout (at most GRANULARITY_MS more), and a busy
 * component creates one timer per timeout per 10 ms instead of one per request.
 */
const GRANULARITY_MS = 10;

export class Deadlines {
  readonly #current = new Map<number, { signal: AbortSignal; until: number }>();

  /** A signal that aborts (with a TimeoutError) between `ms` and `ms + 10` milliseconds from now. */
  signal(ms: number): AbortSignal {
    const now = Date.now();
    const shared = this.#current.get(ms);
    if (shared && now < shared.until) return shared.signal;
    const signal = AbortSignal.timeout(ms + GRANULARITY_MS);
    this.#current.set(ms, { signal, until: now + GRANULARITY_MS });
    return signal;
  }
}
