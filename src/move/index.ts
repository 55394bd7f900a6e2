// Moving data between stores: copy, prune (and mirror, built on the same transfer of one key).
export { transferKey, statIfThere } from "./transfer.js";
export type { TransferOutcome, TransferOptions, TransferResult } from "./transfer.js";
export { copy, DEFAULT_COPY_CONCURRENCY, MAX_REPORTED_FAILURES } from "./copy.js";
export type { CopyOptions, CopyProgress, CopySummary } from "./copy.js";
export { prune, MAX_LISTED_KEYS } from "./prune.js";
export type { PruneOptions, PruneSummary } from "./prune.js";
export { mirror, Mirror, type MirrorOptions, type MirrorEvent, type MirrorStatus, type MirrorSummary, type MirrorPhase } from "./mirror.js";
