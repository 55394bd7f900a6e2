import pg from "pg";
import type { Pool, PoolClient, PoolConfig, QueryConfig, QueryResult, QueryResultRow } from "pg";
import { StorageError, type StorageOp } from "../errors.js";
import { compareKeys, prefixUpperBound } from "../keys.js";
import { notFound } from "../internal/not-found.js";
import { readUrlParams } from "../internal/url-params.js";
import { BaseStore, folderEntry, resolveRange, type CleanBatchEntry, type CleanDeleteOptions, type CleanFolderOptions, type CleanListPageOptions, type CleanPutOptions, type CleanWriteOptions } from "../store.js";
import type { Capabilities, ChangeEvent, GetOptions, ListPage, Metadata, ObjectInfo, OperationOptions, StoreUrl, VersionInfo, WriteConditions } from "../types.js";
import { rechunk } from "./postgres/chunks.js";
import { ServerClock } from "./postgres/clock.js";
import { copyOut, CopyFormatError, type CopyResult } from "./postgres/copy-out.js";
import { answeredByServer, classifyPgError } from "./postgres/errors.js";
import { DEFAULT_TABLE, assertIdentifier, ensureSchema, tableNames, type TableNames } from "./postgres/schema.js";
import { bind, buildStatements, chunkRangeSql, type Condition, type Statement, type Statements } from "./postgres/statements.js";
import { Listener } from "./postgres/watch.js";

export { DEFAULT_TABLE as DEFAULT_POSTGRES_TABLE, schemaSql as postgresSchemaSql, tableNames as postgresTableNames } from "./postgres/schema.js";

/** Values up to this size are stored inline in one row; larger ones in chunk rows of this size. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const MIN_CHUNK_BYTES = 1024;
const MAX_CHUNK_BYTES = 256 * 1024 * 1024;
/** Versions kept per key, delete markers included, unless `history` says otherwise (see docs/postgres.md). */
export const DEFAULT_POSTGRES_HISTORY = 8;
/** Keys fetched per statement when `list` walks a prefix. */
const LIST_BATCH = 5000;
/** A `putMany` statement carries at most this many entries / bytes; bigger batches take several, in one transaction. */
const PUT_MANY_ROWS = 1000;
const PUT_MANY_BYTES = 16 * 1024 * 1024;
/**
 * How long the id of a write that took effect is kept (`dedupeWindow`): a retried attempt with
 * that id within it changes nothing. As long as JetStream's default duplicate window.
 */
export const DEFAULT_DEDUPE_WINDOW_MS = 2 * 60 * 1000;
const MIN_DEDUPE_WINDOW_MS = 1000;

/**
 * Options for {@link PostgresStore.open}. With `openStore`, the URL's query parameters of the
 * same names win: `postgres://user@host:5432/db?table=events&schema=app&versions=false&history=10`.
 */
export interface PostgresStoreOptions {
  /**
   * An existing pool to use. It stays the caller's: `close()` does not end it. Without one the
   * store makes a pool from `connectionString` and ends it on `close()`.
   */
  pool?: Pool;
  /** `postgres://user:password@host:port/database` (any libpq-style parameters pg accepts). */
  connectionString?: string;
  /** Further settings for the pool the store makes (`max`, `ssl`, timeouts…). */
  poolConfig?: PoolConfig;
  /** Table name (default `stowage_objects`): letters, digits, `_`, at most 48 characters. */
  table?: string;
  /**
   * Schema of the tables (default: the connection's `current_schema()`, usually `public`).
   * PostgreSQL's own schemas (`pg_catalog`, `information_schema`, `pg_toast`, `pg_temp…`) are refused.
   */
  schema?: string;
  /**
   * Keep versions in `<table>_versions` (default true). Off: a put is one upsert. The tables
   * differ, so a table serves the setting it was made with (the other is refused).
   */
  versions?: boolean;
  /**
   * With versions on, keep at most this many versions per key, delete markers included
   * (default 8, at least 2; `Infinity` keeps them all).
   */
  history?: number;
  /**
   * Values up to this many bytes are stored inline in one row; larger values and streams are
   * written as rows of this size in `<table>_chunks`, so memory stays about one chunk.
   * Default 1 MiB; from 1 KiB to 256 MiB.
   */
  chunkBytes?: number;
  /**
   * Create the tables when they are missing (default true). `false`: create nothing; a missing
   * table rejects `open` with kind `not_found`, naming it.
   */
  create?: boolean;
  /**
   * Make every write of the table send a NOTIFY, so `watch` works (default false: a table whose
   * writes already notify is watchable whatever this says). It is a setting of the table, kept
   * in its triggers: every writer of the table pays for it, in every process. PostgreSQL
   * serialises the commits of notifying transactions, so under many concurrent writers it
   * costs throughput (see docs/postgres.md).
   */
  watch?: boolean;
  /**
   * Milliseconds the id of a write that took effect is kept in `<table>_writes` (default 2
   * minutes, at least 1 s): an attempt carrying the same `writeId` within that time (a retry
   * whose earlier attempt took effect, its reply lost) resolves without writing again.
   */
  dedupeWindow?: number;
}

/** Options after validation. */
interface Resolved {
  table: string;
  schema: string | undefined;
  versions: boolean;
  history: number | undefined;
  chunkBytes: number;
  create: boolean;
  watch: boolean;
  dedupeWindow: number;
}

/** What a read finds of a value (see `valueColumns` in statements.ts). */
interface ValueRow {
  /** The bytes of a small value; null for a larger one (read by COPY). */
  data: Buffer | null;
  /** More than 0: the bytes are in this many chunk rows, else in the row's `data`. */
  chunks: number;
  version: string;
  size: number;
  deleted?: boolean;
}

/** A value found: a small one's bytes, or the row saying where a larger one's bytes are. */
type Found = { bytes: Buffer } | { row: ValueRow };

/**
 * Values up to this size are read with the statement that finds them (hex text, one round
 * trip); larger ones are read by binary COPY, which wins from about here on (see copy-out.ts).
 */
export const SMALL_VALUE_BYTES = 16 * 1024;

/** What `open` prepared: where the tables are, the statements, the server's clock. */
interface Setup {
  names: TableNames;
  sql: Statements;
  clock: ServerClock;
  /** The table's writes send notifications (watch works). */
  notifies: boolean;
  /** The table of write ids is there: a write with a `writeId` takes effect once. */
  dedupe: boolean;
}

/**
 * A store in PostgreSQL tables. Keys are a `text COLLATE "C"` primary key, so a prefix listing
 * is an index range scan in UTF-8 byte order. With versions on (the default) every put and
 * delete adds a row to the history table and a key's newest row is its value; with them off a
 * key's value is its one row. A value is inline bytes up to `chunkBytes`, chunk rows beyond.
 * Every write takes its key's row lock before it draws its version, so the writes of a key take
 * effect in version order; a write with a deadline is refused by the server once it has passed
 * (see docs/postgres.md). Statements are prepared per connection.
 *
 * @example
 * const store = await PostgresStore.open({ pool: new pg.Pool({ connectionString }), table: "events" });
 * await store.put("sensors/t1", bytes, { metadata: { "content-type": "application/json" } });
 */
export class PostgresStore extends BaseStore {
  readonly capabilities: Readonly<Capabilities>;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #options: Resolved;
  readonly #setup: Setup;
  readonly #listener: Listener;
  /** When the ids of old writes are next swept (see #sweepWhenDue), and the sweep under way. */
  #nextSweep = 0;
  #sweeping: Promise<void> = Promise.resolve();

  private constructor(pool: Pool, ownsPool: boolean, options: Resolved, setup: Setup) {
    super();
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    this.#options = options;
    this.#setup = setup;
    this.#listener = new Listener(pool, setup.names.channel);
    this.capabilities = Object.freeze({
      stat: true,
      metadata: true,
      versions: options.versions,
      streaming: true,
      paginatedList: true,
      batch: true,
      watch: setup.notifies,
      conditionalWrites: true,
      rangeReads: true,
      maxValueBytes: Infinity,
    });
  }

  /**
   * Connects, checks the server (UTF-8 encoding), creates or checks the tables, and measures
   * the server's clock. Rejects with a classified StorageError when any of it fails (a store it
   * made a pool for ends that pool first).
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const resolved = resolveOptions(options);
    let pool: Pool;
    if (options.pool) {
      pool = options.pool;
    } else {
      if (typeof options.connectionString !== "string" || options.connectionString === "") {
        throw new StorageError("invalid", "give a pool or a connectionString (postgres://user@host:5432/database)", { op: "open" });
      }
      pool = new pg.Pool({ ...options.poolConfig, connectionString: options.connectionString });
      // An idle connection the server drops emits 'error' on the pool; without a listener that
      // would crash the process. The pool discards the connection and the next query reconnects.
      pool.on("error", () => undefined);
    }
    try {
      return new PostgresStore(pool, !options.pool, resolved, await prepare(pool, resolved));
    } catch (err) {
      if (!options.pool) await pool.end().catch(() => undefined);
      throw classifyPgError(err, "open", undefined);
    }
  }

  /** The schema and table the store uses, as `schema.table`. */
  get table(): string {
    return this.#setup.names.display;
  }

  // What a caller's stream throws reaches here as BaseStore made it (a StorageError, passed on
  // as it is), also from inside a transaction: it is never taken for a lost connection.
  protected override classifyError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
    return classifyPgError(err, op, key);
  }

  protected async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    if (data.byteLength > this.#options.chunkBytes) {
      return this.#writeTransaction(options, (client) => this.#writeChunked(client, "put", key, pieces(data, this.#options.chunkBytes), options, options.signal));
    }
    await this.#putSmall("put", key, data, options);
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    const signal = options.signal;
    const body = rechunk(source, this.#options.chunkBytes, signal)[Symbol.asyncIterator]();
    const first = await body.next();
    const second = first.done ? first : await body.next();
    if (second.done) {
      // The whole body fits one chunk: an ordinary inline put.
      const data = first.done ? new Uint8Array(0) : first.value;
      signal?.throwIfAborted();
      await this.#putSmall("putStream", key, data, options);
      return;
    }
    const rest = { [Symbol.asyncIterator]: () => body };
    await this.#writeTransaction(options, (client) => this.#writeChunked(client, "putStream", key, prepend([first.value!, second.value], rest), options, signal));
  }

  /** A value of one row, in one statement. */
  async #putSmall(op: StorageOp, key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const condition = conditionOf(options);
    const values = [key, data, metadataJson(options.metadata), data.byteLength];
    if (condition === "ifMatch" && !isVersion(options.ifMatch)) throw conflict(op, key, options);
    const held = await this.#write((w) => w.put[condition], values, options, condition === "ifMatch" ? [options.ifMatch] : []);
    if (condition !== "none" && !held) throw conflict(op, key, options);
  }

  /**
   * Writes a value as chunk rows under a version drawn first, then makes it the key's value in
   * one statement that takes the key's row lock (and, with versions, draws the value's own
   * version and moves the chunk rows to it): inside the caller's transaction. A condition that
   * does not hold throws `conflict`, rolling the transaction back.
   */
  async #writeChunked(
    client: PoolClient,
    op: StorageOp,
    key: string,
    body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    conditions: WriteConditions & { metadata?: Metadata },
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const { sql } = this.#setup;
    const condition = conditionOf(conditions);
    if (condition === "ifMatch" && !isVersion(conditions.ifMatch)) throw conflict(op, key, conditions);
    const { rows } = await client.query<{ version: string }>(bind(sql.nextVersion, []));
    const version = rows[0]!.version;
    let seq = 0;
    let size = 0;
    for await (const piece of body) {
      signal?.throwIfAborted();
      await client.query(bind(sql.putChunk, [key, version, seq++, piece]));
      size += piece.byteLength;
    }
    signal?.throwIfAborted();
    const values = [key, version, size, metadataJson(conditions.metadata), seq, ...(condition === "ifMatch" ? [conditions.ifMatch] : [])];
    const { rows: applied } = await client.query<{ applied: number }>(bind(sql.putChunked[condition], values));
    if (condition !== "none" && (applied[0]?.applied ?? 0) === 0) throw conflict(op, key, conditions);
  }

  protected async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    for (let attempt = 1; ; attempt++) {
      const found = await this.#find("get", key, options.version);
      const span = options.range && resolveRange(options.range, "bytes" in found ? found.bytes.byteLength : found.row.size, "get", key);
      if ("bytes" in found) return toBytes(span ? found.bytes.subarray(span.start, span.end) : found.bytes);
      try {
        return await gather(this.#far("get", key, found.row, options.signal, span), span ? span.end - span.start : found.row.size);
      } catch (err) {
        // Replaced between finding the row and reading its bytes: the newer value is as good.
        if (err instanceof ValueReplaced && options.version === undefined && attempt < 3) continue;
        throw err;
      }
    }
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const found = await this.#find("getStream", key, options.version);
    const span = options.range && resolveRange(options.range, "bytes" in found ? found.bytes.byteLength : found.row.size, "getStream", key);
    if ("bytes" in found) return prepend([toBytes(span ? found.bytes.subarray(span.start, span.end) : found.bytes)], []);
    return this.#far("getStream", key, found.row, options.signal, span);
  }

  /** The latest value or a version; `not_found` when missing or a delete marker. */
  async #find(op: StorageOp, key: string, version: string | undefined): Promise<Found> {
    const { sql } = this.#setup;
    let row: ValueRow | undefined;
    if (version === undefined) {
      const small = (await this.#query<{ data: Buffer | null }>(bind(sql.get, [key]))).rows[0];
      if (small?.data) return { bytes: small.data };
      // Larger (or gone): where are its bytes? A value replaced in between is read as the newer one.
      if (small) row = (await this.#query<ValueRow>(bind(sql.head, [key]))).rows[0];
    } else if (/^[0-9]{1,18}$/.test(version)) {
      row = (await this.#query<ValueRow>(bind(sql.getVersion, [key, version]))).rows[0];
    }
    if (!row || row.deleted) throw notFound(op, key, version);
    return row.data !== null ? { bytes: row.data } : { row };
  }

  /**
   * The bytes of a value too large to come with its row (or of `span` of it), streamed by
   * binary COPY from where they are: chunk rows in order, or the row itself (in `T_versions`, or
   * `T` without versions). A span reads only the chunk rows it touches, cut to it on the server.
   */
  async *#far(op: StorageOp, key: string, row: ValueRow, signal: AbortSignal | undefined, span?: { start: number; end: number }): AsyncGenerator<Uint8Array> {
    const { names } = this.#setup;
    const keyLiteral = pg.escapeLiteral(key);
    const version = BigInt(row.version);
    const where = `key = ${keyLiteral} AND version = ${version}`;
    const holder = this.#options.versions ? names.versions : names.main;
    const rows = Math.max(row.chunks, 1);
    let select: string;
    if (span === undefined) {
      select = row.chunks > 0 ? `SELECT bytes FROM ${names.chunks} WHERE ${where} ORDER BY seq` : `SELECT data FROM ${holder} WHERE ${where} AND data IS NOT NULL`;
    } else if (span.start === span.end) {
      return;
    } else if (row.chunks > 0) {
      select = chunkRangeSql(names.chunks, keyLiteral, version, span.start, span.end);
    } else {
      select = `SELECT substring(data FROM ${span.start + 1} FOR ${span.end - span.start}) FROM ${holder} WHERE ${where} AND data IS NOT NULL`;
    }
    let found: CopyResult;
    try {
      found = yield* copyOut(this.#pool, `COPY (${select}) TO STDOUT (FORMAT binary)`, signal);
    } catch (err) {
      if (err instanceof CopyFormatError) throw new StorageError("fatal", `${err.message}: the table was changed outside stowage`, { op, key, cause: err });
      throw err;
    }
    // Only an overwrite or delete with versions off (or a history trim) removes bytes being read.
    if (found.rows === 0) throw new ValueReplaced(op, key);
    const bytes = span ? span.end - span.start : row.size;
    if ((span === undefined && found.rows !== rows) || found.bytes !== bytes) {
      throw new StorageError("fatal", `stored bytes (${found.bytes} in ${found.rows} rows) do not match the row (${bytes} in ${rows}): the table was changed outside stowage`, { op, key });
    }
  }

  protected async _list(prefix: string, options: OperationOptions): Promise<string[]> {
    const keys: string[] = [];
    let after: string | undefined;
    for (;;) {
      options.signal?.throwIfAborted();
      const page = await this._listPage(prefix, { limit: LIST_BATCH, after, signal: options.signal });
      keys.push(...page.keys);
      if (page.next === undefined) return keys;
      after = page.next;
    }
  }

  protected override async _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    const { sql } = this.#setup;
    const upper = prefixUpperBound(prefix);
    const exclusive = options.after !== undefined && compareKeys(options.after, prefix) >= 0;
    const lower = exclusive ? options.after! : prefix;
    const limit = options.limit + 1; // one more tells whether there is a next page
    const query =
      upper === undefined
        ? bind(exclusive ? sql.rangeAfterFrom : sql.rangeFrom, [lower, limit])
        : bind(exclusive ? sql.rangeAfter : sql.range, [lower, upper, limit]);
    const { rows } = await this.#query<{ key: string }>(query);
    const keys = rows.slice(0, options.limit).map((r) => r.key);
    return rows.length > options.limit ? { keys, next: keys[keys.length - 1] } : { keys };
  }

  /** One level under `prefix`, by an index skip-scan (see `folder` in statements.ts). */
  protected override async _listFolder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    const { sql } = this.#setup;
    const upper = prefixUpperBound(prefix);
    let bound = prefix;
    if (options.after !== undefined && compareKeys(options.after, prefix) >= 0) {
      // Past `after`, and past everything under it when it is (or is under) a returned sub-prefix.
      const entry = folderEntry(prefix, options.after);
      bound = entry.prefix !== undefined ? `${entry.prefix.slice(0, -1)}0` : `${options.after}\u0001`;
    }
    const query = upper === undefined ? bind(sql.folderFrom, [prefix, bound, options.limit]) : bind(sql.folder, [prefix, bound, upper, options.limit]);
    const { rows } = await this.#query<{ entry: string; is_prefix: boolean }>(query);
    const page = rows.slice(0, options.limit);
    const result: ListPage = { keys: page.filter((r) => !r.is_prefix).map((r) => r.entry), prefixes: page.filter((r) => r.is_prefix).map((r) => r.entry) };
    if (rows.length > options.limit) result.next = page[page.length - 1]!.entry;
    return result;
  }

  protected async _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    if (options.ifMatch === undefined) {
      await this.#write((w) => w.delete.none, [key], options);
      return;
    }
    if (!isVersion(options.ifMatch)) throw conflict("delete", key, options);
    if (!(await this.#write((w) => w.delete.ifMatch, [key], options, [options.ifMatch]))) throw conflict("delete", key, options);
  }

  protected override async _stat(key: string): Promise<ObjectInfo> {
    const { sql } = this.#setup;
    const { rows } = await this.#query<{ version: string; size: number; modified: Date; metadata: Metadata | null; deleted?: boolean }>(bind(sql.stat, [key]));
    const row = rows[0];
    if (!row || row.deleted) throw notFound("stat", key);
    const info: ObjectInfo = { key, size: row.size, modified: row.modified, metadata: row.metadata ?? {}, etag: row.version };
    if (this.#options.versions) info.version = row.version;
    return info;
  }

  protected override async _versions(key: string): Promise<VersionInfo[]> {
    const { sql } = this.#setup;
    const { rows } = await this.#query<{ version: string; size: number; modified: Date; deleted: boolean }>(bind(sql.versions, [key]));
    return rows.map((r) => ({ version: r.version, size: r.size, modified: r.modified, deleted: r.deleted }));
  }

  protected override async _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    const { sql } = this.#setup;
    if (keys.length === 0) return [];
    const { rows } = await this.#query<ValueRow & { key: string }>(bind(sql.getMany, [[...new Set(keys)]]));
    const found = new Map<string, Uint8Array>();
    for (const row of rows) {
      if (row.deleted) continue;
      found.set(row.key, row.data !== null ? toBytes(row.data) : await gather(this.#far("getMany", row.key, row, options.signal), row.size));
    }
    // A key asked twice gets its own copy each time: callers may mutate what they receive.
    const given = new Set<string>();
    return keys.map((key) => {
      const value = found.get(key);
      if (value === undefined || !given.has(key)) {
        given.add(key);
        return value;
      }
      return value.slice();
    });
  }

  protected override async _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    if (keys.length === 0) return;
    await this.#write((w) => w.deleteMany, [[...new Set(keys)]], options);
  }

  /**
   * Small values go in as few statements as possible (unnest of arrays), large ones as chunk
   * rows, an entry with a condition in its own statement, all in one transaction: an aborted or
   * failed batch, or one whose condition does not hold, leaves nothing. The entries are
   * written in key order, so the batch takes its keys' row locks in the order every batch
   * does (two batches never deadlock); a key given twice ends with its later value (the batch
   * is cut where a key repeats, keeping the order).
   */
  protected override async _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    const { sql } = this.#setup;
    if (entries.length === 0) return;
    const signal = options.signal;
    // Array.prototype.sort is stable: a repeated key keeps its entries' order.
    const sorted = [...entries].sort((a, b) => compareKeys(a.key, b.key));
    await this.#writeTransaction(options, async (client) => {
      let batch: CleanBatchEntry[] = [];
      let batchKeys = new Set<string>();
      let bytes = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        signal?.throwIfAborted();
        const values = [batch.map((e) => e.key), batch.map((e) => e.data), batch.map((e) => metadataJson(e.metadata))];
        await client.query(bind(sql.putMany, values));
        batch = [];
        batchKeys = new Set();
        bytes = 0;
      };
      for (const entry of sorted) {
        if (batchKeys.has(entry.key) || batch.length >= PUT_MANY_ROWS || bytes + entry.data.byteLength > PUT_MANY_BYTES) await flush();
        if (entry.data.byteLength > this.#options.chunkBytes) {
          await flush();
          await this.#writeChunked(client, "putMany", entry.key, pieces(entry.data, this.#options.chunkBytes), entry, signal);
          continue;
        }
        const condition = conditionOf(entry);
        if (condition !== "none") {
          await flush();
          signal?.throwIfAborted();
          if (condition === "ifMatch" && !isVersion(entry.ifMatch)) throw conflict("putMany", entry.key, entry);
          const values = [entry.key, entry.data, metadataJson(entry.metadata), entry.data.byteLength, null, ...(condition === "ifMatch" ? [entry.ifMatch] : [])];
          const { rowCount } = await client.query(bind(sql.put[condition], values));
          if (rowCount === 0) throw conflict("putMany", entry.key, entry);
          continue;
        }
        batch.push(entry);
        batchKeys.add(entry.key);
        bytes += entry.data.byteLength;
      }
      await flush();
    });
  }

  protected override async _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    return this.#listener.subscribe(prefix, options.signal);
  }

  protected async _close(): Promise<void> {
    this.#listener.close();
    await this.#sweeping;
    if (this.#ownsPool) await this.#pool.end();
  }

  /**
   * One write statement, picked from the store's writes (`once`: the form that takes effect
   * once per write id, when the write has one); `values` are its parameters before the
   * deadline, `after` those after it (a condition's etag). With a deadline the server refuses
   * the write once it has passed (the fence). With only a caller's signal the statement runs
   * in a transaction that is committed only if the signal has not aborted by then: an abort
   * closes the connection and the server rolls the write back. True when the write took
   * effect, now or by an earlier attempt with its id; false when it changed nothing (a
   * condition that does not hold, a delete of a missing key).
   */
  async #write(pick: (writes: Statements["once"]) => Statement, values: unknown[], options: CleanPutOptions | CleanDeleteOptions, after: unknown[] = []): Promise<boolean> {
    const deadline = this.#serverDeadline(options);
    const id = this.#writeId(options);
    const s = pick(id === undefined ? this.#setup.sql : this.#setup.sql.once);
    const params = [...values, deadline, ...after, ...(id === undefined ? [] : [id])];
    return this.#once(id, conditionOf(options) !== "none", async () => {
      const { rowCount } =
        deadline === null && options.signal ? await this.#transaction(options, (client) => client.query(bind(s, params))) : await this.#query(bind(s, params));
      return (rowCount ?? 0) > 0;
    });
  }

  /**
   * A write of several statements, in a transaction that takes effect once per write id: it
   * begins by looking the id up (found: an earlier attempt took effect, nothing is done) and
   * records it before COMMIT (see `writeSeen` in statements.ts).
   */
  async #writeTransaction(options: CleanWriteOptions, work: (client: PoolClient) => Promise<void>): Promise<void> {
    const id = this.#writeId(options);
    await this.#once(id, false, async () => {
      await this.#transaction(options, work, id);
      return true;
    });
  }

  /** The write's id, when it has one and the table of write ids is there. */
  #writeId(options: CleanWriteOptions): string | undefined {
    return this.#setup.dedupe ? options.writeId : undefined;
  }

  /**
   * Runs an attempt of a write with id `id` (none: just runs it). It resolves as a success
   * when an earlier attempt took effect: the transaction found the id, or a concurrent attempt
   * recorded it first (this one then rolled back whole), or a condition failed because the
   * earlier attempt had changed the key (the id is looked up again: by then the earlier
   * attempt, whose row lock this one waited for, has committed).
   */
  async #once(id: string | undefined, conditional: boolean, attempt: () => Promise<boolean>): Promise<boolean> {
    if (id === undefined) return attempt();
    let refused: unknown;
    try {
      if (await attempt()) return true;
    } catch (err) {
      if (err instanceof AlreadyApplied || this.#recordedTwice(err)) return true;
      if (!(err instanceof StorageError && err.kind === "conflict")) throw err;
      refused = err;
    } finally {
      // After the write: on the connection it just gave back, not a new one beside it.
      this.#sweepWhenDue();
    }
    if ((conditional || refused !== undefined) && (await this.#seen(id))) return true;
    if (refused !== undefined) throw refused;
    return false;
  }

  /** A write with id `id` took effect (within the dedupe window). */
  async #seen(id: string): Promise<boolean> {
    const { rowCount } = await this.#query(bind(this.#setup.sql.writeSeen, [id]));
    return (rowCount ?? 0) > 0;
  }

  /** The error of a write whose id another attempt recorded first (the primary key of `T_writes`). */
  #recordedTwice(err: unknown): boolean {
    const e = err as { code?: unknown; table?: unknown; schema?: unknown } | null;
    const { names } = this.#setup;
    return e !== null && typeof e === "object" && e.code === "23505" && e.table === `${names.table}_writes` && e.schema === names.schema;
  }

  /**
   * Forgets the ids of writes older than the dedupe window, in the background, at most every
   * half window per store, and only from stores that write with ids: writes without one never
   * wait for it, and whichever store sweeps keeps the table at about a window's ids.
   */
  #sweepWhenDue(): void {
    const now = performance.now();
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + this.#options.dedupeWindow / 2;
    const sweep = this.#query(bind(this.#setup.sql.sweepWrites, [this.#options.dedupeWindow])).then(
      () => undefined,
      () => undefined,
    );
    this.#sweeping = this.#sweeping.then(() => sweep);
  }

  /** The write's deadline on the server's clock, or null when it has none. */
  #serverDeadline(options: CleanWriteOptions): number | null {
    return typeof options.deadline === "number" && Number.isFinite(options.deadline) ? this.#setup.clock.serverDeadline(options.deadline) : null;
  }

  /**
   * One statement on a pooled connection. An abort answers the caller at once (BaseStore), but
   * the connection stays busy until the statement has finished: a timed-out statement still
   * counts against the pool, so a struggling server is not handed a new connection for every
   * call given up on. A write needs no more: the fence refuses it once its deadline has passed.
   * Unlike `pool.query`, an error the server answered (a refused fence, a constraint) keeps the
   * connection: a new one costs the server a process and its first statements' planning.
   */
  async #query<R extends QueryResultRow>(config: QueryConfig): Promise<QueryResult<R>> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    // A checked-out client emits 'error' when its connection drops; unheard, that would crash the process.
    const onError = (err: Error) => (broken = err);
    client.on("error", onError);
    try {
      return await client.query<R>(config);
    } catch (err) {
      if (!answeredByServer(err)) broken ??= err instanceof Error ? err : new Error(String(err));
      throw err;
    } finally {
      client.off("error", onError);
      client.release(broken);
    }
  }

  /**
   * Runs `work` on a connection of the pool. An abort of `signal` closes the connection at
   * once: the caller has been answered, whatever the connection was doing is abandoned, and
   * a transaction it had open is rolled back by the server. A connection that failed is
   * discarded, never returned to the pool.
   */
  async #withClient<T>(signal: AbortSignal | undefined, work: (client: PoolClient, discard: () => void) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    let released = false;
    // A checked-out client emits 'error' when its connection drops between queries; with no
    // listener that is an uncaught exception that kills the process.
    const onError = (err: Error) => (broken = err);
    const release = () => {
      if (released) return;
      released = true;
      client.off("error", onError);
      signal?.removeEventListener("abort", onAbort);
      client.release(broken);
    };
    const onAbort = () => {
      broken ??= new Error("the call was aborted: the connection is closed");
      release();
    };
    client.on("error", onError);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    try {
      signal?.throwIfAborted();
      return await work(client, () => (broken ??= new Error("discarded")));
    } finally {
      release();
    }
  }

  /**
   * Runs `work` in a transaction on one connection and commits it unless it throws or the
   * signal aborted (an abort closes the connection: the server rolls back). With a deadline,
   * the last statement before COMMIT is the fence: the server refuses to go on past the
   * deadline, and ends the session (rolling back) if the COMMIT arrives after it. READ
   * COMMITTED whatever the server's default: each statement must see what the writes it
   * waited for did. With a write `id`, see #writeTransaction.
   */
  async #transaction<T>(options: CleanWriteOptions, work: (client: PoolClient) => Promise<T>, id?: string): Promise<T> {
    const deadline = this.#serverDeadline(options);
    const signal = options.signal;
    const { sql } = this.#setup;
    const begin = "BEGIN ISOLATION LEVEL READ COMMITTED";
    return this.#withClient(signal, async (client, discard) => {
      if (id === undefined) await client.query(begin);
      try {
        if (id !== undefined) {
          // The id looked up in BEGIN's round trip (a simple query of two statements).
          const [, seen] = (await client.query(`${begin}; ${sql.writeSeenLiteral(id)}`)) as unknown as QueryResult[];
          if ((seen?.rowCount ?? 0) > 0) throw new AlreadyApplied();
        }
        const result = await work(client);
        if (id !== undefined) await client.query(deadline !== null ? bind(sql.recordFenced, [deadline, id]) : bind(sql.recordWrite, [id]));
        else if (deadline !== null) await client.query(bind(sql.fence, [deadline]));
        signal?.throwIfAborted();
        await client.query("COMMIT");
        return result;
      } catch (err) {
        if (!signal?.aborted) await client.query("ROLLBACK").catch(discard);
        throw err;
      }
    });
  }
}

/** Validates the options that need no server. */
function resolveOptions(options: PostgresStoreOptions): Resolved {
  if (options === null || typeof options !== "object") throw new StorageError("invalid", "postgres: options must be an object", { op: "open" });
  const table = options.table ?? DEFAULT_TABLE;
  assertIdentifier(table, "table");
  if (options.schema !== undefined) assertIdentifier(options.schema, "schema");
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CHUNK_BYTES) {
    throw new StorageError("invalid", `chunkBytes must be an integer from ${MIN_CHUNK_BYTES} to ${MAX_CHUNK_BYTES}, got ${String(chunkBytes)}`, { op: "open" });
  }
  const history = options.history ?? DEFAULT_POSTGRES_HISTORY;
  if (history !== Infinity && (!Number.isInteger(history) || history < 2)) {
    throw new StorageError("invalid", `history must be an integer of at least 2 (versions kept per key) or Infinity (all), got ${String(history)}`, { op: "open" });
  }
  const dedupeWindow = options.dedupeWindow ?? DEFAULT_DEDUPE_WINDOW_MS;
  if (typeof dedupeWindow !== "number" || !Number.isFinite(dedupeWindow) || dedupeWindow < MIN_DEDUPE_WINDOW_MS) {
    throw new StorageError("invalid", `dedupeWindow must be a duration of at least ${MIN_DEDUPE_WINDOW_MS} ms, got ${String(dedupeWindow)}`, { op: "open" });
  }
  for (const name of ["versions", "create", "watch"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "boolean") throw new StorageError("invalid", `postgres: ${name} must be true or false`, { op: "open" });
  }
  return {
    table,
    schema: options.schema,
    versions: options.versions ?? true,
    history: history === Infinity ? undefined : history,
    chunkBytes,
    create: options.create ?? true,
    watch: options.watch ?? false,
    dedupeWindow,
  };
}

async function prepare(pool: Pool, options: Resolved): Promise<Setup> {
  const { rows } = await pool.query<{ schema: string | null; encoding: string }>("SELECT current_schema() AS schema, current_setting('server_encoding') AS encoding");
  const server = rows[0]!;
  if (server.encoding !== "UTF8") {
    throw new StorageError("fatal", `the database's encoding is ${server.encoding}; stowage keys are UTF-8 text: use a database created WITH ENCODING 'UTF8'`, { op: "open" });
  }
  const schema = options.schema ?? server.schema;
  if (schema === null) throw new StorageError("fatal", "the connection has no current schema (empty search_path): give ?schema=", { op: "open" });
  // The connection's own schema can be a system one too (search_path = pg_catalog).
  const names = tableNames(schema, options.table);
  const { notifies, dedupe } = await ensureSchema(pool, names, { create: options.create, versions: options.versions, watch: options.watch });
  const sql = buildStatements(names, { versions: options.versions, history: options.history, smallBytes: SMALL_VALUE_BYTES });
  return { names, sql, clock: await ServerClock.measure(pool), notifies, dedupe };
}

/** Thrown in a transaction whose write id was found: an earlier attempt took effect; roll back, report success. */
class AlreadyApplied extends Error {}

/** The bytes a read was after were replaced (or trimmed) after their row was found. */
class ValueReplaced extends StorageError {
  constructor(op: StorageOp, key: string) {
    super("transient", "the value was replaced while it was being read; read it again", { op, key });
  }
}

/** A value's pieces gathered into one array of the size its row gives (checked as it fills). */
async function gather(pieces: AsyncIterable<Uint8Array>, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let offset = 0;
  for await (const piece of pieces) {
    // More bytes than the row says: stop before overrunning; the reader reports the mismatch.
    if (offset + piece.byteLength > size) offset = size + 1;
    else out.set(piece, offset);
    offset += piece.byteLength;
  }
  return out;
}

/** Which statement a write's conditions call for. */
function conditionOf(conditions: WriteConditions): Condition {
  return conditions.ifMatch !== undefined ? "ifMatch" : conditions.ifNoneMatch !== undefined ? "ifNoneMatch" : "none";
}

/** An etag of this store is a version number; any other string names no value of it. */
function isVersion(etag: string | undefined): etag is string {
  return etag !== undefined && /^[0-9]{1,18}$/.test(etag);
}

function conflict(op: StorageOp, key: string, conditions: WriteConditions): StorageError {
  const message = conditions.ifNoneMatch !== undefined ? "the key exists (ifNoneMatch: \"*\")" : `the key's etag is not ${JSON.stringify(conditions.ifMatch)} (or the key does not exist)`;
  return new StorageError("conflict", message, { op, key });
}


/** Metadata as the jsonb parameter: NULL when there is none (the common case costs nothing). */
function metadataJson(metadata: Metadata | undefined): string | null {
  return metadata && Object.keys(metadata).length > 0 ? JSON.stringify(metadata) : null;
}

/**
 * A Uint8Array that owns its memory. `pg` decodes bytea into Buffers, and small Buffers are
 * slices of Node's shared allocation pool: copy those so a caller never sees or pins neighbours.
 */
function toBytes(buffer: Buffer): Uint8Array {
  if (buffer.byteLength >= POOLED_BELOW) return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  return new Uint8Array(buffer);
}
/** Node serves Buffers smaller than half its pool size (8 KiB) from the shared pool. */
const POOLED_BELOW = Buffer.poolSize >>> 1;

/** A whole value cut into chunk-sized views (no copies). */
function* pieces(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let offset = 0; offset < data.byteLength; offset += size) yield data.subarray(offset, offset + size);
}

async function* prepend<T>(head: T[], rest: AsyncIterable<T> | Iterable<T>): AsyncGenerator<T> {
  yield* head;
  yield* rest;
}

/**
 * The parameters `pg` itself reads from a connection string: passed through to it. Any other
 * unknown parameter is refused (a typo must not open a store with a default silently).
 */
const PG_PARAMS = new Set([
  "host",
  "port",
  "user",
  "password",
  "database",
  "db",
  "encoding",
  "client_encoding",
  "ssl",
  "sslmode",
  "sslcert",
  "sslkey",
  "sslrootcert",
  "sslnegotiation",
  "uselibpqcompat",
  "options",
  "application_name",
  "fallback_application_name",
  "statement_timeout",
  "lock_timeout",
  "idle_in_transaction_session_timeout",
  "query_timeout",
]);

/** The store's own URL parameters. */
const STORE_PARAMS = {
  table: "string",
  schema: "string",
  versions: "boolean",
  history: "string",
  chunkBytes: "size",
  create: "boolean",
  watch: "boolean",
  dedupeWindow: "duration",
} as const;

/**
 * `postgres://user:password@host:5432/database?table=NAME&schema=S&versions=false&history=N&chunkBytes=1MiB&create=false&watch=true&dedupeWindow=2m`
 * (also `postgresql://`), built on {@link PostgresStore.open}; `pg`'s own parameters
 * (`sslmode`, `application_name`, …) go to `pg`. With `options.pool`, that pool is used and
 * the URL's connection part is ignored.
 */
export async function openPostgresStore(target: StoreUrl, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const params = readUrlParams(target, "postgres", STORE_PARAMS, (name) => PG_PARAMS.has(name));
  const fromUrl: PostgresStoreOptions = {};
  if (params.table !== undefined) fromUrl.table = params.table;
  if (params.schema !== undefined) fromUrl.schema = params.schema;
  if (params.versions !== undefined) fromUrl.versions = params.versions;
  if (params.chunkBytes !== undefined) fromUrl.chunkBytes = params.chunkBytes;
  if (params.create !== undefined) fromUrl.create = params.create;
  if (params.watch !== undefined) fromUrl.watch = params.watch;
  if (params.dedupeWindow !== undefined) fromUrl.dedupeWindow = params.dedupeWindow;
  if (params.history !== undefined) {
    if (/^all$/i.test(params.history)) fromUrl.history = Infinity;
    else if (/^\d{1,10}$/.test(params.history)) fromUrl.history = Number(params.history);
    else throw new StorageError("invalid", `postgres: URL parameter history must be a positive integer (versions kept, at least 2) or "all", got ${JSON.stringify(params.history)}`, { op: "open" });
  }
  const url = new URL(target.href);
  for (const name of Object.keys(STORE_PARAMS)) url.searchParams.delete(name);
  if (url.pathname === "" || url.pathname === "/") {
    throw new StorageError("invalid", `postgres URL ${target.redacted} names no database; use postgres://user@host:5432/DATABASE`, { op: "open" });
  }
  return PostgresStore.open({ ...options, ...fromUrl, connectionString: options.pool ? undefined : url.href });
}
