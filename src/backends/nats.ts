import { headers, type NatsConnection, type MsgHdrs } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager, type StoredMsg, type StreamInfo } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { StorageError, type StorageOp } from "../errors.js";
import { sortKeys } from "../keys.js";
import type { OpenStoreOptions, StoreUrl } from "../open.js";
import { BaseStore, type CleanPutOptions } from "../store.js";
import { Channel } from "../internal/channel.js";
import { mapLimit } from "../internal/concurrency.js";
import { collect } from "../internal/bytes.js";
import type { BatchEntry, Capabilities, ChangeEvent, GetOptions, ObjectInfo, OperationOptions, VersionInfo } from "../types.js";
import { connectNats } from "./nats/connect.js";
import { entryHeaders, HEADER, parseEntry, type IndexEntry } from "./nats/entry.js";
import { classifyNatsError, NatsLayoutError } from "./nats/errors.js";
import { followIndex, readIndex } from "./nats/index-reader.js";
import { encodeKey, prefixFilter, tryDecodeKey } from "./nats/key-codec.js";
import { LargeObjects, slices } from "./nats/large.js";
import { NatsLayout } from "./nats/layout.js";
import { DEFAULT_HISTORY, resolveNatsOptions, type NatsStoreOptions, type ResolvedNatsOptions } from "./nats/options.js";
import { sweepLargeObjects, type SweepResult } from "./nats/sweep.js";

export type { NatsStoreOptions } from "./nats/options.js";
export type { SweepResult } from "./nats/sweep.js";

declare module "../open.js" {
  interface BackendOptions {
    /** Options for `nats://` and `tls://` URLs (the URL's query wins). */
    nats?: NatsStoreOptions;
  }
}

/** Headroom kept under the server's max_payload for the entry's headers (metadata ≤ 2 KiB, escaped). */
const HEADER_HEADROOM = 16 * 1024;
const DEFAULT_CHUNK = 128 * 1024;
const DEFAULT_SWEEP_INTERVAL = 10 * 60_000;
const DEFAULT_SWEEP_GRACE = 5 * 60_000;
/** Requests in flight for the batch operations (the generic fallback keeps 16). */
const BATCH_IN_FLIGHT = 128;

/**
 * NATS JetStream: a KV bucket is the key index (one entry per version; small values inline, so
 * a get is one direct-get round trip), large values are chunked into the bucket's object store,
 * listings are subject filters resolved by the server, versions are the KV history and `watch`
 * is a consumer on the bucket. The layout is in docs/nats.md.
 */
export class NatsStore extends BaseStore {
  readonly capabilities: Readonly<Capabilities>;
  /** Largest value stored inline in the index entry, in bytes. */
  readonly inlineMax: number;
  /** Versions the bucket keeps per key. */
  readonly history: number;
  /**
   * True when reads of the index use direct get (any replica answers), false when they go to
   * the stream leader; see {@link NatsStoreOptions.directReads}.
   */
  readonly directReads: boolean;
  readonly layout: NatsLayout;
  readonly #nc: NatsConnection;
  readonly #ownsConnection: boolean;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #large: LargeObjects;
  readonly #chunkSize: number;
  readonly #sweepGrace: number;
  readonly #feeds = new Set<Channel<ChangeEvent>>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;

  private constructor(init: { nc: NatsConnection; ownsConnection: boolean; js: JetStreamClient; jsm: JetStreamManager; layout: NatsLayout; info: StreamInfo; options: ResolvedNatsOptions }) {
    super();
    const { nc, js, jsm, layout, info, options } = init;
    this.#nc = nc;
    this.#ownsConnection = init.ownsConnection;
    this.#js = js;
    this.#jsm = jsm;
    this.layout = layout;
    // Direct get is answered by any replica that considers itself current, including one that
    // has not applied the latest acknowledged put: only a single server is always consistent.
    this.directReads = info.config.allow_direct === true && (options.directReads ?? info.config.num_replicas <= 1);
    this.history = info.config.max_msgs_per_subject > 0 ? info.config.max_msgs_per_subject : 1;
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    const ceiling = Math.max(0, maxPayload - HEADER_HEADROOM);
    if (options.inlineMax !== undefined && options.inlineMax > ceiling) {
      throw new StorageError("invalid", `inlineMax ${options.inlineMax} is above this server's limit of ${ceiling} bytes (max_payload ${maxPayload} minus ${HEADER_HEADROOM} for headers)`, { op: "open" });
    }
    this.inlineMax = options.inlineMax ?? ceiling;
    this.#chunkSize = Math.min(options.chunkSize ?? DEFAULT_CHUNK, maxPayload);
    this.#sweepGrace = options.sweepGrace ?? DEFAULT_SWEEP_GRACE;
    this.#large = new LargeObjects(js, jsm, layout, {
      chunkSize: this.#chunkSize,
      replicas: info.config.num_replicas,
      directReads: this.directReads,
      storage: info.config.storage === StorageType.Memory ? "memory" : "file",
      maxBytes: info.config.max_bytes > 0 ? info.config.max_bytes : undefined,
      ttl: info.config.max_age > 0 ? Math.round(info.config.max_age / 1_000_000) : undefined,
    });
    this.capabilities = Object.freeze({
      stat: true,
      metadata: true,
      versions: this.history > 1,
      streaming: true,
      paginatedList: false,
      batch: false, // no native batch on 2.9: the _many methods pipeline single requests (128 in flight)
      watch: true,
      maxValueBytes: Infinity,
    });
    const interval = options.sweepInterval ?? DEFAULT_SWEEP_INTERVAL;
    if (interval > 0) {
      this.#sweepTimer = setInterval(() => {
        this.#sweeping ??= this.sweep()
          .catch(() => undefined) // a failed background sweep is retried next interval
          .finally(() => (this.#sweeping = undefined));
      }, interval);
      this.#sweepTimer.unref();
    }
  }

  /** Connects (unless given a connection), then opens the bucket, creating it when missing. */
  static async open(options: ResolvedNatsOptions): Promise<NatsStore> {
    const ownsConnection = options.connection === undefined;
    let nc: NatsConnection | undefined;
    try {
      nc = options.connection ?? (await connectNats(options));
      const jsOptions = options.timeout ? { timeout: options.timeout } : {};
      const js = jetstream(nc, jsOptions);
      const jsm = await jetstreamManager(nc, jsOptions);
      const layout = new NatsLayout(options.bucket);
      const info = await ensureBucket(js, jsm, layout, options);
      return new NatsStore({ nc, ownsConnection, js, jsm, layout, info, options });
    } catch (err) {
      if (ownsConnection) await nc?.close().catch(() => undefined);
      throw classifyNatsError(err, "open", undefined);
    }
  }

  protected override classifyError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
    return classifyNatsError(err, op, key);
  }

  protected async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    if (data.byteLength <= this.inlineMax) {
      await this.#js.publish(this.#subject(key), data, { headers: entryHeaders(options.metadata) });
      return;
    }
    await this.#putLarge(key, slices(data, this.#chunkSize), options);
  }

  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    // Buffer up to inlineMax + 1 bytes: a body that ends before is one inline put.
    const iterator = source[Symbol.asyncIterator]();
    const head: Uint8Array[] = [];
    let size = 0;
    let ended = false;
    while (size <= this.inlineMax) {
      const next = await iterator.next();
      if (next.done) {
        ended = true;
        break;
      }
      head.push(next.value);
      size += next.value.byteLength;
    }
    if (ended) return this._put(key, Buffer.concat(head, size), options);
    const rest = { [Symbol.asyncIterator]: () => iterator };
    await this.#putLarge(key, (async function* () {
      yield* head.splice(0);
      yield* rest;
    })(), options);
  }

  async #putLarge(key: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    const source = Symbol.asyncIterator in chunks ? chunks : (async function* () { yield* chunks; })();
    const ref = await this.#large.write(key, source, options.signal);
    try {
      options.signal?.throwIfAborted();
      await this.#js.publish(this.#subject(key), new Uint8Array(0), { headers: entryHeaders(options.metadata, ref) });
    } catch (err) {
      // The index entry is what makes a value visible: without it the object must go.
      await this.#large.remove(ref).catch(() => undefined);
      throw err;
    }
  }

  protected async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    const entry = await this.#entry(key, "get", options.version);
    if (entry.inline) return plain(entry.inline);
    return plain(await collect(await this.#large.read(entry.large!), Infinity, "get", key));
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const entry = await this.#entry(key, "getStream", options.version);
    const inline = entry.inline;
    const body = inline ? [inline] : await this.#large.read(entry.large!);
    return (async function* () {
      for await (const chunk of body) yield plain(chunk);
    })();
  }

  protected override async _stat(key: string): Promise<ObjectInfo> {
    const entry = await this.#entry(key, "stat");
    return { key, size: entry.size, modified: entry.time, metadata: entry.metadata, version: String(entry.revision) };
  }

  protected async _list(prefix: string): Promise<string[]> {
    // The latest message per subject wins. Usually each subject comes once, but when the stream
    // leader changes mid-listing (a cluster failover) the ordered consumer resumes after the
    // last message it saw with every later message, so a subject can come again, possibly as
    // a delete marker.
    const live = new Map<string, boolean>();
    for await (const m of await readIndex(this.#js, this.layout.indexStream, this.layout.keySubject(prefixFilter(prefix)), "last_per_subject")) {
      live.set(m.subject, !isDeleteMarker(m.headers));
    }
    const keys: string[] = [];
    for (const [subject, isLive] of live) {
      const key = isLive ? tryDecodeKey(this.layout.kvKeyOf(subject)) : undefined;
      if (key !== undefined && key.startsWith(prefix)) keys.push(key);
    }
    return sortKeys(keys);
  }

  protected async _delete(key: string): Promise<void> {
    // Only a live key gets a marker: deleting a missing key must not grow its history.
    const latest = await this.#latest(key);
    if (!latest || parseEntry(latest.header, latest.data, latest.seq, latest.time).deleted) return;
    const h = headers();
    h.set(HEADER.kvOperation, "DEL");
    await this.#js.publish(this.#subject(key), new Uint8Array(0), { headers: h });
  }

  protected override async _versions(key: string): Promise<VersionInfo[]> {
    const out: VersionInfo[] = [];
    for await (const m of await readIndex(this.#js, this.layout.indexStream, this.#subject(key), "all")) {
      const entry = parseEntry(m.headers, m.data, m.seq, new Date(Math.floor(m.info.timestampNanos / 1e6)), true);
      out.push({ version: String(entry.revision), size: entry.size, modified: entry.time, deleted: entry.deleted });
    }
    return out;
  }

  protected override async _getMany(keys: string[], options: OperationOptions): Promise<(Uint8Array | undefined)[]> {
    return mapLimit(keys, BATCH_IN_FLIGHT, async (key) => {
      try {
        return await this._get(key, options);
      } catch (err) {
        if (err instanceof StorageError && err.kind === "not_found") return undefined;
        throw err;
      }
    });
  }

  protected override async _putMany(entries: BatchEntry[], options: OperationOptions): Promise<void> {
    await mapLimit(entries, BATCH_IN_FLIGHT, (e) => this._put(e.key, e.data, { signal: options.signal, metadata: e.metadata }));
  }

  protected override async _deleteMany(keys: string[]): Promise<void> {
    await mapLimit(keys, BATCH_IN_FLIGHT, (key) => this._delete(key));
  }

  protected override async _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    const feed = await followIndex(this.#js, this.layout.indexStream, this.layout.keySubject(prefixFilter(prefix)));
    const channel = new Channel<ChangeEvent>({
      signal: options.signal,
      onReturn: () => {
        feed.stop();
        this.#feeds.delete(channel);
      },
    });
    this.#feeds.add(channel);
    void (async () => {
      try {
        for await (const m of feed.messages) {
          const key = tryDecodeKey(this.layout.kvKeyOf(m.subject));
          if (key === undefined || !key.startsWith(prefix)) continue;
          const time = new Date(Math.floor(m.info.timestampNanos / 1e6));
          channel.push({ key, op: isDeleteMarker(m.headers) ? "delete" : "put", version: String(m.seq), time });
        }
        channel.end();
      } catch (err) {
        channel.end(classifyNatsError(err, "watch", undefined));
      }
    })();
    return channel;
  }

  /**
   * Deletes large objects that no retained index revision refers to (superseded values whose
   * revisions fell out of the history, or whose key was deleted with history 1), keeping those
   * younger than `grace` ms (a put in progress writes its object before its index entry).
   * Runs every `sweepInterval` by itself; call it to reclaim space now.
   */
  async sweep(options: { grace?: number; signal?: AbortSignal } = {}): Promise<SweepResult> {
    const grace = options.grace ?? this.#sweepGrace;
    return this.run("sweep", undefined, options.signal, () => sweepLargeObjects(this.#js, this.layout, this.#large, grace));
  }

  protected async _close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    for (const feed of [...this.#feeds]) feed.end();
    this.#feeds.clear();
    await this.#sweeping;
    if (this.#ownsConnection) await this.#nc.close();
  }

  #subject(key: string): string {
    return this.layout.keySubject(encodeKey(key));
  }

  async #latest(key: string): Promise<StoredMsg | null> {
    return this.#message(this.#subject(key), { last_by_subj: this.#subject(key) });
  }

  async #message(subject: string, query: { last_by_subj: string } | { seq: number }): Promise<StoredMsg | null> {
    let m: StoredMsg | null;
    if (this.directReads) {
      m = await this.#jsm.direct.getMessage(this.layout.indexStream, query);
    } else {
      m = await this.#jsm.streams.getMessage(this.layout.indexStream, query).catch((err: unknown) => {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
        throw err;
      });
    }
    // A revision of another key is not a version of this one.
    return m && m.subject === subject ? m : null;
  }

  /** The live entry of `key` (or the given version), else not_found. */
  async #entry(key: string, op: StorageOp, version?: string): Promise<IndexEntry> {
    const subject = this.#subject(key);
    let m: StoredMsg | null = null;
    if (version === undefined) m = await this.#message(subject, { last_by_subj: subject });
    else if (/^[1-9]\d{0,15}$/.test(version)) m = await this.#message(subject, { seq: Number(version) });
    const entry = m ? parseEntry(m.header, m.data, m.seq, m.time) : undefined;
    if (!entry || entry.deleted) {
      const what = version === undefined ? "no value at this key" : `no version ${version} of this key${entry?.deleted ? " (it is a delete marker)" : ""}`;
      throw new StorageError("not_found", what, { op, key });
    }
    return entry;
  }
}

/**
 * nats.js hands out Buffers (views into its read buffer); callers get a plain Uint8Array of
 * their own, so deep equality holds and the connection's buffer is not pinned.
 */
function plain(data: Uint8Array): Uint8Array {
  if (data.constructor === Uint8Array) return data;
  return new Uint8Array(data);
}

function isDeleteMarker(h: MsgHdrs | undefined): boolean {
  const op = h?.get(HEADER.kvOperation);
  return op === "DEL" || op === "PURGE" || (h?.has(HEADER.markerReason) ?? false);
}

/** Opens the bucket's index stream, creating the KV bucket when missing; refuses foreign streams. */
async function ensureBucket(js: JetStreamClient, jsm: JetStreamManager, layout: NatsLayout, options: ResolvedNatsOptions): Promise<StreamInfo> {
  let info = await jsm.streams.info(layout.indexStream).catch((err: unknown) => {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  });
  if (!info) {
    await new Kvm(js).create(layout.bucket, {
      history: options.history ?? DEFAULT_HISTORY,
      replicas: options.replicas ?? 1,
      storage: options.storage === "memory" ? StorageType.Memory : StorageType.File,
      ...(options.maxBytes ? { max_bytes: options.maxBytes } : {}),
      ...(options.ttl ? { ttl: options.ttl } : {}),
    });
    info = await jsm.streams.info(layout.indexStream);
  }
  const config = info.config;
  if (!(config.subjects ?? []).includes(layout.indexSubjects)) {
    throw new NatsLayoutError(`stream ${layout.indexStream} exists but is not the KV bucket ${layout.bucket} (its subjects are ${JSON.stringify(config.subjects ?? [])}): choose another bucket name or delete that stream`);
  }
  const mismatches: string[] = [];
  const check = (name: string, asked: unknown, actual: unknown) => {
    if (asked !== undefined && asked !== actual) mismatches.push(`${name}=${String(actual)} (asked ${String(asked)})`);
  };
  if (options.explicit.has("history")) check("history", options.history, config.max_msgs_per_subject);
  if (options.explicit.has("replicas")) check("replicas", options.replicas, config.num_replicas);
  if (options.explicit.has("storage")) check("storage", options.storage, config.storage);
  if (options.explicit.has("maxBytes")) check("maxBytes", options.maxBytes, config.max_bytes);
  if (options.explicit.has("ttl")) check("ttl", options.ttl, Math.round(config.max_age / 1_000_000));
  if (mismatches.length > 0) {
    throw new NatsLayoutError(`bucket ${layout.bucket} exists with ${mismatches.join(", ")}: open it without those options, or change the bucket (nats kv edit / nats stream edit ${layout.indexStream})`);
  }
  return info;
}

/** `nats://[user:pass@|token@]host:port/BUCKET?history=…` and `tls://…`. */
export async function openNatsStore(target: StoreUrl, options: OpenStoreOptions): Promise<NatsStore> {
  return NatsStore.open(resolveNatsOptions(target, options.nats));
}

/** Opens a store on a connection you own (left open by `close()`), or connects from options. */
export async function createNatsStore(options: NatsStoreOptions & { bucket: string }): Promise<NatsStore> {
  return NatsStore.open(resolveNatsOptions(undefined, options));
}

