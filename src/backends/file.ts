import { constants } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { open, realpath, rename, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { StorageError, type StorageOp } from "../errors.js";
import type { OpenStoreOptions, StoreUrl } from "../open.js";
import { BaseStore, type CleanListPageOptions, type CleanPutOptions } from "../store.js";
import type { Capabilities, GetOptions, ListPage, Metadata, ObjectInfo, OperationOptions } from "../types.js";
import { classifyFsError, notFound } from "./file/errors.js";
import { decodeHeader, encodeHeader, HEADER_READ_BYTES, type Header } from "./file/format.js";
import { loadLayout, tempName } from "./file/layout.js";
import { dirNames, keyPath, type NameMode } from "./file/names.js";
import { resolveFileOptions, type FileStoreOptions } from "./file/options.js";
import { untilAborted } from "./file/abortable.js";
import { ensureDir, errno, isContainedDir, makeRootDir, syncDir, writeAll } from "./file/safe-fs.js";
import { parseFileUrl } from "./file/url.js";
import { sweepTempFiles, walkKeys } from "./file/walk.js";

export type { NameMode } from "./file/names.js";
export type { FileStoreOptions } from "./file/options.js";

declare module "../open.js" {
  interface BackendOptions {
    /** Options for `file:` URLs (the URL's directory and `?fsync=`/`?names=` win). */
    file?: FileStoreOptions;
  }
}

// A concurrent delete may prune the directory a put is writing into; a few retries always win.
const CREATE_ATTEMPTS = 8;

/**
 * The embedded store: one file per value under a root directory, no server. Keys map to paths
 * by a reversible escaping that can never leave the root (docs/file.md); a put writes a temp
 * file beside the target, fsyncs it and renames it over the target, so readers and crashes see
 * the old value or the new one, never a mix. Metadata lives in a header of the value file.
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
    maxValueBytes: Infinity,
  });
  /** The store's directory, resolved to an absolute path. */
  readonly root: string;
  readonly #fsync: boolean;
  readonly #names: NameMode | undefined;
  readonly #staleTempMs: number;
  readonly #chunkBytes: number;
  readonly #ready: Promise<{ base: string; mode: NameMode }>;
  readonly #sweepAbort = new AbortController();
  #initialSweep: Promise<number> = Promise.resolve(0);

  constructor(options: FileStoreOptions) {
    super();
    const resolved = resolveFileOptions(options);
    this.root = resolved.root;
    this.#fsync = resolved.fsync;
    this.#names = resolved.names;
    this.#staleTempMs = resolved.staleTempMs;
    this.#chunkBytes = resolved.chunkBytes;
    this.#ready = this.#init(resolved.sweepOnOpen);
    // Failures surface from ready() and every operation; this only marks the promise handled.
    this.#ready.catch(() => undefined);
  }

  /** Creates the store and waits until its directory is usable (rejects with the reason it is not). */
  static async open(options: FileStoreOptions): Promise<FileStore> {
    const store = new FileStore(options);
    await store.ready();
    return store;
  }

  /** Resolves once the directory and its layout file are in place. */
  async ready(): Promise<void> {
    await this.run("open", undefined, undefined, async () => void (await this.#ready));
  }

  /** The number of stale temp files the sweep started at open removed (0 with `sweepOnOpen: false`). */
  get initialSweep(): Promise<number> {
    return this.#initialSweep;
  }

  /**
   * Removes temp files untouched for `olderThanMs` (default the store's `staleTempMs`) and
   * returns how many. A temp file is abandoned when its writer died mid-put; a live writer
   * keeps its file's mtime fresh, but a tiny `olderThanMs` can still remove one in flight.
   */
  async sweepTempFiles(olderThanMs = this.#staleTempMs, options: OperationOptions = {}): Promise<number> {
    return this.run("sweep", undefined, options.signal, async () => {
      const { base } = await this.#ready;
      return sweepTempFiles(base, olderThanMs, options.signal);
    });
  }

  async #init(sweep: boolean): Promise<{ base: string; mode: NameMode }> {
    await makeRootDir(this.root);
    // Everything below works on the real path: a symlinked root is the user's choice, links
    // inside it are not.
    const base = await realpath(this.root);
    const mode = await loadLayout(base, this.#names);
    if (sweep) this.#initialSweep = sweepTempFiles(base, this.#staleTempMs, this.#sweepAbort.signal).catch(() => 0);
    return { base, mode };
  }

  protected async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    await this.#write(key, options.metadata, options.signal, data.byteLength, async (handle, start) => {
      await writeAll(handle, data, start, options.signal);
      return data.byteLength;
    });
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    await this.#write(key, options.metadata, options.signal, undefined, async (handle, start) => {
      let position = start;
      for await (const chunk of untilAborted(source, options.signal)) {
        await writeAll(handle, chunk, position, options.signal);
        position += chunk.byteLength;
      }
      return position - start;
    });
  }

  /**
   * Writes header + body to a temp file in the key's directory, then renames it over the value.
   * `body` writes from `start` and returns the value's length; when `knownLength` is not given,
   * the header is rewritten with the length once the body is done.
   */
  async #write(
    key: string,
    metadata: Metadata | undefined,
    signal: AbortSignal | undefined,
    knownLength: number | undefined,
    body: (handle: FileHandle, start: number) => Promise<number>,
  ): Promise<void> {
    const { base, mode } = await this.#ready;
    const { dir, file } = keyPath(key, mode);
    const { handle, dirPath, temp } = await this.#createTemp(base, dir);
    let closed = false;
    let renamed = false;
    try {
      const header = encodeHeader(metadata, knownLength ?? 0);
      await writeAll(handle, header, 0);
      const length = await body(handle, header.length);
      if (knownLength === undefined) await writeAll(handle, encodeHeader(metadata, length), 0);
      if (this.#fsync) await handle.datasync();
      closed = true;
      await handle.close();
      signal?.throwIfAborted();
      await rename(temp, join(dirPath, file[0]!));
      renamed = true;
      if (this.#fsync) await syncDir(dirPath);
    } finally {
      if (!closed) await handle.close().catch(() => undefined);
      if (!renamed) await unlink(temp).catch(() => undefined);
    }
  }

  async #createTemp(base: string, dir: readonly string[]): Promise<{ handle: FileHandle; dirPath: string; temp: string }> {
    for (let attempt = 1; ; attempt++) {
      try {
        const dirPath = await ensureDir(base, dir, this.#fsync);
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
      const bytes = await handle.readFile({ signal: options.signal });
      const header = this.#header(bytes, bytes.byteLength, "get", key);
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
      const header = await this.#readHeader(handle, "getStream", key);
      // The handle closes when the stream ends, the consumer stops iterating or the signal
      // aborts. It holds the file as it was when opened: a concurrent put does not change it.
      return handle.createReadStream({ start: header.headerBytes, highWaterMark: this.#chunkBytes, autoClose: true, signal: options.signal });
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  protected override async _stat(key: string): Promise<ObjectInfo> {
    const handle = await this.#openValue(key, "stat");
    try {
      const { metadata, valueBytes } = await this.#readHeader(handle, "stat", key);
      const stats = await handle.stat();
      return { key, size: valueBytes, modified: stats.mtime, metadata };
    } finally {
      await handle.close();
    }
  }

  /** Opens a key's value file for reading; never through a symbolic link. */
  async #openValue(key: string, op: StorageOp): Promise<FileHandle> {
    const { base, mode } = await this.#ready;
    const { dir, file } = keyPath(key, mode);
    if (!(await isContainedDir(base, dir))) throw notFound(op, key);
    try {
      return await open(join(base, ...dir, file[0]!), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      // Classified here, not in run(): getMany's fallback calls _get and looks for not_found.
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") throw notFound(op, key);
      throw err;
    }
  }

  /** Reads and checks the header, and that the file holds the whole value. */
  async #readHeader(handle: FileHandle, op: StorageOp, key: string): Promise<Header> {
    const size = (await handle.stat()).size;
    let want = HEADER_READ_BYTES;
    for (;;) {
      const buffer = Buffer.alloc(Math.min(want, size));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      const result = decodeHeader(buffer.subarray(0, bytesRead));
      if ("needMore" in result && result.needMore <= size && want < result.needMore) {
        want = result.needMore;
        continue;
      }
      return this.#header(buffer.subarray(0, bytesRead), size, op, key);
    }
  }

  #header(bytes: Uint8Array, fileBytes: number, op: StorageOp, key: string): Header {
    const result = decodeHeader(bytes);
    const problem =
      "problem" in result
        ? result.problem
        : "needMore" in result || result.header.headerBytes + result.header.valueBytes !== fileBytes
          ? "the file is truncated or has bytes after the value"
          : undefined;
    if (problem !== undefined || !("header" in result)) {
      throw new StorageError("fatal", `the value file is corrupt (${problem ?? "bad header"}); restore it from a backup or delete the key`, { op, key });
    }
    return result.header;
  }

  protected async _delete(key: string): Promise<void> {
    const { base, mode } = await this.#ready;
    const { dir, file } = keyPath(key, mode);
    if (!(await isContainedDir(base, dir))) return;
    const dirPath = join(base, ...dir);
    try {
      await unlink(join(dirPath, file[0]!));
    } catch (err) {
      if (errno(err) === "ENOENT") return;
      throw err;
    }
    if (this.#fsync) await syncDir(dirPath);
    // Prune directories left empty, deepest first. rmdir only removes empty ones, so a put
    // that just made one of them fails to create its temp file there and makes it again.
    for (let depth = dir.length; depth > 0; depth--) {
      try {
        await rmdir(join(base, ...dir.slice(0, depth)));
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
    let more = false;
    for await (const key of await this.#walk(prefix, options.after, options.signal)) {
      if (keys.length === options.limit) {
        more = true;
        break;
      }
      keys.push(key);
    }
    return more ? { keys, next: keys[keys.length - 1] } : { keys };
  }

  /** The keys under `prefix` (after `after`), walking only the directory the prefix reaches. */
  async #walk(prefix: string, after: string | undefined, signal: AbortSignal | undefined): Promise<AsyncIterable<string>> {
    const { base, mode } = await this.#ready;
    const cut = prefix.lastIndexOf("/");
    const dirKey = prefix.slice(0, cut + 1);
    const components = cut < 0 ? [] : dirNames(prefix.slice(0, cut).split("/"), mode);
    if (!(await isContainedDir(base, components))) return (async function* () {})();
    return walkKeys(join(base, ...components), dirKey, prefix.slice(cut + 1), { mode, after, signal });
  }

  protected async _close(): Promise<void> {
    this.#sweepAbort.abort();
    await this.#initialSweep;
  }

  protected override classifyError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
    return classifyFsError(err, op, key, this.root) ?? super.classifyError(err, op, key);
  }
}

/** `file:./data`, `file:/abs/dir`, `file:///abs/dir`, with `?fsync=false` and `?names=portable`. */
export async function openFileStore(target: StoreUrl, options: OpenStoreOptions): Promise<FileStore> {
  return FileStore.open({ ...options.file, ...parseFileUrl(target) });
}
