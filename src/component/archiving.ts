/**
 * How the component stores through the {@link Archiver}: the archiver's key generator and
 * metadata extractor see the message as its sender meant it (the parsed JSON value for JSON,
 * the bytes otherwise), while the bytes stored are exactly the bytes received (a JSON value is
 * never re-serialized, so `1.0` stays `1.0` and big integers keep every digit). Metadata sent
 * with the request (`metadata` / `Stowage-Meta-*` headers) is merged over the extractor's.
 */
import { Archiver } from "../archive/archiver.js";
import { DefaultMetadataExtractor } from "../archive/metadata.js";
import { TimeBucketKeyGenerator } from "../archive/time-key.js";
import type { Codec, KeyGenerator, MetadataExtractor } from "../archive/types.js";
import type { Metadata, Store } from "../types.js";
import type { ArchiveFn } from "./api.js";

/** The archiver plug-ins a component may be given when embedded. */
export interface ArchivingOptions {
  /** Default: `TimeBucketKeyGenerator({ prefix: write.key_prefix })`. */
  keyGenerator?: KeyGenerator;
  /** Default: the archiver's `DefaultMetadataExtractor`. */
  metadataExtractor?: MetadataExtractor;
}

/** A message as received: its bytes, and its JSON value decoded on first use. */
class WireMessage {
  readonly bytes: Uint8Array;
  readonly json: boolean;
  readonly metadata: Metadata | undefined;
  #value: unknown;
  #decoded = false;

  constructor(bytes: Uint8Array, json: boolean, metadata: Metadata | undefined) {
    this.bytes = bytes;
    this.json = json;
    this.metadata = metadata;
  }

  /** What plug-ins see: the JSON value, or the bytes. */
  get message(): unknown {
    if (!this.#decoded) {
      this.#value = this.json ? JSON.parse(Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength).toString("utf8")) : this.bytes;
      this.#decoded = true;
    }
    return this.#value;
  }
}

const wireCodec: Codec = {
  contentType: "application/octet-stream",
  contentTypeFor: (m) => ((m as WireMessage).json ? "application/json" : "application/octet-stream"),
  encode: (m) => (m as WireMessage).bytes,
};

export function createArchiveFn(store: Store, keyPrefix: string, options: ArchivingOptions = {}): ArchiveFn {
  const keys = options.keyGenerator ?? new TimeBucketKeyGenerator({ prefix: keyPrefix });
  const extractor = options.metadataExtractor ?? new DefaultMetadataExtractor();
  const archiver = new Archiver(store, {
    codec: wireCodec,
    keyGenerator: { generateKey: (m) => keys.generateKey((m as WireMessage).message) },
    metadataExtractor: {
      extractMetadata: (m) => {
        const wire = m as WireMessage;
        const extracted = extractor.extractMetadata(wire.message);
        if (wire.metadata === undefined) return extracted;
        // Names are case-insensitive: the request's own win over the extractor's.
        const own = Object.entries(wire.metadata).map(([name, value]) => [name.toLowerCase(), value] as const);
        return { ...extracted, ...Object.fromEntries(own) };
      },
    },
  });
  return (value, { key, metadata, signal }) => archiver.archive(new WireMessage(value.bytes, value.json, metadata), { key, signal });
}
