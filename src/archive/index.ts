// The archiver's public surface: re-exports only.
export { Archiver } from "./archiver.js";
export type { ArchiverOptions, ArchiveOptions } from "./archiver.js";
export type { KeyGenerator, OptionalKeyGenerator, MetadataExtractor, Codec } from "./types.js";
export { TimeBucketKeyGenerator } from "./time-key.js";
export type { TimeBucketKeyOptions } from "./time-key.js";
export { EntityKeyGenerator } from "./entity-key.js";
export type { EntityKeyOptions } from "./entity-key.js";
export { CompositeKeyGenerator } from "./composite-key.js";
export type { CompositeKeyOptions } from "./composite-key.js";
export { DefaultMetadataExtractor, CompositeMetadataExtractor, normalizeExtractedMetadata } from "./metadata.js";
export { jsonCodec } from "./codec.js";
export { entityOf } from "./entity.js";
export type { EntityRef } from "./entity.js";
