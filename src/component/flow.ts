/**
 * Flow metrics with real rates: counts kept in one-second buckets of a ring, so a rate is the
 * sum over the last `windowSeconds` divided by the time actually covered (a component up for
 * 3 s reports over 3 s, not over the whole window). The seed reports 0 here.
 */

/** Rates over the sliding window, as discovery reports them. */
export interface FlowMetrics {
  /** Messages (requests and write-port messages) per second. */
  messagesPerSecond: number;
  /** Payload bytes in and out per second. */
  bytesPerSecond: number;
  /** Failed messages per second. */
  errorsPerSecond: number;
  /** Failed / all messages over the window, 0..1 (0 when idle). */
  errorRate: number;
  /** The window the rates cover, seconds. */
  windowSeconds: number;
  /** Totals since start. */
  totalMessages: number;
  totalBytes: number;
  totalErrors: number;
  /** When the last message was seen (ISO 8601), if any. */
  lastActivity?: string;
}

export class FlowMeter {
  readonly #window: number;
  readonly #messages: Float64Array;
  readonly #bytes: Float64Array;
  readonly #errors: Float64Array;
  readonly #now: () => number;
  readonly #started: number;
  #second: number; // the absolute second the head bucket counts
  #totalMessages = 0;
  #totalBytes = 0;
  #totalErrors = 0;
  #last: number | undefined;

  /** @param windowSeconds the sliding window (default 60 s); `now` is for tests (ms). */
  constructor(windowSeconds = 60, now: () => number = Date.now) {
    this.#window = windowSeconds;
    this.#messages = new Float64Array(windowSeconds);
    this.#bytes = new Float64Array(windowSeconds);
    this.#errors = new Float64Array(windowSeconds);
    this.#now = now;
    this.#started = now();
    this.#second = Math.floor(this.#started / 1000);
  }

  /** Counts one message of `bytes` payload bytes; `failed` when it was answered with an error. */
  record(bytes: number, failed: boolean): void {
    const i = this.#advance();
    this.#messages[i]! += 1;
    this.#bytes[i]! += bytes;
    this.#totalMessages += 1;
    this.#totalBytes += bytes;
    if (failed) {
      this.#errors[i]! += 1;
      this.#totalErrors += 1;
    }
    this.#last = this.#now();
  }

  snapshot(): FlowMetrics {
    this.#advance();
    const elapsed = (this.#now() - this.#started) / 1000;
    const covered = Math.max(1, Math.min(this.#window, elapsed));
    const messages = sum(this.#messages);
    const errors = sum(this.#errors);
    return {
      messagesPerSecond: messages / covered,
      bytesPerSecond: sum(this.#bytes) / covered,
      errorsPerSecond: errors / covered,
      errorRate: messages === 0 ? 0 : errors / messages,
      windowSeconds: this.#window,
      totalMessages: this.#totalMessages,
      totalBytes: this.#totalBytes,
      totalErrors: this.#totalErrors,
      lastActivity: this.#last === undefined ? undefined : new Date(this.#last).toISOString(),
    };
  }

  /** Moves the head to the current second, zeroing the buckets that fell out; returns its index. */
  #advance(): number {
    const second = Math.floor(this.#now() / 1000);
    const steps = Math.min(second - this.#second, this.#window);
    for (let s = 1; s <= steps; s++) {
      const i = (this.#second + s) % this.#window;
      this.#messages[i] = 0;
      this.#bytes[i] = 0;
      this.#errors[i] = 0;
    }
    if (second > this.#second) this.#second = second;
    return this.#second % this.#window;
  }
}

function sum(values: Float64Array): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
