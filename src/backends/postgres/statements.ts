/**
 * The SQL a PostgreSQL store runs, built once per store from its table names and options.
 * Every statement is named (a server-side prepared statement per connection), so the hot path
 * is Bind/Execute with no parsing or planning after the first use on a connection. Names are a
 * hash of the text: two stores on one pool with different tables never collide.
 */
import { createHash } from "node:crypto";
import type { QueryConfig } from "pg";
import type { TableNames } from "./schema.js";

/** A named statement; `values` are supplied per call. */
export interface Statement {
  name: string;
  text: string;
}

export function statement(text: string): Statement {
  const compact = text.replace(/\s+/g, " ").trim();
  return { name: `stowage_${createHash("sha1").update(compact).digest("hex").slice(0, 20)}`, text: compact };
}

/** A query config for `pool.query`/`client.query` (text-mode results; bytea arrives as hex). */
export function bind(s: Statement, values: unknown[]): QueryConfig {
  return { name: s.name, text: s.text, values };
}

export interface StatementOptions {
  /** Keep a history row per put and delete (the versioned layout, see schema.ts). */
  versions: boolean;
  /**
   * Values up to this size are "small": read in the one statement that finds the row. Larger
   * ones are read by binary COPY.
   */
  smallBytes: number;
  /** Keep at most this many versions per key (undefined: all). At least 2. */
  history: number | undefined;
}

export type Statements = ReturnType<typeof buildStatements>;

/** The statements whose text depends on the layout (versions kept or not). */
interface LayoutStatements {
  put: Statement;
  /** Versioned: the key's lock, taken before a chunked put's last statement. */
  lockKey: Statement | undefined;
  /** Versioned: the locks of a batch's keys (`$1`), taken first in a putMany's transaction. */
  lockBatch: Statement | undefined;
  putChunked: Statement;
  putMany: Statement;
  /** With `history`: drops each key's versions past the newest N. */
  trimMany: Statement | undefined;
  get: Statement;
  head: Statement;
  getMany: Statement;
  stat: Statement;
  delete: Statement;
  deleteMany: Statement;
  /** Plain: drops a chunked put's rows when a newer write overtook it. */
  dropChunks: Statement | undefined;
}

/** Columns of a value's row, in both layouts. */
const ROW_COLUMNS = "key, version, size, modified, metadata, data, chunks";

/**
 * Buckets of keys for a batch's locks (see versionedStatements): at most this many locks per
 * batch, the server's default `max_locks_per_transaction`, so batches on every connection at
 * once still fit its lock table (one lock per key, 20,000 keys overflowed it).
 */
export const LOCK_BUCKETS = 64;

/** The next version number, from the store's sequence. */
const nextVersion = (n: TableNames) => `nextval(${n.sequenceLiteral})`;

/**
 * The statements of one store. Parameters: put `($1 key, $2 data, $3 metadata json|null,
 * $4 size)`; putChunked `($1 key, $2 version, $3 size, $4 metadata, $5 chunk count)`;
 * putMany `($1 keys[], $2 data[], $3 metadata json[])`.
 */
export function buildStatements(n: TableNames, o: StatementOptions) {
  /** `data` when `size` is small, else NULL. */
  const ifSmall = (data: string, size: string) => `CASE WHEN ${size} <= ${o.smallBytes} THEN ${data} END`;
  // What a read needs of a row: small bytes inline; for larger ones, where they are (chunk
  // rows, or the row's own data) to COPY them.
  const valueColumns = `${ifSmall("data", "size")} AS data, chunks, version::text AS version, size::float8 AS size`;
  const keyRange = (lower: ">=" | ">", upper: boolean) =>
    statement(`SELECT key FROM ${n.main} WHERE key ${lower} $1${upper ? " AND key < $2" : ""} ORDER BY key LIMIT $${upper ? 3 : 2}`);
  const shared = {
    nextVersion: statement(`SELECT ${nextVersion(n)}::text AS version`),
    putChunk: statement(`INSERT INTO ${n.chunks} (key, version, seq, bytes) VALUES ($1, $2::bigint, $3::int, $4::bytea)`),
    getVersion: statement(`SELECT ${valueColumns}, deleted FROM ${n.versions} WHERE key = $1 AND version = $2::bigint`),
    // `v.version`: a bare `version` in ORDER BY would be the output column, text, which sorts "10" before "9".
    versions: statement(`SELECT version::text AS version, size::float8 AS size, modified, deleted FROM ${n.versions} v WHERE key = $1 ORDER BY v.version`),
    /** Keys from `$1` (inclusive) below `$2`, at most `$3`; the variants drop the bound or make `$1` exclusive. */
    range: keyRange(">=", true),
    rangeFrom: keyRange(">=", false),
    rangeAfter: keyRange(">", true),
    rangeAfterFrom: keyRange(">", false),
  };
  const layout: LayoutStatements = o.versions ? versionedStatements(n, o, valueColumns, ifSmall) : plainStatements(n, valueColumns, ifSmall);
  return { ...shared, ...layout };
}

/**
 * Versions kept: a put appends its row to `T_versions` and adds the key to `T` if it is not
 * there (no write when it is: an overwrite costs one row, as a plain upsert does); a read takes
 * a key's newest row. Each write holds advisory locks (in memory, no WAL, until commit) on its
 * keys and draws its versions under them, so writes to a key take effect in version order and
 * `T` always agrees with the newest row (a put racing a delete cannot leave a listed key whose
 * newest row is a marker). A write of one key locks it, and its bucket shared; a batch locks the
 * buckets of its keys (at most LOCK_BUCKETS) exclusively, so it waits for, and holds off, the
 * writes of one key in them.
 */
function versionedStatements(n: TableNames, o: StatementOptions, valueColumns: string, ifSmall: (data: string, size: string) => string): LayoutStatements {
  const next = nextVersion(n);
  const bucket = (key: string) => `hashtext(${key}) & ${LOCK_BUCKETS - 1}`;
  const lockKey = (key: string) => `pg_advisory_xact_lock_shared(${n.lockClass}, ${bucket(key)}), pg_advisory_xact_lock(${n.lockClass ^ 1}, hashtext(${key}))`;
  // In one order (by bucket) for every batch, so batches do not deadlock on each other.
  const lockBuckets = `SELECT count(*) AS n FROM (SELECT pg_advisory_xact_lock(${n.lockClass}, b)
      FROM (SELECT DISTINCT ${bucket("k")} AS b FROM unnest($1::text[]) AS k ORDER BY 1) buckets) locks`;
  // Keeps the newest `history` versions: this statement's snapshot does not see the row it
  // adds, so it keeps history - 1 of the older ones.
  const trimOne = o.history === undefined ? "" : `, trimmed AS (DELETE FROM ${n.versions} WHERE key = $1 AND version <
      (SELECT version FROM ${n.versions} WHERE key = $1 ORDER BY version DESC OFFSET ${o.history - 2} LIMIT 1))`;
  const newest = (columns: string) => `SELECT ${columns} FROM ${n.versions} v WHERE key = $1 ORDER BY v.version DESC LIMIT 1`;
  return {
    // The lock is taken when `lock` is first read: before the version is drawn and before the
    // key is added (which reads it too, so the order does not rest on when CTEs run).
    put: statement(`WITH lock AS (SELECT ${lockKey("$1")}),
        live AS (INSERT INTO ${n.main} (key) SELECT $1 FROM lock ON CONFLICT DO NOTHING) ${trimOne}
      INSERT INTO ${n.versions} (${ROW_COLUMNS}) SELECT $1, ${next}, $4::bigint, now(), $3::jsonb, $2::bytea, 0 FROM lock`),
    /** Run first, in the chunked put's transaction: the next statement then sees the key's newest row. */
    lockKey: statement(`SELECT ${lockKey("$1")}`),
    lockBatch: statement(lockBuckets),
    // A chunked value's version was drawn before its chunks were written; a newer write that
    // took effect meanwhile stays the value (as if the stream had finished first), and the key
    // is live only if that newer write is not a delete.
    putChunked: statement(`WITH v AS (INSERT INTO ${n.versions} (${ROW_COLUMNS}) VALUES ($1, $2::bigint, $3::bigint, now(), $4::jsonb, NULL, $5::int)),
        live AS (INSERT INTO ${n.main} (key) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM ${n.versions} WHERE key = $1 AND version > $2::bigint)
          ON CONFLICT DO NOTHING) ${trimOne}
      SELECT 1 AS applied`),
    // After `lockBatch` in the same transaction. A batch holds each key once.
    putMany: statement(`WITH live AS (INSERT INTO ${n.main} (key) SELECT key FROM unnest($1::text[]) AS u(key) ON CONFLICT DO NOTHING)
      INSERT INTO ${n.versions} (${ROW_COLUMNS})
      SELECT u.key, ${next}, octet_length(u.data), now(), u.metadata::jsonb, u.data, 0
        FROM unnest($1::text[], $2::bytea[], $3::text[]) AS u(key, data, metadata)`),
    trimMany:
      o.history === undefined
        ? undefined
        : statement(`DELETE FROM ${n.versions} v USING (
            SELECT key, version, row_number() OVER (PARTITION BY key ORDER BY version DESC) AS rn
              FROM ${n.versions} WHERE key = ANY($1::text[])) old
           WHERE v.key = old.key AND v.version = old.version AND old.rn > ${o.history}`),
    // The hot path asks for a small value's bytes and nothing else (each further column costs
    // 2-5% of a 1 KiB read); NULL (a larger value, or a delete marker) sends the read to `head`.
    get: statement(newest(`${ifSmall("data", "size")} AS data`)),
    head: statement(newest(`${valueColumns}, deleted`)),
    // Each key's newest row by its own index step (DISTINCT ON would read every version).
    getMany: statement(`SELECT newest.* FROM unnest($1::text[]) AS k(key),
      LATERAL (SELECT key, ${valueColumns}, deleted FROM ${n.versions} v WHERE v.key = k.key ORDER BY v.version DESC LIMIT 1) newest`),
    stat: statement(newest("version::text AS version, size::float8 AS size, modified, metadata, deleted")),
    // The snapshot is taken before the lock: a put that waited ahead of us and made the key live
    // is not seen, and the delete takes effect as if before that put (the key stays, newest a put).
    delete: statement(`WITH lock AS (SELECT ${lockKey("$1")}),
        gone AS (DELETE FROM ${n.main} WHERE key = $1 AND EXISTS (SELECT FROM lock) RETURNING key) ${trimOne}
      INSERT INTO ${n.versions} (key, version, size, deleted) SELECT key, ${next}, 0, true FROM gone`),
    deleteMany: statement(`WITH lock AS (${lockBuckets}),
        gone AS (DELETE FROM ${n.main} WHERE key = ANY($1::text[]) AND EXISTS (SELECT FROM lock) RETURNING key)
      INSERT INTO ${n.versions} (key, version, size, deleted) SELECT key, ${next}, 0, true FROM gone`),
    dropChunks: undefined,
  };
}

/** No versions: one row per key in `T`, replaced by each put (an upsert). */
function plainStatements(n: TableNames, valueColumns: string, ifSmall: (data: string, size: string) => string): LayoutStatements {
  const next = nextVersion(n);
  const setLatest = "size = EXCLUDED.size, modified = EXCLUDED.modified, metadata = EXCLUDED.metadata, data = EXCLUDED.data, chunks = EXCLUDED.chunks";
  // The version is drawn again in DO UPDATE: evaluated under the row lock, so versions of one
  // key grow in the order the writes take effect, even when writers race.
  const upsert = (rows: string) => `INSERT INTO ${n.main} AS m (${ROW_COLUMNS}) ${rows} ON CONFLICT (key) DO UPDATE SET version = ${next}, ${setLatest}`;
  const byKey = (columns: string) => statement(`SELECT ${columns} FROM ${n.main} WHERE key = $1`);
  return {
    put: statement(upsert(`VALUES ($1, ${next}, $4::bigint, now(), $3::jsonb, $2::bytea, 0)`)),
    lockKey: undefined,
    lockBatch: undefined,
    // A chunked value's version was drawn before its chunks were written; a newer write that
    // took effect meanwhile wins (as if the stream had finished first).
    putChunked: statement(`WITH m AS (INSERT INTO ${n.main} AS m (${ROW_COLUMNS})
        VALUES ($1, $2::bigint, $3::bigint, now(), $4::jsonb, NULL, $5::int)
        ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, ${setLatest} WHERE m.version < EXCLUDED.version RETURNING key)
      SELECT count(*)::int AS applied FROM m`),
    putMany: statement(upsert(`SELECT u.key, ${next}, octet_length(u.data), now(), u.metadata::jsonb, u.data, 0
      FROM unnest($1::text[], $2::bytea[], $3::text[]) AS u(key, data, metadata)`)),
    trimMany: undefined,
    get: byKey(`${ifSmall("data", "size")} AS data`),
    head: byKey(valueColumns),
    getMany: statement(`SELECT key, ${valueColumns} FROM ${n.main} WHERE key = ANY($1::text[])`),
    stat: byKey("version::text AS version, size::float8 AS size, modified, metadata"),
    delete: statement(`DELETE FROM ${n.main} WHERE key = $1`),
    deleteMany: statement(`DELETE FROM ${n.main} WHERE key = ANY($1::text[])`),
    /** Chunk rows nothing refers to, after a chunked put that a newer write overtook. */
    dropChunks: statement(`DELETE FROM ${n.chunks} WHERE key = $1 AND version = $2::bigint`),
  };
}
