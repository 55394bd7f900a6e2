import type { JsMsg } from "@nats-io/jetstream";
import { compareKeys } from "../../keys.js";
import { isDeleteMarker } from "./entry.js";
import { prefixFilter } from "./key-codec.js";

/** How the listings reach the index (the store's reads, so they follow its consistency choice). */
export interface IndexSource {
  /** Headers-only index messages under `filter` (an encoded KV key filter): the latest per key, or every one from sequence `from` on. */
  read(filter: string, from?: number): Promise<AsyncIterable<JsMsg>>;
  /** Whether an index message under `filter` has a sequence above `seq` (one request, no consumer). */
  changedSince(filter: string, seq: number): Promise<boolean>;
  /** The store key of an index subject, undefined for a subject stowage did not write. */
  keyOf(subject: string): string | undefined;
}

export interface ListingOptions {
  /** The bucket's TTL in ms (0: none): keys expire without a message, so pages drop them by time. */
  ttl: number;
  /** Snapshots kept at once (least recently used dropped first). */
  maxSnapshots?: number;
  /** Keys kept in all snapshots together; a listing larger than this is not kept (its pages each read the prefix again). */
  maxKeys?: number;
  /** A snapshot unused this long (ms) is dropped. */
  idleMs?: number;
}

export interface Page {
  keys: string[];
  prefixes?: string[];
  next?: string;
}

/** The live keys under one prefix, sorted, as of index sequence `seq`. */
interface Snapshot {
  prefix: string;
  filter: string;
  keys: string[];
  /** Server time (ms) of each key's latest message, for buckets with a TTL. */
  times: Map<string, number> | undefined;
  seq: number;
  usedAt: number;
  /** Serialises refreshes of this snapshot. */
  lock: Promise<unknown>;
}

/**
 * Listing pages from a snapshot of the prefix that is kept fresh. JetStream delivers a filter's
 * subjects in stream order, not key order, so the first page of a prefix reads every key under
 * it (headers only, the filter resolved by the server) and sorts them. The sorted snapshot is
 * kept with the index sequence it reflects; every later page of that prefix first asks the
 * server whether anything under the prefix changed since (one direct get by `next_by_subj`)
 * and replays only those changes. So a page after the first costs one round trip plus the
 * changes, `keys()` over N keys costs about one listing in all, and every page still reflects
 * every write acknowledged before it was asked for.
 */
export class Listings {
  readonly #source: IndexSource;
  readonly #ttl: number;
  readonly #maxSnapshots: number;
  readonly #maxKeys: number;
  readonly #idleMs: number;
  readonly #snapshots = new Map<string, Snapshot>();

  constructor(source: IndexSource, options: ListingOptions) {
    this.#source = source;
    this.#ttl = options.ttl;
    this.#maxSnapshots = options.maxSnapshots ?? 4;
    this.#maxKeys = options.maxKeys ?? 1_000_000;
    this.#idleMs = options.idleMs ?? 60_000;
  }

  /** Every live key under `prefix`, sorted (read now, not kept). */
  async list(prefix: string): Promise<string[]> {
    return (await this.#read(prefix)).keys;
  }

  /** Up to `limit` keys under `prefix` after `after`. */
  async page(prefix: string, limit: number, after: string | undefined): Promise<Page> {
    return this.#withSnapshot(prefix, (snap) => {
      const keys: string[] = [];
      let i = after === undefined ? 0 : upperBound(snap.keys, after);
      for (; i < snap.keys.length && keys.length < limit; i++) {
        const key = snap.keys[i]!;
        if (!this.#expired(snap, key)) keys.push(key);
      }
      while (i < snap.keys.length && this.#expired(snap, snap.keys[i]!)) i++;
      return i < snap.keys.length ? { keys, next: keys[keys.length - 1] } : { keys };
    });
  }

  /**
   * Up to `limit` entries of the folder `prefix`: the keys directly under it and the common
   * sub-prefixes (each ending in `delimiter`), merged in key order. A sub-prefix costs one
   * binary search over the snapshot, whatever it holds.
   */
  async folder(prefix: string, delimiter: string, limit: number, after: string | undefined): Promise<Required<Pick<Page, "keys" | "prefixes">> & Page> {
    return this.#withSnapshot(prefix, (snap) => {
      const all = snap.keys;
      const keys: string[] = [];
      const prefixes: string[] = [];
      let last: string | undefined;
      let i = 0;
      if (after !== undefined) {
        i = upperBound(all, after);
        if (after.startsWith(prefix) && after.endsWith(delimiter) && after.length > prefix.length) i = pastPrefix(all, after, i);
      }
      while (i < all.length && keys.length + prefixes.length < limit) {
        const key = all[i]!;
        const cut = key.indexOf(delimiter, prefix.length);
        if (cut < 0) {
          i++;
          if (this.#expired(snap, key)) continue;
          keys.push(key);
          last = key;
          continue;
        }
        const sub = key.slice(0, cut + delimiter.length);
        const end = pastPrefix(all, sub, i);
        let live = false;
        for (let j = i; j < end && !live; j++) live = !this.#expired(snap, all[j]!);
        i = end;
        if (!live) continue;
        prefixes.push(sub);
        last = sub;
      }
      while (i < all.length && this.#expired(snap, all[i]!)) i++;
      const page: Page & { keys: string[]; prefixes: string[] } = { keys, prefixes };
      if (i < all.length && last !== undefined) page.next = last;
      return page;
    });
  }

  /** Drops every snapshot (the store closed). */
  clear(): void {
    this.#snapshots.clear();
  }

  #expired(snap: Snapshot, key: string): boolean {
    if (!snap.times) return false;
    return (snap.times.get(key) ?? 0) + this.#ttl <= Date.now();
  }

  async #withSnapshot<T>(prefix: string, fn: (snap: Snapshot) => T): Promise<T> {
    const now = Date.now();
    for (const [p, s] of this.#snapshots) if (now - s.usedAt > this.#idleMs) this.#snapshots.delete(p);
    let snap = this.#snapshots.get(prefix);
    if (!snap) {
      snap = await this.#read(prefix);
      if (snap.keys.length > this.#maxKeys) return fn(snap);
      this.#snapshots.set(prefix, snap);
      // Least recently used first out, until both bounds hold.
      const held = () => [...this.#snapshots.values()].reduce((sum, s) => sum + s.keys.length, 0);
      while (this.#snapshots.size > this.#maxSnapshots || held() > this.#maxKeys) this.#snapshots.delete(this.#snapshots.keys().next().value!);
    } else {
      const current = snap;
      const refreshed = current.lock.then(() => this.#refresh(current));
      current.lock = refreshed.catch(() => undefined);
      try {
        await refreshed;
      } catch (err) {
        this.#snapshots.delete(prefix);
        throw err;
      }
      // Most recently used last.
      this.#snapshots.delete(prefix);
      this.#snapshots.set(prefix, current);
    }
    snap.usedAt = Date.now();
    return fn(snap);
  }

  /** Reads every live key under `prefix` with the index sequence the result reflects. */
  async #read(prefix: string): Promise<Snapshot> {
    const { filter } = prefixFilter(prefix);
    // The latest message per subject wins. Usually each subject comes once, but when the stream
    // leader changes mid-listing (a cluster failover) the ordered consumer resumes after the
    // last message it saw with every later message, so a subject can come again, possibly as
    // a delete marker.
    const latest = new Map<string, { live: boolean; time: number }>();
    let seq = 0;
    for await (const m of await this.#source.read(filter)) {
      latest.set(m.subject, { live: !isDeleteMarker(m.headers), time: timeOf(m) });
      seq = Math.max(seq, m.seq);
    }
    const keys: string[] = [];
    const times = this.#ttl > 0 ? new Map<string, number>() : undefined;
    for (const [subject, { live, time }] of latest) {
      if (!live) continue;
      const key = this.#source.keyOf(subject);
      if (key === undefined || !key.startsWith(prefix)) continue;
      keys.push(key);
      times?.set(key, time);
    }
    keys.sort(compareKeys);
    // With nothing under the prefix, sequence 0 is right: every message it will ever match is new.
    return { prefix, filter, keys, times, seq, usedAt: Date.now(), lock: Promise.resolve() };
  }

  /** Replays the index messages under the snapshot's prefix written since its sequence. */
  async #refresh(snap: Snapshot): Promise<void> {
    if (!(await this.#source.changedSince(snap.filter, snap.seq))) return;
    for await (const m of await this.#source.read(snap.filter, snap.seq + 1)) {
      snap.seq = Math.max(snap.seq, m.seq);
      const key = this.#source.keyOf(m.subject);
      if (key === undefined || !key.startsWith(snap.prefix)) continue;
      const at = lowerBound(snap.keys, key);
      const present = snap.keys[at] === key;
      if (isDeleteMarker(m.headers)) {
        if (present) snap.keys.splice(at, 1);
        snap.times?.delete(key);
      } else {
        if (!present) snap.keys.splice(at, 0, key);
        snap.times?.set(key, timeOf(m));
      }
    }
  }
}

function timeOf(m: JsMsg): number {
  return Math.floor(m.info.timestampNanos / 1e6);
}

/** The first index whose key is not below `key`. */
function lowerBound(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index whose key is above `key`. */
function upperBound(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid]!, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index from `from` whose key is above every key starting with `prefix` (they are contiguous). */
function pastPrefix(keys: string[], prefix: string, from: number): number {
  let lo = from;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const key = keys[mid]!;
    if (key.startsWith(prefix) || compareKeys(key, prefix) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
