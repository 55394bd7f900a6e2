// The public surface of stowage: re-exports only. `stowage/core` is the same without the
// NATS, S3 and PostgreSQL backends and the component (and without their clients' load time).
export * from "./core.js";
export { PostgresStore, DEFAULT_CHUNK_BYTES, DEFAULT_POSTGRES_TABLE, postgresSchemaSql, postgresTableNames } from "./backends/postgres.js";
export type { PostgresStoreOptions } from "./backends/postgres.js";
export { NatsStore } from "./backends/nats.js";
export type { NatsStoreOptions, SweepResult } from "./backends/nats.js";
export { S3Store } from "./backends/s3.js";
export type { S3StoreOptions } from "./backends/s3.js";
export { StorageComponent, stderrLogger, silentLogger, ACTIONS, configJsonSchema, resolveConfig, RAW_HEADERS, ERROR_CODES, DEAD_LETTER_HEADERS } from "./component/index.js";
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
