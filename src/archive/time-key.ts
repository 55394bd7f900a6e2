import { readClock } from "./clock.js";
import type { KeyGenerator } from "./types.js";
import { compactUtc, hourBucket, nextSuffix } from "./unique-id.js";

export { hourBucket };
import { segmentProblem } from "./segments.js";
import { StorageError } from "../errors.js";

export interface TimeBucketKeyOptions {
  /** First part of every key (may hold `/`, no leading or trailing `/`). Default `events`. */
  prefix?: string;
  /** The clock (default: the system clock); inject one in tests. */
  now?: () => Date;
}

/**
 * The default key generator: `{prefix}/YYYY/MM/DD/HH/{unique-id}` in UTC, e.g.
 * `events/2024/10/08/10/20241008T103000.123Z-00000f-k3j9x2pq`. One folder per hour, so
 * `list("events/2024/10/08/")` is one day; within an hour keys sort by time to the millisecond.
 * Keys never collide, in one process or across processes (see `timeOrderedId`). Ignores the
 * message.
 *
 * @example
 * const keys = new TimeBucketKeyGenerator({ prefix: "sensors" });
 * keys.generateKey(reading); // "sensors/2024/10/08/10/20241008T103000.123Z-000000-k3j9x2pq"
 */
export class TimeBucketKeyGenerator implements KeyGenerator {
  readonly prefix: string;
  readonly #now: () => Date;
  // Everything before the suffix is the same for keys of one millisecond: build it once.
  #headMs = Number.NaN;
  #head = "";

  constructor(options: TimeBucketKeyOptions = {}) {
    this.prefix = options.prefix ?? "events";
    const problem = prefixSegmentsProblem(this.prefix);
    if (problem) throw new StorageError("invalid", `key prefix ${JSON.stringify(this.prefix)}: ${problem}`, { op: "archive" });
    this.#now = options.now ?? (() => new Date());
  }

  generateKey(): string {
    const at = readClock(this.#now);
    const ms = at.getTime();
    if (ms !== this.#headMs) {
      this.#head = `${this.prefix}/${hourBucket(at)}/${compactUtc(at)}-`;
      this.#headMs = ms;
    }
    return this.#head + nextSuffix();
  }
}

/** Why `prefix` cannot start generated keys: each of its `/`-separated parts must be a valid segment. */
export function prefixSegmentsProblem(prefix: unknown): string | undefined {
  if (typeof prefix !== "string" || prefix === "") return "must be a non-empty string";
  for (const segment of prefix.split("/")) {
    const problem = segmentProblem(segment);
    if (problem) return problem;
  }
  return undefined;
}
