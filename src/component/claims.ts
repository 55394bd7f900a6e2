/**
 * Claim expiry on a schedule (`claims.ttl`): the component runs `ClaimCheck.expire()` at start
 * and every `claims.expire_interval`, so claims checked in by any producer are deleted once
 * older than the ttl. Several instances may run it on one store: deletes are idempotent.
 */
import { ClaimCheck } from "../claims/claim-check.js";
import type { Store } from "../types.js";
import type { Logger } from "./telemetry.js";

export interface ClaimExpiry {
  /** Stops the schedule and waits for a run in progress (it is told to stop). */
  stop(): Promise<void>;
}

export function startClaimExpiry(options: { store: Store; instance: string; prefix: string; ttlMs: number; intervalMs: number; logger: Logger }): ClaimExpiry {
  const { logger, prefix } = options;
  const claims = new ClaimCheck({ store: options.store, instance: options.instance, prefix, ttl: options.ttlMs });
  const stopping = new AbortController();
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= claims
      .expire({ signal: stopping.signal })
      .then(
        ({ deleted }) => {
          if (deleted > 0) logger.info("claims expired", { deleted, prefix });
        },
        (err: unknown) => {
          if (!stopping.signal.aborted) logger.warn("claim expiry failed; it runs again at the next interval", { prefix, error: err instanceof Error ? err.message : String(err) });
        },
      )
      .finally(() => (running = undefined));
  };
  run();
  const timer = setInterval(run, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await running;
    },
  };
}
