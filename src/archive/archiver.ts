import { StorageError } from "../errors.js";
import { keyProblem } from "../keys.js";
import type { Metadata, Store } from "../types.js";
import { jsonCodec } from "./codec.js";
import { DefaultMetadataExtractor, normalizeExtractedMetadata } from "./metadata.js";
import { TimeBucketKeyGenerator } from "./time-key.js";
import type { Codec, KeyGenerator, MetadataExtractor } from "./types.js";

export interface ArchiverOptions {
  /** Default: {@link TimeBucketKeyGenerator} (`events/YYYY/MM/DD/HH/<unique-id>`, UTC). */
  keyGenerator?: KeyGenerator;
  /** Default: {@link DefaultMetadataExtractor} (entity id/type, class name). */
  metadataExtractor?: MetadataExtractor;
  /** Default: {@link jsonCodec} (JSON, bytes passed through). */
  codec?: Codec;
}

export interface ArchiveOptions {
  signal?: AbortSignal;
  /** Store under this key instead of a generated one. */
  key?: string;
}

/**
 * Stores messages: encodes each with the codec, keys it with the key generator, extracts its
 * metadata (plus `content-type` from the codec, unless the extractor gives one) and puts it.
 * Whatever goes wrong before the store is reached — a message the codec cannot encode, a
 * generator or extractor that throws or returns something invalid — rejects with a
 * StorageError of kind `invalid` and op `archive`, and nothing is stored.
 *
 * @example
 * const archiver = new Archiver(await openStore("file:./archive"));
 * const key = await archiver.archive({ sensor: "temp-1", value: 21.5 });
 * // key: "events/2024/10/08/10/20241008T103000.123Z-000000-k3j9x2pq"
 */
export class Archiver {
  readonly store: Store;
  readonly #keys: KeyGenerator;
  readonly #metadata: MetadataExtractor;
  readonly #codec: Codec;

  constructor(store: Store, options: ArchiverOptions = {}) {
    if (store === null || typeof store !== "object" || typeof store.put !== "function") {
      throw new StorageError("invalid", "Archiver needs a Store", { op: "archive" });
    }
    this.store = store;
    this.#keys = options.keyGenerator ?? new TimeBucketKeyGenerator();
    this.#metadata = options.metadataExtractor ?? new DefaultMetadataExtractor();
    this.#codec = options.codec ?? jsonCodec;
  }

  /** Encodes, keys, extracts metadata and stores `message`; resolves to the key. */
  async archive(message: unknown, options: ArchiveOptions = {}): Promise<string> {
    options.signal?.throwIfAborted();
    const data = guarded("the codec", undefined, () => this.#codec.encode(message));
    if (!(data instanceof Uint8Array)) throw new StorageError("invalid", "the codec must return a Uint8Array", { op: "archive" });
    const key = options.key ?? guarded("the key generator", undefined, () => this.#keys.generateKey(message));
    const problem = keyProblem(key);
    if (problem) {
      const from = options.key === undefined ? "the key generator returned an invalid key" : "invalid key";
      throw new StorageError("invalid", `${from}: ${problem}`, { op: "archive", key: typeof key === "string" ? key : undefined });
    }
    const metadata = this.#metadataFor(message, key);
    await this.store.put(key, data, { metadata, signal: options.signal });
    return key;
  }

  #metadataFor(message: unknown, key: string): Metadata {
    const extracted = guarded("the metadata extractor", key, () => this.#metadata.extractMetadata(message));
    const metadata = normalizeExtractedMetadata(extracted, key) ?? {};
    if (metadata["content-type"] === undefined) {
      const contentType = this.#codec.contentTypeFor?.(message) ?? this.#codec.contentType;
      // Checked again as a whole: content-type may push a full set over the limit.
      return normalizeExtractedMetadata({ ...metadata, "content-type": contentType }, key)!;
    }
    return metadata;
  }
}

/** Runs a plug-in, turning anything it throws into a StorageError of kind `invalid`. */
function guarded<T>(what: string, key: string | undefined, work: () => T): T {
  try {
    return work();
  } catch (cause) {
    if (cause instanceof StorageError) {
      if (cause.op === "archive") throw cause;
      throw new StorageError(cause.kind, cause.message, { op: "archive", key, cause });
    }
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new StorageError("invalid", `${what} failed: ${why}`, { op: "archive", key, cause });
  }
}
