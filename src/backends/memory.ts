import { StorageError } from "../errors.js";
import { compareKeys, prefixUpperBound } from "../keys.js";
import { BaseStore, folderEntry, resolveRange, type CleanDeleteOptions, type CleanFolderOptions, type CleanListPageOptions, type CleanPutOptions } from "../store.js";
import { Channel } from "../internal/channel.js";
import { notFound } from "../internal/not-found.js";
import { readUrlParams } from "../internal/url-params.js";
import type { Capabilities, ChangeEvent, GetOptions, ListPage, Metadata, ObjectInfo, StoreUrl, VersionInfo, WriteConditions } from "../types.js";

export interface MemoryStoreOptions {
  /**
   * Versions kept per key (default 1: no history, a delete forgets the key). Above 1 the store
   * declares `versions`, a delete leaves a marker, and the oldest versions beyond this are dropped.
   */
  history?: number;
}

interface Version {
  version: string;
  data: Uint8Array | undefined; // undefined: a delete marker
  metadata: Metadata;
  modified: Date;
}

/**
 * Keys in a sorted array beside a map, so a prefix listing is a binary search plus the matches.
 * Values are copied in and out: a caller mutating its buffer never changes what is stored.
 * Every put draws a new version, which is also the value's etag. For tests and embedding;
 * everything is lost with the process.
 */
export class MemoryStore extends BaseStore {
  readonly capabilities: Readonly<Capabilities>;
  readonly #history: number;
  readonly #entries = new Map<string, Version[]>();
  readonly #sorted: string[] = []; // live keys (latest version not deleted), in compareKeys order
  readonly #watchers = new Set<{ prefix: string; channel: Channel<ChangeEvent> }>();
  #nextVersion = 1;

  /** The same as `new MemoryStore(options)`, for symmetry with the other backends. */
  static async open(options: MemoryStoreOptions = {}): Promise<MemoryStore> {
    return new MemoryStore(options);
  }

  constructor(options: MemoryStoreOptions = {}) {
    super();
    const history = options.history ?? 1;
    if (!Number.isInteger(history) || history < 1) {
      throw new StorageError("invalid", `history must be a positive integer, got ${String(history)}`, { op: "open" });
    }
    this.#history = history;
    this.capabilities = Object.freeze({
      stat: true,
      metadata: true,
      versions: history > 1,
      streaming: false,
      paginatedList: true,
      batch: false,
      watch: true,
      conditionalWrites: true,
      rangeReads: true,
      maxValueBytes: Infinity,
    });
  }

  protected async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    this.#check(key, options, "put");
    const version = this.#append(key, Uint8Array.prototype.slice.call(data), options.metadata ?? {});
    this.#insertSorted(key);
    this.#emit({ key, op: "put", version, time: new Date() });
  }

  protected async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    const found = this.#find(key, options.version);
    if (!found?.data) throw notFound("get", key, options.version);
    if (options.range === undefined) return found.data.slice();
    const { start, end } = resolveRange(options.range, found.data.byteLength, "get", key);
    return found.data.slice(start, end);
  }

  protected async _list(prefix: string): Promise<string[]> {
    const start = this.#lowerBound(prefix);
    const out: string[] = [];
    for (let i = start; i < this.#sorted.length && this.#sorted[i]!.startsWith(prefix); i++) out.push(this.#sorted[i]!);
    return out;
  }

  protected override async _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    let i = this.#lowerBound(prefix);
    if (options.after !== undefined && compareKeys(options.after, prefix) >= 0) {
      i = this.#lowerBound(options.after);
      if (this.#sorted[i] === options.after) i++;
    }
    const keys: string[] = [];
    for (; i < this.#sorted.length && this.#sorted[i]!.startsWith(prefix) && keys.length < options.limit; i++) keys.push(this.#sorted[i]!);
    const more = i < this.#sorted.length && this.#sorted[i]!.startsWith(prefix);
    return more ? { keys, next: keys[keys.length - 1] } : { keys };
  }

  protected override async _listFolder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    let i = this.#lowerBound(prefix);
    if (options.after !== undefined && compareKeys(options.after, prefix) >= 0) i = this.#after(prefix, options.after);
    const keys: string[] = [];
    const prefixes: string[] = [];
    let last: string | undefined;
    for (; i < this.#sorted.length && this.#sorted[i]!.startsWith(prefix); ) {
      if (keys.length + prefixes.length === options.limit) return { keys, prefixes, next: last };
      const entry = folderEntry(prefix, this.#sorted[i]!);
      if (entry.prefix === undefined) {
        keys.push((last = this.#sorted[i]!));
        i++;
      } else {
        prefixes.push((last = entry.prefix));
        i = this.#past(entry.prefix);
      }
    }
    return { keys, prefixes };
  }

  protected async _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    this.#check(key, options, "delete");
    const latest = this.#entries.get(key)?.at(-1);
    if (!latest?.data) return;
    let version: string | undefined;
    if (this.#history > 1) version = this.#append(key, undefined, {});
    else this.#entries.delete(key);
    this.#removeSorted(key);
    this.#emit({ key, op: "delete", version, time: new Date() });
  }

  protected override async _stat(key: string): Promise<ObjectInfo> {
    const latest = this.#entries.get(key)?.at(-1);
    if (!latest?.data) throw notFound("stat", key);
    const info: ObjectInfo = { key, size: latest.data.byteLength, modified: latest.modified, metadata: { ...latest.metadata }, etag: latest.version };
    if (this.#history > 1) info.version = latest.version;
    return info;
  }

  protected override async _versions(key: string): Promise<VersionInfo[]> {
    return (this.#entries.get(key) ?? []).map((v) => ({
      version: v.version,
      size: v.data?.byteLength ?? 0,
      modified: v.modified,
      deleted: v.data === undefined,
    }));
  }

  protected override async _watch(prefix: string, options: { signal?: AbortSignal }): Promise<AsyncIterable<ChangeEvent>> {
    const watcher = { prefix, channel: undefined as unknown as Channel<ChangeEvent> };
    watcher.channel = new Channel<ChangeEvent>({ signal: options.signal, onReturn: () => this.#watchers.delete(watcher) });
    this.#watchers.add(watcher);
    return watcher.channel;
  }

  protected async _close(): Promise<void> {
    for (const watcher of this.#watchers) watcher.channel.end();
    this.#watchers.clear();
    this.#entries.clear();
    this.#sorted.length = 0;
  }

  /** Rejects with `conflict` when a write condition does not hold (a call runs whole, no await). */
  #check(key: string, conditions: WriteConditions, op: string): void {
    if (conditions.ifMatch === undefined && conditions.ifNoneMatch === undefined) return;
    const latest = this.#entries.get(key)?.at(-1);
    const current = latest?.data ? latest.version : undefined;
    if (conditions.ifNoneMatch === "*" && current !== undefined) throw new StorageError("conflict", "the key exists (ifNoneMatch)", { op, key });
    if (conditions.ifMatch !== undefined && current !== conditions.ifMatch) {
      throw new StorageError("conflict", current === undefined ? "the key does not exist (ifMatch)" : "the key's etag differs (ifMatch): it was written since", { op, key });
    }
  }

  /** Index of the first key after `after` in a one-level listing of `prefix`. */
  #after(prefix: string, after: string): number {
    const within = folderEntry(prefix, after).prefix;
    if (after.startsWith(prefix) && within !== undefined) return this.#past(within);
    const i = this.#lowerBound(after);
    return this.#sorted[i] === after ? i + 1 : i;
  }

  /** Index of the first key not starting with `prefix` (past the prefix's keys). */
  #past(prefix: string): number {
    const bound = prefixUpperBound(prefix);
    return bound === undefined ? this.#sorted.length : this.#lowerBound(bound);
  }

  #append(key: string, data: Uint8Array | undefined, metadata: Metadata): string {
    const version = String(this.#nextVersion++);
    const entry: Version = { version, data, metadata, modified: new Date() };
    const versions = this.#entries.get(key);
    if (!versions || this.#history === 1) {
      this.#entries.set(key, [entry]);
    } else {
      versions.push(entry);
      if (versions.length > this.#history) versions.splice(0, versions.length - this.#history);
    }
    return version;
  }

  #find(key: string, version: string | undefined): Version | undefined {
    const versions = this.#entries.get(key);
    if (!versions) return undefined;
    return version === undefined ? versions.at(-1) : versions.find((v) => v.version === version);
  }

  #emit(event: ChangeEvent): void {
    for (const { prefix, channel } of this.#watchers) if (event.key.startsWith(prefix)) channel.push(event);
  }

  #lowerBound(key: string): number {
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.#sorted[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #insertSorted(key: string): void {
    const i = this.#lowerBound(key);
    if (this.#sorted[i] !== key) this.#sorted.splice(i, 0, key);
  }

  #removeSorted(key: string): void {
    const i = this.#lowerBound(key);
    if (this.#sorted[i] === key) this.#sorted.splice(i, 1);
  }
}

/** `memory:` or `memory:?history=N`. */
export async function openMemoryStore(target: StoreUrl, options: MemoryStoreOptions = {}): Promise<MemoryStore> {
  const params = readUrlParams(target, "memory", { history: "integer" });
  return MemoryStore.open({ ...options, ...params });
}
