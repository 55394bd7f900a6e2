import { StorageError } from "../errors.js";
import type { KeyGenerator, OptionalKeyGenerator } from "./types.js";

export interface CompositeKeyOptions {
  /**
   * `first` (default): the key of the first generator that applies. `join`: the keys of every
   * generator that applies, joined by `separator` — e.g. a tenant generator then a time one
   * gives `tenant-a/events/2024/10/08/10/...`.
   */
  mode?: "first" | "join";
  /** Between joined keys (mode `join`). Default `/`. */
  separator?: string;
}

/**
 * Combines key generators. A generator "applies" unless it has `keyFor` (an
 * {@link OptionalKeyGenerator}) and that returns undefined; plain generators always apply, so
 * put one last as the catch-all. When none applies, `generateKey` throws a StorageError of
 * kind `invalid`.
 *
 * @example
 * // Entity messages by entity, everything else by time:
 * new CompositeKeyGenerator([new EntityKeyGenerator(), new TimeBucketKeyGenerator()]);
 */
export class CompositeKeyGenerator implements OptionalKeyGenerator {
  readonly #generators: readonly KeyGenerator[];
  readonly #mode: "first" | "join";
  readonly #separator: string;

  constructor(generators: readonly KeyGenerator[], options: CompositeKeyOptions = {}) {
    if (!Array.isArray(generators) || generators.length === 0 || generators.some((g) => typeof g?.generateKey !== "function")) {
      throw new StorageError("invalid", "CompositeKeyGenerator needs a non-empty array of key generators", { op: "archive" });
    }
    const mode = options.mode ?? "first";
    if (mode !== "first" && mode !== "join") throw new StorageError("invalid", `mode must be "first" or "join", got ${JSON.stringify(mode)}`, { op: "archive" });
    this.#generators = [...generators];
    this.#mode = mode;
    this.#separator = options.separator ?? "/";
  }

  keyFor(message: unknown): string | undefined {
    if (this.#mode === "first") {
      for (const generator of this.#generators) {
        const key = keyOf(generator, message);
        if (key !== undefined) return key;
      }
      return undefined;
    }
    const parts = this.#generators.map((g) => keyOf(g, message)).filter((k): k is string => k !== undefined);
    return parts.length === 0 ? undefined : parts.join(this.#separator);
  }

  generateKey(message: unknown): string {
    const key = this.keyFor(message);
    if (key === undefined) throw new StorageError("invalid", "no key generator applies to this message (end the list with one that always applies)", { op: "archive" });
    return key;
  }
}

function keyOf(generator: KeyGenerator, message: unknown): string | undefined {
  const optional = generator as Partial<OptionalKeyGenerator>;
  return typeof optional.keyFor === "function" ? optional.keyFor(message) : generator.generateKey(message);
}
