// stowage without the NATS, S3 and PostgreSQL clients and the component: the contract, errors,
// keys, openStore (which loads a backend's client only when a URL asks for it), the memory and
// file stores, the layers, the archiver and the HTTP gateway. It starts faster than the package root, which
// loads every backend's client.
export { openStore, registerBackend, registeredSchemes, parseStoreUrl, redactUrl } from "./open.js";
export type { OpenStoreOptions, OpenedStore, BackendOptions, LayerOptions, BackendFactory } from "./open.js";
export { BaseStore, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, resolveRange, folderEntry } from "./store.js";
export type { CleanPutOptions, CleanDeleteOptions, CleanWriteOptions, CleanBatchEntry, CleanListPageOptions, CleanFolderOptions } from "./store.js";
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
export { ClaimCheck, DEFAULT_CLAIM_THRESHOLD, CLAIM_HEADER_ROOM, CLAIM_HEADER, CLAIM_KEY_HEADER, encodeReference, decodeReference } from "./claims/index.js";
export type { ClaimCheckOptions, CheckInOptions, CheckedIn, CheckOutOptions, ClaimMessage, ResolvedMessage, ConsumeOptions, PublishClaimOptions, PublishJetStreamClaimOptions, ExpireOptions, ClaimReference } from "./claims/index.js";
export { createGateway, startGateway, serveConsole, DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT } from "./http/index.js";
export type { Gateway, GatewayOptions, RequestHandler, StartGatewayOptions, ServerLimits, GatewayServer, TokenOptions } from "./http/index.js";
export { copy, prune, transferKey, DEFAULT_COPY_CONCURRENCY } from "./move/index.js";
export type { CopyOptions, CopyProgress, CopySummary, PruneOptions, PruneSummary, TransferOutcome, TransferOptions, TransferResult } from "./move/index.js";
export { mirror, Mirror, type MirrorOptions, type MirrorEvent, type MirrorStatus, type MirrorSummary, type MirrorPhase } from "./move/index.js";
