/**
 * The archiver's plug points, as in the seed: how a message becomes a key, which metadata goes
 * with it, and how it becomes bytes. Implementations must handle any message gracefully
 * (messages are `unknown`: check shapes, never assume them).
 */

/**
 * Chooses the key a message is stored under. The key must be valid (see `keyProblem`); the
 * archiver refuses invalid ones with a StorageError of kind `invalid`, op `archive`.
 *
 * @example
 * const byTenant: KeyGenerator = { generateKey: (m) => `tenants/${(m as { tenant: string }).tenant}/latest` };
 */
export interface KeyGenerator {
  generateKey(message: unknown): string;
}

/**
 * A key generator that may not apply to every message: {@link CompositeKeyGenerator} asks
 * `keyFor` and moves to the next generator on `undefined`. `generateKey` still always answers
 * (with a fallback).
 */
export interface OptionalKeyGenerator extends KeyGenerator {
  /** The key for `message`, or undefined when this generator does not apply to it. */
  keyFor(message: unknown): string | undefined;
}

/**
 * Metadata for a message, HTTP-header style as in the seed: names (any case; lower-cased when
 * stored) to one value or several (stored joined with `", "`, the HTTP convention for repeated
 * headers). `undefined` when the message has nothing to say.
 */
export interface MetadataExtractor {
  extractMetadata(message: unknown): Record<string, string | string[]> | undefined;
}

/** Turns a message into the bytes stored. */
export interface Codec {
  encode(message: unknown): Uint8Array;
  /** The MIME type of what `encode` produces, stored as the `content-type` metadata. */
  readonly contentType: string;
  /** The MIME type for this particular message, when it differs by message (bytes passed through). */
  contentTypeFor?(message: unknown): string;
}
