import pg from "pg";
import type { Pool, PoolClient, PoolConfig } from "pg";
import { StorageError, type StorageOp } from "../errors.js";
import { compareKeys, prefixUpperBound } from "../keys.js";
import type { OpenStoreOptions, StoreUrl } from "../open.js";
import { BaseStore, type CleanListPageOptions, type CleanPutOptions } from "../store.js";
import type { BatchEntry, Capabilities, GetOptions, ListPage, Metadata, ObjectInfo, OperationOptions, VersionInfo } from "../types.js";
import { rechunk } from "./postgres/chunks.js";
import { copyOut, CopyFormatError, type CopyResult } from "./postgres/copy-out.js";
import { classifyPgError } from "./postgres/errors.js";
import { DEFAULT_TABLE, assertIdentifier, ensureSchema, tableNames, type TableNames } from "./postgres/schema.js";
import { bind, buildStatements, type Statements } from "./postgres/statements.js";

export { DEFAULT_TABLE as DEFAULT_POSTGRES_TABLE, schemaSql as postgresSchemaSql, tableNames as postgresTableNames } from "./postgres/schema.js";

/** Values up to this size are stored inline in one row; larger ones in chunk rows of this size. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const MIN_CHUNK_BYTES = 1024;
const MAX_CHUNK_BYTES = 256 * 1024 * 1024;
/** Keys fetched per statement when `list` walks a prefix. */
const LIST_BATCH = 5000;
/** A `putMany` statement carries at most this many entries / bytes; bigger batches take several, in one transaction. */
const PUT_MANY_ROWS = 1000;
const PUT_MANY_BYTES = 16 * 1024 * 1024;

/**
 * Options for {@link PostgresStore}. With `openStore`, the URL's query parameters of the same
 * names win: `postgres://user@host:5432/db?table=events&schema=app&versions=false&history=10`.
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
  /** Schema of the tables (default: the connection's `current_schema()`, usually `public`). */
  schema?: string;
  /**
   * Keep every version in `<table>_versions` (default true). Off: a put is one upsert. The
   * tables differ, so a table serves the setting it was made with (the other is refused).
   */
  versions?: boolean;
  /** Keep at most this many versions per key, delete markers included (at least 2; default all). */
  history?: number;
  /**
   * Values up to this many bytes are stored inline in one row; larger values and streams are
   * written as rows of this size in `<table>_chunks`, so memory stays about one chunk.
   * Default 1 MiB; from 1 KiB to 256 MiB.
   */
  chunkBytes?: number;
  /** Create missing tables on first use (default true). Off: a missing table is a `fatal` error. */
  createSchema?: boolean;
}

declare module "../open.js" {
  interface BackendOptions {
    /** Options for `postgres://` URLs (the URL's `?table=`, `?schema=`, `?versions=`… win). */
    postgres?: PostgresStoreOptions;
  }
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

interface Setup {
  names: TableNames;
  sql: Statements;
}

/**
 * A store in PostgreSQL tables. Keys are a `text COLLATE "C"` primary key, so a prefix listing
 * is an index range scan in UTF-8 byte order. With versions on (the default) every put and
 * delete adds a row to the history table and a key's newest row is its value; with them off a
 * key's value is its one row. A value is inline bytes up to `chunkBytes`, chunk rows beyond.
 * Statements are prepared per connection. The tables are created on first use (see
 * docs/postgres.md for the SQL).
 *
 * @example
 * const store = new PostgresStore({ pool: new pg.Pool({ connectionString }), table: "events" });
 * await store.put("sensors/t1", bytes, { metadata: { "content-type": "application/json" } });
 */
export class PostgresStore extends BaseStore {
  readonly capabilities: Readonly<Capabilities>;
  readonly #pool: Pool;
  readonly #ownsPool: boolean;
  readonly #options: Required<Pick<PostgresStoreOptions, "table" | "versions" | "chunkBytes" | "createSchema">> & Pick<PostgresStoreOptions, "schema" | "history">;
  #setup: Promise<Setup> | undefined;

  constructor(options: PostgresStoreOptions) {
    super();
    const table = options.table ?? DEFAULT_TABLE;
    assertIdentifier(table, "table");
    if (options.schema !== undefined) assertIdentifier(options.schema, "schema");
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isInteger(chunkBytes) || chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CHUNK_BYTES) {
      throw new StorageError("invalid", `chunkBytes must be an integer from ${MIN_CHUNK_BYTES} to ${MAX_CHUNK_BYTES}, got ${String(chunkBytes)}`, { op: "open" });
    }
    if (options.history !== undefined && (!Number.isInteger(options.history) || options.history < 2)) {
      throw new StorageError("invalid", `history must be an integer of at least 2 (versions kept per key), got ${String(options.history)}`, { op: "open" });
    }
    const versions = options.versions ?? true;
    if (typeof versions !== "boolean") throw new StorageError("invalid", "versions must be true or false", { op: "open" });
    this.#options = { table, schema: options.schema, versions, history: options.history, chunkBytes, createSchema: options.createSchema ?? true };

    if (options.pool) {
      this.#pool = options.pool;
      this.#ownsPool = false;
    } else {
      if (typeof options.connectionString !== "string" || options.connectionString === "") {
        throw new StorageError("invalid", "give a pool or a connectionString (postgres://user@host:5432/database)", { op: "open" });
      }
      this.#pool = new pg.Pool({ ...options.poolConfig, connectionString: options.connectionString });
      // An idle connection the server drops emits 'error' on the pool; without a listener that
      // would crash the process. The pool discards the connection and the next query reconnects.
      this.#pool.on("error", () => undefined);
      this.#ownsPool = true;
    }

    this.capabilities = Object.freeze({
      stat: true,
      metadata: true,
      versions,
      streaming: true,
      paginatedList: true,
      batch: true,
      watch: false,
      maxValueBytes: Infinity,
    });
  }

  /**
   * Connects, checks the server (UTF-8 encoding) and creates or checks the tables. Runs on the
   * first operation by itself; call it to fail fast (openStore does).
   */
  async ready(options: OperationOptions = {}): Promise<void> {
    await this.run("open", undefined, options.signal, async () => void (await this.#ready()));
  }

  protected override classifyError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
    return classifyPgError(err, op, key);
  }

  #ready(): Promise<Setup> {
    this.#setup ??= this.#prepare().catch((err: unknown) => {
      this.#setup = undefined; // a later call tries again (the server may be back)
      throw err;
    });
    return this.#setup;
  }

  async #prepare(): Promise<Setup> {
    const { rows } = await this.#pool.query<{ schema: string | null; encoding: string }>(
      "SELECT current_schema() AS schema, current_setting('server_encoding') AS encoding",
    );
    const server = rows[0]!;
    if (server.encoding !== "UTF8") {
      throw new StorageError("fatal", `the database's encoding is ${server.encoding}; stowage keys are UTF-8 text: use a database created WITH ENCODING 'UTF8'`, { op: "open" });
    }
    const schema = this.#options.schema ?? server.schema;
    if (schema === null) throw new StorageError("fatal", "the connection has no current schema (empty search_path): give ?schema=", { op: "open" });
    const names = tableNames(schema, this.#options.table);
    await ensureSchema(this.#pool, names, { create: this.#options.createSchema, versions: this.#options.versions });
    const sql = buildStatements(names, { versions: this.#options.versions, history: this.#options.history, smallBytes: SMALL_VALUE_BYTES });
    return { names, sql };
  }

  protected async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const { sql } = await this.#ready();
    if (data.byteLength > this.#options.chunkBytes) {
      return this.#transaction(options.signal, (client) => this.#writeChunked(client, key, pieces(data, this.#options.chunkBytes), options.metadata, options.signal));
    }
    await this.#pool.query(bind(sql.put, [key, data, metadataJson(options.metadata), data.byteLength]));
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    const { sql } = await this.#ready();
    const signal = options.signal;
    const body = rechunk(source, this.#options.chunkBytes, signal)[Symbol.asyncIterator]();
    const first = await body.next();
    const second = first.done ? first : await body.next();
    if (second.done) {
      // The whole body fits one chunk: an ordinary inline put, no transaction.
      const data = first.done ? new Uint8Array(0) : first.value;
      signal?.throwIfAborted();
      await this.#pool.query(bind(sql.put, [key, data, metadataJson(options.metadata), data.byteLength]));
      return;
    }
    const rest = { [Symbol.asyncIterator]: () => body };
    await this.#transaction(signal, (client) => this.#writeChunked(client, key, prepend([first.value!, second.value], rest), options.metadata, signal));
  }

  /** Writes a value as chunk rows, then points the key at them: inside the caller's transaction. */
  async #writeChunked(client: PoolClient, key: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, metadata: Metadata | undefined, signal: AbortSignal | undefined): Promise<void> {
    const { sql } = await this.#ready();
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
    if (sql.lockKey) await client.query(bind(sql.lockKey, [key]));
    const result = await client.query<{ applied: number }>(bind(sql.putChunked, [key, version, size, metadataJson(metadata), seq]));
    // A newer write to the key took effect while we streamed; without a history row nothing refers to our chunks.
    if (result.rows[0]!.applied === 0 && sql.dropChunks) await client.query(bind(sql.dropChunks, [key, version]));
  }

  protected async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    for (let attempt = 1; ; attempt++) {
      const found = await this.#find("get", key, options.version);
      if ("bytes" in found) return toBytes(found.bytes);
      try {
        return await gather(this.#far("get", key, found.row, options.signal), found.row.size);
      } catch (err) {
        // Replaced between finding the row and reading its bytes: the newer value is as good.
        if (err instanceof ValueReplaced && options.version === undefined && attempt < 3) continue;
        throw err;
      }
    }
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const found = await this.#find("getStream", key, options.version);
    if ("bytes" in found) return prepend([toBytes(found.bytes)], []);
    return this.#far("getStream", key, found.row, options.signal);
  }

  /** The latest value or a version; `not_found` when missing or a delete marker. */
  async #find(op: StorageOp, key: string, version: string | undefined): Promise<Found> {
    const { sql } = await this.#ready();
    let row: ValueRow | undefined;
    if (version === undefined) {
      const small = (await this.#pool.query<{ data: Buffer | null }>(bind(sql.get, [key]))).rows[0];
      if (small?.data) return { bytes: small.data };
      // Larger (or gone): where are its bytes? A value replaced in between is read as the newer one.
      if (small) row = (await this.#pool.query<ValueRow>(bind(sql.head, [key]))).rows[0];
    } else if (/^[0-9]{1,18}$/.test(version)) {
      row = (await this.#pool.query<ValueRow>(bind(sql.getVersion, [key, version]))).rows[0];
    }
    if (!row || row.deleted) throw notFound(op, key, version);
    return row.data !== null ? { bytes: row.data } : { row };
  }

  /**
   * The bytes of a value too large to come with its row, streamed by binary COPY from where
   * they are: chunk rows in order, or the row itself (in `T_versions`, or `T` without versions).
   */
  async *#far(op: StorageOp, key: string, row: ValueRow, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    const { names } = await this.#ready();
    const where = `key = ${pg.escapeLiteral(key)} AND version = ${BigInt(row.version)}`;
    const select =
      row.chunks > 0
        ? `SELECT bytes FROM ${names.chunks} WHERE ${where} ORDER BY seq`
        : `SELECT data FROM ${this.#options.versions ? names.versions : names.main} WHERE ${where} AND data IS NOT NULL`;
    let found: CopyResult;
    try {
      found = yield* copyOut(this.#pool, `COPY (${select}) TO STDOUT (FORMAT binary)`, signal);
    } catch (err) {
      if (err instanceof CopyFormatError) throw new StorageError("fatal", `${err.message}: the table was changed outside stowage`, { op, key, cause: err });
      throw err;
    }
    // Only an overwrite or delete with versions off (or a history trim) removes bytes being read.
    if (found.rows === 0) throw new ValueReplaced(op, key);
    if (found.rows !== Math.max(row.chunks, 1) || found.bytes !== row.size) {
      throw new StorageError("fatal", `stored bytes (${found.bytes} in ${found.rows} rows) do not match the row (${row.size} in ${Math.max(row.chunks, 1)}): the table was changed outside stowage`, { op, key });
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
    const { sql } = await this.#ready();
    const upper = prefixUpperBound(prefix);
    const exclusive = options.after !== undefined && compareKeys(options.after, prefix) >= 0;
    const lower = exclusive ? options.after! : prefix;
    const limit = options.limit + 1; // one more tells whether there is a next page
    const query =
      upper === undefined
        ? bind(exclusive ? sql.rangeAfterFrom : sql.rangeFrom, [lower, limit])
        : bind(exclusive ? sql.rangeAfter : sql.range, [lower, upper, limit]);
    const { rows } = await this.#pool.query<{ key: string }>(query);
    const keys = rows.slice(0, options.limit).map((r) => r.key);
    return rows.length > options.limit ? { keys, next: keys[keys.length - 1] } : { keys };
  }

  protected async _delete(key: string): Promise<void> {
    const { sql } = await this.#ready();
    await this.#pool.query(bind(sql.delete, [key]));
  }

  protected override async _stat(key: string): Promise<ObjectInfo> {
    const { sql } = await this.#ready();
    const { rows } = await this.#pool.query<{ version: string; size: number; modified: Date; metadata: Metadata | null; deleted?: boolean }>(bind(sql.stat, [key]));
    const row = rows[0];
    if (!row || row.deleted) throw notFound("stat", key);
    const info: ObjectInfo = { key, size: row.size, modified: row.modified, metadata: row.metadata ?? {} };
    if (this.#options.versions) info.version = row.version;
    return info;
  }

  protected override async _versions(key: string): Promise<VersionInfo[]> {
    const { sql } = await this.#ready();
    const { rows } = await this.#pool.query<{ version: string; size: number; modified: Date; deleted: boolean }>(bind(sql.versions, [key]));
    return rows.map((r) => ({ version: r.version, size: r.size, modified: r.modified, deleted: r.deleted }));
  }

  protected override async _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    const { sql } = await this.#ready();
    if (keys.length === 0) return [];
    const { rows } = await this.#pool.query<ValueRow & { key: string }>(bind(sql.getMany, [[...new Set(keys)]]));
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

  protected override async _deleteMany(keys: string[]): Promise<void> {
    const { sql } = await this.#ready();
    if (keys.length === 0) return;
    const unique = [...new Set(keys)];
    if (sql.trimMany === undefined) {
      await this.#pool.query(bind(sql.deleteMany, [unique]));
      return;
    }
    await this.#transaction(undefined, async (client) => {
      await client.query(bind(sql.deleteMany, [unique]));
      await client.query(bind(sql.trimMany!, [unique]));
    });
  }

  /**
   * Small values go in as few statements as possible (unnest of arrays), large ones as chunk
   * rows, all in one transaction: an aborted or failed batch leaves nothing. A key given twice
   * ends with its later value (the batch is cut where a key repeats, keeping the order).
   */
  protected override async _putMany(entries: BatchEntry[], options: OperationOptions): Promise<void> {
    const { sql } = await this.#ready();
    if (entries.length === 0) return;
    const signal = options.signal;
    await this.#transaction(signal, async (client) => {
      // The buckets of all its keys first, in one statement (at most LOCK_BUCKETS locks).
      if (sql.lockBatch) await client.query(bind(sql.lockBatch, [[...new Set(entries.map((e) => e.key))]]));
      let batch: BatchEntry[] = [];
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
      for (const entry of entries) {
        if (batchKeys.has(entry.key) || batch.length >= PUT_MANY_ROWS || bytes + entry.data.byteLength > PUT_MANY_BYTES) await flush();
        if (entry.data.byteLength > this.#options.chunkBytes) {
          await flush();
          await this.#writeChunked(client, entry.key, pieces(entry.data, this.#options.chunkBytes), entry.metadata, signal);
          continue;
        }
        batch.push(entry);
        batchKeys.add(entry.key);
        bytes += entry.data.byteLength;
      }
      await flush();
      if (sql.trimMany) await client.query(bind(sql.trimMany, [[...new Set(entries.map((e) => e.key))]]));
    });
  }

  protected async _close(): Promise<void> {
    if (this.#ownsPool) await this.#pool.end();
  }

  /**
   * Runs `work` in a transaction on one connection and commits, unless it throws or `signal`
   * aborted, then rolls back. A connection whose rollback failed is discarded, not reused.
   * READ COMMITTED whatever the server's default: with versions on, a chunked put's last
   * statement, after the key's lock, must see what the writes that held it did.
   */
  async #transaction<T>(signal: AbortSignal | undefined, work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    // A checked-out client emits 'error' when its connection drops between queries; with no
    // listener that is an uncaught exception that kills the process. Note it and discard the client.
    const onError = (err: Error) => (broken = err);
    client.on("error", onError);
    try {
      await client.query("BEGIN ISOLATION LEVEL READ COMMITTED");
      const result = await work(client);
      signal?.throwIfAborted();
      await client.query("COMMIT");
      return result;
    } catch (err) {
      await client.query("ROLLBACK").catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error("rollback failed");
      });
      throw err;
    } finally {
      client.off("error", onError);
      client.release(broken);
    }
  }
}

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

function notFound(op: StorageOp, key: string, version?: string): StorageError {
  const what = version === undefined ? "no value at this key" : `no version ${version} of this key`;
  return new StorageError("not_found", what, { op, key });
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

function flag(value: string, name: string): boolean {
  if (/^(true|1|yes|on)$/i.test(value)) return true;
  if (/^(false|0|no|off)$/i.test(value)) return false;
  throw new StorageError("invalid", `postgres: ${name} must be true or false, got ${JSON.stringify(value)}`, { op: "open" });
}

function integer(value: string, name: string): number {
  if (!/^\d{1,10}$/.test(value)) throw new StorageError("invalid", `postgres: ${name} must be a positive integer, got ${JSON.stringify(value)}`, { op: "open" });
  return Number(value);
}

/** The store's own URL parameters; everything else in the URL is for `pg`. */
const STORE_PARAMS = ["table", "schema", "versions", "history", "chunkBytes", "createSchema"] as const;

/**
 * `postgres://user:password@host:5432/database?table=NAME&schema=S&versions=false&history=N&chunkBytes=B&createSchema=false`
 * (also `postgresql://`). With `options.postgres.pool`, that pool is used and the URL's
 * connection part is ignored. Connects and prepares the tables before resolving.
 */
export async function openPostgresStore(target: StoreUrl, options: OpenStoreOptions): Promise<PostgresStore> {
  const url = new URL(target.href);
  const params = url.searchParams;
  const fromUrl: PostgresStoreOptions = {};
  const table = params.get("table");
  if (table !== null) fromUrl.table = table;
  const schema = params.get("schema");
  if (schema !== null) fromUrl.schema = schema;
  const versions = params.get("versions");
  if (versions !== null) fromUrl.versions = flag(versions, "versions");
  const history = params.get("history");
  if (history !== null) fromUrl.history = integer(history, "history");
  const chunkBytes = params.get("chunkBytes");
  if (chunkBytes !== null) fromUrl.chunkBytes = integer(chunkBytes, "chunkBytes");
  const createSchema = params.get("createSchema");
  if (createSchema !== null) fromUrl.createSchema = flag(createSchema, "createSchema");
  for (const name of STORE_PARAMS) params.delete(name);
  if (url.pathname === "" || url.pathname === "/") {
    throw new StorageError("invalid", `postgres URL ${target.redacted} names no database; use postgres://user@host:5432/DATABASE`, { op: "open" });
  }
  const store = new PostgresStore({ ...options.postgres, ...fromUrl, connectionString: options.postgres?.pool ? undefined : url.href });
  try {
    await store.ready();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}

