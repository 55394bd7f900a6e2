/**
 * The server's clock seen from ours, so a deadline taken on this machine's clock can be
 * checked by the server (see the fence in schema.ts).
 *
 * One round trip reads the server's clock at some instant between sending and receiving:
 * server - client lies between `server - received` and `server - sent`. The store keeps the
 * lower end (less a millisecond for `Date.now()`'s resolution) and moves the deadline by it,
 * so a deadline the server checks is never later than the caller's: at worst it refuses a
 * write up to one round trip early. Between measurements the two clocks may drift apart;
 * the bound is lowered by a generous drift rate for its age, and renewed in the background.
 * A renewal that disagrees with the drifted bound (a clock was stepped, not slewed) replaces
 * it; until then a step is not covered: see docs/postgres.md.
 */
import type { Pool } from "pg";

/** The most two clocks slew apart: NTP slews each by at most 500 ppm. */
const DRIFT = 2 * 500e-6;
/**
 * Taken off every deadline besides the measured bound: a timer may fire up to a millisecond
 * before `Date.now()` reaches the time it was set for, and the deadline is read a moment after
 * the timer was started.
 */
const TIMER_SLACK_MS = 2;
/** Measure again, in the background, once the bound is this old. */
const RENEW_AFTER_MS = 10_000;

/** What one round trip says about server - client, in ms: it lies in [lower, upper]. */
interface Sample {
  lower: number;
  upper: number;
}

export class ServerClock {
  /** server - client lies in [lower, upper] (ms) as of `#at` (client clock). */
  #bounds: Sample = { lower: 0, upper: 0 };
  #at = 0;
  #renewing: Promise<void> | undefined;
  readonly #pool: Pool;
  readonly #now: () => number;

  private constructor(pool: Pool, now: () => number) {
    this.#pool = pool;
    this.#now = now;
  }

  /** Measures the offset once before resolving. `now` is the client's clock (tests move it). */
  static async measure(pool: Pool, now: () => number = Date.now): Promise<ServerClock> {
    const clock = new ServerClock(pool, now);
    clock.#bounds = await clock.#sample();
    clock.#at = now();
    return clock;
  }

  /** The bounds of server - client now (ms), widened by the drift since they were measured. */
  get bounds(): Sample {
    const drift = DRIFT * Math.max(0, this.#now() - this.#at);
    return { lower: this.#bounds.lower - drift, upper: this.#bounds.upper + drift };
  }

  /**
   * `deadline` (epoch ms on this machine's clock) on the server's clock, never later than the
   * caller's deadline as the server sees it.
   */
  serverDeadline(deadline: number): number {
    const age = this.#now() - this.#at;
    if (age > RENEW_AFTER_MS || age < 0) this.#renew();
    return deadline + this.bounds.lower - TIMER_SLACK_MS;
  }

  #renew(): void {
    if (this.#renewing) return;
    this.#renewing = this.#sample()
      .then((fresh) => {
        const old = this.bounds;
        // Both hold unless a clock was stepped: keep what both say, else the fresh one.
        const lower = Math.max(fresh.lower, old.lower);
        const upper = Math.min(fresh.upper, old.upper);
        this.#bounds = lower <= upper ? { lower, upper } : fresh;
        this.#at = this.#now();
      })
      .catch(() => undefined)
      .finally(() => (this.#renewing = undefined));
  }

  /** One round trip. `Date.now()` truncates to the millisecond: true times are below each reading + 1. */
  async #sample(): Promise<Sample> {
    const sent = this.#now();
    const { rows } = await this.#pool.query<{ now: string }>("SELECT extract(epoch FROM clock_timestamp()) * 1000 AS now");
    const received = this.#now();
    const server = Number(rows[0]!.now);
    return { lower: server - received - 1, upper: server - sent };
  }
}
