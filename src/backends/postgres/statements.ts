/**
 * The SQL a PostgreSQL store runs, built once per store from its table names and options.
 * Every statement is named (a server-side prepared statement per connection), so the hot path
 * is Bind/Execute with no parsing or planning after the first use on a connection. Names are a
 * hash of the text: two stores on one pool with different tables never collide.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import type { QueryConfig } from "pg";
import type { TableNames } from "./schema.js";

const { escapeLiteral } = pg;

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

/**
 * The chunk rows of a value that hold bytes `[start, end)`, each cut to its part of them. Every
 * chunk but the last is as long as the first (the value was cut into pieces of one size), so
 * the first chunk's length says which rows to read: an index range scan of just those.
 */
export function chunkRangeSql(chunks: string, keyLiteral: string, version: bigint, start: number, end: number): string {
  const value = `key = ${keyLiteral} AND version = ${version}`;
  // Read once; as scalar subqueries (InitPlans) the bounds on seq are index conditions.
  const size = "(SELECT size FROM first)";
  const from = `greatest(${start} - seq * ${size}, 0)`;
  return `WITH first AS MATERIALIZED (SELECT octet_length(bytes)::bigint AS size FROM ${chunks} WHERE ${value} AND seq = 0)
    SELECT substring(bytes FROM (${from} + 1)::int FOR (least(${end} - seq * ${size}, octet_length(bytes)) - ${from})::int)
      FROM ${chunks} WHERE ${value} AND seq >= ${start} / ${size} AND seq < (${end} + ${size} - 1) / ${size} ORDER BY seq`;
}

/** A write's condition: none, `ifMatch` (the etag, a version, is the last parameter), `ifNoneMatch: "*"`. */
export type Condition = "none" | "ifMatch" | "ifNoneMatch";

/** One statement per condition. */
export type Conditional = Record<Condition, Statement>;

/** The single-statement writes, in a form without a write id and one with (see {@link once}). */
interface Writes {
  put: Conditional;
  delete: Omit<Conditional, "ifNoneMatch">;
  deleteMany: Statement;
}

/** The statements whose text depends on the layout (versions kept or not). */
interface LayoutStatements extends Writes {
  /** The writes of {@link Writes} that take effect once per write id, its last parameter. */
  once: Writes;
  putChunked: Conditional;
  putMany: Statement;
  get: Statement;
  head: Statement;
  getMany: Statement;
  stat: Statement;
}

/** Columns of a value's row, in both layouts. */
const ROW_COLUMNS = "key, version, size, modified, metadata, data, chunks";

/**
 * Versions past `history` a write deletes at most: one in the steady state, two when racing
 * writes left one extra. A larger batch makes every trim step on through the key's deleted
 * (not yet vacuumed) index entries looking for more; after `history` was lowered, the excess
 * goes over the following writes.
 */
const TRIM_BATCH = 2;

/** The next version number, from the store's sequence. */
const nextVersion = (n: TableNames) => `nextval(${n.sequenceLiteral})`;

/**
 * The fence (see schema.ts) on a single statement's write, after its row lock: true, or the
 * statement fails. `$deadline` is the deadline in epoch milliseconds on the server's clock, or
 * NULL (no deadline). A write in time is let through by the comparison alone; the function,
 * which raises the error, is called only for a late one (a plpgsql call on every write is a
 * cost every put would pay; see docs/postgres.md).
 */
const fenced = (n: TableNames, deadline: string) =>
  `(${deadline}::float8 IS NULL OR clock_timestamp() < to_timestamp(${deadline}::float8 / 1000) OR ${n.fenceFunction}(${deadline}::float8, false))`;

/**
 * A write id's part of a single-statement write. The write proceeds only when `notSeen` (no
 * write with the id took effect before the statement began); the statement's last part
 * records the id when the write took effect (`applied`, a CTE, returned rows), and says so:
 * its row count is 1 then, else 0. Two attempts of one write that run at once both pass
 * `notSeen`, but the second to record the id fails on the primary key and rolls back whole
 * (the store takes that as success): the id is recorded once, and only with a write that
 * took effect, so a conditional write whose condition failed can be tried again.
 */
interface Once {
  notSeen: string;
  record: (applied: string) => string;
}

function once(n: TableNames, id: string): Once {
  return {
    notSeen: `NOT EXISTS (SELECT FROM ${n.writes} WHERE write_id = ${id}::text)`,
    record: (applied) => `INSERT INTO ${n.writes} (write_id) SELECT ${id}::text WHERE EXISTS (SELECT FROM ${applied})`,
  };
}

/**
 * The statements of one store. Parameters: put `($1 key, $2 data, $3 metadata json|null,
 * $4 size, $5 deadline|null[, $6 etag])`; putChunked `($1 key, $2 the chunk rows' version,
 * $3 size, $4 metadata, $5 chunk count[, $6 etag])`; putMany `($1 keys[], $2 data[],
 * $3 metadata json[])`, keys distinct and sorted; delete `($1 key, $2 deadline[, $3 etag])`;
 * deleteMany `($1 keys[], $2 deadline)`; the `once` forms of put, delete and deleteMany take
 * the write id after these. Conditional writes return no row when their condition does not
 * hold (nor does a `once` form whose id was seen). The statements that run inside a
 * transaction (putChunked, putMany, putChunk) are fenced by `fence`, the transaction's last
 * statement before COMMIT, and take effect once per write id by `writeSeen` and `recordWrite`.
 */
export function buildStatements(n: TableNames, o: StatementOptions) {
  /** `data` when `size` is small, else NULL. */
  const ifSmall = (data: string, size: string) => `CASE WHEN ${size} <= ${o.smallBytes} THEN ${data} END`;
  // What a read needs of a row: small bytes inline; for larger ones, where they are (chunk
  // rows, or the row's own data) to COPY them.
  const valueColumns = `${ifSmall("data", "size")} AS data, chunks, version::text AS version, size::float8 AS size`;
  // With versions, `T` keeps deleted keys (see versionedStatements): listings skip them.
  const live = o.versions ? " AND NOT deleted" : "";
  const keyRange = (lower: ">=" | ">", upper: boolean) =>
    statement(`SELECT key FROM ${n.main} WHERE key ${lower} $1${upper ? " AND key < $2" : ""}${live} ORDER BY key LIMIT $${upper ? 3 : 2}`);
  /**
   * One level under `$1` (a folder listing), by skip-scan: each step is one index probe for the
   * first key at or after a bound, and yields that key, or the sub-prefix it is under (then the
   * next bound is past every key under that sub-prefix). So a page costs one probe per entry it
   * returns, whatever lies under its sub-prefixes. `$2` is the first bound, `$3` the prefix's
   * upper bound (absent in `folderFrom`), then the page size: one entry more is returned when
   * there are more. Keys hold no control characters, so `key || chr(1)` is the first string
   * after a key, and a sub-prefix ending in '/' is followed by the same text ending in '0'.
   */
  const folder = (upper: boolean) => {
    const limit = upper ? "$4" : "$3";
    const first = (bound: string) => `SELECT key FROM ${n.main} WHERE key >= ${bound}${upper ? " AND key < $3" : ""}${live} ORDER BY key LIMIT 1`;
    const entry = `LATERAL (SELECT CASE WHEN s = 0 THEN k.key ELSE left(k.key, char_length($1::text) + s) END AS entry, s > 0 AS is_prefix
        FROM (SELECT strpos(substr(k.key, char_length($1::text) + 1), '/') AS s) x) e`;
    return statement(`WITH RECURSIVE walk(entry, is_prefix, n) AS (
        SELECT e.entry, e.is_prefix, 1 FROM (${first("$2::text")}) k, ${entry}
        UNION ALL
        SELECT e.entry, e.is_prefix, w.n + 1 FROM walk w,
          LATERAL (${first("CASE WHEN w.is_prefix THEN left(w.entry, -1) || '0' ELSE w.entry || chr(1) END")}) k, ${entry}
         WHERE w.n <= ${limit}::int)
      SELECT entry, is_prefix FROM walk ORDER BY n`);
  };
  const shared = {
    nextVersion: statement(`SELECT ${nextVersion(n)}::text AS version`),
    putChunk: statement(`INSERT INTO ${n.chunks} (key, version, seq, bytes) VALUES ($1, $2::bigint, $3::int, $4::bytea)`),
    /** A transaction's last statement before COMMIT: `($1 deadline)`. */
    fence: statement(`SELECT ${n.fenceFunction}($1::float8, true) AS ok`),
    /**
     * A transaction with a write id: `writeSeen ($1 id)` first (a row: a write with the id took
     * effect, nothing is to be done; sent with BEGIN as `writeSeenLiteral`), then `recordWrite ($1 id)` or, with a deadline, the fence
     * and the record in one, `recordFenced ($1 deadline, $2 id)`, before COMMIT.
     */
    writeSeen: statement(`SELECT 1 FROM ${n.writes} WHERE write_id = $1::text`),
    /** `writeSeen` with the id inlined, to go in one simple query with BEGIN. */
    writeSeenLiteral: (id: string) => `SELECT 1 FROM ${n.writes} WHERE write_id = ${escapeLiteral(id)}`,
    recordWrite: statement(`INSERT INTO ${n.writes} (write_id) VALUES ($1::text)`),
    recordFenced: statement(`WITH recorded AS (INSERT INTO ${n.writes} (write_id) VALUES ($2::text)) SELECT ${n.fenceFunction}($1::float8, true) AS ok`),
    /** Forgets the ids of writes older than `$1` milliseconds. */
    sweepWrites: statement(`DELETE FROM ${n.writes} WHERE written_at < now() - make_interval(secs => $1::float8 / 1000)`),
    getVersion: statement(`SELECT ${valueColumns}, deleted FROM ${n.versions} WHERE key = $1 AND version = $2::bigint`),
    // `v.version`: a bare `version` in ORDER BY would be the output column, text, which sorts "10" before "9".
    versions: statement(`SELECT version::text AS version, size::float8 AS size, modified, deleted FROM ${n.versions} v WHERE key = $1 ORDER BY v.version`),
    /** Keys from `$1` (inclusive) below `$2`, at most `$3`; the variants drop the bound or make `$1` exclusive. */
    range: keyRange(">=", true),
    rangeFrom: keyRange(">=", false),
    rangeAfter: keyRange(">", true),
    rangeAfterFrom: keyRange(">", false),
    /** `($1 prefix, $2 first bound, $3 upper bound, $4 page size)`; `folderFrom` without `$3`. */
    folder: folder(true),
    folderFrom: folder(false),
  };
  const layout: LayoutStatements = o.versions ? versionedStatements(n, o, valueColumns, ifSmall) : plainStatements(n, valueColumns, ifSmall);
  return { ...shared, ...layout };
}

/**
 * Versions kept. `T` holds a row per key ever written: its current version, and whether it is
 * deleted. Every write of a key first writes that row — a put upserts it, a delete marks it —
 * and draws its version there, under the row lock it then holds until it commits; then it adds
 * its row to `T_versions` with that version. The versions of a key therefore grow in the order
 * its writes take effect, even when writers race, and `T` always agrees with each key's newest
 * row (a put racing a delete cannot leave a listed key whose newest row is a marker). A deleted
 * key keeps its row, so the next put of it updates the row under its lock too (a row removed
 * and inserted again would let that put draw its version before it waited). A condition is a
 * compare on that row, re-checked by PostgreSQL on the newest row version after any wait. A
 * batch locks the rows of its own keys, in key order (two batches cannot deadlock), and no others.
 */
function versionedStatements(n: TableNames, o: StatementOptions, valueColumns: string, ifSmall: (data: string, size: string) => string): LayoutStatements {
  const next = nextVersion(n);
  /**
   * The key's row written, locked and given its new version, per condition ($etag: the etag
   * parameter); with a write id, only when the id is not seen.
   */
  const lockRow = (condition: Condition, etag: string, id?: Once) => {
    const row = id ? `SELECT $1::text, ${next} WHERE ${id.notSeen}` : `VALUES ($1, ${next})`;
    const insert = `INSERT INTO ${n.main} AS t (key, version) ${row} ON CONFLICT (key) DO UPDATE SET version = ${next}, deleted = false`;
    if (condition === "ifNoneMatch") return `${insert} WHERE t.deleted RETURNING t.key, t.version`;
    if (condition === "ifMatch") return `UPDATE ${n.main} SET version = ${next} WHERE key = $1 AND version = ${etag}::bigint AND NOT deleted${id ? ` AND ${id.notSeen}` : ""} RETURNING key, version`;
    return `${insert} RETURNING t.key, t.version`;
  };
  /** The statement's last part: the row added to `T_versions` (`select` is where it comes from), and with a write id, its record. */
  const addRow = (columns: string, select: string, id?: Once) =>
    id ? `, added AS (INSERT INTO ${n.versions} (${columns}) ${select} RETURNING 1) ${id.record("added")}` : `INSERT INTO ${n.versions} (${columns}) ${select}`;
  // Keeps the newest `history` versions of a key this statement writes: its snapshot does not
  // see the row it adds, so it keeps history - 1 of the older ones. It steps back from the
  // newest and deletes what lies past them, at most TRIM_BATCH at a time.
  const trimOne = (written: string) =>
    o.history === undefined
      ? ""
      : `, trimmed AS (DELETE FROM ${n.versions} v USING (SELECT version FROM ${n.versions} WHERE key = $1 ORDER BY version DESC OFFSET ${o.history - 1} LIMIT ${TRIM_BATCH}) old
      WHERE v.key = $1 AND v.version = old.version AND EXISTS (SELECT FROM ${written}))`;
  const trimMany = (written: string) =>
    o.history === undefined
      ? ""
      : `, trimmed AS (DELETE FROM ${n.versions} v USING (SELECT DISTINCT key FROM ${written}) w,
        LATERAL (SELECT version FROM ${n.versions} WHERE key = w.key ORDER BY version DESC OFFSET ${o.history - 1} LIMIT ${TRIM_BATCH}) old
      WHERE v.key = w.key AND v.version = old.version)`;
  const newest = (columns: string) => `SELECT ${columns} FROM ${n.versions} v WHERE key = $1 ORDER BY v.version DESC LIMIT 1`;
  const conditional = (build: (condition: Condition) => string): Conditional => ({
    none: statement(build("none")),
    ifMatch: statement(build("ifMatch")),
    ifNoneMatch: statement(build("ifNoneMatch")),
  });
  const markDeleted = (condition: Condition, id?: Once) =>
    `UPDATE ${n.main} SET version = ${next}, deleted = true WHERE key = $1 AND NOT deleted${condition === "ifMatch" ? " AND version = $3::bigint" : ""}${id ? ` AND ${id.notSeen}` : ""} RETURNING key, version`;
  // The fence runs on the row `live` yields, that is once the row lock is held, so a failed
  // check rolls the whole statement back.
  const put = (c: Condition, id?: Once) => `WITH live AS (${lockRow(c, "$6", id)}) ${trimOne("live")}
      ${addRow(ROW_COLUMNS, `SELECT key, version, $4::bigint, now(), $3::jsonb, $2::bytea, 0 FROM live WHERE ${fenced(n, "$5")}`, id)}`;
  // A key that is not live gets no marker (a delete of a missing key changes nothing).
  const del = (c: Condition, id?: Once) => `WITH gone AS (${markDeleted(c, id)}) ${trimOne("gone")}
      ${addRow("key, version, size, deleted", `SELECT key, version, 0, true FROM gone WHERE ${fenced(n, "$2")}`, id)}`;
  const deleteMany = (id?: Once) => `WITH locked AS MATERIALIZED (SELECT key FROM ${n.main} WHERE key = ANY($1::text[]) AND NOT deleted${id ? ` AND ${id.notSeen}` : ""} ORDER BY key FOR UPDATE),
        gone AS (UPDATE ${n.main} m SET version = ${next}, deleted = true FROM locked WHERE m.key = locked.key AND NOT m.deleted RETURNING m.key, m.version) ${trimMany("gone")}
      ${addRow("key, version, size, deleted", `SELECT key, version, 0, true FROM gone WHERE ${fenced(n, "$2")}`, id)}`;
  return {
    put: conditional((c) => put(c)),
    delete: { none: statement(del("none")), ifMatch: statement(del("ifMatch")) },
    deleteMany: statement(deleteMany()),
    // The write id follows the other parameters.
    once: {
      put: conditional((c) => put(c, once(n, c === "ifMatch" ? "$7" : "$6"))),
      delete: { none: statement(del("none", once(n, "$3"))), ifMatch: statement(del("ifMatch", once(n, "$4"))) },
      deleteMany: statement(deleteMany(once(n, "$3"))),
    },
    // A chunked value's rows were written under a version drawn before them; it takes effect
    // now, under the row lock, with the version drawn there, and its chunk rows move to it.
    putChunked: conditional(
      (c) => `WITH live AS (${lockRow(c, "$6")}),
        v AS (INSERT INTO ${n.versions} (${ROW_COLUMNS}) SELECT key, version, $3::bigint, statement_timestamp(), $4::jsonb, NULL, $5::int FROM live RETURNING version),
        moved AS (UPDATE ${n.chunks} c SET version = v.version FROM v WHERE c.key = $1 AND c.version = $2::bigint) ${trimOne("live")}
      SELECT count(*)::int AS applied FROM v`,
    ),
    // In a transaction. The keys are distinct and sorted: rows are locked in key order.
    putMany: statement(`WITH u AS (SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[]) WITH ORDINALITY AS u(key, data, metadata, n)),
        live AS (INSERT INTO ${n.main} AS t (key, version) SELECT key, ${next} FROM u ORDER BY n
          ON CONFLICT (key) DO UPDATE SET version = ${next}, deleted = false RETURNING t.key, t.version) ${trimMany("live")}
      INSERT INTO ${n.versions} (${ROW_COLUMNS})
      SELECT u.key, live.version, octet_length(u.data), now(), u.metadata::jsonb, u.data, 0 FROM u JOIN live ON live.key = u.key`),
    // The hot path asks for a small value's bytes and nothing else (each further column costs
    // a little on a 1 KiB read); NULL (a larger value, or a delete marker) sends the read to `head`.
    get: statement(newest(`${ifSmall("data", "size")} AS data`)),
    head: statement(newest(`${valueColumns}, deleted`)),
    // Each key's newest row by its own index step (DISTINCT ON would read every version).
    getMany: statement(`SELECT newest.* FROM unnest($1::text[]) AS k(key),
      LATERAL (SELECT key, ${valueColumns}, deleted FROM ${n.versions} v WHERE v.key = k.key ORDER BY v.version DESC LIMIT 1) newest`),
    stat: statement(newest("version::text AS version, size::float8 AS size, modified, metadata, deleted")),
  };
}

/** No versions: one row per key in `T`, replaced by each put (an upsert). */
function plainStatements(n: TableNames, valueColumns: string, ifSmall: (data: string, size: string) => string): LayoutStatements {
  const next = nextVersion(n);
  const setLatest = "size = EXCLUDED.size, modified = EXCLUDED.modified, metadata = EXCLUDED.metadata, data = EXCLUDED.data, chunks = EXCLUDED.chunks";
  const setGiven = (version: string, values: string) => `version = ${version}, (size, modified, metadata, data, chunks) = (${values})`;
  // The version is drawn again in DO UPDATE, under the row lock. RETURNING runs once the row is
  // written, so the fence there sees the lock held on every path (a new key, an update, or an
  // insert retried after a racing delete).
  // With a write id, the write proceeds only when the id is not seen.
  const write = (condition: Condition, version: string, values: string, returning: string, id?: Once) => {
    if (condition === "ifMatch") return `UPDATE ${n.main} SET ${setGiven(version, values)} WHERE key = $1 AND version = $6::bigint${id ? ` AND ${id.notSeen}` : ""} RETURNING ${returning}`;
    const row = id ? `SELECT $1::text, ${version}, ${values} WHERE ${id.notSeen}` : `VALUES ($1, ${version}, ${values})`;
    const insert = `INSERT INTO ${n.main} AS m (${ROW_COLUMNS}) ${row}`;
    if (condition === "ifNoneMatch") return `${insert} ON CONFLICT (key) DO NOTHING RETURNING ${returning}`;
    return `${insert} ON CONFLICT (key) DO UPDATE SET version = ${version === next ? next : "EXCLUDED.version"}, ${setLatest} RETURNING ${returning}`;
  };
  const byKey = (columns: string) => statement(`SELECT ${columns} FROM ${n.main} WHERE key = $1`);
  const conditional = (build: (condition: Condition) => string): Conditional => ({
    none: statement(build("none")),
    ifMatch: statement(build("ifMatch")),
    ifNoneMatch: statement(build("ifNoneMatch")),
  });
  /** With a write id: the write as the CTE `applied`, then its record. */
  const recorded = (text: string, id?: Once) => (id ? `WITH applied AS (${text}) ${id.record("applied")}` : text);
  const put = (c: Condition, id?: Once) => recorded(write(c, next, "$4::bigint, now(), $3::jsonb, $2::bytea, 0", `${fenced(n, "$5")} AS ok`, id), id);
  const del = (c: Condition, id?: Once) =>
    recorded(`DELETE FROM ${n.main} WHERE key = $1${c === "ifMatch" ? " AND version = $3::bigint" : ""}${id ? ` AND ${id.notSeen}` : ""} RETURNING ${fenced(n, "$2")} AS ok`, id);
  const deleteMany = (id?: Once) =>
    recorded(
      `DELETE FROM ${n.main} m USING (SELECT key FROM ${n.main} WHERE key = ANY($1::text[])${id ? ` AND ${id.notSeen}` : ""} ORDER BY key FOR UPDATE) locked
      WHERE m.key = locked.key RETURNING ${fenced(n, "$2")} AS ok`,
      id,
    );
  return {
    put: conditional((c) => put(c)),
    delete: { none: statement(del("none")), ifMatch: statement(del("ifMatch")) },
    deleteMany: statement(deleteMany()),
    // The write id follows the other parameters.
    once: {
      put: conditional((c) => put(c, once(n, c === "ifMatch" ? "$7" : "$6"))),
      delete: { none: statement(del("none", once(n, "$3"))), ifMatch: statement(del("ifMatch", once(n, "$4"))) },
      deleteMany: statement(deleteMany(once(n, "$3"))),
    },
    // A chunked value takes effect now, pointing the key at the chunk rows' version.
    putChunked: conditional((c) => write(c, "$2::bigint", "$3::bigint, statement_timestamp(), $4::jsonb, NULL, $5::int", "1 AS applied")),
    // In a transaction. The keys are distinct and sorted: rows are locked in key order.
    putMany: statement(`INSERT INTO ${n.main} AS m (${ROW_COLUMNS})
      SELECT u.key, ${next}, octet_length(u.data), now(), u.metadata::jsonb, u.data, 0
        FROM unnest($1::text[], $2::bytea[], $3::text[]) WITH ORDINALITY AS u(key, data, metadata, n) ORDER BY u.n
      ON CONFLICT (key) DO UPDATE SET version = ${next}, ${setLatest}`),
    get: byKey(`${ifSmall("data", "size")} AS data`),
    head: byKey(valueColumns),
    getMany: statement(`SELECT key, ${valueColumns} FROM ${n.main} WHERE key = ANY($1::text[])`),
    stat: byKey("version::text AS version, size::float8 AS size, modified, metadata"),
  };
}
