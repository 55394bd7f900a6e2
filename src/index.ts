// The public surface of stowage: re-exports only.
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
export { PostgresStore, DEFAULT_CHUNK_BYTES, DEFAULT_POSTGRES_TABLE, postgresSchemaSql, postgresTableNames } from "./backends/postgres.js";
export type { PostgresStoreOptions } from "./backends/postgres.js";
export { NatsStore, openNatsStore, createNatsStore } from "./backends/nats.js";
export type { NatsStoreOptions, SweepResult } from "./backends/nats.js";
export { S3Store, openS3Store } from "./backends/s3.js";
export type { S3StoreOptions } from "./backends/s3.js";
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
export { StorageComponent, stderrLogger, silentLogger, ACTIONS, configSchema, configJsonSchema, resolveConfig, RAW_HEADERS, ERROR_CODES, DEAD_LETTER_HEADERS } from "./component/index.js";
export type {
  StorageComponentOptions,
  ComponentMeta,
  Discovery,
  Action,
  ComponentConfig,
  ComponentConfigInput,
  PortInfo,
  StorageEvent,
  Health,
  ComponentState,
  FlowMetrics,
  Logger,
  ArchivingOptions,
} from "./component/index.js";
