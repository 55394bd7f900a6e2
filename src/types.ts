/**
 * The public contract: what a {@link Store} is and what its methods take and give.
 * Implementations extend {@link BaseStore} (src/store.ts), which validates once and hands the
 * backend clean arguments.
 */

/**
 * User metadata kept with a value: HTTP-header style names (lower-cased on the way in, made of
 * `a-z 0-9 - _ .`) to string values, at most 2 KiB in all (S3's limit, so every backend can
 * keep every valid set).
 */
export type Metadata = Record<string, string>;

/** Options every operation takes. */
export interface OperationOptions {
  /**
   * Cancels the operation: it rejects promptly with `signal.reason`. An aborted write either
   * took effect whole or not at all, never partly. `AbortSignal.timeout(ms)` gives a deadline.
   */
  signal?: AbortSignal;
}

/**
 * Conditions of a conditional write (`capabilities.conditionalWrites`). When one does not
 * hold, the write rejects with kind `conflict` and changes nothing.
 */
export interface WriteConditions {
  /** Write only if the key exists and its current etag ({@link ObjectInfo.etag}) is this one. */
  ifMatch?: string;
  /** `"*"`: write only if the key does not exist (create, never replace). */
  ifNoneMatch?: "*";
}

/** Options every write takes. */
export interface WriteOptions extends OperationOptions {
  /**
   * Identifies one logical write across attempts: a backend that can tell (NATS, through
   * JetStream's duplicate window; PostgreSQL, through its table of recent write ids) applies
   * attempts with the same id at most once. The retry layer sets one per call; give your own
   * when you retry by hand.
   */
  writeId?: string;
  /**
   * Epoch milliseconds after which the write must not take effect: a backend that can check it
   * on the server (PostgreSQL) refuses to apply a write that arrives later, so a write whose
   * call timed out cannot land after a later one. It does not end the call by itself: pair it
   * with a signal (the timeout layer, `openStore(url, { timeout })`, sets both).
   */
  deadline?: number;
}

export interface PutOptions extends WriteOptions, WriteConditions {
  /** Replaces the key's metadata (a put without it leaves the new value with none). */
  metadata?: Metadata;
}

export interface DeleteOptions extends WriteOptions {
  /** Delete only if the key exists and its current etag is this one; else `conflict`. */
  ifMatch?: string;
}

/** Bytes `[offset, offset + length)` of a value. */
export interface ByteRange {
  /** First byte, from 0. An offset past the end of the value is `invalid`. */
  offset: number;
  /** Bytes wanted (default: to the end); a range past the end is cut at the end. */
  length?: number;
}

export interface GetOptions extends OperationOptions {
  /** A version from {@link Store.versions}; only where `capabilities.versions`. */
  version?: string;
  /**
   * Only these bytes of the value. Every store takes it; where `capabilities.rangeReads` the
   * backend reads just the range, elsewhere the whole value is read and cut.
   */
  range?: ByteRange;
}

export interface ListPageOptions extends OperationOptions {
  /** Most entries in one page, keys and prefixes together (default 1000). */
  limit?: number;
  /**
   * Start after this key (exclusive): the `next` of the previous page. With a `delimiter`, an
   * `after` that is one of the returned `prefixes` skips every key under it.
   */
  after?: string;
  /**
   * `"/"`: list one level, like a folder: keys directly under `prefix` in `keys`, and each
   * deeper level once in `prefixes` (S3's CommonPrefixes).
   */
  delimiter?: "/";
}

export interface ListPage {
  /** Keys in byte order of their UTF-8 encoding. */
  keys: string[];
  /**
   * With a `delimiter`: the sub-prefixes under `prefix` (each ending in the delimiter), in byte
   * order. Absent without a delimiter.
   */
  prefixes?: string[];
  /** Pass as `after` to get the next page; absent on the last page. */
  next?: string;
}

export interface ObjectInfo {
  key: string;
  /** Bytes. */
  size: number;
  /** When this value was written. */
  modified: Date;
  metadata: Metadata;
  /**
   * An opaque tag of this value that changes whenever the value changes; give it to
   * `put`/`delete` as `ifMatch` to write only if nobody wrote in between.
   */
  etag: string;
  /** The version of this value, where the store keeps versions. */
  version?: string;
}

export interface VersionInfo {
  /** Opaque; pass to `get(key, { version })`. */
  version: string;
  /** Bytes (0 for a delete marker). */
  size: number;
  modified: Date;
  /** True for the marker a delete leaves in the history. */
  deleted: boolean;
}

/** One change seen by {@link Store.watch}. */
export interface ChangeEvent {
  key: string;
  op: "put" | "delete";
  version?: string;
  time: Date;
}

export interface BatchEntry extends WriteConditions {
  key: string;
  data: Uint8Array;
  metadata?: Metadata;
}

/** A body for `putStream`: a Node Readable, a web ReadableStream, or any (async) iterable of chunks. */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/**
 * What a store can do natively. Flat booleans and limits; the conformance suite and the layers
 * read these, never a backend's name.
 */
export interface Capabilities {
  /** `stat` returns size, modification time and metadata. */
  stat: boolean;
  /** Metadata given to `put` is kept and returned by `stat`. */
  metadata: boolean;
  /** Every put keeps a version: `versions(key)` and `get(key, { version })` work. */
  versions: boolean;
  /** `putStream`/`getStream` hold at most about one chunk in memory, whatever the object size. */
  streaming: boolean;
  /** `listPage` is served by the backend page by page (not by listing everything). */
  paginatedList: boolean;
  /** `putMany`/`getMany`/`deleteMany` use the backend's own batch operations. */
  batch: boolean;
  /** `watch` reports changes from every writer of the backend, in other processes too. */
  watch: boolean;
  /** `ifMatch` / `ifNoneMatch` are enforced by the backend (else they reject `unsupported`). */
  conditionalWrites: boolean;
  /** A `range` is read by the backend without reading the rest of the value. */
  rangeReads: boolean;
  /** The largest value `put` accepts, in bytes (Infinity when only memory limits it). */
  maxValueBytes: number;
  /**
   * The longest key in UTF-8 bytes, when less than the contract's 1024: a namespace prefix
   * (`withPrefix`, an `s3://bucket/prefix`) takes its own length off the limit.
   */
  maxKeyBytes?: number;
}

/**
 * Binary values under `/`-separated keys. Every method validates its arguments and rejects
 * with a {@link StorageError}; every method is safe to call concurrently: any interleaving of
 * calls gives a result some serial order of them could give.
 */
export interface Store {
  readonly capabilities: Readonly<Capabilities>;
  /** True once `close()` was called. */
  readonly closed: boolean;

  /** Stores `data` at `key`, replacing any value (a new version where versions are kept). */
  put(key: string, data: Uint8Array, options?: PutOptions): Promise<void>;
  /** The value at `key`; rejects with kind `not_found` when there is none. */
  get(key: string, options?: GetOptions): Promise<Uint8Array>;
  /** Every key starting with `prefix` (`""`: all), in byte order of their UTF-8 encoding. */
  list(prefix?: string, options?: OperationOptions): Promise<string[]>;
  /** Removes `key`; resolves when it did not exist (idempotent). Versions keep their history. */
  delete(key: string, options?: DeleteOptions): Promise<void>;
  /** Releases connections and handles; further calls reject with kind `fatal`. Idempotent. */
  close(): Promise<void>;

  /** Size, time, metadata and version of `key` (`capabilities.stat`), else `unsupported`. */
  stat(key: string, options?: OperationOptions): Promise<ObjectInfo>;
  /** The versions of `key`, oldest first (`[]` when never written); needs `capabilities.versions`. */
  versions(key: string, options?: OperationOptions): Promise<VersionInfo[]>;
  /** Stores a body given as chunks; memory stays bounded where `capabilities.streaming`. */
  putStream(key: string, source: ByteSource, options?: PutOptions): Promise<void>;
  /**
   * The value as chunks; rejects with `not_found` before yielding when there is none. A body
   * not read to its end holds a file, socket or consumer until released: breaking out of
   * `for await` does that, and so does `body[Symbol.asyncIterator]().return()`, read or not.
   */
  getStream(key: string, options?: GetOptions): Promise<AsyncIterable<Uint8Array>>;
  /** One page of keys under `prefix` (one level of it with a `delimiter`), resumable with `next`. */
  listPage(prefix?: string, options?: ListPageOptions): Promise<ListPage>;
  /** Every key under `prefix`, page by page, without holding the whole listing. */
  keys(prefix?: string, options?: Omit<ListPageOptions, "delimiter">): AsyncIterable<string>;
  /**
   * Stores several values; not atomic across keys. An entry's conditions are checked for that
   * entry; one that fails rejects the call with `conflict` (entries before it may have landed).
   */
  putMany(entries: BatchEntry[], options?: WriteOptions): Promise<void>;
  /** Values for several keys, `undefined` where a key is missing, in the order asked. */
  getMany(keys: string[], options?: OperationOptions): Promise<(Uint8Array | undefined)[]>;
  /** Deletes several keys (missing ones are fine). */
  deleteMany(keys: string[], options?: WriteOptions): Promise<void>;
  /**
   * A change feed of puts and deletes under `prefix` from now on; resolves once the feed is
   * live. Ends when `signal` aborts, the loop breaks, or the store closes. Needs `capabilities.watch`.
   */
  watch(prefix?: string, options?: OperationOptions): Promise<AsyncIterable<ChangeEvent>>;
}

/** A store URL taken apart: what a backend's URL opener receives. */
export interface StoreUrl {
  /** Lower-case scheme without the colon: `file`, `nats`, `s3`... */
  scheme: string;
  /** The URL as given. Holds secrets: never log it, use `redacted`. */
  href: string;
  /** The URL parsed by WHATWG rules (for `file:` relative paths, use `href`). */
  url: URL;
  /** The URL with any password or token replaced by `***`, safe for logs and errors. */
  redacted: string;
}
