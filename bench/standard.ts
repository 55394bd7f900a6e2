/**
 * The standard cases every backend suite runs, over small adapters: one adapter per competitor
 * (our store, the raw client, a peer library), each exposing put/get/list/delete (and streams
 * where it has them) in its own namespace (bucket, table, directory). A suite builds its
 * adapters and calls {@link standardCases}; the cases and their key layouts are the same for
 * every backend, so figures compare across backends.
 */
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { gc, KiB, MiB, type BenchContext, type CaseSpec, type Competitor, type Target } from "./harness.js";
import type { Store } from "../src/types.js";

/** One competitor's view of a backend. Keys are `/`-separated like the Store contract's. */
export interface Adapter {
  name: string;
  /** When set, every case skips this adapter with this reason. */
  skip?: string;
  /** Why this adapter cannot list by prefix (skips the list case only). */
  noList?: string;
  /** Why this adapter has no streaming API (skips the streamed cases only). */
  noStream?: string;
  /** Cases this adapter does not take part in, by case name, with the reason printed. */
  cannot?: Record<string, string>;
  put(key: string, data: Uint8Array): Promise<unknown>;
  get(key: string): Promise<Uint8Array>;
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<unknown>;
  /** Writes `source` (chunks) at key without buffering it whole. */
  putStream?(key: string, source: AsyncIterable<Uint8Array>): Promise<unknown>;
  /** Reads key as chunks. */
  getStream?(key: string): Promise<AsyncIterable<Uint8Array>>;
  /** Fills many keys fast for the list case (default: `put` 64 at a time). */
  fill?(keys: string[], data: Uint8Array): Promise<void>;
}

/** Which target each case checks, by case name ("get 1 KiB", "list 100 of 20k", …). */
export type CaseTargets = Record<string, Target[]>;

export interface StandardOptions {
  /** Baseline competitor (the raw client). */
  baseline: string;
  /** Other baselines for some cases, by case name (e.g. where the raw KV cannot hold 1 MiB). */
  baselines?: Record<string, string>;
  targets?: CaseTargets;
  /** Keys in the store for the list case and keys under the listed prefix. */
  list?: {
    total: number;
    matching: number;
    label: string;
    /**
     * Data shared by every competitor of the list case: `fill` writes the keys once (e.g. with
     * the raw client into one bucket), and `adapters` (over that same data) only list it.
     * For servers where filling one store per competitor would take too long.
     */
    shared?: { fill: (keys: string[], data: Uint8Array) => Promise<void>; adapters: Adapter[] };
    /** Round length for a server that lists slowly (default the suite's): a round should hold many lists. */
    roundMs?: number;
  };
  /** Size of the streamed value (default 64 MiB; 0 skips the streamed cases). */
  streamBytes?: number;
  /** Cases to leave out, with the reason printed. */
  without?: Record<string, string>;
  /** Operations in flight for the concurrency cases (default 64). */
  concurrency?: number;
  /**
   * Also run `put 1 MiB incompressible` (random bytes), for backends that compress: the
   * standard values are a repeating pattern that lz4 shrinks ~100×, images and video are not.
   */
  incompressible?: boolean;
  /**
   * Round length of the timed cases (default the suite's 300 ms). Servers whose operations take
   * milliseconds and vary (s3rver writes files, PostgreSQL commits wait for fsync) need longer
   * rounds to average over their stalls; the streamed cases keep one operation per round.
   */
  roundMs?: number;
  /** Warm-up by operation count for the timed cases (see `CaseSpec.warmupOps`); the streamed cases keep none. */
  warmupOps?: number;
}

/** A value of `size` bytes with a pattern, so a truncated or shifted read is detectable. */
export function pattern(size: number, seed = 0): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed) & 0xff;
  return data;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** Throws unless `adapter` gives back exactly what it was given: a benchmark of wrong answers is no benchmark. */
async function verifyRoundTrip(adapter: Adapter, key: string, data: Uint8Array): Promise<void> {
  await adapter.put(key, data);
  const back = await adapter.get(key);
  if (!sameBytes(back, data)) throw new Error(`${adapter.name} returned ${back.length} bytes for a ${data.length}-byte value (or different bytes)`);
}

/** Bytes between the collections the streamed cases force (with --expose-gc). */
const GC_EVERY = 8 * MiB;

/**
 * Collects garbage every {@link GC_EVERY} bytes a streamed case moves, when `--expose-gc` is on.
 * Without it, the chunks the benchmark itself made and dropped stay in memory until V8 gets
 * round to them (tens of MiB), and the peak RSS would measure V8's GC timing rather than what
 * the store holds. Every competitor gets the same treatment.
 */
function collectEvery(): (bytes: number) => void {
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (gc && since >= GC_EVERY) {
      gc();
      since = 0;
    }
  };
}

/** `total` bytes in fresh `chunk`-byte chunks (fresh: a library may hold a chunk it was given). */
export async function* chunks(total: number, chunk = MiB): AsyncIterable<Uint8Array> {
  const moved = collectEvery();
  for (let sent = 0; sent < total; sent += chunk) {
    const size = Math.min(chunk, total - sent);
    yield Buffer.alloc(size, sent / chunk);
    moved(size);
  }
}

/** Reads a stream to the end, returning the byte count (and dropping the chunks). */
export async function drain(source: AsyncIterable<Uint8Array>): Promise<number> {
  const moved = collectEvery();
  let n = 0;
  for await (const c of source) {
    n += c.length;
    moved(c.length);
  }
  return n;
}

/** Runs `fn` over `items`, `limit` at a time. */
export async function eachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

let currentCase = "";

function competitor(adapter: Adapter, base: Omit<Competitor, "name">, skip?: string): Competitor {
  const reason = adapter.skip ?? adapter.cannot?.[currentCase] ?? skip;
  return { name: adapter.name, ...base, ...(reason ? { skip: reason } : {}) };
}

/**
 * put/get 1 KiB and 1 MiB, streamed put/get, list of a prefix, delete, and 64 in flight, each
 * with every adapter as a competitor.
 */
export async function standardCases(b: BenchContext, adapters: Adapter[], options: StandardOptions): Promise<void> {
  const targets = options.targets ?? {};
  const concurrency = options.concurrency ?? 64;
  const run = async (name: string, build: () => Omit<CaseSpec, "name" | "baseline" | "targets">) => {
    const skip = options.without?.[name];
    if (skip) return b.skip(name, skip);
    if (!b.wants(name)) return;
    currentCase = name; // read by competitor() while build() runs
    const spec = build();
    const roundMs = spec.roundMs ?? options.roundMs;
    const warmupOps = spec.warmupOps ?? options.warmupOps;
    await b.run({ name, baseline: options.baselines?.[name] ?? options.baseline, targets: targets[name], ...spec, ...(roundMs !== undefined && { roundMs }), ...(warmupOps !== undefined && { warmupOps }) });
  };

  for (const size of [KiB, MiB]) {
    const label = size === KiB ? "1 KiB" : "1 MiB";
    const value = pattern(size);
    const keys = size === KiB ? 200 : 20;
    await run(`put ${label}`, () => ({
      bytesPerOp: size,
      competitors: adapters.map((a) => competitor(a, {
        setup: () => verifyRoundTrip(a, `bench/put${label.replace(" ", "")}/check`, value),
        op: (i) => a.put(`bench/put${label.replace(" ", "")}/k${i % keys}`, value),
      })),
    }));
    await run(`get ${label}`, () => ({
      bytesPerOp: size,
      competitors: adapters.map((a) => competitor(a, {
        setup: async () => {
          await eachLimit([...Array(keys).keys()], 16, (n) => a.put(`bench/get${label.replace(" ", "")}/k${n}`, value));
          await verifyRoundTrip(a, `bench/get${label.replace(" ", "")}/k0`, value);
        },
        op: (i) => a.get(`bench/get${label.replace(" ", "")}/k${i % keys}`),
      })),
    }));
  }

  if (options.incompressible) {
    await run("put 1 MiB incompressible", () => {
      const values = Array.from({ length: 20 }, () => randomBytes(MiB));
      return {
        bytesPerOp: MiB,
        note: "random bytes: no compression helps any competitor",
        competitors: adapters.map((a) => competitor(a, { op: (i) => a.put(`bench/putrandom/k${i % values.length}`, values[i % values.length]!) })),
      };
    });
  }

  const streamBytes = options.streamBytes ?? 64 * MiB;
  if (streamBytes > 0) {
    const label = `${streamBytes / MiB} MiB`;
    // One operation per round, no warm-up: each moves 64 MiB, and the first is no colder than the rest.
    const streamCase = { bytesPerOp: streamBytes, trackMemory: true, rounds: b.scale(3, 2), roundMs: 1, warmupMs: 0, warmupOps: 0, maxOpsPerRound: 1 };
    await run(`put ${label} streamed`, () => ({
      ...streamCase,
      competitors: adapters.map((a) => competitor(a, {
        op: (i) => (a.putStream as NonNullable<Adapter["putStream"]>)(`bench/stream/put${i % 2}`, chunks(streamBytes)),
        teardown: () => Promise.all([a.delete("bench/stream/put0"), a.delete("bench/stream/put1")]),
      }, a.noStream ?? (a.putStream ? undefined : "no streaming write"))),
    }));
    await run(`get ${label} streamed`, () => ({
      ...streamCase,
      competitors: adapters.map((a) => competitor(a, {
        setup: async () => {
          await (a.putStream as NonNullable<Adapter["putStream"]>)("bench/stream/get", chunks(streamBytes));
        },
        op: async () => {
          const n = await drain(await (a.getStream as NonNullable<Adapter["getStream"]>)("bench/stream/get"));
          if (n !== streamBytes) throw new Error(`read ${n} bytes of ${streamBytes}`);
        },
        teardown: () => a.delete("bench/stream/get"),
      }, a.noStream ?? (a.putStream && a.getStream ? undefined : "no streaming read/write"))),
    }));
  }

  const list = options.list ?? { total: b.scale(20_000, 2_000), matching: 100, label: "list 100 of 20k" };
  if (b.wants(list.label)) {
    const prefixes = Math.ceil(list.total / list.matching);
    const small = pattern(16);
    // Keys spread over `prefixes` prefixes of `matching` keys each; the case lists one in the middle.
    const keys = Array.from({ length: list.total }, (_, n) => `bench/list/p${String(n % prefixes).padStart(5, "0")}/k${String(Math.floor(n / prefixes)).padStart(6, "0")}`);
    const target = `bench/list/p${String(Math.floor(prefixes / 2)).padStart(5, "0")}/`;
    const shared = list.shared;
    if (shared) await shared.fill(keys, small);
    await run(list.label, () => ({
      ...(list.roundMs !== undefined && { roundMs: list.roundMs }),
      competitors: (shared?.adapters ?? adapters).map((a) => competitor(a, {
        setup: async () => {
          if (!shared) await (a.fill ? a.fill(keys, small) : eachLimit(keys, 64, (k) => a.put(k, small)));
          const found = await a.list(target);
          if (found.length !== list.matching) throw new Error(`listed ${found.length} keys under the prefix, expected ${list.matching}`);
        },
        op: () => a.list(target),
      }, a.noList)),
    }));
  }

  const delValue = pattern(KiB);
  const perRound = b.scale(300, 100);
  await run("delete 1 KiB", () => ({
    maxOpsPerRound: perRound,
    competitors: adapters.map((a) => {
      const prepared: string[] = [];
      let batch = 0;
      return competitor(a, {
        beforeRound: async () => {
          const keys = Array.from({ length: perRound }, (_, n) => `bench/delete/b${batch}/k${n}`);
          batch++;
          await eachLimit(keys, 16, (k) => a.put(k, delValue));
          prepared.push(...keys);
        },
        op: async () => {
          const key = prepared.pop();
          if (key === undefined) throw new Error("delete round ran past its prepared keys");
          await a.delete(key);
        },
      });
    }),
  }));

  const value = pattern(KiB);
  await run(`get 1 KiB, ${concurrency} in flight`, () => ({
    bytesPerOp: KiB,
    concurrency,
    competitors: adapters.map((a) => competitor(a, {
      setup: () => eachLimit([...Array(256).keys()], 16, (n) => a.put(`bench/conc/k${n}`, value)),
      op: (i) => a.get(`bench/conc/k${i % 256}`),
    })),
  }));
  await run(`put 1 KiB, ${concurrency} in flight`, () => ({
    bytesPerOp: KiB,
    concurrency,
    competitors: adapters.map((a) => competitor(a, {
      op: (i) => a.put(`bench/conc/p${i % 1024}`, value),
    })),
  }));
}

/** An adapter over any stowage {@link Store} (ours, through the public API). */
export function storeAdapter(name: string, store: Store): Adapter {
  return {
    name,
    put: (key, data) => store.put(key, data),
    get: (key) => store.get(key),
    list: (prefix) => store.list(prefix),
    delete: (key) => store.delete(key),
    putStream: (key, source) => store.putStream(key, source),
    getStream: (key) => store.getStream(key),
    fill: async (keys, data) => {
      for (let i = 0; i < keys.length; i += 500) await store.putMany(keys.slice(i, i + 500).map((key) => ({ key, data })));
    },
  };
}

/** Wraps a Node Readable/iterable as an async iterable of Uint8Array. */
export function asChunks(source: Readable | AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return source as AsyncIterable<Uint8Array>;
}
