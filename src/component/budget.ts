/**
 * The component's work in flight, bounded: a request or write-port message holds a share
 * (one unit of `max_in_flight` and its payload's bytes of `max_in_flight_bytes`) from the
 * moment it is taken until the store call it started has really settled — not until its
 * deadline answered the requester. A store that hangs therefore fills the budget, and the
 * component answers "busy" instead of queueing values it cannot store.
 */
import { StorageError } from "../errors.js";

/** One piece of work's share of the budget; `release()` is idempotent. */
export interface Lease {
  release(): void;
}

interface Waiter {
  bytes: number;
  resolve(lease: Lease): void;
}

/** What a queued message costs besides its payload (the message object, headers, closures), bytes. */
const QUEUED_OVERHEAD_BYTES = 512;

export class WorkBudget {
  readonly maxCount: number;
  readonly maxBytes: number;
  #count = 0;
  #bytes = 0;
  #waiters: Waiter[] = [];
  #queuedBytes = 0;
  #idle: (() => void)[] = [];
  readonly #onChange: ((count: number) => void) | undefined;

  /** `onChange` hears the count after every change (the in-flight gauge). */
  constructor(limits: { maxCount: number; maxBytes: number }, onChange?: (count: number) => void) {
    this.maxCount = limits.maxCount;
    this.maxBytes = limits.maxBytes;
    this.#onChange = onChange;
  }

  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** A share for work of `bytes`, or undefined when the budget has no room (answer "busy"). */
  tryEnter(bytes: number): Lease | undefined {
    if (!this.#fits(bytes) || this.#waiters.length > 0) return undefined;
    return this.#take(bytes);
  }

  /** Waits for room (first come, first served); rejects with the signal's reason when it aborts. */
  enter(bytes: number, signal?: AbortSignal): Promise<Lease> {
    const now = this.tryEnter(bytes);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const waiter: Waiter = {
        bytes,
        resolve: (lease) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(lease);
        },
      };
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /**
   * Waits for room like {@link enter}, but only while what waits (payloads plus a per-message
   * overhead) stays within `maxBytes`: for a source that cannot be paused (a core NATS
   * subscription), so a burst waits its turn and a flood behind a hung store is refused.
   * Undefined when the queue is full.
   */
  queue(bytes: number): Promise<Lease> | undefined {
    const now = this.tryEnter(bytes);
    if (now) return Promise.resolve(now);
    const cost = bytes + QUEUED_OVERHEAD_BYTES;
    if (this.#queuedBytes + cost > this.maxBytes) return undefined;
    this.#queuedBytes += cost;
    return this.enter(bytes).finally(() => (this.#queuedBytes -= cost));
  }

  /** Resolves once nothing is in flight (at once when nothing is). */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** The "busy" refusal, naming the limit that was reached. */
  busy(op: string): StorageError {
    const which =
      this.#count >= this.maxCount
        ? `${this.#count} requests and messages in flight (max_in_flight ${this.maxCount})`
        : `${this.#bytes} bytes in flight (max_in_flight_bytes ${this.maxBytes})`;
    return new StorageError("transient", `busy: ${which}, work the store has not finished yet included; retry later`, { op });
  }

  // Work larger than the whole byte budget still runs when nothing else is in flight.
  #fits(bytes: number): boolean {
    return this.#count < this.maxCount && (this.#bytes === 0 || this.#bytes + bytes <= this.maxBytes);
  }

  #take(bytes: number): Lease {
    this.#count++;
    this.#bytes += bytes;
    this.#onChange?.(this.#count);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#count--;
        this.#bytes -= bytes;
        this.#onChange?.(this.#count);
        this.#wake();
      },
    };
  }

  #wake(): void {
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0]!.bytes)) {
      const waiter = this.#waiters.shift()!;
      waiter.resolve(this.#take(waiter.bytes));
    }
    if (this.#count === 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const resolve of idle) resolve();
    }
  }
}

/**
 * Settles like `work`, or rejects with a `transient` "timed out" error after `ms`, whichever
 * comes first. The work is not cancelled: whoever started it keeps its budget share until it
 * settles.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: { op: string; key?: string; setting: string }): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StorageError("transient", `timed out after ${ms} ms (${what.setting} in the component config)`, { op: what.op, key: what.key })), ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
