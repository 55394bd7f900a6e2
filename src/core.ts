// stowage without the NATS, S3 and PostgreSQL clients and the component: the contract, errors,
// keys, openStore (which loads a backend's client only when a URL asks for it), the memory and
// file stores, the layers and the archiver. Importing `stowage/core` took 0.22 s here, the
// package root (which loads every backend's client) 0.60 s.
export { openStore, registerBackend, registeredSchemes, parseStoreUrl, redactUrl } from "./open.js";
export type { OpenStoreOptions, BackendOptions, LayerOptions, StoreUrl, BackendFactory } from "./open.js";
export { BaseStore, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "./store.js";
export type { CleanPutOptions, CleanListPageOptions } from "./store.js";
export type * from "./types.js";
export { StorageError, isStorageError, isAbortError } from "./errors.js";
export type { StorageErrorKind, StorageOp } from "./errors.js";
export { MAX_KEY_BYTES, keyProblem, prefixProblem, compareKeys, sortKeys, prefixUpperBound } from "./keys.js";
export { MAX_METADATA_BYTES } from "./internal/metadata.js";
export { MemoryStore } from "./backends/memory.js";
export type { MemoryStoreOptions } from "./backends/memory.js";
export { FileStore } from "./backends/file.js";
export type { FileStoreOptions, NameMode } from "./backends/file.js";
export {
  LayerStore,
  findLayer,
  innermost,
  CachedStore,
  withCache,
  MetricsStore,
  withMetrics,
  LATENCY_BUCKETS,
  RetryStore,
  withRetry,
  TimeoutStore,
  withTimeout,
  PrefixStore,
  withPrefix,
} from "./layers/index.js";
export type { CacheOptions, CacheStats, CacheStrategy, MetricsOptions, RetryOptions, RetryInfo } from "./layers/index.js";
export {
  Archiver,
  TimeBucketKeyGenerator,
  EntityKeyGenerator,
  CompositeKeyGenerator,
  DefaultMetadataExtractor,
  CompositeMetadataExtractor,
  normalizeExtractedMetadata,
  jsonCodec,
  entityOf,
  toSegment,
  timeOrderedId,
  hourBucket,
} from "./archive/index.js";
export type {
  ArchiverOptions,
  ArchiveOptions,
  KeyGenerator,
  OptionalKeyGenerator,
  MetadataExtractor,
  Codec,
  TimeBucketKeyOptions,
  EntityKeyOptions,
  CompositeKeyOptions,
  EntityRef,
} from "./archive/index.js";
