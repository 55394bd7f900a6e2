/**
 * The component's retention (`retention: [{ prefix, max_age }]`): `prune` of each rule at start
 * and every `retention_interval`, so local data ages out. The last run of each rule is in
 * health and in `stowage_retention_last_run_timestamp_seconds` / `stowage_retention_deleted_total`.
 * Several instances may run it on one store: deletes are idempotent.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import { prune } from "../move/prune.js";
import type { Store } from "../types.js";
import type { ComponentConfig } from "./config.js";
import type { Logger } from "./telemetry.js";

/** One rule as health reports it. */
export interface RetentionHealth {
  prefix: string;
  maxAgeSeconds: number;
  lastRun?: { at: string; deleted: number; examined: number; seconds: number };
  lastError?: { message: string; at: string };
}

export interface Retention {
  report(): RetentionHealth[];
  stop(): Promise<void>;
}

export function startRetention(options: { store: Store; rules: ComponentConfig["retention"]; intervalMs: number; component: string; registry: Registry; logger: Logger }): Retention {
  const { component, logger } = options;
  const registers = [options.registry];
  const lastRun =
    (options.registry.getSingleMetric("stowage_retention_last_run_timestamp_seconds") as Gauge<"component" | "prefix"> | undefined) ??
    new Gauge({ name: "stowage_retention_last_run_timestamp_seconds", help: "When retention last finished a run of a rule (Unix time)", labelNames: ["component", "prefix"], registers });
  const deletedTotal =
    (options.registry.getSingleMetric("stowage_retention_deleted_total") as Counter<"component" | "prefix"> | undefined) ??
    new Counter({ name: "stowage_retention_deleted_total", help: "Keys deleted by retention", labelNames: ["component", "prefix"], registers });
  const health: RetentionHealth[] = options.rules.map((rule) => ({ prefix: rule.prefix, maxAgeSeconds: rule.maxAgeMs / 1000 }));
  const stopping = new AbortController();
  let running: Promise<void> | undefined;
  const runRule = async (i: number) => {
    const rule = options.rules[i]!;
    const started = Date.now();
    try {
      const result = await prune(options.store, { prefix: rule.prefix, olderThan: new Date(started - rule.maxAgeMs), timeOrderedKeys: rule.timeOrderedKeys, signal: stopping.signal });
      health[i]!.lastRun = { at: new Date().toISOString(), deleted: result.deleted, examined: result.examined, seconds: (Date.now() - started) / 1000 };
      lastRun.set({ component, prefix: rule.prefix }, Date.now() / 1000);
      deletedTotal.inc({ component, prefix: rule.prefix }, result.deleted);
      if (result.deleted > 0) logger.info("retention: pruned", { prefix: rule.prefix, deleted: result.deleted });
    } catch (err) {
      if (stopping.signal.aborted) return;
      const message = err instanceof Error ? err.message : String(err);
      health[i]!.lastError = { message, at: new Date().toISOString() };
      logger.warn("retention failed; it runs again at the next interval", { prefix: rule.prefix, error: message });
    }
  };
  const run = () => {
    running ??= (async () => {
      for (let i = 0; i < options.rules.length && !stopping.signal.aborted; i++) await runRule(i);
    })().finally(() => (running = undefined));
  };
  run();
  const timer = setInterval(run, options.intervalMs);
  timer.unref();
  return {
    report: () => health.map((h) => ({ ...h })),
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await running;
    },
  };
}
