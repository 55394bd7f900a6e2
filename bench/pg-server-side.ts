/**
 * Probe: what a 1 KiB put costs PostgreSQL itself, in stowage's layout and the alternatives
 * that keep history, and what each way of fencing a late write costs: the server's CPU time
 * per operation (read from /proc for each backend, so it is what the server process spent,
 * whatever else the machine runs), the WAL it wrote, the round trips, and wall-clock ops/s.
 * Each variant runs stowage's own statements, built by `buildStatements` as the store builds
 * them, or the alternative's, on prepared statements over `clients` connections; the variants
 * alternate round by round. Then it times a 1k-of-100k prefix listing and a one-level listing.
 *
 *   node --import tsx bench/pg-server-side.ts [seconds per round (2)] [rounds (5)] [clients (1,8)]
 *
 * KEYS=N puts over N keys (default 200: writers collide on keys); ONLY=regex runs the put
 * variants whose names match (and raw pg) and nothing else.
 *
 * Needs the server on this machine (its backends' /proc entries) and DATABASE_URL or
 * postgresql://postgres@127.0.0.1:5432/test. Works in a schema of its own, dropped at the end.
 * With SYNC=off the benchmark's sessions commit with synchronous_commit off: the wait for the
 * disk is the same in every variant, and on a busy disk it is noise. The figures are in
 * docs/postgres.md.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { hasLz4, schemaSql, tableNames, type TableNames } from "../src/backends/postgres/schema.js";
import { bind, buildStatements, statement, type Statement } from "../src/backends/postgres/statements.js";
import { SMALL_VALUE_BYTES } from "../src/backends/postgres.js";

const DATABASE_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const roundSeconds = Number(process.argv[2] ?? 2);
const rounds = Number(process.argv[3] ?? 5);
const clientCounts = (process.argv[4] ?? "1,8").split(",").map(Number);
/** Keys the puts cycle through: every put after the first 200 overwrites. */
const KEYS = Number(process.env.KEYS ?? 200);
const VALUE = Buffer.alloc(1024, "stowage ");
/** Clock ticks per second of /proc/<pid>/stat (Linux: 100). */
const TICKS = 100;

/** One operation of a variant on one connection: resolves once it is done. */
type Op = (client: pg.Client, key: string) => Promise<unknown>;

interface Variant {
  name: string;
  /** Round trips per operation. */
  trips: number;
  op: Op;
}

/** A put statement with its parameters: key, value, no metadata, size, then the given extras. */
const put =
  (s: Statement, extra: (client: pg.Client, key: string) => Promise<unknown[]> | unknown[] = () => []): Op =>
  async (client, key) =>
    client.query(bind(s, [key, VALUE, null, VALUE.byteLength, ...(await extra(client, key))]));

/** The server's CPU time of a backend so far, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // utime and stime are fields 14 and 15; the split starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function walLsn(db: pg.Pool): Promise<bigint> {
  const { rows } = await db.query<{ bytes: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS bytes");
  return BigInt(rows[0]!.bytes.split(".")[0]!);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Round {
  ops: number;
  cpu: number;
  wal: number;
  seconds: number;
}

/** `clients` connections each run `op` on random keys for `seconds`. */
async function round(db: pg.Pool, connections: { client: pg.Client; pid: number }[], op: Op, seconds: number): Promise<Round> {
  const cpuBefore = connections.map((c) => cpuSeconds(c.pid));
  const walBefore = await walLsn(db);
  const start = performance.now();
  const end = start + seconds * 1000;
  let ops = 0;
  await Promise.all(
    connections.map(async ({ client }) => {
      while (performance.now() < end) {
        await op(client, `bench/key-${1 + Math.floor(Math.random() * KEYS)}`);
        ops++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const wal = Number((await walLsn(db)) - walBefore);
  const cpu = connections.reduce((sum, c, i) => sum + cpuSeconds(c.pid) - cpuBefore[i]!, 0);
  return { ops, cpu, wal, seconds: elapsed };
}

async function compare(db: pg.Pool, title: string, clients: number, variants: Variant[]): Promise<void> {
  const connections = await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      if (process.env.SYNC === "off") await client.query("SET synchronous_commit = off");
      const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      return { client, pid };
    }),
  );
  try {
    console.log(`\n${title}: ${KEYS} keys, ${clients} connection(s), prepared; ${rounds} rounds × ${roundSeconds} s, alternated${process.env.SYNC === "off" ? ", synchronous_commit off" : ""}`);
    for (const v of variants) await round(db, connections, v.op, 0.5); // warm-up: first inserts, plans, caches
    const runs = variants.map((): Round[] => []);
    for (let r = 0; r < rounds; r++) for (const [i, v] of variants.entries()) runs[i]!.push(await round(db, connections, v.op, roundSeconds));
    const cpuPerOp = (rs: Round[]) => rs.reduce((s, x) => s + x.cpu, 0) / rs.reduce((s, x) => s + x.ops, 0);
    const base = cpuPerOp(runs[0]!);
    const baseTps = median(runs[0]!.map((x) => x.ops / x.seconds));
    console.log(`${"variant".padEnd(44)} ${"CPU µs/op".padStart(9)} ${"vs first".padStart(8)} ${"WAL/op".padStart(7)} trips ${"ops/s".padStart(6)} ${"vs first".padStart(8)}`);
    for (const [i, v] of variants.entries()) {
      const rs = runs[i]!;
      const cpu = cpuPerOp(rs);
      const wal = rs.reduce((s, x) => s + x.wal, 0) / rs.reduce((s, x) => s + x.ops, 0);
      const tps = median(rs.map((x) => x.ops / x.seconds));
      console.log(
        `${v.name.padEnd(44)} ${(cpu * 1e6).toFixed(0).padStart(9)} ${`${(cpu / base).toFixed(2)}×`.padStart(8)} ${`${wal.toFixed(0)} B`.padStart(7)} ${String(v.trips).padStart(5)} ${tps.toFixed(0).padStart(6)} ${`${(tps / baseTps).toFixed(2)}×`.padStart(8)}`,
      );
    }
  } finally {
    for (const { client } of connections) await client.end();
  }
}

/** Milliseconds per execution of a query: the median of `times` runs, after six that settle on the generic plan. */
async function timeQuery(db: pg.Pool, text: string, values: unknown[], times = 15): Promise<{ ms: number; rows: number }> {
  const samples: number[] = [];
  let rows = 0;
  for (let i = 0; i < times + 6; i++) {
    const t0 = performance.now();
    const result = await db.query(bind(statement(text), values));
    if (i >= 6) samples.push(performance.now() - t0);
    rows = result.rowCount ?? 0;
  }
  return { ms: median(samples), rows };
}

/**
 * The layout stowage had before: `T` holds the live keys only; each write takes an advisory
 * lock on its key (and its bucket, shared) before it draws its version and appends its row.
 */
function earlierLayout(n: TableNames): { ddl: string; put: Statement } {
  const ddl = `CREATE TABLE ${n.main} (key text COLLATE "C" PRIMARY KEY);
    CREATE TABLE ${n.versions} (key text COLLATE "C" NOT NULL, version bigint NOT NULL, size bigint NOT NULL, modified timestamptz NOT NULL DEFAULT now(),
      metadata jsonb, data bytea, chunks integer NOT NULL DEFAULT 0, deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (key, version));
    CREATE SEQUENCE ${n.sequence};`;
  const lock = "pg_advisory_xact_lock_shared(21332, hashtext($1) & 63), pg_advisory_xact_lock(21333, hashtext($1))";
  const put = statement(`WITH lock AS (SELECT ${lock}), live AS (INSERT INTO ${n.main} (key) SELECT $1 FROM lock ON CONFLICT DO NOTHING)
    INSERT INTO ${n.versions} (key, version, size, modified, metadata, data, chunks) SELECT $1, nextval(${n.sequenceLiteral}), $4::bigint, now(), $3::jsonb, $2::bytea, 0 FROM lock`);
  return { ddl, put };
}

const db = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
const schema = `pgserver_${process.pid}`;
try {
  await db.query(`CREATE SCHEMA ${schema}`);
  const lz4 = await hasLz4(db); // as the store decides
  const options = { smallBytes: SMALL_VALUE_BYTES, history: undefined };
  const made = async (table: string, schemaOptions: { versions: boolean; watch?: boolean }) => {
    const names = tableNames(schema, table);
    await db.query(schemaSql(names, { lz4, ...schemaOptions }));
    return names;
  };
  const ours = await made("ours", { versions: true });
  const trimmed = await made("trimmed", { versions: true });
  const watched = await made("watched", { versions: true, watch: true });
  const plain = await made("plain", { versions: false });
  const earlier = earlierLayout(tableNames(schema, "earlier"));
  await db.query(earlier.ddl);
  await db.query(`CREATE TABLE ${schema}.raw (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)`);

  const sql = buildStatements(ours, { ...options, versions: true });
  const withHistory = buildStatements(trimmed, { ...options, versions: true, history: 8 });
  const notifying = buildStatements(watched, { ...options, versions: true });
  const plainSql = buildStatements(plain, { ...options, versions: false });
  const raw = statement(`INSERT INTO ${schema}.raw (key, value) VALUES ($1, $2::bytea) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`);
  // A deadline an hour ahead: the fence is called and passes, as it does for a timely write.
  const deadline = () => [Date.now() + 3_600_000];
  const etag = statement(`SELECT coalesce((SELECT version FROM ${ours.main} WHERE key = $1 AND NOT deleted), 0)::text AS etag`);

  const variants: Variant[] = [
    { name: "raw pg upsert (one row, no history)", trips: 1, op: async (c, key) => c.query(bind(raw, [key, VALUE])) },
    { name: "before: appended, advisory locks", trips: 1, op: put(earlier.put) },
    { name: "stowage: row lock, no deadline", trips: 1, op: put(sql.put.none, () => [null]) },
    { name: "stowage: row lock + deadline fence", trips: 1, op: put(sql.put.none, deadline) },
    {
      name: "  fencing by a gated transaction instead",
      trips: 3,
      op: async (c, key) => {
        await c.query("BEGIN");
        await put(sql.put.none, () => [null])(c, key);
        await c.query("COMMIT");
      },
    },
    {
      name: "  fencing by compare-and-set instead",
      trips: 2,
      op: put(sql.put.ifMatch, async (c, key) => [null, (await c.query<{ etag: string }>(bind(etag, [key]))).rows[0]!.etag]),
    },
    { name: "stowage + fence, history=8", trips: 1, op: put(withHistory.put.none, deadline) },
    { name: "stowage + fence, table notifies (watch)", trips: 1, op: put(notifying.put.none, deadline) },
    { name: "stowage + fence, versions=false", trips: 1, op: put(plainSql.put.none, deadline) },
  ];
  const only = process.env.ONLY ? new RegExp(process.env.ONLY) : undefined;
  const chosen = variants.filter((v, i) => i === 0 || !only || only.test(v.name));
  for (const clients of clientCounts) await compare(db, "1 KiB put", clients, chosen);
  if (only) process.exit(0);
  await compare(db, "1 KiB get (the keys the puts wrote)", 1, [
    { name: "raw pg", trips: 1, op: async (c, key) => c.query(bind(statement(`SELECT value FROM ${schema}.raw WHERE key = $1`), [key])) },
    { name: "stowage (versions on)", trips: 1, op: async (c, key) => c.query(bind(sql.get, [key])) },
  ]);

  // Listing 1,000 keys of 100,000, and one level over them (100 sub-prefixes).
  console.log("\nlisting over 100k keys (median of 15, ms on the server and the wire)");
  await db.query(`INSERT INTO ${ours.main} (key, version) SELECT 'k/' || lpad((i / 1000)::text, 3, '0') || '/' || lpad(i::text, 6, '0'), i FROM generate_series(0, 99999) i`);
  await db.query(`ANALYZE ${ours.main}`);
  const range = await timeQuery(db, sql.range.text, ["k/050/", "k/0500", 5000]);
  console.log(`list 1k of 100k: ${range.ms.toFixed(2)} ms (${range.rows} keys)`);
  const folder = await timeQuery(db, sql.folder.text, ["k/", "k/", "k0", 1000]);
  console.log(`one level of 100k (100 sub-prefixes): ${folder.ms.toFixed(2)} ms (${folder.rows} entries)`);
} finally {
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch((err: unknown) => console.error(`could not drop schema ${schema}: ${String(err)}`));
  await db.end();
}
