/**
 * Counts work in progress so a stop can wait for it: `enter()` before, `leave()` after (in a
 * `finally`), `idle()` resolves once nothing is in progress.
 */
export class InFlight {
  #count = 0;
  #waiters: (() => void)[] = [];
  readonly #onChange: ((count: number) => void) | undefined;

  constructor(onChange?: (count: number) => void) {
    this.#onChange = onChange;
  }

  get count(): number {
    return this.#count;
  }

  enter(): void {
    this.#count++;
    this.#onChange?.(this.#count);
  }

  leave(): void {
    this.#count--;
    this.#onChange?.(this.#count);
    if (this.#count === 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Resolves when nothing is in progress (at once when nothing is). */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
