import { StorageError, isAbortError, type StorageOp } from "./errors.js";
import { assertKey, assertPrefix, compareKeys } from "./keys.js";
import { collect, isByteSource, validatedChunks } from "./internal/bytes.js";
import { mapLimit } from "./internal/concurrency.js";
import { normalizeMetadata } from "./internal/metadata.js";
import { raceSignal } from "./internal/signal.js";
import type {
  BatchEntry,
  ByteSource,
  Capabilities,
  ChangeEvent,
  GetOptions,
  ListPage,
  ListPageOptions,
  ObjectInfo,
  OperationOptions,
  PutOptions,
  Store,
  VersionInfo,
} from "./types.js";

export type * from "./types.js";

/** Default page size for `listPage`/`keys`, and the largest a caller may ask for. */
export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 10_000;
/** Calls in flight for the batch fallbacks of stores without native batches. */
const BATCH_CONCURRENCY = 16;

/** What a backend's `_put` receives: metadata validated and normalised. */
export interface CleanPutOptions extends OperationOptions {
  metadata?: Record<string, string>;
}

/** What a backend's `_listPage` receives: limit checked and defaulted. */
export interface CleanListPageOptions extends OperationOptions {
  limit: number;
  after?: string;
}

/**
 * The thin validating wrapper every store extends. Public methods check the store is open,
 * validate keys, values, metadata and options once, enforce the signal, and turn whatever the
 * backend throws into a classified {@link StorageError}; the backend implements the narrow
 * `_method`s and only ever sees clean arguments.
 *
 * Required: `_put`, `_get`, `_list`, `_delete`, `_close`. Optional ones match capabilities:
 * `_stat`, `_versions` (and `_get` with a version), `_putStream`/`_getStream`, `_listPage`,
 * `_putMany`/`_getMany`/`_deleteMany`, `_watch`. Where an optional one is missing, the wrapper
 * falls back to the required ones (buffered streams, listing then slicing, a bounded-concurrency
 * loop for batches) or rejects with kind `unsupported`.
 */
export abstract class BaseStore implements Store {
  abstract readonly capabilities: Readonly<Capabilities>;
  #closed = false;
  #closing: Promise<void> | undefined;

  protected abstract _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void>;
  protected abstract _get(key: string, options: GetOptions): Promise<Uint8Array>;
  /** Keys under `prefix`, already in byte order (use `sortKeys` when the backend does not sort so). */
  protected abstract _list(prefix: string, options: OperationOptions): Promise<string[]>;
  protected abstract _delete(key: string, options: OperationOptions): Promise<void>;
  protected abstract _close(): Promise<void>;

  protected _stat?(key: string, options: OperationOptions): Promise<ObjectInfo>;
  protected _versions?(key: string, options: OperationOptions): Promise<VersionInfo[]>;
  protected _putStream?(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void>;
  protected _getStream?(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>>;
  protected _listPage?(prefix: string, options: CleanListPageOptions): Promise<ListPage>;
  protected _putMany?(entries: BatchEntry[], options: OperationOptions): Promise<void>;
  protected _getMany?(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]>;
  protected _deleteMany?(keys: string[], options: OperationOptions): Promise<void>;
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
    const metadata = normalizeMetadata(options.metadata, "put", key);
    return this.run("put", key, options.signal, () => this._put(key, data, { signal: options.signal, metadata }));
  }

  async get(key: string, options: GetOptions = {}): Promise<Uint8Array> {
    assertKey(key, "get");
    this.#assertVersion(options.version, "get", key);
    return this.run("get", key, options.signal, () => this._get(key, options));
  }

  async list(prefix = "", options: OperationOptions = {}): Promise<string[]> {
    assertPrefix(prefix, "list");
    return this.run("list", undefined, options.signal, () => this._list(prefix, options));
  }

  async delete(key: string, options: OperationOptions = {}): Promise<void> {
    assertKey(key, "delete");
    return this.run("delete", key, options.signal, () => this._delete(key, options));
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
    const metadata = normalizeMetadata(options.metadata, "putStream", key);
    const chunks = validatedChunks(source, "putStream", key, options.signal);
    const clean = { signal: options.signal, metadata };
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
    const getStream = this._getStream;
    const body = await this.run("getStream", key, options.signal, async () =>
      getStream ? getStream.call(this, key, options) : [await this._get(key, options)],
    );
    return this.#classifiedIteration(body, "getStream", key, options.signal);
  }

  async listPage(prefix = "", options: ListPageOptions = {}): Promise<ListPage> {
    assertPrefix(prefix, "list");
    const limit = options.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new StorageError("invalid", `limit must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${String(limit)}`, { op: "list" });
    }
    if (options.after !== undefined) assertPrefix(options.after, "list");
    const clean: CleanListPageOptions = { signal: options.signal, limit, after: options.after };
    const listPage = this._listPage;
    return this.run("list", undefined, options.signal, async () => {
      if (listPage) return listPage.call(this, prefix, clean);
      return pageOf(await this._list(prefix, clean), clean);
    });
  }

  async *keys(prefix = "", options: ListPageOptions = {}): AsyncIterable<string> {
    let after = options.after;
    for (;;) {
      const page = await this.listPage(prefix, { ...options, after });
      yield* page.keys;
      if (page.next === undefined) return;
      after = page.next;
    }
  }

  async putMany(entries: BatchEntry[], options: OperationOptions = {}): Promise<void> {
    if (!Array.isArray(entries)) throw new StorageError("invalid", "entries must be an array of { key, data, metadata? }", { op: "putMany" });
    const clean = entries.map((entry) => {
      if (entry === null || typeof entry !== "object") throw new StorageError("invalid", "each entry must be { key, data, metadata? }", { op: "putMany" });
      assertKey(entry.key, "putMany");
      this.#assertData(entry.data, "putMany", entry.key);
      return { key: entry.key, data: entry.data, metadata: normalizeMetadata(entry.metadata, "putMany", entry.key) };
    });
    const putMany = this._putMany;
    return this.run("putMany", undefined, options.signal, async () => {
      if (putMany) return putMany.call(this, clean, options);
      await mapLimit(clean, BATCH_CONCURRENCY, (e) => this._put(e.key, e.data, { signal: options.signal, metadata: e.metadata }));
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

  async deleteMany(keys: string[], options: OperationOptions = {}): Promise<void> {
    this.#assertKeyList(keys, "deleteMany");
    const deleteMany = this._deleteMany;
    return this.run("deleteMany", undefined, options.signal, async () => {
      if (deleteMany) return deleteMany.call(this, keys, options);
      await mapLimit(keys, BATCH_CONCURRENCY, (key) => this._delete(key, options));
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

  async *#classifiedIteration(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, op: StorageOp, key: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of body) {
        signal?.throwIfAborted();
        yield chunk;
      }
    } catch (err) {
      throw this.#classify(err, op, key, signal);
    }
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
