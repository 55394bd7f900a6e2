/**
 * The benchmark harness every suite in `bench/` uses.
 *
 * A suite is a module whose default export is `defineSuite(name, body)`. The body receives a
 * {@link BenchContext} and calls `b.run(case)` for each case. A case names its competitors;
 * each competitor is one async operation. The harness runs them side by side in this process:
 * a warm-up per competitor, then several rounds, each round running every competitor in turn
 * (A,B,C, then B,C,A, …: interleaved, the starting competitor rotating so none always runs
 * first), each for a bounded time. It reports per competitor the median of the rounds' ops/s,
 * MB/s, p50/p99 latency over all timed operations, the ratio to the case's baseline, the
 * process's CPU time per operation, and optionally the peak RSS growth; it checks the targets
 * the issues name (MET / NOT MET).
 *
 * @example
 * // bench/layers.bench.ts
 * import { defineSuite, KiB } from "./harness.js";
 * export default defineSuite("layers", async (b) => {
 *   if (!b.wants("cache get 1 KiB")) return;      // skip expensive setup when filtered out
 *   const cached = ...; const plain = ...;
 *   await b.run({
 *     name: "cache get 1 KiB",
 *     bytesPerOp: KiB,
 *     baseline: "miss",
 *     competitors: [
 *       { name: "miss", op: (i) => plain.get(`k${i % 100}`) },
 *       { name: "hit", op: (i) => cached.get(`k${i % 100}`), setup: () => warmCache() },
 *     ],
 *     targets: [
 *       { issue: "#5", kind: "ratio", of: "hit", vs: "miss", atLeast: 100 },
 *       { issue: "#5", kind: "latency", of: "hit", stat: "p50", atMostMs: 0.002 },
 *     ],
 *   });
 *   // release what the suite opened (stores, connections) before returning
 * });
 *
 * Rules: never skip silently — a competitor or case that cannot run gets `skip: reason` /
 * `b.skip(name, reason)` and the reason is printed and kept in the JSON. Clean up what you
 * create (buckets, tables, directories), also when a case fails (try/finally).
 */
import { performance } from "node:perf_hooks";
import { formatMs, median, ratio, summarizeLatencies, type LatencySummary } from "../src/cli/bench-stats.js";

export { formatMs };

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** One contender in a case: a single operation the harness times repeatedly. */
export interface Competitor {
  /** Shown in tables; targets and `baseline` refer to competitors by this name. */
  name: string;
  /**
   * One operation. `i` counts this competitor's operations in the case from 0 (warm-up
   * included), so `key${i % n}` cycles through prepared keys and `key${i}` is always new.
   */
  op: (i: number) => Promise<unknown>;
  /** Untimed, once before the warm-up (create the bucket, write the keys a get reads…). */
  setup?: () => Promise<unknown>;
  /** Untimed, before the warm-up and every round (e.g. write the keys a delete round removes). */
  beforeRound?: () => Promise<unknown>;
  /** Untimed, once after the case, also when it failed. */
  teardown?: () => Promise<unknown>;
  /** When set, the competitor does not run; the reason is printed and recorded. */
  skip?: string;
}

/** A goal an issue names, checked on the case's results. */
export type Target =
  /** `of`'s median ops/s is at least `atLeast` times `vs`'s (a list: the slowest of them in this run). */
  | { issue: string; kind: "ratio"; of: string; vs: string | string[]; atLeast: number }
  /** `of`'s latency percentile is at most `atMostMs` milliseconds. */
  | { issue: string; kind: "latency"; of: string; stat: "p50" | "p99"; atMostMs: number }
  /** `of`'s peak RSS growth during a round stays below `belowBytes` (needs `trackMemory`). */
  | { issue: string; kind: "memory"; of: string; belowBytes: number };

export interface CaseSpec {
  /** e.g. "get 1 KiB"; the CLI filter matches on it (substring). */
  name: string;
  competitors: Competitor[];
  /** Bytes one operation moves, for MB/s (10^6 bytes per MB). */
  bytesPerOp?: number;
  /** Operations in flight at once per competitor (default 1). */
  concurrency?: number;
  /** The competitor ratios are computed against (default: the first that ran; a list: the slowest of them in this run). */
  baseline?: string | string[];
  targets?: Target[];
  /** Samples the RSS during rounds and reports the peak growth over the round's start. */
  trackMemory?: boolean;
  /** Stops a round after this many operations even before its time is up (e.g. deletes of prepared keys). */
  maxOpsPerRound?: number;
  /** Overrides the suite defaults for slow cases. */
  rounds?: number;
  roundMs?: number;
  warmupMs?: number;
  /**
   * Warm-up by operation count: each competitor repeats warm-up windows of `warmupMs` until it
   * has run this many operations (or for at most {@link WARMUP_MAX_MS}). V8 optimizes a
   * function after some thousand calls; at the few hundred requests a second of an S3
   * client that takes seconds, and a native client needs none. `--quick` runs skip it.
   */
  warmupOps?: number;
  /** A sentence printed under the table (what is measured, a caveat). */
  note?: string;
}

export interface CompetitorResult {
  name: string;
  skipped?: string;
  failed?: string;
  /** Median over rounds. */
  opsPerSec?: number;
  mbPerSec?: number;
  /** ops/s of each round, in order. */
  roundOpsPerSec?: number[];
  latencyMs?: LatencySummary;
  /** Median ops/s divided by the baseline's. */
  ratio?: number;
  /** Largest RSS growth seen in any round, in bytes (trackMemory only). */
  peakRssGrowthBytes?: number;
  /**
   * Median over rounds of this process's CPU time (user + system, every thread: a native
   * client's own threads count) per operation, in ms. A server in another process is not in it,
   * so it shows what each client costs its host beside the same server.
   */
  cpuMsPerOp?: number;
  operations?: number;
  /** The competitor's teardown threw (its figures stand; what it created may be left over). */
  teardownError?: string;
}

export interface TargetResult {
  issue: string;
  description: string;
  /** Measured value: a ratio, milliseconds or bytes (see description). */
  measured?: number;
  met: boolean;
  /** Why nothing was measured (a competitor skipped or failed). */
  reason?: string;
}

export interface CaseResult {
  suite: string;
  name: string;
  /** When the case finished (ISO 8601): merged result files hold cases of several runs. */
  at: string;
  bytesPerOp?: number;
  concurrency: number;
  rounds: number;
  roundMs: number;
  /** The warm-up by count the case asked for (each competitor ran that many, or for WARMUP_MAX_MS). */
  warmupOps?: number;
  baseline?: string;
  competitors: CompetitorResult[];
  targets: TargetResult[];
  note?: string;
}

/** An axis of a scaling chart. */
export interface AxisSpec {
  label: string;
  /** How tick values print: bytes (1 KiB, 1 MiB), count (1k, 100k), ms. */
  unit: "bytes" | "count" | "ms";
  log?: boolean;
}

/** A chart drawn to `docs/bench-<id>.svg` from the points the suites record. */
export interface ChartSpec {
  id: string;
  title: string;
  x: AxisSpec;
  y: AxisSpec;
}

export interface ChartData extends ChartSpec {
  series: { name: string; points: { x: number; y: number }[] }[];
}

export interface RunOptions {
  quick: boolean;
  rounds: number;
  roundMs: number;
  warmupMs: number;
}

export const FULL_OPTIONS: RunOptions = { quick: false, rounds: 5, roundMs: 300, warmupMs: 200 };
export const QUICK_OPTIONS: RunOptions = { quick: true, rounds: 3, roundMs: 100, warmupMs: 60 };
/** The longest a warm-up by operation count ({@link CaseSpec.warmupOps}) runs per competitor. */
export const WARMUP_MAX_MS = 8000;

/** What a suite body gets. */
export interface BenchContext {
  readonly suite: string;
  readonly options: RunOptions;
  /** True when the filter selects this case name (check before expensive setup). */
  wants(caseName: string): boolean;
  /** Runs one case now (or returns undefined when the filter leaves it out). */
  run(spec: CaseSpec): Promise<CaseResult | undefined>;
  /** Records a whole case as not run, with the reason (printed). */
  skip(caseName: string, reason: string): void;
  /** Records one point of a scaling chart. */
  point(chart: ChartSpec, series: string, x: number, y: number): void;
  /** Records a server's version for the machine description ("nats-server", "PostgreSQL"). */
  server(name: string, version: string): void;
  /** `full` in a full run, `quick` under --quick: sizes of stores, counts of keys. */
  scale(full: number, quick: number): number;
}

export interface Suite {
  name: string;
  body: (b: BenchContext) => Promise<void>;
}

export function defineSuite(name: string, body: (b: BenchContext) => Promise<void>): Suite {
  return { name, body };
}

/** Where results go while the suites run; the runner prints and saves them. */
export interface Sink {
  caseDone(result: CaseResult): void;
  caseSkipped(suite: string, name: string, reason: string): void;
  point(chart: ChartSpec, series: string, x: number, y: number): void;
  server(name: string, version: string): void;
  progress(text: string): void;
}

/** Builds the context a suite body runs with. `wants` comes from the command line filter. */
export function createContext(suite: string, options: RunOptions, wants: (caseName: string) => boolean, sink: Sink): BenchContext {
  return {
    suite,
    options,
    wants,
    async run(spec) {
      if (!wants(spec.name)) return undefined;
      const result = await runCase(suite, spec, options, (text) => sink.progress(text));
      sink.caseDone(result);
      return result;
    },
    skip(caseName, reason) {
      if (wants(caseName)) sink.caseSkipped(suite, caseName, reason);
    },
    point: (chart, series, x, y) => sink.point(chart, series, x, y),
    server: (name, version) => sink.server(name, version),
    scale: (full, quick) => (options.quick ? quick : full),
  };
}

interface Running {
  competitor: Competitor;
  result: CompetitorResult;
  latencies: number[];
  rounds: number[];
  cpuPerOp: number[];
  next: number;
  peakRss: number;
}

/** Runs one case: setup, warm-up, interleaved rounds, teardown; never throws for a competitor's failure. */
export async function runCase(suite: string, spec: CaseSpec, defaults: RunOptions, progress: (text: string) => void = () => {}): Promise<CaseResult> {
  const rounds = spec.rounds ?? defaults.rounds;
  const roundMs = spec.roundMs ?? defaults.roundMs;
  const warmupMs = spec.warmupMs ?? defaults.warmupMs;
  const warmupOps = defaults.quick ? 0 : (spec.warmupOps ?? 0);
  const concurrency = spec.concurrency ?? 1;
  const running: Running[] = spec.competitors.map((competitor) => ({
    competitor,
    result: { name: competitor.name, ...(competitor.skip ? { skipped: competitor.skip } : {}) },
    latencies: [],
    rounds: [],
    cpuPerOp: [],
    next: 0,
    peakRss: 0,
  }));
  const live = () => running.filter((r) => !r.result.skipped && !r.result.failed);
  const fail = (r: Running, phase: string, err: unknown) => {
    r.result.failed = `${phase}: ${err instanceof Error ? err.message : String(err)}`;
  };

  try {
    for (const r of live()) {
      progress(`${suite} · ${spec.name} · setup ${r.competitor.name}`);
      try {
        await r.competitor.setup?.();
      } catch (err) {
        fail(r, "setup", err);
      }
    }
    for (const r of live()) {
      progress(`${suite} · ${spec.name} · warm-up ${r.competitor.name}`);
      try {
        const giveUp = performance.now() + WARMUP_MAX_MS;
        let ops = 0;
        do {
          await r.competitor.beforeRound?.();
          ops += (await timedRound(r, warmupMs, concurrency, spec.maxOpsPerRound, false, false)).ops;
        } while (ops < warmupOps && performance.now() < giveUp);
      } catch (err) {
        fail(r, "warm-up", err);
      }
    }
    for (let round = 0; round < rounds; round++) {
      const order = rotate(live(), round);
      for (const r of order) {
        progress(`${suite} · ${spec.name} · round ${round + 1}/${rounds} ${r.competitor.name}`);
        try {
          await r.competitor.beforeRound?.();
          const { ops, seconds, cpuMs, peakRssGrowth } = await timedRound(r, roundMs, concurrency, spec.maxOpsPerRound, spec.trackMemory ?? false);
          r.rounds.push(ops / seconds);
          if (ops > 0) r.cpuPerOp.push(cpuMs / ops);
          r.peakRss = Math.max(r.peakRss, peakRssGrowth);
        } catch (err) {
          fail(r, `round ${round + 1}`, err);
        }
      }
    }
  } finally {
    for (const r of running) {
      if (r.result.skipped) continue;
      try {
        await r.competitor.teardown?.();
      } catch (err) {
        r.result.teardownError = err instanceof Error ? err.message : String(err);
        progress(`${suite} · ${spec.name} · teardown of ${r.competitor.name} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  for (const r of running) {
    if (r.result.skipped || r.result.failed || r.rounds.length === 0) continue;
    r.result.opsPerSec = median(r.rounds);
    r.result.roundOpsPerSec = r.rounds;
    if (r.cpuPerOp.length > 0) r.result.cpuMsPerOp = median(r.cpuPerOp);
    r.result.operations = r.latencies.length;
    r.result.latencyMs = summarizeLatencies(r.latencies);
    if (spec.bytesPerOp !== undefined) r.result.mbPerSec = (r.result.opsPerSec * spec.bytesPerOp) / 1e6;
    if (spec.trackMemory) r.result.peakRssGrowthBytes = r.peakRss;
  }
  const measured = running.filter((r) => r.result.opsPerSec !== undefined);
  const baseline = (Array.isArray(spec.baseline) ? slowest(spec.baseline, running.map((r) => r.result)) : spec.baseline) ?? measured[0]?.competitor.name;
  const baselineOps = running.find((r) => r.competitor.name === baseline)?.result.opsPerSec;
  for (const r of measured) r.result.ratio = ratio(r.result.opsPerSec, baselineOps);

  const competitors = running.map((r) => r.result);
  return {
    suite,
    name: spec.name,
    at: new Date().toISOString(),
    bytesPerOp: spec.bytesPerOp,
    concurrency,
    rounds,
    roundMs,
    ...(warmupOps > 0 && { warmupOps }),
    baseline,
    competitors,
    targets: (spec.targets ?? []).map((t) => checkTarget(t, competitors)),
    ...(spec.note ? { note: spec.note } : {}),
  };
}

function rotate<T>(items: T[], by: number): T[] {
  if (items.length === 0) return items;
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** `gc()` when node runs with --expose-gc (as `npm run bench` does), else undefined. */
export const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Runs `concurrency` workers, each looping the competitor's op, until `ms` elapsed or
 * `maxOps` started; the operations in flight at the deadline finish and count. Every
 * completed operation's latency is kept when `record`.
 */
async function timedRound(r: Running, ms: number, concurrency: number, maxOps: number | undefined, trackMemory: boolean, record = true): Promise<{ ops: number; seconds: number; cpuMs: number; peakRssGrowth: number }> {
  let startRss = 0;
  let peak = 0;
  let sampler: NodeJS.Timeout | undefined;
  if (trackMemory) {
    gc?.();
    startRss = process.memoryUsage.rss();
    peak = startRss;
    sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 2);
  }
  let started = 0;
  let completed = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + ms;
  const worker = async () => {
    while (performance.now() < deadline && (maxOps === undefined || started < maxOps)) {
      started++;
      const i = r.next++;
      const begin = performance.now();
      await r.competitor.op(i);
      const end = performance.now();
      completed++;
      if (record) r.latencies.push(end - begin);
      if (trackMemory) peak = Math.max(peak, process.memoryUsage.rss());
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    if (sampler) clearInterval(sampler);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { ops: completed, seconds, cpuMs: (cpu.user + cpu.system) / 1000, peakRssGrowth: Math.max(0, peak - startRss) };
}

/** The slowest (lowest median ops/s) of `names`, or undefined unless every one of them was measured. */
function slowest(names: string[], competitors: CompetitorResult[]): string | undefined {
  const measured = names.map((name) => ({ name, ops: competitors.find((c) => c.name === name)?.opsPerSec }));
  if (measured.some((m) => m.ops === undefined)) return undefined;
  return measured.reduce((a, b) => (b.ops! < a.ops! ? b : a)).name;
}

/** Evaluates one target against the case's results (NOT MET, with the reason, when unmeasured). */
export function checkTarget(target: Target, competitors: CompetitorResult[]): TargetResult {
  const find = (name: string) => competitors.find((c) => c.name === name);
  const why = (name: string) => {
    const c = find(name);
    if (!c) return `no competitor named "${name}"`;
    return c.skipped ? `${name} skipped: ${c.skipped}` : c.failed ? `${name} failed: ${c.failed}` : `${name} not measured`;
  };
  switch (target.kind) {
    case "ratio": {
      const names = Array.isArray(target.vs) ? target.vs : [target.vs];
      const vs = slowest(names, competitors) ?? names.find((n) => find(n)?.opsPerSec === undefined)!;
      const description = `${target.of} ≥ ${target.atLeast}× ${names.length > 1 ? `the slower of ${names.join(" and ")}, here ${vs}` : vs} (ops/s)`;
      const measured = ratio(find(target.of)?.opsPerSec, find(vs)?.opsPerSec);
      if (measured === undefined) {
        return { issue: target.issue, description, met: false, reason: find(target.of)?.opsPerSec === undefined ? why(target.of) : why(vs) };
      }
      return { issue: target.issue, description, measured, met: measured >= target.atLeast };
    }
    case "latency": {
      const description = `${target.of} ${target.stat} ≤ ${formatMs(target.atMostMs)}`;
      const measured = find(target.of)?.latencyMs?.[target.stat];
      if (measured === undefined || Number.isNaN(measured)) return { issue: target.issue, description, met: false, reason: why(target.of) };
      return { issue: target.issue, description, measured, met: measured <= target.atMostMs };
    }
    case "memory": {
      const description = `${target.of} peak RSS growth < ${formatBytes(target.belowBytes)}`;
      const measured = find(target.of)?.peakRssGrowthBytes;
      if (measured === undefined) return { issue: target.issue, description, met: false, reason: why(target.of) };
      return { issue: target.issue, description, measured, met: measured < target.belowBytes };
    }
  }
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}
