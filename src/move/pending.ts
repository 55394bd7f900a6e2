/**
 * The changes a mirror has seen but not yet applied, by key: a key changed five times while it
 * waited is applied once (applying reads the source's current value, so the last change wins),
 * and each key remembers the source time of its oldest unapplied change, which is what the lag
 * and the checkpoint are measured from.
 *
 * Bounded: past `limit` waiting keys the set forgets them all and remembers only the oldest
 * change time it dropped (`overflowSince`); the mirror then rescans the source from there.
 */
export class PendingChanges {
  readonly #limit: number;
  /** Key -> oldest unapplied change (epoch ms), in the order keys first arrived. */
  readonly #waiting = new Map<string, number>();
  /** Keys being applied now -> the change time they were taken with. */
  readonly #active = new Map<string, number>();
  #overflowSince: number | undefined;
  #wake: (() => void) | undefined;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Keys waiting or being applied. */
  get size(): number {
    return this.#waiting.size + this.#active.size;
  }

  get activeCount(): number {
    return this.#active.size;
  }

  /** The oldest change time dropped by an overflow since the last {@link clearOverflow}. */
  get overflowSince(): number | undefined {
    return this.#overflowSince;
  }

  /** Records a change of `key` made at `time` (source clock, epoch ms). */
  add(key: string, time: number): void {
    const known = this.#waiting.get(key);
    if (known !== undefined) {
      if (time < known) this.#waiting.set(key, time);
      return;
    }
    if (this.#waiting.size >= this.#limit) {
      this.#overflowSince = Math.min(this.#overflowSince ?? Infinity, time, this.#oldestWaiting() ?? Infinity);
      this.#waiting.clear();
      return;
    }
    this.#waiting.set(key, time);
    this.#wake?.();
  }

  /**
   * The next key to apply, oldest first, skipping keys being applied now (a key changed again
   * while applied waits for that to finish, so two applications of one key never race).
   */
  take(): string | undefined {
    for (const [key, time] of this.#waiting) {
      if (this.#active.has(key)) continue;
      this.#waiting.delete(key);
      this.#active.set(key, time);
      return key;
    }
    return undefined;
  }

  /** `key` (from {@link take}) is applied. */
  done(key: string): void {
    this.#active.delete(key);
    if (this.#waiting.has(key)) this.#wake?.();
  }

  /** The source time of the oldest change not yet applied (overflow included), or undefined. */
  oldest(): number | undefined {
    let oldest = this.#overflowSince ?? Infinity;
    for (const time of this.#active.values()) oldest = Math.min(oldest, time);
    oldest = Math.min(oldest, this.#oldestWaiting() ?? Infinity);
    return oldest === Infinity ? undefined : oldest;
  }

  clearOverflow(): void {
    this.#overflowSince = undefined;
  }

  /** Resolves when a key may be waiting (or at once when one is). */
  changed(): Promise<void> {
    if (this.#waiting.size > this.#active.size) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#wake;
      this.#wake = () => {
        this.#wake = undefined;
        previous?.();
        resolve();
      };
    });
  }

  /** Wakes whoever waits in {@link changed} (the mirror is stopping or pausing). */
  wakeAll(): void {
    this.#wake?.();
  }

  #oldestWaiting(): number | undefined {
    let oldest: number | undefined;
    for (const time of this.#waiting.values()) if (oldest === undefined || time < oldest) oldest = time;
    return oldest;
  }
}
