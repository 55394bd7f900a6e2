/**
 * Following a source that has a change feed (`capabilities.watch`). The contract's feed starts
 * "from now on" and cannot resume, so a feed that ends (a PostgreSQL listening connection lost,
 * a NATS consumer gone) may have missed changes: the feed is opened again and the mirror is told
 * to rescan the source from the last moment the old feed was known to deliver.
 */
import { isAbortError } from "../errors.js";
import { sleep } from "../internal/signal.js";
import type { Store } from "../types.js";
import { Backoff } from "./backoff.js";
import type { ChangeFeed, FeedHooks } from "./feed.js";

export async function startWatchFeed(source: Store, prefix: string, hooks: FeedHooks, signal: AbortSignal): Promise<ChangeFeed> {
  const stopping = new AbortController();
  const feedSignal = AbortSignal.any([signal, stopping.signal]);
  let feed = await source.watch(prefix, { signal: feedSignal });
  // While the feed is live, every change made before now has reached it (or will, within the
  // mirror's safety margin); after it broke, only changes before the break are known.
  let brokenSince: number | undefined;
  const follow = async (): Promise<void> => {
    const backoff = new Backoff();
    for (;;) {
      const openedAt = Date.now();
      let lastDelivery = openedAt;
      try {
        for await (const event of feed) {
          lastDelivery = Date.now();
          hooks.onChange(event.key, event.time.getTime());
        }
        if (feedSignal.aborted) return;
        hooks.onError(new Error("the source's change feed ended"), 0, "watch");
      } catch (err) {
        if (feedSignal.aborted && isAbortError(err, feedSignal)) return;
        hooks.onError(err, 0, "watch");
      }
      brokenSince = lastDelivery;
      for (;;) {
        try {
          feed = await source.watch(prefix, { signal: feedSignal });
          backoff.reset();
          break;
        } catch (err) {
          if (feedSignal.aborted) return;
          const delay = backoff.next();
          hooks.onError(err, delay, "watch");
          await sleep(delay, feedSignal).catch(() => undefined);
          if (feedSignal.aborted) return;
        }
      }
      const since = brokenSince;
      brokenSince = undefined;
      hooks.onLost(since);
    }
  };
  const running = follow();
  return {
    mode: "watch",
    coveredUntil: () => brokenSince ?? Date.now(),
    async stop() {
      stopping.abort();
      await running;
    },
  };
}
