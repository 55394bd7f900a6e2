/**
 * The component's mirrors (`mirror: [{ to, prefix, deletes }]`): each keeps a destination store
 * in step with the served store. The destination is opened in the background and again after a
 * failure, so an edge component starts (and archives) while the cloud is unreachable, and its
 * mirror catches up when the link comes back. Lag is in health and in
 * `stowage_mirror_lag_seconds`.
 */
import type { Registry } from "prom-client";
import { sleep } from "../internal/signal.js";
import { Backoff } from "../move/backoff.js";
import { Mirror, type MirrorPhase } from "../move/mirror.js";
import { openStore, redactUrl } from "../open.js";
import type { Store } from "../types.js";
import type { ComponentConfig } from "./config.js";
import type { Logger } from "./telemetry.js";

/** One mirror as health reports it. */
export interface MirrorHealth {
  name: string;
  /** The destination URL, secrets replaced by `***`. */
  to: string;
  prefix: string;
  /** `connecting` until the destination opened. */
  state: "connecting" | MirrorPhase;
  /** Seconds behind (see `stowage_mirror_lag_seconds`); while connecting, since the component started. */
  lagSeconds: number;
  pending: number;
  copied: number;
  deleted: number;
  failed: number;
  lastError?: { message: string; at: string };
}

export interface Mirrors {
  report(): MirrorHealth[];
  stop(): Promise<void>;
}

export function startMirrors(options: { store: Store; mirrors: ComponentConfig["mirrors"]; registry: Registry; logger: Logger }): Mirrors {
  const stopping = new AbortController();
  const started = Date.now();
  const entries = options.mirrors.map((config) => {
    const to = redactUrl(config.to);
    const entry: { config: typeof config; to: string; mirror?: Mirror; lastError?: { message: string; at: string }; done?: Promise<void> } = { config, to };
    const run = async () => {
      const backoff = new Backoff(1000, 60_000);
      while (!stopping.signal.aborted) {
        let destination: Store;
        try {
          destination = await openStore(config.to, { timeout: 60_000 });
        } catch (err) {
          entry.lastError = { message: message(err), at: new Date().toISOString() };
          const delayMs = backoff.next();
          options.logger.warn("mirror: cannot open the destination; trying again", { mirror: config.name, to, error: entry.lastError.message, delayMs });
          await sleep(delayMs, stopping.signal).catch(() => undefined);
          continue;
        }
        try {
          const mirror = new Mirror(options.store, destination, {
            name: config.name,
            prefix: config.prefix,
            destinationPrefix: config.toPrefix,
            deletes: config.deletes,
            interval: config.intervalMs,
            signal: stopping.signal,
            metrics: { registry: options.registry },
            onEvent: (event) => {
              if (event.type === "copied") options.logger.info("mirror: catch-up copy done", { mirror: config.name, to, reason: event.reason, copied: event.summary.copied, skipped: event.summary.skipped, failed: event.summary.failed });
              else if (event.type === "failed") options.logger.warn("mirror: a change cannot be applied; passed over", { mirror: config.name, key: event.key, error: message(event.error) });
              else if (event.type === "rescan") options.logger.warn("mirror: rescanning", { mirror: config.name, reason: event.reason, since: event.since.toISOString() });
            },
          });
          entry.mirror = mirror;
          await mirror.run();
          return;
        } catch (err) {
          // Only a mistake (a bad checkpoint, a bad prefix) ends a mirror: say so, and stay stopped.
          entry.lastError = { message: message(err), at: new Date().toISOString() };
          options.logger.error("mirror stopped", { mirror: config.name, to, error: entry.lastError.message });
          return;
        } finally {
          await destination.close().catch(() => undefined);
        }
      }
    };
    entry.done = run();
    return entry;
  });
  return {
    report: () =>
      entries.map(({ config, to, mirror, lastError }) => {
        const status = mirror?.status();
        return {
          name: config.name,
          to,
          prefix: config.prefix,
          state: status?.phase ?? "connecting",
          lagSeconds: status?.lagSeconds ?? (Date.now() - started) / 1000,
          pending: status?.pending ?? 0,
          copied: status?.copied ?? 0,
          deleted: status?.deleted ?? 0,
          failed: status?.failed ?? 0,
          lastError: status?.lastError ?? lastError,
        };
      }),
    async stop() {
      stopping.abort();
      await Promise.allSettled(entries.map((e) => e.done));
    },
  };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
