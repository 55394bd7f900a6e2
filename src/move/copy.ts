/**
 * `copy`: every key under a prefix from one store to another, by a few workers that share one
 * listing, each key by {@link transferKey} (streamed, with its metadata, skipped when the
 * destination already holds it, verified).
 */
import { StorageError, isStorageError } from "../errors.js";
import { assertPrefix, compareKeys, keyProblem } from "../keys.js";
import type { Store } from "../types.js";
import { limiter } from "../internal/concurrency.js";
import { statIfThere, transferKey } from "./transfer.js";
import { checkConcurrency, checkDate, serialized } from "./options.js";

export interface CopyProgress {
  /** Keys listed and handled so far. */
  keys: number;
  /** Bytes written to the destination. */
  bytes: number;
  copied: number;
  /** Keys left alone: already in the destination, older than `since`, or deleted from the source meanwhile. */
  skipped: number;
  failed: number;
  /** The key handled last. */
  current?: string;
}

export interface CopySummary extends CopyProgress {
  /** The keys that failed with why, the first {@link MAX_REPORTED_FAILURES} of them (`failed` counts all). */
  failures: { key: string; error: StorageError }[];
}

export interface CopyOptions {
  /** Copy the keys starting with this (default: all). */
  prefix?: string;
  /** Replaces `prefix` at the start of each destination key (default: `prefix`, same keys). */
  destinationPrefix?: string;
  /** Keys in flight at once (default 8). */
  concurrency?: number;
  /** Skip keys last modified before this (needs `stat` on the source). */
  since?: Date;
  /** Stops the copy: it rejects with the signal's reason; a rerun picks up where it stopped. */
  signal?: AbortSignal;
  /** Called after each key. */
  onProgress?: (progress: CopyProgress) => void;
}

export const DEFAULT_COPY_CONCURRENCY = 8;
/**
 * Values from this size on are copied at most {@link LARGE_IN_FLIGHT} at a time, whatever the
 * concurrency: a destination may buffer a few parts per upload (S3 multipart: part size × queue),
 * so eight large uploads at once would hold hundreds of MiB, while two already keep a link busy.
 */
export const LARGE_VALUE_BYTES = 8 * 1024 * 1024;
const LARGE_IN_FLIGHT = 2;
/** Failures kept with their errors in the summary: enough to act on, bounded in memory. */
export const MAX_REPORTED_FAILURES = 1000;

/**
 * Copies every key under `options.prefix` from `source` to `destination`. Resolves with what
 * happened when every key was handled, also when some failed (`failed > 0`, `failures` says
 * why); rejects when the listing fails or the signal aborts. Memory stays bounded: the listing
 * is read a page at a time and each worker holds about one chunk of one value.
 */
export async function copy(source: Store, destination: Store, options: CopyOptions = {}): Promise<CopySummary> {
  const prefix = options.prefix ?? "";
  assertPrefix(prefix, "copy");
  const destinationPrefix = options.destinationPrefix ?? prefix;
  assertPrefix(destinationPrefix, "copy");
  const concurrency = checkConcurrency(options.concurrency, DEFAULT_COPY_CONCURRENCY, "copy");
  const since = options.since === undefined ? undefined : checkDate(options.since, "since", "copy");
  if (since && !source.capabilities.stat) throw new StorageError("unsupported", "`since` needs modification times, and the source has no stat", { op: "copy" });
  if (source === destination && (destinationPrefix.startsWith(prefix) || prefix.startsWith(destinationPrefix))) {
    // The listing would meet the copies it made, or copy a key onto itself.
    throw new StorageError("invalid", "copying a store into itself needs prefixes that do not contain one another", { op: "copy" });
  }
  const { signal, onProgress } = options;
  signal?.throwIfAborted();

  const large = limiter(LARGE_IN_FLIGHT);
  const summary: CopySummary = { keys: 0, bytes: 0, copied: 0, skipped: 0, failed: 0, failures: [] };
  const next = serialized(pairedWithDestination(source.keys(prefix, { signal }), destination.keys(destinationPrefix, { signal }), (key) => destinationPrefix + key.slice(prefix.length)));

  async function handle({ key, destinationKey, absent }: Pair): Promise<void> {
    const problem = keyProblem(destinationKey);
    if (problem !== undefined) throw new StorageError("invalid", `the destination key ${JSON.stringify(destinationKey)} is not valid: ${problem}`, { op: "copy", key });
    // The stat transferKey needs anyway, taken here: `since` and the large-value gate read it.
    const info = source.capabilities.stat ? await statIfThere(source, key, signal) : undefined;
    if (source.capabilities.stat && (info === undefined || (since && info.modified < since))) {
      summary.skipped++; // deleted since the listing, or older than `since`
      return;
    }
    const transfer = () => transferKey(source, destination, key, destinationKey, { signal, sourceInfo: info, destinationAbsent: absent });
    const result = info && info.size >= LARGE_VALUE_BYTES ? await large(transfer) : await transfer();
    if (result.outcome === "copied") summary.copied++;
    else summary.skipped++;
    summary.bytes += result.bytes;
  }

  async function worker(): Promise<void> {
    for (let pair = await next(); pair !== undefined; pair = await next()) {
      const { key } = pair;
      try {
        await handle(pair);
      } catch (err) {
        // Once aborted, whatever a call failed with is the abort's doing: stop, do not count it.
        if (signal?.aborted) throw signal.reason;
        summary.failed++;
        if (summary.failures.length < MAX_REPORTED_FAILURES) summary.failures.push({ key, error: asStorageError(err, key) });
      }
      summary.keys++;
      onProgress?.({ keys: summary.keys, bytes: summary.bytes, copied: summary.copied, skipped: summary.skipped, failed: summary.failed, current: key });
    }
  }

  // Every worker ends before the call settles: nothing of this copy runs on after it.
  const ended = await Promise.allSettled(Array.from({ length: concurrency }, worker));
  const failure = ended.find((e): e is PromiseRejectedResult => e.status === "rejected");
  if (failure) throw failure.reason;
  return summary;
}

interface Pair {
  key: string;
  destinationKey: string;
  /** The destination's listing does not have `destinationKey`. */
  absent: boolean;
}

/**
 * Each source key with its destination key, and whether the destination's listing has it: both
 * listings are in byte order and swapping the prefix keeps that order, so one pass over each
 * (a page at a time) tells, for a LIST per page instead of a `stat` per key. A fresh copy then
 * costs the destination one write per key.
 */
async function* pairedWithDestination(sourceKeys: AsyncIterable<string>, destinationKeys: AsyncIterable<string>, toDestination: (key: string) => string): AsyncGenerator<Pair> {
  const there = destinationKeys[Symbol.asyncIterator]();
  let current = await there.next();
  try {
    for await (const key of sourceKeys) {
      const destinationKey = toDestination(key);
      while (!current.done && compareKeys(current.value, destinationKey) < 0) current = await there.next();
      yield { key, destinationKey, absent: current.done === true || current.value !== destinationKey };
    }
  } finally {
    if (!current.done) await there.return?.();
  }
}

function asStorageError(err: unknown, key: string): StorageError {
  if (isStorageError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StorageError("fatal", `unexpected error: ${message}`, { op: "copy", key, cause: err });
}
