import { StorageError, isAbortError, type StorageOp } from "./errors.js";
import { assertKey, assertPrefix, compareKeys } from "./keys.js";
import { StoreBody } from "./internal/body.js";
import { collect, isByteSource, validatedChunks } from "./internal/bytes.js";
import { mapLimit } from "./internal/concurrency.js";
import { normalizeMetadata } from "./internal/metadata.js";
import { raceSignal } from "./internal/signal.js";
import type {
  BatchEntry,
  ByteRange,
  ByteSource,
  Capabilities,
  ChangeEvent,
  DeleteOptions,
  GetOptions,
  ListPage,
  ListPageOptions,
  ObjectInfo,
  OperationOptions,
  PutOptions,
  Store,
  VersionInfo,
  WriteConditions,
  WriteOptions,
} from "./types.js";

export type * from "./types.js";

/** Default page size for `listPage`/`keys`, and the largest a caller may ask for. */
export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 10_000;
/** Calls in flight for the batch fallbacks of stores without native batches. */
const BATCH_CONCURRENCY = 16;

/** What a backend's write methods receive besides the signal: validated, see {@link WriteOptions}. */
export interface CleanWriteOptions extends OperationOptions {
  writeId?: string;
  deadline?: number;
}

/** What a backend's `_put`/`_putStream` receive: metadata normalised, conditions checked. */
export interface CleanPutOptions extends CleanWriteOptions, WriteConditions {
  metadata?: Record<string, string>;
}

/** What a backend's `_delete` receives. */
export interface CleanDeleteOptions extends CleanWriteOptions {
  ifMatch?: string;
}

/** What a backend's `_putMany` receives: entries validated, metadata normalised. */
export type CleanBatchEntry = BatchEntry;

/** What a backend's `_listPage` receives: limit checked and defaulted. */
export interface CleanListPageOptions extends OperationOptions {
  limit: number;
  after?: string;
}

/** What a backend's `_listFolder` receives. */
export interface CleanFolderOptions extends CleanListPageOptions {
  delimiter: "/";
}

/** Longest etag a condition may carry (longer ones cannot be any backend's). */
const MAX_ETAG_LENGTH = 1024;

/**
 * The thin validating wrapper every store extends. Public methods check the store is open,
 * validate keys, values, metadata and options once, enforce the signal, and turn whatever the
 * backend throws into a classified {@link StorageError}; the backend implements the narrow
 * `_method`s and only ever sees clean arguments.
 *
 * Required: `_put`, `_get`, `_list`, `_delete`, `_close`. Optional ones match capabilities:
 * `_stat`, `_versions` (and `_get` with a version), `_putStream`/`_getStream`, `_listPage`,
 * `_listFolder`, `_putMany`/`_getMany`/`_deleteMany`, `_watch`. Where an optional one is
 * missing, the wrapper falls back to the required ones (buffered streams, listing then slicing
 * or grouping, a bounded-concurrency loop for batches) or rejects with kind `unsupported`.
 *
 * Capabilities decide what the backend is handed: `range` reaches `_get`/`_getStream` only where
 * `rangeReads` (else the wrapper cuts the whole value), and write conditions reach the write
 * methods only where `conditionalWrites` (else the call rejects `unsupported`).
 */
export abstract class BaseStore implements Store {
  abstract readonly capabilities: Readonly<Capabilities>;
  #closed = false;
  #closing: Promise<void> | undefined;

  protected abstract _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void>;
  protected abstract _get(key: string, options: GetOptions): Promise<Uint8Array>;
  /** Keys under `prefix`, already in byte order (use `sortKeys` when the backend does not sort so). */
  protected abstract _list(prefix: string, options: OperationOptions): Promise<string[]>;
  protected abstract _delete(key: string, options: CleanDeleteOptions): Promise<void>;
  protected abstract _close(): Promise<void>;

  protected _stat?(key: string, options: OperationOptions): Promise<ObjectInfo>;
  protected _versions?(key: string, options: OperationOptions): Promise<VersionInfo[]>;
  protected _putStream?(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void>;
  protected _getStream?(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>>;
  protected _listPage?(prefix: string, options: CleanListPageOptions): Promise<ListPage>;
  /** One level of a listing (see {@link ListPageOptions.delimiter}); use {@link folderEntry}. */
  protected _listFolder?(prefix: string, options: CleanFolderOptions): Promise<ListPage>;
  protected _putMany?(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void>;
  protected _getMany?(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]>;
  protected _deleteMany?(keys: string[], options: CleanWriteOptions): Promise<void>;
  protected _watch?(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>>;

  /**
   * Turns an error the backend's client threw into a StorageError. The default calls anything
   * unknown `fatal`; backends override it with their client's error codes (never messages).
   */
  protected classifyError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
    const message = err instanceof Error ? err.message : String(err);
    return new StorageError("fatal", `unexpected error: ${message}`, { op, key, cause: err });
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  async put(key: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    assertKey(key, "put");
    this.#assertData(data, "put", key);
    const clean = this.#cleanPut(options, "put", key);
    return this.run("put", key, options.signal, () => this._put(key, data, clean));
  }

  async get(key: string, options: GetOptions = {}): Promise<Uint8Array> {
    assertKey(key, "get");
    this.#assertVersion(options.version, "get", key);
    const range = checkRange(options.range, "get", key);
    if (range === undefined || this.capabilities.rangeReads) {
      return this.run("get", key, options.signal, () => this._get(key, { signal: options.signal, version: options.version, range }));
    }
    return this.run("get", key, options.signal, async () => {
      const whole = await this._get(key, { signal: options.signal, version: options.version });
      const { start, end } = resolveRange(range, whole.byteLength, "get", key);
      return start === 0 && end === whole.byteLength ? whole : whole.slice(start, end);
    });
  }

  async list(prefix = "", options: OperationOptions = {}): Promise<string[]> {
    assertPrefix(prefix, "list");
    return this.run("list", undefined, options.signal, () => this._list(prefix, options));
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    assertKey(key, "delete");
    const clean: CleanDeleteOptions = { ...this.#cleanWrite(options, "delete", key), ...this.#conditions({ ifMatch: options.ifMatch }, "delete", key) };
    return this.run("delete", key, options.signal, () => this._delete(key, clean));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= this._close().catch((err: unknown) => {
      throw this.#classify(err, "close", undefined, undefined);
    });
    return this.#closing;
  }

  async stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo> {
    assertKey(key, "stat");
    const stat = this._stat;
    if (!stat) throw this.#unsupported("stat", key);
    return this.run("stat", key, options.signal, () => stat.call(this, key, options));
  }

  async versions(key: string, options: OperationOptions = {}): Promise<VersionInfo[]> {
    assertKey(key, "versions");
    const versions = this._versions;
    if (!versions || !this.capabilities.versions) throw this.#unsupported("versions", key);
    return this.run("versions", key, options.signal, () => versions.call(this, key, options));
  }

  async putStream(key: string, source: ByteSource, options: PutOptions = {}): Promise<void> {
    assertKey(key, "putStream");
    if (!isByteSource(source)) {
      throw new StorageError("invalid", "source must be an async iterable of Uint8Array chunks (a Readable or ReadableStream)", { op: "putStream", key });
    }
    const clean = this.#cleanPut(options, "putStream", key);
    const chunks = validatedChunks(source, "putStream", key, options.signal);
    const putStream = this._putStream;
    return this.run("putStream", key, options.signal, async () => {
      if (putStream) return putStream.call(this, key, chunks, clean);
      const data = await collect(chunks, this.capabilities.maxValueBytes, "putStream", key);
      options.signal?.throwIfAborted();
      return this._put(key, data, clean);
    });
  }

  async getStream(key: string, options: GetOptions = {}): Promise<AsyncIterable<Uint8Array>> {
    assertKey(key, "getStream");
    this.#assertVersion(options.version, "getStream", key);
    const range = checkRange(options.range, "getStream", key);
    const native = range === undefined || this.capabilities.rangeReads;
    const inner: GetOptions = { signal: options.signal, version: options.version, range: native ? range : undefined };
    const getStream = this._getStream;
    const body = await this.run("getStream", key, options.signal, async () =>
      getStream ? getStream.call(this, key, inner) : [await this._get(key, inner)],
    );
    const ranged = native ? body : cutStream(body, range, key);
    return new StoreBody(ranged, (err) => this.#classify(err, "getStream", key, options.signal), options.signal);
  }

  async listPage(prefix = "", options: ListPageOptions = {}): Promise<ListPage> {
    assertPrefix(prefix, "list");
    const limit = options.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new StorageError("invalid", `limit must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${String(limit)}`, { op: "list" });
    }
    if (options.after !== undefined) assertPrefix(options.after, "list");
    const delimiter = options.delimiter;
    if (delimiter !== undefined && delimiter !== "/") {
      throw new StorageError("invalid", `delimiter must be "/" (or left out), got ${JSON.stringify(delimiter)}`, { op: "list" });
    }
    const clean: CleanListPageOptions = { signal: options.signal, limit, after: options.after };
    if (delimiter !== undefined) {
      const listFolder = this._listFolder;
      const folder: CleanFolderOptions = { ...clean, delimiter };
      return this.run("list", undefined, options.signal, () => (listFolder ? listFolder.call(this, prefix, folder) : this.#groupedPage(prefix, folder)));
    }
    const listPage = this._listPage;
    return this.run("list", undefined, options.signal, async () => {
      if (listPage) return listPage.call(this, prefix, clean);
      return pageOf(await this._list(prefix, clean), clean);
    });
  }

  async *keys(prefix = "", options: Omit<ListPageOptions, "delimiter"> = {}): AsyncIterable<string> {
    let after = options.after;
    for (;;) {
      const page = await this.listPage(prefix, { signal: options.signal, limit: options.limit, after });
      yield* page.keys;
      if (page.next === undefined) return;
      after = page.next;
    }
  }

  async putMany(entries: BatchEntry[], options: WriteOptions = {}): Promise<void> {
    if (!Array.isArray(entries)) throw new StorageError("invalid", "entries must be an array of { key, data, metadata? }", { op: "putMany" });
    const write = this.#cleanWrite(options, "putMany", undefined);
    const clean = entries.map((entry): CleanBatchEntry => {
      if (entry === null || typeof entry !== "object") throw new StorageError("invalid", "each entry must be { key, data, metadata? }", { op: "putMany" });
      assertKey(entry.key, "putMany");
      this.#assertData(entry.data, "putMany", entry.key);
      return { key: entry.key, data: entry.data, metadata: normalizeMetadata(entry.metadata, "putMany", entry.key), ...this.#conditions(entry, "putMany", entry.key) };
    });
    const putMany = this._putMany;
    return this.run("putMany", undefined, options.signal, async () => {
      if (putMany) return putMany.call(this, clean, write);
      // Each entry is a write of its own: it gets an id of its own, derived from the batch's.
      await mapLimit(clean, BATCH_CONCURRENCY, ({ key, data, ...rest }, i) =>
        this._put(key, data, { ...write, ...rest, ...(write.writeId !== undefined && { writeId: `${write.writeId}.${i}` }) }),
      );
    });
  }

  async getMany(keys: string[], options: OperationOptions = {}): Promise<(Uint8Array | undefined)[]> {
    this.#assertKeyList(keys, "getMany");
    const getMany = this._getMany;
    return this.run("getMany", undefined, options.signal, async () => {
      if (getMany) return getMany.call(this, keys, options);
      return mapLimit(keys, BATCH_CONCURRENCY, async (key) => {
        try {
          return await this._get(key, options);
        } catch (err) {
          if (err instanceof StorageError && err.kind === "not_found") return undefined;
          throw err;
        }
      });
    });
  }

  async deleteMany(keys: string[], options: WriteOptions = {}): Promise<void> {
    this.#assertKeyList(keys, "deleteMany");
    const write = this.#cleanWrite(options, "deleteMany", undefined);
    const deleteMany = this._deleteMany;
    return this.run("deleteMany", undefined, options.signal, async () => {
      if (deleteMany) return deleteMany.call(this, keys, write);
      await mapLimit(keys, BATCH_CONCURRENCY, (key) => this._delete(key, write));
    });
  }

  async watch(prefix = "", options: OperationOptions = {}): Promise<AsyncIterable<ChangeEvent>> {
    assertPrefix(prefix, "watch");
    const watch = this._watch;
    if (!watch || !this.capabilities.watch) throw this.#unsupported("watch");
    return this.run("watch", undefined, options.signal, () => watch.call(this, prefix, options));
  }

  /**
   * Runs one backend call: refuses a closed store, honours the signal and classifies what the
   * backend throws. Subclasses use it for operations of their own.
   */
  protected async run<T>(op: StorageOp, key: string | undefined, signal: AbortSignal | undefined, work: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StorageError("fatal", "the store is closed", { op, key });
    try {
      return await raceSignal(signal, work);
    } catch (err) {
      throw this.#classify(err, op, key, signal);
    }
  }

  #classify(err: unknown, op: StorageOp, key: string | undefined, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted && isAbortError(err, signal)) return signal.reason;
    if (err instanceof StorageError) return err;
    return this.classifyError(err, op, key);
  }

  /**
   * A folder page for backends without `_listFolder`: walks the plain listing and groups it.
   * Costs the keys under every returned prefix; backends that can skip a prefix implement
   * `_listFolder` instead.
   */
  async #groupedPage(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    const keys: string[] = [];
    const prefixes: string[] = [];
    let last: string | undefined;
    let skip = options.after === undefined ? undefined : folderEntry(prefix, options.after).prefix;
    let after = options.after;
    for (;;) {
      const page = this._listPage
        ? await this._listPage(prefix, { signal: options.signal, limit: MAX_PAGE_SIZE, after })
        : pageOf(await this._list(prefix, options), { limit: Number.MAX_SAFE_INTEGER, after });
      for (const key of page.keys) {
        if (skip !== undefined && key.startsWith(skip)) continue;
        skip = undefined;
        const entry = folderEntry(prefix, key);
        if (keys.length + prefixes.length === options.limit) return { keys, prefixes, next: last };
        if (entry.prefix !== undefined) {
          prefixes.push(entry.prefix);
          skip = last = entry.prefix;
        } else {
          keys.push(key);
          last = key;
        }
      }
      if (page.next === undefined) return { keys, prefixes };
      after = page.next;
    }
  }

  /** Validated write options: the signal, an id for the write, a deadline. */
  #cleanWrite(options: WriteOptions, op: StorageOp, key: string | undefined): CleanWriteOptions {
    if (options === null || typeof options !== "object") throw new StorageError("invalid", "options must be an object", { op, key });
    const { writeId, deadline } = options;
    if (writeId !== undefined && (typeof writeId !== "string" || writeId.length === 0 || writeId.length > 256 || CONTROL_OR_SPACE.test(writeId))) {
      throw new StorageError("invalid", "writeId must be a non-empty string of at most 256 printable characters without spaces", { op, key });
    }
    if (deadline !== undefined && (typeof deadline !== "number" || !Number.isFinite(deadline))) {
      throw new StorageError("invalid", `deadline must be a time in epoch milliseconds, got ${String(deadline)}`, { op, key });
    }
    const clean: CleanWriteOptions = { signal: options.signal };
    if (writeId !== undefined) clean.writeId = writeId;
    if (deadline !== undefined) clean.deadline = deadline;
    return clean;
  }

  #cleanPut(options: PutOptions, op: StorageOp, key: string): CleanPutOptions {
    const clean: CleanPutOptions = { ...this.#cleanWrite(options, op, key), ...this.#conditions(options, op, key) };
    const metadata = normalizeMetadata(options.metadata, op, key);
    if (metadata !== undefined) clean.metadata = metadata;
    return clean;
  }

  /** Checked write conditions; `unsupported` where the backend cannot enforce them. */
  #conditions(given: WriteConditions, op: StorageOp, key: string): WriteConditions {
    const { ifMatch, ifNoneMatch } = given;
    if (ifMatch === undefined && ifNoneMatch === undefined) return {};
    if (ifMatch !== undefined && (typeof ifMatch !== "string" || ifMatch.length === 0 || ifMatch.length > MAX_ETAG_LENGTH || CONTROL_CHAR.test(ifMatch))) {
      throw new StorageError("invalid", "ifMatch must be an etag from stat() (a non-empty string)", { op, key });
    }
    if (ifNoneMatch !== undefined && ifNoneMatch !== "*") {
      throw new StorageError("invalid", `ifNoneMatch must be "*" (create only if the key does not exist), got ${JSON.stringify(ifNoneMatch)}`, { op, key });
    }
    if (ifMatch !== undefined && ifNoneMatch !== undefined) {
      throw new StorageError("invalid", "give ifMatch or ifNoneMatch, not both", { op, key });
    }
    if (!this.capabilities.conditionalWrites) throw this.#unsupported(op, key, "conditional writes");
    return ifMatch !== undefined ? { ifMatch } : { ifNoneMatch };
  }

  #assertData(data: unknown, op: StorageOp, key: string): asserts data is Uint8Array {
    if (!(data instanceof Uint8Array)) {
      const got = data === null ? "null" : typeof data;
      throw new StorageError("invalid", `data must be a Uint8Array (encode text with TextEncoder), got ${got}`, { op, key });
    }
    if (data.byteLength > this.capabilities.maxValueBytes) {
      throw new StorageError("invalid", `value is ${data.byteLength} bytes, this store takes at most ${this.capabilities.maxValueBytes} in one put (use putStream)`, { op, key });
    }
  }

  #assertVersion(version: unknown, op: StorageOp, key: string): void {
    if (version === undefined) return;
    if (typeof version !== "string" || version.length === 0) throw new StorageError("invalid", "version must be a non-empty string from versions()", { op, key });
    if (!this.capabilities.versions) throw this.#unsupported(op, key, "versions");
  }

  #assertKeyList(keys: unknown, op: StorageOp): asserts keys is string[] {
    if (!Array.isArray(keys)) throw new StorageError("invalid", "keys must be an array of strings", { op });
    for (const key of keys) assertKey(key, op);
  }

  #unsupported(op: StorageOp, key?: string, feature: string = op): StorageError {
    return new StorageError("unsupported", `this store does not support ${feature} (see store.capabilities)`, { op, key });
  }
}

const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;
const CONTROL_OR_SPACE = /[\u0000-\u0020\u007f]/;

/** A range as given, checked (integers, not negative); undefined when none was given. */
function checkRange(range: unknown, op: StorageOp, key: string): ByteRange | undefined {
  if (range === undefined) return undefined;
  const bad = () => new StorageError("invalid", "range must be { offset, length? } with whole numbers of bytes >= 0", { op, key });
  if (range === null || typeof range !== "object") throw bad();
  const { offset, length } = range as ByteRange;
  if (!Number.isSafeInteger(offset) || offset < 0) throw bad();
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw bad();
  return length === undefined ? { offset } : { offset, length };
}

/**
 * The bytes `[start, end)` of a value of `size` bytes that `range` asks for: cut at the end of
 * the value; an offset past the end is `invalid`. For backends that read ranges natively.
 */
export function resolveRange(range: ByteRange, size: number, op: StorageOp, key: string): { start: number; end: number } {
  if (range.offset > size) {
    throw new StorageError("invalid", `range starts at byte ${range.offset}, past the end of the value (${size} bytes)`, { op, key });
  }
  const end = range.length === undefined ? size : Math.min(size, range.offset + range.length);
  return { start: range.offset, end };
}

/** The bytes of `range` out of a whole body, for stores that cannot read a range themselves. */
async function* cutStream(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, range: ByteRange | undefined, key: string): AsyncGenerator<Uint8Array> {
  if (range === undefined) return yield* body;
  const end = range.length === undefined ? Infinity : range.offset + range.length;
  let position = 0;
  for await (const chunk of body) {
    const from = Math.max(range.offset - position, 0);
    const to = Math.min(end - position, chunk.byteLength);
    position += chunk.byteLength;
    if (to > from) yield from === 0 && to === chunk.byteLength ? chunk : chunk.slice(from, to);
    if (position >= end) return;
  }
  resolveRange(range, position, "getStream", key);
}

/**
 * Where `key` falls in a one-level listing of `prefix`: itself (`{ key }`) when no "/" follows
 * the prefix, else the sub-prefix it rolls up into (`{ prefix }`, ending in "/"). Also tells
 * whether a listing's `after` is a sub-prefix whose keys are to be skipped.
 */
export function folderEntry(prefix: string, key: string): { key?: string; prefix?: string } {
  const slash = key.indexOf("/", prefix.length);
  return slash < 0 ? { key } : { prefix: key.slice(0, slash + 1) };
}

/** Slices one page out of a full, sorted listing: the fallback for stores without `_listPage`. */
export function pageOf(sorted: string[], options: CleanListPageOptions): ListPage {
  let start = 0;
  if (options.after !== undefined) {
    const after = options.after;
    start = sorted.findIndex((k) => compareKeys(k, after) > 0);
    if (start < 0) start = sorted.length;
  }
  const keys = sorted.slice(start, start + options.limit);
  const more = start + options.limit < sorted.length;
  return more ? { keys, next: keys[keys.length - 1] } : { keys };
}
