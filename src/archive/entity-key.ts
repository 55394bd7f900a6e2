import { StorageError } from "../errors.js";
import { readClock } from "./clock.js";
import { entityOf } from "./entity.js";
import { toSegment } from "./segments.js";
import { prefixSegmentsProblem, TimeBucketKeyGenerator } from "./time-key.js";
import type { KeyGenerator, OptionalKeyGenerator } from "./types.js";
import { timeOrderedId } from "./unique-id.js";

export interface EntityKeyOptions {
  /** First part of every key (may hold `/`). Default `entities`. */
  prefix?: string;
  /** For messages without an entity (default: a {@link TimeBucketKeyGenerator} with its defaults). */
  fallback?: KeyGenerator;
  /** The clock for the unique part (default: the system clock). */
  now?: () => Date;
}

/**
 * Keys by entity: `{prefix}/{type}/{id}/{unique-id}`, e.g.
 * `entities/sensor/temp-123/20241008T103000.123Z-000000-k3j9x2pq`, so
 * `list("entities/sensor/temp-123/")` is one entity's history in time order. The entity comes
 * from `getId()`/`getType()`, `entityId`/`entityType` or `id`/`type` (see `entityOf`); ids and
 * types are escaped into safe segments (`/` -> `%2F`, `..` -> `%2E%2E`, see `toSegment`), so
 * no message can produce an invalid key or reach outside its entity's folder. Messages without
 * an entity go to `fallback`.
 *
 * @example
 * new EntityKeyGenerator().generateKey({ entityType: "sensor", entityId: "temp-123", value: 21.5 });
 */
export class EntityKeyGenerator implements OptionalKeyGenerator {
  readonly prefix: string;
  readonly #fallback: KeyGenerator;
  readonly #now: () => Date;

  constructor(options: EntityKeyOptions = {}) {
    this.prefix = options.prefix ?? "entities";
    const problem = prefixSegmentsProblem(this.prefix);
    if (problem) throw new StorageError("invalid", `key prefix ${JSON.stringify(this.prefix)}: ${problem}`, { op: "archive" });
    this.#fallback = options.fallback ?? new TimeBucketKeyGenerator();
    this.#now = options.now ?? (() => new Date());
  }

  keyFor(message: unknown): string | undefined {
    const entity = entityOf(message);
    if (!entity) return undefined;
    const type = toSegment(entity.type)!;
    const id = toSegment(entity.id)!;
    return `${this.prefix}/${type}/${id}/${timeOrderedId(readClock(this.#now))}`;
  }

  generateKey(message: unknown): string {
    return this.keyFor(message) ?? this.#fallback.generateKey(message);
  }
}
