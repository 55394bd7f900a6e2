/**
 * `prune`: deletes the keys under a prefix last modified before a cutoff, page by page.
 *
 * Never a younger key: each key is `stat`ed and deleted with `ifMatch` its etag where the store
 * enforces conditions, so a key rewritten between the `stat` and the delete stays (the delete
 * is a `conflict`, and the key is left for the next prune). A store without conditional writes
 * cannot close that window; every built-in backend has them.
 */
import { StorageError, isStorageError } from "../errors.js";
import { assertPrefix } from "../keys.js";
import { mapLimit } from "../internal/concurrency.js";
import type { ObjectInfo, Store } from "../types.js";
import { statIfThere } from "./transfer.js";
import { checkDate } from "./options.js";

export interface PruneOptions {
  /** Prune the keys starting with this (default: all). */
  prefix?: string;
  /** Delete keys last modified strictly before this. */
  olderThan: Date;
  /** Delete nothing; `keys` lists what would be deleted. */
  dryRun?: boolean;
  signal?: AbortSignal;
  /**
   * The keys sort by the time they were written (the archiver's time-bucket keys): stop at the
   * first key not older than the cutoff instead of examining the rest.
   */
  timeOrderedKeys?: boolean;
  /** Called for each key deleted (or, with `dryRun`, that would be). */
  onKey?: (key: string, modified: Date) => void;
}

export interface PruneSummary {
  /** Keys whose modification time was looked at. */
  examined: number;
  /** Keys deleted (with `dryRun`: that would be). */
  deleted: number;
  /** The first {@link MAX_LISTED_KEYS} of those keys (`deleted` counts all; `onKey` sees every one). */
  keys: string[];
}

/** Keys listed in a summary: the rest are counted, and `onKey` sees them all. */
export const MAX_LISTED_KEYS = 1000;
/** Keys per listed page, and so the most `stat`s queued at once. */
const PAGE_SIZE = 500;
/** `stat`s and deletes in flight. */
const CONCURRENCY = 16;

/** Deletes the keys under `options.prefix` last modified before `options.olderThan`. */
export async function prune(store: Store, options: PruneOptions): Promise<PruneSummary> {
  if (options === null || typeof options !== "object") throw new StorageError("invalid", "options must be an object with olderThan", { op: "prune" });
  const prefix = options.prefix ?? "";
  assertPrefix(prefix, "prune");
  const cutoff = checkDate(options.olderThan, "olderThan", "prune");
  if (!store.capabilities.stat) throw new StorageError("unsupported", "prune needs modification times, and this store has no stat", { op: "prune" });
  const { signal, dryRun = false, onKey } = options;
  const ifMatch = store.capabilities.conditionalWrites;
  signal?.throwIfAborted();

  const summary: PruneSummary = { examined: 0, deleted: 0, keys: [] };
  let after: string | undefined;
  for (;;) {
    const page = await store.listPage(prefix, { signal, after, limit: PAGE_SIZE });
    const infos = await mapLimit(page.keys, CONCURRENCY, (key) => statIfThere(store, key, signal));
    const old: ObjectInfo[] = [];
    let reachedYounger = false;
    for (const info of infos) {
      if (info === undefined) continue; // deleted since the listing
      summary.examined++;
      if (info.modified < cutoff) old.push(info);
      else if (options.timeOrderedKeys) {
        reachedYounger = true;
        break;
      }
    }
    const deleted = await mapLimit(old, CONCURRENCY, async (info) => dryRun || (await deleteUnchanged(store, info, ifMatch, signal)));
    old.forEach((info, i) => {
      if (!deleted[i]) return;
      summary.deleted++;
      if (summary.keys.length < MAX_LISTED_KEYS) summary.keys.push(info.key);
      onKey?.(info.key, info.modified);
    });
    if (reachedYounger || page.next === undefined) return summary;
    after = page.next;
  }
}

/** Deletes the key if it still is what `info` saw; false when it was rewritten (or deleted) since. */
async function deleteUnchanged(store: Store, info: ObjectInfo, ifMatch: boolean, signal: AbortSignal | undefined): Promise<boolean> {
  try {
    await store.delete(info.key, { signal, ...(ifMatch && { ifMatch: info.etag }) });
    return true;
  } catch (err) {
    if (isStorageError(err, "conflict")) return false;
    throw err;
  }
}
