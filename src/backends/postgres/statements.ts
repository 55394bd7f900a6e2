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
  /** Keep a history row per put and delete. */
  versions: boolean;
  /**
   * Values up to this size are "small": read in the one statement that finds the row, and
   * with versions on kept in the main row as well as the history row. Larger ones are kept
   * once (in the history row when versions are on) and read by binary COPY.
   */
  smallBytes: number;
  /** Keep at most this many versions per key (undefined: all). At least 2. */
  history: number | undefined;
}

export type Statements = ReturnType<typeof buildStatements>;

/**
 * The statements of one store. Parameters: put `($1 key, $2 data, $3 metadata json|null,
 * $4 size)`; putChunked `($1 key, $2 version, $3 size, $4 metadata, $5 chunk count)`;
 * putMany `($1 keys[], $2 data[], $3 metadata json[])`.
 */
export function buildStatements(n: TableNames, o: StatementOptions) {
  const next = `nextval(${n.sequenceLiteral})`;
  const setLatest = "size = EXCLUDED.size, modified = EXCLUDED.modified, metadata = EXCLUDED.metadata, data = EXCLUDED.data, chunks = EXCLUDED.chunks";
  /** `data` when `size` is small, else NULL. */
  const ifSmall = (data: string, size: string) => `CASE WHEN ${size} <= ${o.smallBytes} THEN ${data} END`;
  // With versions on, a large value's bytes go to the history row only (the main row points
  // at it by version): a put writes them once.
  const mainData = (data: string, size: string) => (o.versions ? ifSmall(data, size) : data);
  // The version is drawn again in DO UPDATE: evaluated under the row lock, so versions of one
  // key grow in the order the writes take effect, even when writers race.
  const upsertOne = `INSERT INTO ${n.main} AS m (key, version, size, modified, metadata, data, chunks)
    VALUES ($1, ${next}, $4::bigint, now(), $3::jsonb, ${mainData("$2::bytea", "$4::bigint")}, 0)
    ON CONFLICT (key) DO UPDATE SET version = ${next}, ${setLatest}`;
  const upsertMany = `INSERT INTO ${n.main} AS m (key, version, size, modified, metadata, data, chunks)
    SELECT u.key, ${next}, octet_length(u.data), now(), u.metadata::jsonb, ${mainData("u.data", "octet_length(u.data)")}, 0
      FROM unnest($1::text[], $2::bytea[], $3::text[]) AS u(key, data, metadata)
    ON CONFLICT (key) DO UPDATE SET version = ${next}, ${setLatest}`;
  // A chunked value's version was drawn before its chunks were written; a newer write that
  // took effect meanwhile wins (as if the stream had finished first).
  const upsertChunked = `INSERT INTO ${n.main} AS m (key, version, size, modified, metadata, data, chunks)
    VALUES ($1, $2::bigint, $3::bigint, now(), $4::jsonb, NULL, $5::int)
    ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, ${setLatest} WHERE m.version < EXCLUDED.version`;
  const historyColumns = "key, version, size, modified, metadata, data, chunks";
  // Keeps the newest `history` versions: this statement's snapshot does not see the row it
  // adds, so it keeps history - 1 of the older ones.
  const trimOne = o.history === undefined ? "" : `, trimmed AS (DELETE FROM ${n.versions} WHERE key = $1 AND version <
      (SELECT version FROM ${n.versions} WHERE key = $1 ORDER BY version DESC OFFSET ${o.history - 2} LIMIT 1))`;

  // What a read needs of a row: small bytes inline; where larger ones are (`inline`: in this
  // row's data, `chunks` > 0: chunk rows, else the history row of `version`) to COPY them.
  const valueColumns = `${ifSmall("data", "size")} AS data, data IS NOT NULL AS inline, chunks, version::text AS version, size::float8 AS size`;

  const keyRange = (lower: ">=" | ">", upper: boolean) =>
    statement(`SELECT key FROM ${n.main} WHERE key ${lower} $1${upper ? " AND key < $2" : ""} ORDER BY key LIMIT $${upper ? 3 : 2}`);

  return {
    put: o.versions
      ? statement(`WITH m AS (${upsertOne} RETURNING key, version, size, modified, metadata) ${trimOne}
          INSERT INTO ${n.versions} (${historyColumns}) SELECT key, version, size, modified, metadata, $2::bytea, 0 FROM m`)
      : statement(upsertOne),
    putChunked: o.versions
      ? statement(`WITH m AS (${upsertChunked} RETURNING key),
          v AS (INSERT INTO ${n.versions} (${historyColumns}) VALUES ($1, $2::bigint, $3::bigint, now(), $4::jsonb, NULL, $5::int)) ${trimOne}
          SELECT count(*)::int AS applied FROM m`)
      : statement(`WITH m AS (${upsertChunked} RETURNING key) SELECT count(*)::int AS applied FROM m`),
    // A batch holds each key once, so the history rows find their bytes by key.
    putMany: o.versions
      ? statement(`WITH m AS (${upsertMany} RETURNING key, version, size, modified, metadata)
          INSERT INTO ${n.versions} (${historyColumns})
          SELECT m.key, m.version, m.size, m.modified, m.metadata, u.data, 0
            FROM m JOIN unnest($1::text[], $2::bytea[]) AS u(key, data) ON u.key = m.key`)
      : statement(upsertMany),
    trimMany:
      o.history === undefined
        ? undefined
        : statement(`DELETE FROM ${n.versions} v USING (
            SELECT key, version, row_number() OVER (PARTITION BY key ORDER BY version DESC) AS rn
              FROM ${n.versions} WHERE key = ANY($1::text[])) old
           WHERE v.key = old.key AND v.version = old.version AND old.rn > ${o.history}`),
    nextVersion: statement(`SELECT ${next}::text AS version`),
    putChunk: statement(`INSERT INTO ${n.chunks} (key, version, seq, bytes) VALUES ($1, $2::bigint, $3::int, $4::bytea)`),
    // The hot path asks for a small value's bytes and nothing else (each further column costs
    // 2-5% of a 1 KiB read); `head` then says where a larger value's bytes are.
    get: statement(`SELECT ${ifSmall("data", "size")} AS data FROM ${n.main} WHERE key = $1`),
    head: statement(`SELECT ${valueColumns} FROM ${n.main} WHERE key = $1`),
    getVersion: statement(`SELECT ${valueColumns}, deleted FROM ${n.versions} WHERE key = $1 AND version = $2::bigint`),
    getMany: statement(`SELECT key, ${valueColumns} FROM ${n.main} WHERE key = ANY($1::text[])`),
    stat: statement(`SELECT version::text AS version, size::float8 AS size, modified, metadata FROM ${n.main} WHERE key = $1`),
    versions: statement(`SELECT version::text AS version, size::float8 AS size, modified, deleted FROM ${n.versions} WHERE key = $1 ORDER BY version`),
    delete: o.versions
      ? statement(`WITH d AS (DELETE FROM ${n.main} WHERE key = $1 RETURNING key) ${trimOne}
          INSERT INTO ${n.versions} (key, version, size, deleted) SELECT key, ${next}, 0, true FROM d`)
      : statement(`DELETE FROM ${n.main} WHERE key = $1`),
    deleteMany: o.versions
      ? statement(`WITH d AS (DELETE FROM ${n.main} WHERE key = ANY($1::text[]) RETURNING key)
          INSERT INTO ${n.versions} (key, version, size, deleted) SELECT key, ${next}, 0, true FROM d`)
      : statement(`DELETE FROM ${n.main} WHERE key = ANY($1::text[])`),
    /** Keys from `$1` (inclusive) below `$2`, at most `$3`; the variants drop the bound or make `$1` exclusive. */
    range: keyRange(">=", true),
    rangeFrom: keyRange(">=", false),
    rangeAfter: keyRange(">", true),
    rangeAfterFrom: keyRange(">", false),
  };
}
