// The storage component's public surface: re-exports only.
export { StorageComponent } from "./component.js";
export { stderrLogger, silentLogger } from "./telemetry.js";
export type { StorageComponentOptions, ComponentMeta, Discovery } from "./component.js";
export { ACTIONS, configSchema, configJsonSchema, resolveConfig } from "./config.js";
export type { Action, ComponentConfig, ComponentConfigInput, PortInfo } from "./config.js";
export { RAW_HEADERS, ERROR_CODES } from "./codec.js";
export type { StorageEvent } from "./events.js";
export { DEAD_LETTER_HEADERS } from "./write-port.js";
export type { Health, ComponentState, FlowMetrics, Logger } from "./telemetry.js";
export type { ArchivingOptions } from "./archiving.js";
