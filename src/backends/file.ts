import { constants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { link, open, realpath, rename, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { StorageError, type StorageOp } from "../errors.js";
import { assertPrefix } from "../keys.js";
import { notFound } from "../internal/not-found.js";
import {
  BaseStore,
  MAX_PAGE_SIZE,
  resolveRange,
  type CleanBatchEntry,
  type CleanDeleteOptions,
  type CleanFolderOptions,
  type CleanListPageOptions,
  type CleanPutOptions,
  type CleanWriteOptions,
} from "../store.js";
import type { BatchEntry, ByteSource, Capabilities, DeleteOptions, GetOptions, ListPage, ListPageOptions, ObjectInfo, OperationOptions, PutOptions, StoreUrl, WriteOptions } from "../types.js";
import { untilAborted } from "./file/abortable.js";
import { CommitGate, gated } from "./file/commit-gate.js";
import { DirectoryReader } from "./file/entries.js";
import { classifyFsError } from "./file/errors.js";
import { encodeHeader, newEtag } from "./file/format.js";
import { loadLayout, tempName } from "./file/layout.js";
import { LOCK_SUFFIX, withKeyLock, type LockOptions } from "./file/lock.js";
import { dirNames, keyPath, type NameMode } from "./file/names.js";
import { resolveFileOptions, type FileStoreOptions, type ResolvedFileOptions } from "./file/options.js";
import { ensureDir, errno, isContainedDir, makeRootDir, requireRootDir, syncDir, writeAll, writeAllParts } from "./file/safe-fs.js";
import { parseFileUrl } from "./file/url.js";
import { checkedHeader, currentEtag, openValueFile, readHeader, readRange } from "./file/value-file.js";
import { folderPage, sweepTempFiles, walkKeys } from "./file/walk.js";

export type { NameMode } from "./file/names.js";
export type { FileStoreOptions } from "./file/options.js";

// A concurrent delete may prune the directory a put is writing into; a few retries always win.
const CREATE_ATTEMPTS = 8;
// Entries of one putMany/deleteMany written at once.
const BATCH_CONCURRENCY = 16;
// Keys a keys() pass takes from its walk per step.
const KEYS_PER_STEP = 1000;

/** How a write's body goes into its temp file: from `start`, returning the value's length. */
type BodyWriter = (handle: FileHandle, header: Buffer, signal: AbortSignal | undefined) => Promise<number>;

/**
 * The embedded store: one file per value under a root directory, no server. Keys map to paths
 * by a reversible escaping that can never leave the root (docs/file.md); a put writes a temp
 * file beside the target, fsyncs it and renames it over the target, so readers and crashes see
 * the old value or the new one, never a mix. Metadata and an etag live in a header of the value
 * file. The rename (or a delete's unlink) happens under the key's commit lock, which makes
 * conditional writes hold across processes; once it has begun, the call waits for it whatever
 * its signal does, so a write whose call rejected never lands afterwards.
 */
export class FileStore extends BaseStore {
  readonly capabilities: Readonly<Capabilities> = Object.freeze({
    stat: true,
    metadata: true,
    versions: false,
    streaming: true,
    paginatedList: true,
    batch: false,
    // fs.watch on Linux (inotify) sees neither other machines on a shared mount nor, reliably,
    // renames into deep trees it did not watch from the start: no cross-process change feed.
    watch: false,
    conditionalWrites: true,
    rangeReads: true,
    maxValueBytes: Infinity,
  });
  /** The store's directory, resolved to an absolute path. */
  readonly root: string;
  /** The number of stale temp files the sweep started at open removed (0 with `sweepOnOpen: false`). */
  readonly initialSweep: Promise<number>;
  readonly #base: string;
  readonly #mode: NameMode;
  readonly #options: ResolvedFileOptions;
  readonly #reader: DirectoryReader;
  readonly #sweepAbort = new AbortController();
  readonly #links = { symlinks: true };

  /**
   * Opens the store at `options.root`, creating the directory unless `create` is false, and
   * rejects with the reason it cannot be used (`invalid` options, `not_found`, `fatal`).
   */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    const resolved = resolveFileOptions(options);
    try {
      if (resolved.create) await makeRootDir(resolved.root);
      else await requireRootDir(resolved.root);
      // Everything below works on the real path: a symlinked root is the user's choice, links
      // inside it are not.
      const base = await realpath(resolved.root);
      const mode = await loadLayout(base, resolved.names, resolved.create);
      return new FileStore(resolved, base, mode);
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw classifyFsError(err, "open", undefined, resolved.root) ?? new StorageError("fatal", `cannot open the file store at ${resolved.root}: ${String(err)}`, { op: "open", cause: err });
    }
  }

  private constructor(options: ResolvedFileOptions, base: string, mode: NameMode) {
    super();
    this.root = options.root;
    this.#options = options;
    this.#base = base;
    this.#mode = mode;
    this.#reader = new DirectoryReader(mode);
    this.initialSweep = options.sweepOnOpen ? sweepTempFiles(base, options.staleTempMs, this.#sweepAbort.signal).catch(() => 0) : Promise.resolve(0);
  }

  /**
   * Removes temp files untouched for `olderThanMs` (default the store's `staleTempMs`) and
   * returns how many. A temp file is abandoned when its writer died mid-put; a live writer
   * keeps its file's mtime fresh, but a tiny `olderThanMs` can still remove one in flight.
   */
  async sweepTempFiles(olderThanMs = this.#options.staleTempMs, options: OperationOptions = {}): Promise<number> {
    return this.run("sweep", undefined, options.signal, () => sweepTempFiles(this.#base, olderThanMs, options.signal));
  }

  // The public writes run with a commit gate (file/commit-gate.ts) in place of the caller's signal.
  override put(key: string, data: Uint8Array, options?: PutOptions): Promise<void> {
    return gated(options, (o) => super.put(key, data, o));
  }

  override putStream(key: string, source: ByteSource, options?: PutOptions): Promise<void> {
    return gated(options, (o) => super.putStream(key, source, o));
  }

  override putMany(entries: BatchEntry[], options?: WriteOptions): Promise<void> {
    return gated(options, (o) => super.putMany(entries, o));
  }

  override delete(key: string, options?: DeleteOptions): Promise<void> {
    return gated(options, (o) => super.delete(key, o));
  }

  override deleteMany(keys: string[], options?: WriteOptions): Promise<void> {
    return gated(options, (o) => super.deleteMany(keys, o));
  }

  protected async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    await this.#write(key, options, "put", data.byteLength, async (handle, header, signal) => {
      await writeAllParts(handle, [header, data], 0, signal);
      return data.byteLength;
    });
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    await this.#write(key, options, "putStream", undefined, async (handle, header, signal) => {
      await writeAll(handle, header, 0);
      let position = header.length;
      for await (const chunk of untilAborted(source, signal)) {
        await writeAll(handle, chunk, position, signal);
        position += chunk.byteLength;
      }
      return position - header.length;
    });
  }

  protected override async _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    await this.#batch(entries, ({ key, data, ...rest }) =>
      this.#write(key, { ...options, ...rest }, "putMany", data.byteLength, async (handle, header, signal) => {
        await writeAllParts(handle, [header, data], 0, signal);
        return data.byteLength;
      }),
    );
  }

  protected override async _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    await this.#batch(keys, (key) => this.#deleteOne(key, options, "deleteMany"));
  }

  /**
   * Runs `each` over `items`, a few at a time. After a failure no further item starts, and the
   * call settles only once those in flight did: nothing lands after the call rejected.
   */
  async #batch<T>(items: readonly T[], each: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    let failed = false;
    let failure: unknown;
    const worker = async () => {
      while (!failed && next < items.length) {
        try {
          await each(items[next++]!);
        } catch (err) {
          if (!failed) [failed, failure] = [true, err];
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, items.length) }, worker));
    if (failed) throw failure;
  }

  /**
   * Writes header + body to a temp file in the key's directory, then, holding the key's lock,
   * checks the write's condition and renames the temp file over the value (for `ifNoneMatch`, links
   * it: link fails when the value exists, even against a writer that takes no lock).
   * `knownLength` undefined: the header is rewritten with the length once the body is done.
   */
  async #write(key: string, options: CleanPutOptions, op: StorageOp, knownLength: number | undefined, body: BodyWriter): Promise<void> {
    const gate = CommitGate.of(options.signal);
    const signal = gate.outer;
    const { dir, file } = keyPath(key, this.#mode);
    const { handle, dirPath, temp } = await this.#createTemp(dir);
    const target = join(dirPath, file[0]!);
    const etag = newEtag();
    let closed = false;
    let placed = false;
    try {
      const length = await body(handle, encodeHeader(options.metadata, knownLength ?? 0, etag), signal);
      if (knownLength === undefined) await writeAll(handle, encodeHeader(options.metadata, length, etag), 0);
      if (this.#options.fsync) await handle.datasync();
      closed = true;
      await handle.close();
      await withKeyLock(target + LOCK_SUFFIX, this.#lockOptions(signal), async (lease) => {
        if (options.ifMatch !== undefined) await this.#expectEtag(target, options.ifMatch, op, key);
        lease.check(op, key);
        gate.commit(op, key, options.deadline);
        if (options.ifNoneMatch === undefined) {
          await rename(temp, target);
          placed = true;
          return;
        }
        try {
          await link(temp, target);
        } catch (err) {
          if (errno(err) === "EEXIST") throw new StorageError("conflict", "the key exists (ifNoneMatch)", { op, key });
          throw err;
        }
      });
      if (this.#options.fsync) await syncDir(dirPath);
    } finally {
      if (!closed) await handle.close().catch(() => undefined);
      if (!placed) await unlink(temp).catch(() => undefined);
    }
  }

  #lockOptions(signal: AbortSignal | undefined): LockOptions {
    return { signal, staleMs: this.#options.staleLockMs, links: this.#links };
  }

  /** Rejects with `conflict` unless the value at `path` exists with etag `expected`. */
  async #expectEtag(path: string, expected: string, op: StorageOp, key: string): Promise<void> {
    const current = await currentEtag(path, op, key);
    if (current === expected) return;
    throw new StorageError("conflict", current === undefined ? "the key does not exist (ifMatch)" : "the key's etag differs (ifMatch): it was written since", { op, key });
  }

  async #createTemp(dir: readonly string[]): Promise<{ handle: FileHandle; dirPath: string; temp: string }> {
    for (let attempt = 1; ; attempt++) {
      try {
        const dirPath = await ensureDir(this.#base, dir, this.#options.fsync);
        const temp = join(dirPath, tempName());
        const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
        return { handle, dirPath, temp };
      } catch (err) {
        // ENOENT: a concurrent delete pruned a directory on the way (at mkdir, lstat or open).
        if (errno(err) !== "ENOENT" || attempt >= CREATE_ATTEMPTS) throw err;
      }
    }
  }

  protected async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    const handle = await this.#openValue(key, "get");
    try {
      if (options.range !== undefined) {
        const { header } = await readHeader(handle, "get", key);
        const { start, end } = resolveRange(options.range, header.valueBytes, "get", key);
        return await readRange(handle, header, start, end, "get", key);
      }
      const bytes = await handle.readFile({ signal: options.signal });
      const header = checkedHeader(bytes, bytes.byteLength, "get", key);
      const value = new Uint8Array(bytes.buffer, bytes.byteOffset + header.headerBytes, header.valueBytes);
      // A view of a buffer of its own; a slice of a shared pool would expose other bytes.
      return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength ? value : value.slice();
    } finally {
      await handle.close();
    }
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const handle = await this.#openValue(key, "getStream");
    try {
      const { header } = await readHeader(handle, "getStream", key);
      const { start, end } = options.range ? resolveRange(options.range, header.valueBytes, "getStream", key) : { start: 0, end: header.valueBytes };
      if (start === end) {
        await handle.close();
        return (async function* () {})();
      }
      // The handle closes when the stream ends, the consumer stops iterating or the signal
      // aborts. It holds the file as it was when opened: a concurrent put does not change it.
      return handle.createReadStream({
        start: header.headerBytes + start,
        end: header.headerBytes + end - 1,
        highWaterMark: this.#options.chunkBytes,
        autoClose: true,
        signal: options.signal,
      });
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  protected override async _stat(key: string): Promise<ObjectInfo> {
    const handle = await this.#openValue(key, "stat");
    try {
      const { header, stats, etag } = await readHeader(handle, "stat", key);
      return { key, size: header.valueBytes, modified: stats.mtime, metadata: header.metadata, etag };
    } finally {
      await handle.close();
    }
  }

  /** Opens a key's value file for reading; never through a symbolic link. */
  async #openValue(key: string, op: StorageOp): Promise<FileHandle> {
    const { dir, file } = keyPath(key, this.#mode);
    if (!(await isContainedDir(this.#base, dir))) throw notFound(op, key);
    return openValueFile(join(this.#base, ...dir, file[0]!), op, key);
  }

  protected async _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    await this.#deleteOne(key, options, "delete");
  }

  /**
   * Unlinks the value under the key's lock (checking `ifMatch` there), then removes the
   * directories left empty, deepest first.
   */
  async #deleteOne(key: string, options: CleanDeleteOptions, op: StorageOp): Promise<void> {
    const gate = CommitGate.of(options.signal);
    const { dir, file } = keyPath(key, this.#mode);
    const missing = () => {
      if (options.ifMatch !== undefined) throw new StorageError("conflict", "the key does not exist (ifMatch)", { op, key });
    };
    if (!(await isContainedDir(this.#base, dir))) return missing();
    const dirPath = join(this.#base, ...dir);
    const target = join(dirPath, file[0]!);
    let removed = false;
    try {
      await withKeyLock(target + LOCK_SUFFIX, this.#lockOptions(gate.outer), async (lease) => {
        if (options.ifMatch !== undefined) await this.#expectEtag(target, options.ifMatch, op, key);
        lease.check(op, key);
        gate.commit(op, key, options.deadline);
        try {
          await unlink(target);
          removed = true;
        } catch (err) {
          if (errno(err) !== "ENOENT") throw err;
        }
      });
    } catch (err) {
      // The directory went before the lock could be made in it: a concurrent delete pruned it.
      if (errno(err) === "ENOENT") return missing();
      throw err;
    }
    if (!removed) return;
    if (this.#options.fsync) await syncDir(dirPath);
    // rmdir only removes empty directories, so a put that just made one of them fails to create
    // its temp file there and makes it again.
    for (let depth = dir.length; depth > 0; depth--) {
      try {
        await rmdir(join(this.#base, ...dir.slice(0, depth)));
      } catch {
        break;
      }
    }
  }

  protected async _list(prefix: string, options: OperationOptions): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of await this.#walk(prefix, undefined, options.signal)) keys.push(key);
    return keys;
  }

  protected override async _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    const keys: string[] = [];
    for await (const key of await this.#walk(prefix, options.after, options.signal)) {
      if (keys.length === options.limit) return { keys, next: keys[keys.length - 1] };
      keys.push(key);
    }
    return { keys };
  }

  protected override async _listFolder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    const at = this.#level(prefix);
    if (!(await isContainedDir(this.#base, at.components))) return { keys: [], prefixes: [] };
    return folderPage(join(this.#base, ...at.components), at.dirKey, at.rest, { ...options, reader: this.#reader, mode: this.#mode });
  }

  /**
   * One walk for the whole pass, read a step at a time: every directory is read once, where
   * paging through `listPage` would find its place again for every page.
   */
  override async *keys(prefix = "", options: Omit<ListPageOptions, "delimiter"> = {}): AsyncIterable<string> {
    assertPrefix(prefix, "list");
    const { limit, after, signal } = options;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE)) {
      throw new StorageError("invalid", `limit must be an integer from 1 to ${MAX_PAGE_SIZE}, got ${String(limit)}`, { op: "list" });
    }
    if (after !== undefined) assertPrefix(after, "list");
    const walk = (await this.run("list", undefined, signal, () => this.#walk(prefix, after, signal)))[Symbol.asyncIterator]();
    try {
      for (;;) {
        const step = await this.run("list", undefined, signal, async () => {
          const keys: string[] = [];
          while (keys.length < KEYS_PER_STEP) {
            const next = await walk.next();
            if (next.done) return { keys, done: true };
            keys.push(next.value);
          }
          return { keys, done: false };
        });
        yield* step.keys;
        if (step.done) return;
      }
    } finally {
      await walk.return?.(undefined);
    }
  }

  /** Where a listing of `prefix` starts: the directory of its last full segment, and the rest. */
  #level(prefix: string): { components: string[]; dirKey: string; rest: string } {
    const cut = prefix.lastIndexOf("/");
    return {
      components: cut < 0 ? [] : dirNames(prefix.slice(0, cut).split("/"), this.#mode),
      dirKey: prefix.slice(0, cut + 1),
      rest: prefix.slice(cut + 1),
    };
  }

  /** The keys under `prefix` (after `after`), walking only the directories that can hold them. */
  async #walk(prefix: string, after: string | undefined, signal: AbortSignal | undefined): Promise<AsyncIterable<string>> {
    const at = this.#level(prefix);
    if (!(await isContainedDir(this.#base, at.components))) return (async function* () {})();
    return walkKeys(join(this.#base, ...at.components), at.dirKey, at.rest, { reader: this.#reader, after, signal });
  }

  protected async _close(): Promise<void> {
    this.#sweepAbort.abort();
    await this.initialSweep;
  }

  protected override classifyError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
    return classifyFsError(err, op, key, this.root) ?? super.classifyError(err, op, key);
  }
}

/** `file:./data`, `file:/abs/dir`, `file:///abs/dir`, with `?fsync=false` and `?names=portable`. */
export async function openFileStore(target: StoreUrl, options: FileStoreOptions = {}): Promise<FileStore> {
  return FileStore.open({ ...options, ...parseFileUrl(target) });
}
