/**
 * The mirror's Prometheus metrics: `stowage_mirror_lag_seconds{mirror}` (now minus the source
 * time of the oldest change not yet applied, 0 when caught up), computed when the registry is
 * scraped, and `stowage_mirror_changes_total{mirror,outcome}` (keys applied: copied, skipped,
 * deleted, failed).
 */
import { Counter, Gauge, register as globalRegistry, type Registry } from "prom-client";

export interface MirrorMetricsSource {
  readonly name: string;
  lagSeconds(): number;
}

interface Families {
  lag: Gauge<"mirror">;
  changes: Counter<"mirror" | "outcome">;
  mirrors: Set<MirrorMetricsSource>;
}

const families = new WeakMap<Registry, Families>();

function familiesOf(registry: Registry): Families {
  let found = families.get(registry);
  if (found) return found;
  const mirrors = new Set<MirrorMetricsSource>();
  const registers = [registry];
  // A registry shared with another copy of this module may hold the families already.
  const lag =
    (registry.getSingleMetric("stowage_mirror_lag_seconds") as Gauge<"mirror"> | undefined) ??
    new Gauge({
      name: "stowage_mirror_lag_seconds",
      help: "Now minus the source time of the oldest change the mirror has not applied yet (0 when caught up)",
      labelNames: ["mirror"],
      registers,
      collect() {
        for (const m of mirrors) this.set({ mirror: m.name }, m.lagSeconds());
      },
    });
  const changes =
    (registry.getSingleMetric("stowage_mirror_changes_total") as Counter<"mirror" | "outcome"> | undefined) ??
    new Counter({ name: "stowage_mirror_changes_total", help: "Changes the mirror applied, by outcome (copied, skipped, deleted, failed)", labelNames: ["mirror", "outcome"], registers });
  found = { lag, changes, mirrors };
  families.set(registry, found);
  return found;
}

/** Registers a mirror's metrics; the returned function counts an applied change, `remove` unregisters. */
export function registerMirrorMetrics(source: MirrorMetricsSource, registry: Registry = globalRegistry): { count(outcome: string): void; remove(): void } {
  const f = familiesOf(registry);
  f.mirrors.add(source);
  return {
    count: (outcome) => f.changes.inc({ mirror: source.name, outcome }),
    remove: () => {
      f.mirrors.delete(source);
      f.lag.remove({ mirror: source.name });
    },
  };
}
