import { StorageError, type StorageOp } from "../errors.js";
import { MAX_KEY_BYTES, keyProblem, prefixProblem } from "../keys.js";
import type { CleanFolderOptions, CleanListPageOptions, CleanPutOptions, CleanBatchEntry, CleanDeleteOptions, CleanWriteOptions } from "../store.js";
import type { Capabilities, ChangeEvent, GetOptions, ListPage, ObjectInfo, OperationOptions, Store, VersionInfo } from "../types.js";
import { LayerStore } from "./layer.js";

/**
 * A namespace: every key is stored as `prefix + key`, and listings, pages, stat results,
 * watch events and error keys are given back relative to the prefix. Keys outside the prefix
 * are invisible. The prefix is used exactly as given: `"tenant-a/"` is a folder,
 * `"tenant-a"` would also see `"tenant-ab/…"`'s keys as `"b/…"`.
 *
 * A key must be valid on its own and combined with the prefix (the combined key counts toward
 * the 1024-byte limit).
 *
 * @example
 * const tenant = withPrefix(store, "tenants/a/");
 * await tenant.put("config", bytes);          // stored as "tenants/a/config"
 * await tenant.list("");                       // ["config"]
 */
export class PrefixStore extends LayerStore {
  readonly prefix: string;
  // Re-declared (not re-defined) so the constructor may narrow the key limit.
  declare readonly capabilities: Readonly<Capabilities>;

  constructor(inner: Store, prefix: string) {
    super(inner);
    // A prefix is the start of a key: it must itself be a valid key (so no leading "/", no "."
    // or ".." segment); a trailing "/" is fine and usual.
    const problem = typeof prefix === "string" && prefix.length === 0 ? "prefix must not be empty" : keyProblem(prefix)?.replace(/^key/, "prefix");
    if (problem) throw new StorageError("invalid", `withPrefix: ${problem}`, { op: "open" });
    this.prefix = prefix;
    const innerMax = inner.capabilities.maxKeyBytes ?? MAX_KEY_BYTES;
    this.capabilities = Object.freeze({ ...inner.capabilities, maxKeyBytes: innerMax - Buffer.byteLength(prefix, "utf8") });
  }

  protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    return this.#relative(key, () => super._put(this.#full(key, "put"), data, options));
  }

  protected override async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    return this.#relative(key, () => super._get(this.#full(key, "get"), options));
  }

  protected override async _list(prefix: string, options: OperationOptions): Promise<string[]> {
    const keys = await this.#relative(undefined, () => super._list(this.#fullPrefix(prefix, "list"), options));
    return keys.map((k) => this.#strip(k));
  }

  protected override async _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    return this.#relative(key, () => super._delete(this.#full(key, "delete"), options));
  }

  protected override async _stat(key: string, options: OperationOptions): Promise<ObjectInfo> {
    const info = await this.#relative(key, () => super._stat(this.#full(key, "stat"), options));
    return { ...info, key };
  }

  protected override async _versions(key: string, options: OperationOptions): Promise<VersionInfo[]> {
    return this.#relative(key, () => super._versions(this.#full(key, "versions"), options));
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    return this.#relative(key, () => super._putStream(this.#full(key, "putStream"), source, options));
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    return this.#relative(key, () => super._getStream(this.#full(key, "getStream"), options));
  }

  protected override async _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    const after = options.after === undefined ? undefined : this.#fullPrefix(options.after, "list");
    const page = await this.#relative(undefined, () => super._listPage(this.#fullPrefix(prefix, "list"), { ...options, after }));
    const keys = page.keys.map((k) => this.#strip(k));
    return page.next === undefined ? { keys } : { keys, next: this.#strip(page.next) };
  }

  protected override async _listFolder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    const after = options.after === undefined ? undefined : this.#fullPrefix(options.after, "list");
    const page = await this.#relative(undefined, () => super._listFolder(this.#fullPrefix(prefix, "list"), { ...options, after }));
    const out: ListPage = { keys: page.keys.map((k) => this.#strip(k)), prefixes: (page.prefixes ?? []).map((p) => this.#strip(p)) };
    if (page.next !== undefined) out.next = this.#strip(page.next);
    return out;
  }

  protected override async _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    const full = entries.map((e) => ({ ...e, key: this.#full(e.key, "putMany") }));
    return this.#relative(undefined, () => super._putMany(full, options));
  }

  protected override async _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    const full = keys.map((k) => this.#full(k, "getMany"));
    return this.#relative(undefined, () => super._getMany(full, options));
  }

  protected override async _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    const full = keys.map((k) => this.#full(k, "deleteMany"));
    return this.#relative(undefined, () => super._deleteMany(full, options));
  }

  protected override async _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    const feed = await this.#relative(undefined, () => super._watch(this.#fullPrefix(prefix, "watch"), options));
    const strip = (k: string) => this.#strip(k);
    return {
      async *[Symbol.asyncIterator]() {
        for await (const event of feed) yield { ...event, key: strip(event.key) };
      },
    };
  }

  #full(key: string, op: StorageOp): string {
    const full = this.prefix + key;
    // The key alone was validated; only the length can fail once the prefix is added.
    const problem = keyProblem(full);
    if (problem) throw new StorageError("invalid", `with the store's prefix ${JSON.stringify(this.prefix)}: ${problem}`, { op, key });
    return full;
  }

  #fullPrefix(prefix: string, op: StorageOp): string {
    const full = this.prefix + prefix;
    const problem = prefixProblem(full);
    if (problem) throw new StorageError("invalid", `with the store's prefix ${JSON.stringify(this.prefix)}: ${problem}`, { op });
    return full;
  }

  #strip(key: string): string {
    return key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key;
  }

  /** Runs `work`, rewriting a StorageError about a full key into one about the caller's key. */
  async #relative<T>(key: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (!(err instanceof StorageError) || err.key === undefined || !err.key.startsWith(this.prefix)) throw err;
      const relativeKey = key ?? this.#strip(err.key);
      throw new StorageError(err.kind, err.detail, { op: err.op, key: relativeKey, cause: err.cause ?? err });
    }
  }
}

/** Wraps `store` in a {@link PrefixStore}: a namespace under `prefix`. */
export function withPrefix(store: Store, prefix: string): PrefixStore {
  return new PrefixStore(store, prefix);
}
