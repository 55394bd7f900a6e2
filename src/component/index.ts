// The storage component's public surface: re-exports only.
export { StorageComponent, stderrLogger, silentLogger } from "./component.js";
export type { StorageComponentOptions, ComponentMeta, Discovery } from "./component.js";
export { ACTIONS, configSchema, configJsonSchema, resolveConfig } from "./config.js";
export type { Action, ComponentConfig, ComponentConfigInput, PortInfo } from "./config.js";
export { RAW_HEADERS, ERROR_CODES } from "./codec.js";
export type { StorageEvent } from "./events.js";
export { DEAD_LETTER_HEADERS } from "./write-port.js";
export type { Health, ComponentState } from "./health.js";
export type { FlowMetrics } from "./flow.js";
export type { Logger } from "./api.js";
export type { ArchivingOptions } from "./archiving.js";
