import cliProgress from "cli-progress";
import { InvalidArgumentError, type Command } from "commander";
import { setMaxListeners } from "node:events";
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import { parseSize } from "../../internal/units.js";
import { redactUrl } from "../../open.js";
import type { Store } from "../../types.js";
import { formatMs, summarizeLatencies, type LatencySummary } from "../bench-stats.js";
import type { CliContext } from "../context.js";
import { writeText } from "../files.js";
import { formatBytes } from "../progress.js";
import { positiveInt, wholeNumber } from "../arguments.js";

/** How many list calls the list phase makes (each lists every key the put phase wrote). */
const LIST_CALLS = 20;
/** Distinct keys the warm-up cycles over. */
const WARMUP_KEYS = 100;

interface BenchOptions {
  size: number;
  ops: number;
  concurrency: number;
  warmup: number;
  json?: boolean;
}

/** One phase's figures: what the summary table and `--json` show. */
export interface PhaseResult {
  op: "put" | "get" | "list" | "delete";
  ops: number;
  seconds: number;
  opsPerSec: number;
  /** Value bytes moved per second / 10^6 (put and get only). */
  mbPerSec?: number;
  latencyMs: LatencySummary;
}

export function register(program: Command, context: CliContext): void {
  program
    .command("bench")
    .description("measure put, get, list and delete against the store (--store URL); writes under a unique prefix and removes it afterwards")
    .option("--size <bytes>", "value size: 1024, 1KiB, 64KiB, 1MiB …", parseValueSize, 1024)
    .option("--ops <n>", "operations per phase", positiveInt("--ops", 10_000_000), 1000)
    .option("--concurrency <n>", "operations in flight", positiveInt("--concurrency", 4096), 16)
    .option("--warmup <n>", "untimed puts and then gets before the phases, under a prefix of their own that is deleted (a few thousand let V8 optimize the client)", wholeNumber("--warmup", 10_000_000), 0)
    .option("--json", "print the results as JSON instead of a table")
    .action(async (options: BenchOptions) => {
      await context.withStore(async (store) => {
        const results = await runBench(store, options, context);
        if (options.json) {
          await writeText(context.io.stdout, JSON.stringify({ store: redactUrl(context.storeUrl()), size: options.size, ops: options.ops, concurrency: options.concurrency, warmup: options.warmup, results }, null, 2) + "\n");
        } else {
          await writeText(context.io.stdout, summary(redactUrl(context.storeUrl()), options, results));
        }
      });
    });
}

/**
 * Runs the four phases under a fresh prefix (`stowage-bench/<time>-<random>/`): put `ops`
 * values, get them back (checking the size), list the prefix, delete them. A warm-up first puts
 * and gets `warmup` values under `<prefix minus its slash>-warmup/` and deletes them. Whatever
 * happens — an error, Ctrl-C — what was written is deleted before returning.
 */
export async function runBench(store: Store, options: BenchOptions, context: CliContext): Promise<PhaseResult[]> {
  const run = `stowage-bench/${new Date().toISOString().replace(/[:.]/g, "-")}-${randomBytes(4).toString("hex")}`;
  const prefix = `${run}/`;
  const warmupPrefix = `${run}-warmup/`;
  const keys = Array.from({ length: options.ops }, (_, i) => `${prefix}k${String(i).padStart(8, "0")}`);
  const warmKeys = Array.from({ length: Math.min(options.warmup, WARMUP_KEYS) }, (_, i) => `${warmupPrefix}k${i}`);
  const value = new Uint8Array(randomBytes(options.size));
  const signal = context.signal;
  // Every operation in flight listens on the one Ctrl-C signal: that many listeners is no leak.
  if (signal) setMaxListeners(options.concurrency + 16, signal);
  const results: PhaseResult[] = [];
  let cleanedUp = false;
  try {
    if (options.warmup > 0) {
      const warmKey = (i: number) => warmKeys[i % warmKeys.length] as string;
      await phase("put", options.warmup, options, context, (i) => store.put(warmKey(i), value, { signal }), "warm-up put");
      await phase("get", options.warmup, options, context, (i) => store.get(warmKey(i), { signal }), "warm-up get");
      await store.deleteMany(warmKeys, { signal });
    }
    results.push(await phase("put", keys.length, options, context, (i) => store.put(keys[i] as string, value, { signal })));
    results.push(await phase("get", keys.length, options, context, async (i) => {
      const data = await store.get(keys[i] as string, { signal });
      if (data.length !== value.length) throw new Error(`get returned ${data.length} bytes for a ${value.length}-byte value`);
    }));
    const lists = Math.min(LIST_CALLS, options.ops);
    results.push(await phase("list", lists, { ...options, concurrency: 1 }, context, async () => {
      const found = await store.list(prefix, { signal });
      if (found.length !== keys.length) throw new Error(`list returned ${found.length} keys, expected ${keys.length}`);
    }));
    results.push(await phase("delete", keys.length, options, context, (i) => store.delete(keys[i] as string, { signal })));
    cleanedUp = true; // the delete phase removed every key
  } finally {
    // Clean up without the signal: Ctrl-C stops the measurement, not the cleanup.
    if (!cleanedUp) {
      for (const [under, written] of [[prefix, keys], [warmupPrefix, warmKeys]] as const) {
        await store.deleteMany(await store.list(under).catch(() => written)).catch(() => undefined);
      }
    }
  }
  return results;
}

async function phase(op: PhaseResult["op"], count: number, options: BenchOptions, context: CliContext, work: (i: number) => Promise<unknown>, label: string = op): Promise<PhaseResult> {
  const latencies = new Array<number>(count);
  const bar = context.interactive
    ? new cliProgress.SingleBar({ stream: context.io.stderr, format: `${label.padEnd(6)} {bar} {value}/{total} ops  {rate} ops/s`, clearOnComplete: true, hideCursor: true, fps: 5 })
    : undefined;
  bar?.start(count, 0, { rate: "–" });
  let next = 0;
  let done = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      await work(i);
      latencies[i] = performance.now() - t0;
      done++;
      bar?.update(done, { rate: Math.round(done / ((performance.now() - started) / 1000)) });
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, count) }, worker));
  } finally {
    bar?.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  const opsPerSec = count / seconds;
  return {
    op,
    ops: count,
    seconds,
    opsPerSec,
    ...(op === "put" || op === "get" ? { mbPerSec: (opsPerSec * options.size) / 1e6 } : {}),
    latencyMs: summarizeLatencies(latencies),
  };
}

/** The summary table: one row per phase. */
export function summary(store: string, options: BenchOptions, results: PhaseResult[]): string {
  const rows = [["op", "ops", "ops/s", "MB/s", "p50", "p99", "max"]];
  for (const r of results) {
    rows.push([
      r.op === "list" ? `list (${options.ops} keys)` : r.op,
      String(r.ops),
      r.opsPerSec >= 100 ? Math.round(r.opsPerSec).toLocaleString("en-US") : r.opsPerSec.toPrecision(3),
      r.mbPerSec === undefined ? "–" : r.mbPerSec.toPrecision(3),
      formatMs(r.latencyMs.p50),
      formatMs(r.latencyMs.p99),
      formatMs(r.latencyMs.max),
    ]);
  }
  const widths = (rows[0] as string[]).map((_, i) => Math.max(...rows.map((row) => (row[i] as string).length)));
  const lines = rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join("  "));
  const warmup = options.warmup > 0 ? `  warm-up ${options.warmup}` : "";
  return `store ${store}  value ${formatBytes(options.size)}  ops ${options.ops}  concurrency ${options.concurrency}${warmup}\n${lines.join("\n")}\n`;
}

/** A value size for `--size`: the configuration's rule (internal/units.ts), from 1 byte to 1 GiB. */
export function parseValueSize(text: string): number {
  const bytes = parseSize(text);
  if (bytes === undefined) throw new InvalidArgumentError(`expected a size such as 1024, 1KiB, 64KiB or 1MiB, got ${JSON.stringify(text)}`);
  if (bytes < 1 || bytes > 1024 ** 3) throw new InvalidArgumentError(`size must be from 1 byte to 1 GiB, got ${text}`);
  return bytes;
}
