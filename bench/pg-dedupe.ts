/**
 * Probe: what a write id costs a PostgreSQL put. A write with a `writeId` also looks the id up
 * and records it in `<table>_writes` (in its own statement, or its transaction), so a retried
 * attempt of a write that already took effect changes nothing. This times 1 KiB puts through
 * the store with and without a write id (and with and without a deadline, which the timeout
 * layer gives every write), and 10-entry `putMany` batches with and without one, at 1 and 8
 * callers; the variants alternate round by round in one process, and the median round counts.
 * Besides entries/s (wall clock, at the mercy of whatever else the machine runs) it reports the
 * CPU time the server's processes serving the store spent per entry (read from /proc, so the
 * server must run on this machine), which other load hardly moves.
 *
 *   node --import tsx bench/pg-dedupe.ts [seconds per round (2)] [rounds (5)] [callers (1,8)]
 *
 * DATABASE_URL or postgresql://postgres@127.0.0.1:5432/test; KEYS=N puts over N keys (default
 * 200). Works in a table of its own, dropped at the end. The figures are in docs/postgres.md.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import { PostgresStore } from "../src/backends/postgres.js";
import type { WriteOptions } from "../src/types.js";

const DATABASE_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const roundSeconds = Number(process.argv[2] ?? 2);
const rounds = Number(process.argv[3] ?? 5);
const callerCounts = (process.argv[4] ?? "1,8").split(",").map(Number);
const KEYS = Number(process.env.KEYS ?? 200);
const VALUE = new Uint8Array(Buffer.alloc(1024, "stowage "));

interface Variant {
  name: string;
  /** Puts per call (a batch counts each entry). */
  entries: number;
  op: (store: PostgresStore, key: string) => Promise<unknown>;
}

const deadline = (): WriteOptions => ({ deadline: Date.now() + 5_000 });
const variants: Variant[] = [
  { name: "put", entries: 1, op: (s, key) => s.put(key, VALUE) },
  { name: "put + writeId", entries: 1, op: (s, key) => s.put(key, VALUE, { writeId: randomUUID() }) },
  { name: "put + deadline", entries: 1, op: (s, key) => s.put(key, VALUE, deadline()) },
  { name: "put + deadline + writeId", entries: 1, op: (s, key) => s.put(key, VALUE, { ...deadline(), writeId: randomUUID() }) },
  { name: "putMany(10) + deadline", entries: 10, op: (s, key) => s.putMany(batch(key), deadline()) },
  { name: "putMany(10) + deadline + writeId", entries: 10, op: (s, key) => s.putMany(batch(key), { ...deadline(), writeId: randomUUID() }) },
];

function batch(key: string) {
  return Array.from({ length: 10 }, (_, i) => ({ key: `${key}/${i}`, data: VALUE }));
}

/** Clock ticks per second of /proc/<pid>/stat (Linux: 100). */
const TICKS = 100;

/** CPU seconds spent so far by the server processes serving this probe's connections. */
async function serverCpu(admin: pg.Pool, app: string): Promise<number> {
  const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [app]);
  let total = 0;
  for (const { pid } of rows) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      total += (Number(fields[11]) + Number(fields[12])) / TICKS;
    } catch {
      // A connection that ended meanwhile.
    }
  }
  return total;
}

/** Calls of `variant` by `callers` concurrent callers for `seconds`: entries per second, server CPU µs per entry. */
async function round(store: PostgresStore, variant: Variant, callers: number, seconds: number): Promise<{ rate: number; cpuUs: number }> {
  const until = performance.now() + seconds * 1000;
  let calls = 0;
  const cpuBefore = await serverCpu(admin, app);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let n = 0; performance.now() < until; n++) {
        await variant.op(store, `k/${(c * 7919 + n) % KEYS}`);
        calls++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const entries = calls * variant.entries;
  return { rate: entries / elapsed, cpuUs: ((await serverCpu(admin, app)) - cpuBefore) * 1e6 / entries };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const table = `bench_dedupe_${process.pid}`;
const app = table;
const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
// Idle connections stay: the server processes whose CPU is read live for the whole run.
const pool = new pg.Pool({ connectionString: DATABASE_URL, application_name: app, max: Math.max(...callerCounts) + 2, idleTimeoutMillis: 0 });
const store = await PostgresStore.open({ pool, table });
try {
  for (const variant of variants) await round(store, variant, Math.max(...callerCounts), 0.3); // warm: statements prepared
  for (const callers of callerCounts) {
    const results = new Map<string, { rate: number; cpuUs: number }[]>(variants.map((v) => [v.name, []]));
    for (let r = 0; r < rounds; r++) for (const v of variants) results.get(v.name)!.push(await round(store, v, callers, roundSeconds));
    console.log(`\n${callers} caller(s), ${rounds} rounds of ${roundSeconds} s, median:`);
    const base = new Map<string, { rate: number; cpuUs: number }>();
    for (const v of variants) {
      const rate = median(results.get(v.name)!.map((x) => x.rate));
      const cpuUs = median(results.get(v.name)!.map((x) => x.cpuUs));
      const without = v.name.replace(" + writeId", "");
      if (without === v.name) base.set(v.name, { rate, cpuUs });
      const of = without !== v.name ? base.get(without) : undefined;
      const ratio = of ? `  vs "${without}": ${(of.rate / rate).toFixed(2)}× the time, ${(cpuUs / of.cpuUs).toFixed(2)}× the server CPU` : "";
      console.log(`  ${v.name.padEnd(34)} ${rate.toFixed(0).padStart(6)} entries/s  ${((1000 * callers) / rate).toFixed(3)} ms/entry/caller  ${cpuUs.toFixed(0).padStart(4)} µs server CPU/entry${ratio}`);
    }
  }
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${table}_writes"`);
  console.log(`\nids recorded (within the window): ${rows[0]!.n}`);
} finally {
  await store.close();
  for (const suffix of ["", "_versions", "_chunks", "_writes"]) await pool.query(`DROP TABLE IF EXISTS "${table}${suffix}" CASCADE`);
  await pool.query(`DROP SEQUENCE IF EXISTS "${table}_version_seq"`);
  for (const fn of ["drop_chunks", "fence"]) await pool.query(`DROP FUNCTION IF EXISTS "${table}_${fn}" CASCADE`);
  await pool.end();
  await admin.end();
}
