/**
 * Following a source without a change feed: list the prefix at an interval, `stat` every key,
 * and compare with the previous listing. A key that is new or whose etag changed was put; a key
 * that is gone was deleted. Costs a listing and a `stat` per key per interval, so the interval
 * should grow with the number of keys.
 *
 * The first listing is taken when the feed starts, before the mirror's catch-up copy, so that
 * a change made while the copy runs shows up in the next comparison.
 */
import { setMaxListeners } from "node:events";
import { isStorageError } from "../errors.js";
import { mapLimit } from "../internal/concurrency.js";
import { sleep } from "../internal/signal.js";
import type { Store } from "../types.js";
import type { ChangeFeed, FeedHooks } from "./feed.js";

/** `stat` calls in flight while listing. */
const STAT_CONCURRENCY = 16;

type Snapshot = Map<string, { etag: string; modified: number }>;

async function snapshot(source: Store, prefix: string, include: (key: string) => boolean, signal: AbortSignal): Promise<Snapshot> {
  const keys: string[] = [];
  for await (const key of source.keys(prefix, { signal })) if (include(key)) keys.push(key);
  const infos = await mapLimit(keys, STAT_CONCURRENCY, async (key) => {
    try {
      return await source.stat(key, { signal });
    } catch (err) {
      if (isStorageError(err, "not_found")) return undefined; // deleted since it was listed
      throw err;
    }
  });
  const out: Snapshot = new Map();
  for (const info of infos) if (info) out.set(info.key, { etag: info.etag, modified: info.modified.getTime() });
  return out;
}

export async function startPollFeed(
  source: Store,
  prefix: string,
  options: { intervalMs: number; include: (key: string) => boolean },
  hooks: FeedHooks,
  signal: AbortSignal,
): Promise<ChangeFeed> {
  const stopping = new AbortController();
  const feedSignal = AbortSignal.any([signal, stopping.signal]);
  // Every stat of a listing in flight listens to it: many at once are expected, not a leak.
  setMaxListeners(0, feedSignal);
  let coveredUntil = Date.now();
  let seen = await snapshot(source, prefix, options.include, feedSignal);
  const follow = async (): Promise<void> => {
    while (!feedSignal.aborted) {
      await sleep(options.intervalMs, feedSignal).catch(() => undefined);
      if (feedSignal.aborted) return;
      const startedAt = Date.now();
      let now: Snapshot;
      try {
        now = await snapshot(source, prefix, options.include, feedSignal);
      } catch (err) {
        if (!feedSignal.aborted) hooks.onError(err, options.intervalMs, "poll");
        continue;
      }
      for (const [key, info] of now) {
        const before = seen.get(key);
        if (before === undefined || before.etag !== info.etag) hooks.onChange(key, info.modified);
      }
      // A key that went away was deleted at some time after the previous listing started.
      for (const key of seen.keys()) if (!now.has(key)) hooks.onChange(key, coveredUntil);
      seen = now;
      coveredUntil = startedAt;
    }
  };
  const running = follow();
  return {
    mode: "poll",
    coveredUntil: () => coveredUntil,
    async stop() {
      stopping.abort();
      await running;
    },
  };
}
