/**
 * The reconcile pass of a mirror with deletes: deletes every destination key under the
 * destination prefix whose source key is gone. Both listings come in byte order (the contract's
 * order, kept when one prefix is swapped for another), so they are walked side by side like a
 * merge, holding neither listing in memory; a key the merge finds missing is looked up in the
 * source before it is deleted.
 */
import { compareKeys } from "../keys.js";
import { statIfThere } from "./transfer.js";
import type { Store } from "../types.js";

/** Deletes sent per `deleteMany`. */
const DELETE_BATCH = 100;

export interface ReconcileOptions {
  prefix: string;
  destinationPrefix: string;
  /** Destination keys never deleted (the mirror's checkpoint, stowage's own bookkeeping). */
  keep: (destinationKey: string) => boolean;
  signal?: AbortSignal;
}

export async function reconcileDeletes(source: Store, destination: Store, options: ReconcileOptions): Promise<{ deleted: number; examined: number }> {
  const { prefix, destinationPrefix, keep, signal } = options;
  const sourceKeys = source.keys(prefix, { signal })[Symbol.asyncIterator]();
  let next = await sourceKeys.next();
  const mapped = () => (next.done ? undefined : destinationPrefix + next.value.slice(prefix.length));
  let examined = 0;
  let deleted = 0;
  let batch: string[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await destination.deleteMany(batch, { signal });
    deleted += batch.length;
    batch = [];
  };
  try {
    for await (const key of destination.keys(destinationPrefix, { signal })) {
      examined++;
      let wanted = mapped();
      while (wanted !== undefined && compareKeys(wanted, key) < 0) {
        next = await sourceKeys.next();
        wanted = mapped();
      }
      if (wanted === key || keep(key)) continue;
      // Asked before deleting: a store whose listing strays from byte order (some S3
      // look-alikes) must never cost the destination a key the source still has.
      if (await statIfThere(source, prefix + key.slice(destinationPrefix.length), signal)) continue;
      batch.push(key);
      if (batch.length >= DELETE_BATCH) await flush();
    }
    await flush();
  } finally {
    await sourceKeys.return?.();
  }
  return { deleted, examined };
}
