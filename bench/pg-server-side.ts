/**
 * Probe: what a 1 KiB put and get cost PostgreSQL itself, with no JavaScript in the way, in
 * stowage's layout and in two other layouts that keep history (the one stowage had before, and
 * append-only without a table of live keys). pgbench (one client, prepared statements) runs
 * stowage's own statements, built by `buildStatements` as the store builds them, beside raw
 * `pg`'s and the alternatives', alternated round by round; then it times a 1k-of-100k prefix
 * listing in stowage's layout and in the append-only one as keys gain versions.
 *
 *   node --import tsx bench/pg-server-side.ts [seconds per round (4)] [rounds (5)]
 *
 * Needs pgbench (Debian: postgresql-client or the server package; found on PATH or under
 * /usr/lib/postgresql/<version>/bin) and DATABASE_URL or postgresql://postgres@127.0.0.1:5432/test.
 * Works in a schema of its own, dropped at the end. The figures are in docs/postgres.md,
 * "Why versions are appended".
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import pg from "pg";
import { hasLz4, schemaSql, tableNames } from "../src/backends/postgres/schema.js";
import { bind, buildStatements, statement } from "../src/backends/postgres/statements.js";
import { SMALL_VALUE_BYTES } from "../src/backends/postgres.js";

const DATABASE_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const roundSeconds = Number(process.argv[2] ?? 4);
const rounds = Number(process.argv[3] ?? 5);
/** Keys the puts cycle through: every put after the first 200 overwrites. */
const KEYS = 200;
const VALUE = Buffer.alloc(1024, "stowage ");

function findPgbench(): string {
  const dirs = [...(process.env.PATH ?? "").split(delimiter)];
  if (existsSync("/usr/lib/postgresql")) {
    for (const version of readdirSync("/usr/lib/postgresql").sort().reverse()) dirs.push(`/usr/lib/postgresql/${version}/bin`);
  }
  const found = dirs.map((dir) => join(dir, "pgbench")).find((path) => existsSync(path));
  if (!found) throw new Error("pgbench not found on PATH or under /usr/lib/postgresql/*/bin: install postgresql-client (Debian) or PostgreSQL's client tools");
  return found;
}

/**
 * A store statement as a pgbench script: `$1` key, `$2` bytes, `$3` metadata (none), `$4` size,
 * as `_put` binds them. pgbench's variables become the prepared statement's parameters.
 */
function script(text: string): string {
  const params: Record<string, string> = { "1": "('bench/key-' || :k)", "2": ":data::bytea", "3": "NULL", "4": ":size::bigint" };
  return `\\set k random(1, ${KEYS})\n${text.replace(/\$(\d)\b/g, (_, n: string) => params[n]!)};\n`;
}

interface Run {
  tps: number;
  transactions: number;
  walBytes: number;
}

async function pgbench(bin: string, file: string, seconds: number, db: pg.Pool): Promise<Run> {
  const before = await walLsn(db);
  const args = ["-n", "-M", "prepared", "-c", "1", "-T", String(seconds), "-D", `data=\\x${VALUE.toString("hex")}`, "-D", `size=${VALUE.byteLength}`, "-f", file, DATABASE_URL];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (text += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(text) : reject(new Error(`pgbench exited ${code}:\n${text}`))));
  });
  const tps = Number(/^tps = ([\d.]+)/m.exec(output)?.[1]);
  const transactions = Number(/actually processed: (\d+)/.exec(output)?.[1]);
  if (!Number.isFinite(tps) || !Number.isFinite(transactions)) throw new Error(`cannot read pgbench's output:\n${output}`);
  const after = await walLsn(db);
  return { tps, transactions, walBytes: Number(after - before) };
}

async function walLsn(db: pg.Pool): Promise<bigint> {
  const { rows } = await db.query<{ bytes: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS bytes");
  return BigInt(rows[0]!.bytes.split(".")[0]!);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Milliseconds per execution of a query: the median of `times` runs, after six that settle on the generic plan. */
const WARM = 6;

async function timeQuery(db: pg.Pool, text: string, values: unknown[], times = 15): Promise<{ ms: number; rows: number }> {
  const samples: number[] = [];
  let rows = 0;
  for (let i = 0; i < times + WARM; i++) {
    const t0 = performance.now();
    const result = await db.query(bind(statement(text), values));
    if (i >= WARM) samples.push(performance.now() - t0);
    rows = result.rowCount ?? 0;
  }
  return { ms: median(samples), rows };
}

/** Runs the statements as pgbench scripts, alternated round by round, and prints their medians against the first. */
async function compare(bin: string, db: pg.Pool, dir: string, title: string, variants: [string, string][]): Promise<void> {
  const files = variants.map(([, text], i) => {
    const file = join(dir, `${title.replace(/\W+/g, "-")}-${i}.sql`);
    writeFileSync(file, script(text));
    return file;
  });
  console.log(`\n${title}: ${KEYS} keys, 1 client, prepared; ${rounds} rounds × ${roundSeconds} s, alternated`);
  for (const file of files) await pgbench(bin, file, 1, db); // warm-up: first inserts, plans, caches
  const runs = variants.map((): Run[] => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, file] of files.entries()) runs[i]!.push(await pgbench(bin, file, roundSeconds, db));
  }
  const baseline = median(runs[0]!.map((r) => r.tps));
  console.log(`${"layout".padEnd(38)} ${"tps".padStart(7)}  vs first  WAL/op  rounds (tps)`);
  for (const [i, [name]] of variants.entries()) {
    const tps = median(runs[i]!.map((r) => r.tps));
    const wal = median(runs[i]!.map((r) => r.walBytes / r.transactions));
    const all = runs[i]!.map((r) => r.tps.toFixed(0)).join(" ");
    console.log(`${name.padEnd(38)} ${tps.toFixed(0).padStart(7)}  ${(tps / baseline).toFixed(2).padStart(6)}×  ${wal.toFixed(0).padStart(4)} B  ${all}`);
  }
}

const bin = findPgbench();
const db = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
const schema = `pgserver_${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), "stowage-pgbench-"));
try {
  await db.query(`CREATE SCHEMA ${schema}`);
  const lz4 = await hasLz4(db); // as the store decides
  const versioned = tableNames(schema, "versioned");
  const plain = tableNames(schema, "plain");
  // What the update trigger that collects a replaced large value's chunks costs a put.
  const untriggered = tableNames(schema, "untriggered");
  for (const [names, versions] of [[versioned, true], [plain, false], [untriggered, false]] as const) {
    await db.query(schemaSql(names, { lz4, versions }));
  }
  await db.query(`DROP TRIGGER "untriggered_replaced" ON ${untriggered.main}`);
  const options = { smallBytes: SMALL_VALUE_BYTES, history: undefined };
  const ours = buildStatements(versioned, { ...options, versions: true });

  // The layout stowage had before: the key's row holds the latest value and is rewritten by each
  // put (a HOT update), and the put adds a history row, in one statement.
  const rowTable = `${schema}.row_per_key`;
  const historyTable = `${schema}.row_per_key_history`;
  // One table, a row per version, no table of live keys: a put writes one row.
  const appendTable = `${schema}.append_only`;
  await db.query(`
    CREATE SEQUENCE ${schema}.seq;
    CREATE TABLE ${rowTable} (key text COLLATE "C" PRIMARY KEY, version bigint NOT NULL, size bigint NOT NULL,
      modified timestamptz NOT NULL DEFAULT now(), metadata jsonb, data bytea, chunks integer NOT NULL DEFAULT 0) WITH (fillfactor = 80);
    CREATE TABLE ${historyTable} (LIKE ${versioned.versions} INCLUDING ALL);
    CREATE TABLE ${appendTable} (LIKE ${versioned.versions} INCLUDING ALL);
    CREATE TABLE ${schema}.raw (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);`);
  const rowPerKeyPut = `WITH m AS (INSERT INTO ${rowTable} (key, version, size, modified, metadata, data)
      VALUES ($1, nextval('${schema}.seq'), $4::bigint, now(), $3::jsonb, $2::bytea)
      ON CONFLICT (key) DO UPDATE SET version = nextval('${schema}.seq'), size = EXCLUDED.size, modified = EXCLUDED.modified,
        metadata = EXCLUDED.metadata, data = EXCLUDED.data RETURNING key, version, size, modified, metadata)
    INSERT INTO ${historyTable} (key, version, size, modified, metadata, data) SELECT key, version, size, modified, metadata, $2::bytea FROM m`;

  await compare(bin, db, dir, "1 KiB put", [
    ["raw pg upsert (one row, no history)", `INSERT INTO ${schema}.raw (key, value) VALUES ($1, $2::bytea) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`],
    ["stowage versions=false", buildStatements(plain, { ...options, versions: false }).put.text],
    ["  the same without its update trigger", buildStatements(untriggered, { ...options, versions: false }).put.text],
    ["stowage, versions on (default)", ours.put.text],
    ["append-only, no live-key table", `INSERT INTO ${appendTable} (key, version, size, modified, metadata, data) VALUES ($1, nextval('${schema}.seq'), $4::bigint, now(), $3::jsonb, $2::bytea)`],
    ["row per key + history row (earlier)", rowPerKeyPut],
  ]);
  await compare(bin, db, dir, "1 KiB get (the keys the puts wrote)", [
    ["raw pg", `SELECT value FROM ${schema}.raw WHERE key = $1`],
    ["stowage, versions on (default)", ours.get.text],
    ["row per key + history row (earlier)", `SELECT CASE WHEN size <= ${SMALL_VALUE_BYTES} THEN data END AS data FROM ${rowTable} WHERE key = $1`],
  ]);

  // Listing 1,000 keys of 100,000: stowage lists its table of live keys; the append-only
  // layout must find each key's newest row among its versions.
  console.log("\nlist 1k of 100k keys (median of 15, ms on the server and the wire, keys only)");
  await db.query(`INSERT INTO ${versioned.main} (key) SELECT 'k/' || lpad(i::text, 6, '0') FROM generate_series(1, 100000) i`);
  await db.query(`INSERT INTO ${appendTable} (key, version, size, data) SELECT 'k/' || lpad(i::text, 6, '0'), i, 1, '\\x00' FROM generate_series(1, 100000) i`);
  await db.query(`ANALYZE ${versioned.main}; ANALYZE ${appendTable}`);
  const latest = `SELECT key FROM (SELECT DISTINCT ON (key) key, deleted FROM ${appendTable} WHERE key >= $1 AND key < $2 ORDER BY key, version DESC) l WHERE NOT deleted LIMIT $3`;
  const range = ["k/050", "k/051", 5000];
  let depth = 1;
  for (const extra of [0, 9, 90]) {
    if (extra > 0) {
      // Only the listed keys gain versions: the rest of the table does not change the scan.
      await db.query(`INSERT INTO ${appendTable} (key, version, size, data) SELECT 'k/' || lpad(i::text, 6, '0'), v * 100000 + i, 1, '\\x00'
        FROM generate_series(50000, 50999) i, generate_series(${depth}, ${depth + extra - 1}) v`);
      await db.query(`VACUUM ANALYZE ${appendTable}`);
      depth += extra;
    }
    const a = await timeQuery(db, ours.range.text, range);
    const b = await timeQuery(db, latest, range);
    console.log(`${String(depth).padStart(3)} version(s) per key: stowage ${a.ms.toFixed(2)} ms (${a.rows} keys), append-only ${b.ms.toFixed(2)} ms (${b.rows} keys): ${(b.ms / a.ms).toFixed(1)}×`);
  }
} finally {
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch((err: unknown) => console.error(`could not drop schema ${schema}: ${String(err)}`));
  await db.end();
  rmSync(dir, { recursive: true, force: true });
}
