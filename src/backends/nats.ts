import { ConnectionError, headers, nuid, type NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, StorageType, type JetStreamClient, type JetStreamManager, type StoredMsg, type StreamInfo } from "@nats-io/jetstream";
import { StorageError, type StorageOp } from "../errors.js";
import { redactUrl } from "../open.js";
import {
  BaseStore,
  resolveRange,
  type CleanBatchEntry,
  type CleanDeleteOptions,
  type CleanFolderOptions,
  type CleanListPageOptions,
  type CleanPutOptions,
  type CleanWriteOptions,
} from "../store.js";
import { Channel } from "../internal/channel.js";
import { mapLimit } from "../internal/concurrency.js";
import { collect } from "../internal/bytes.js";
import type { Capabilities, ChangeEvent, GetOptions, ListPage, ObjectInfo, OperationOptions, StoreUrl, VersionInfo } from "../types.js";
import { ensureBucket } from "./nats/bucket.js";
import { connectNats } from "./nats/connect.js";
import { entryHeaders, HEADER, isDeleteMarker, parseEntry, type IndexEntry, type LargeRef } from "./nats/entry.js";
import { classifyNatsError, ConditionFailedError, ObjectGoneError } from "./nats/errors.js";
import { followIndex, readIndex, type IndexReader } from "./nats/index-reader.js";
import { encodeKey, prefixFilter, tryDecodeKey } from "./nats/key-codec.js";
import { LargeObjects, slices } from "./nats/large.js";
import { Listings } from "./nats/listing.js";
import { NatsLayout } from "./nats/layout.js";
import { definitelyNotStored, MSG_ID_HEADER, publishEntry, wasStored } from "./nats/publish.js";
import { natsOptionsFromUrl, resolveNatsOptions, type NatsStoreOptions, type ResolvedNatsOptions } from "./nats/options.js";
import { sweepLargeObjects, type SweepResult } from "./nats/sweep.js";

export type { NatsStoreOptions } from "./nats/options.js";
export type { SweepResult } from "./nats/sweep.js";

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
  readonly #listings: Listings;
  /** Large objects found unreferenced by a sweep, and since when (see sweepLargeObjects). */
  readonly #unreferencedSince = new Map<string, number>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;
  /** Counts disconnections: bytes sent before one may still reach the server after it. */
  #connectionEpoch = 0;

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
    this.#listings = new Listings(
      {
        read: (filter, from) => this.#readIndex(layout.keySubject(filter), from ?? "last_per_subject"),
        changedSince: (filter, seq) => this.#existsAfter(layout.keySubject(filter), seq),
        keyOf: (subject) => tryDecodeKey(layout.kvKeyOf(subject)),
      },
      { ttl: info.config.max_age > 0 ? Math.round(info.config.max_age / 1_000_000) : 0 },
    );
    this.capabilities = Object.freeze({
      stat: true,
      metadata: true,
      versions: this.history > 1,
      streaming: true,
      paginatedList: true,
      batch: false, // no native batch on 2.9: the _many methods pipeline single requests (128 in flight)
      watch: true,
      conditionalWrites: true,
      rangeReads: true,
      maxValueBytes: Infinity,
    });
    void (async () => {
      for await (const status of nc.status()) if (status.type === "disconnect" || status.type === "reconnect") this.#connectionEpoch++;
    })().catch(() => undefined);
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

  /**
   * Opens the store: checks the options (`invalid` for a bad one), connects (unless given a
   * `connection`), then opens the bucket, creating it when missing unless `create: false`.
   *
   * @example
   * const store = await NatsStore.open({ servers: "nats://127.0.0.1:4222", bucket: "EVENTS", history: 16 });
   */
  static async open(options: NatsStoreOptions): Promise<NatsStore> {
    return NatsStore.#open(resolveNatsOptions(options));
  }

  static async #open(options: ResolvedNatsOptions): Promise<NatsStore> {
    const ownsConnection = options.connection === undefined;
    let nc: NatsConnection | undefined;
    try {
      try {
        nc = options.connection ?? (await connectNats(options));
      } catch (err) {
        const classified = classifyNatsError(err, "open", undefined);
        if (!(err instanceof ConnectionError)) throw classified;
        // Say where: a wrong host or port is the usual reason.
        const where = [options.servers].flat().map(redactUrl).join(", ");
        throw new StorageError("transient", `${classified.detail} at ${where}`, { op: "open", cause: err });
      }
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
      // The write id (the retry layer keeps it across attempts) is the message id: an attempt
      // that already took effect makes the next one a duplicate, not another version.
      await this.#publishEntry(key, data, entryHeaders(options.metadata), options, options.writeId);
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

  /**
   * A large value: the object first, then the index entry that makes it visible, under the
   * write's conditions (checked once before the object is written, so a stale etag costs no
   * upload, and atomically by the server on the entry). The entry always has a message id, so
   * that when its acknowledgement is lost (a timeout, a cut connection) the store can ask the
   * server whether it was stored (`wasStored`): stored, the put took effect; certainly not
   * stored (or a duplicate of an earlier attempt's), the object goes. When even that cannot be
   * known, the object stays for the sweep, which removes it only once no entry refers to it:
   * a put never leaves its key pointing at a missing object.
   */
  async #putLarge(key: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    if (options.writeId !== undefined || options.ifMatch !== undefined || options.ifNoneMatch !== undefined) {
      const latest = await this.#latest(key);
      // A retry whose earlier attempt took effect (and is still the key's latest): nothing to upload.
      if (options.writeId !== undefined && latest?.header?.get(MSG_ID_HEADER) === options.writeId) return;
      try {
        checkCondition(latest, options);
      } catch (err) {
        // A retry's condition may be false because its own earlier attempt took effect (then
        // another write followed): the duplicate window tells.
        if (options.writeId !== undefined && (await wasStored(this.#js, this.#subject(key), options.writeId))) return;
        throw err;
      }
    }
    const source = Symbol.asyncIterator in chunks ? chunks : (async function* () { yield* chunks; })();
    const ref = await this.#large.write(key, source, options.signal);
    const msgID = options.writeId ?? nuid.next();
    const epoch = this.#connectionEpoch;
    const removeObject = () => this.#large.remove(ref).catch(() => undefined);
    try {
      options.signal?.throwIfAborted();
    } catch (err) {
      await removeObject();
      throw err;
    }
    try {
      const ack = await this.#publishEntry(key, new Uint8Array(0), entryHeaders(options.metadata, ref), options, msgID);
      // A duplicate: an earlier attempt of this write stored its own entry; this object is nobody's.
      if (ack.duplicate) await removeObject();
    } catch (err) {
      if (err instanceof ConditionFailedError || definitelyNotStored(err)) {
        await removeObject();
        throw err;
      }
      const stored = await wasStored(this.#js, this.#subject(key), msgID).catch(() => undefined);
      if (stored === true) return;
      // "Not stored" holds only if the probe followed the publish on the same connection.
      if (stored === false && epoch === this.#connectionEpoch) await removeObject();
      throw err;
    }
  }

  #publishEntry(key: string, payload: Uint8Array, entryHeaders: ReturnType<typeof headers> | undefined, conditions: CleanPutOptions, msgID: string | undefined) {
    return publishEntry(this.#js, {
      subject: this.#subject(key),
      payload,
      ...(entryHeaders ? { headers: entryHeaders } : {}),
      ...(msgID ? { msgID } : {}),
      ...(conditions.ifMatch !== undefined ? { ifMatch: conditions.ifMatch } : {}),
      ...(conditions.ifNoneMatch !== undefined ? { ifNoneMatch: conditions.ifNoneMatch } : {}),
      latest: () => this.#latest(key),
    });
  }

  protected async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    const entry = await this.#entry(key, "get", options.version);
    const { start, end } = options.range ? resolveRange(options.range, entry.size, "get", key) : { start: 0, end: entry.size };
    if (entry.inline) return plain(start === 0 && end === entry.size ? entry.inline : entry.inline.subarray(start, end));
    return plain(await collect(await this.#largeBody(key, entry.large!, "get", options.version, start, end), Infinity, "get", key));
  }

  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const entry = await this.#entry(key, "getStream", options.version);
    const { start, end } = options.range ? resolveRange(options.range, entry.size, "getStream", key) : { start: 0, end: entry.size };
    const inline = entry.inline;
    const body = inline ? [inline.subarray(start, end)] : await this.#largeBody(key, entry.large!, "getStream", options.version, start, end);
    return (async function* () {
      for await (const chunk of body) yield plain(chunk);
    })();
  }

  /**
   * A large value's bytes. Its object can go while it is read: a replaced value is reclaimed by
   * a sweep once it has been unreferenced for `sweepGrace`, and a reader slower than that loses
   * it. That read fails at once (the chunk reader notices), as `transient` when the key now has
   * another value (reading again gives it) or `not_found` for a version no longer retained; only
   * an object missing under the current value is `fatal`.
   */
  async #largeBody(key: string, ref: LargeRef, op: StorageOp, version: string | undefined, start: number, end: number): Promise<AsyncIterable<Uint8Array>> {
    const explain = async (err: unknown): Promise<unknown> => {
      if (!(err instanceof ObjectGoneError)) return err;
      if (version !== undefined) return new StorageError("not_found", `version ${version} of this key is no longer retained (its large object was reclaimed)`, { op, key, cause: err });
      const latest = await this.#latest(key).catch(() => null);
      if (latest?.header?.get(HEADER.nuid) === ref.nuid) return err;
      return new StorageError("transient", "the value was replaced while it was being read and its large object reclaimed: read the key again", { op, key, cause: err });
    };
    let body: AsyncIterable<Uint8Array>;
    try {
      body = await this.#large.readRange(ref, start, end);
    } catch (err) {
      throw await explain(err);
    }
    return (async function* () {
      try {
        yield* body;
      } catch (err) {
        throw await explain(err);
      }
    })();
  }

  protected override async _stat(key: string): Promise<ObjectInfo> {
    const entry = await this.#entry(key, "stat");
    return { key, size: entry.size, modified: entry.time, metadata: entry.metadata, etag: String(entry.revision), version: String(entry.revision) };
  }

  protected async _list(prefix: string): Promise<string[]> {
    return this.#listings.list(prefix);
  }

  protected override async _listPage(prefix: string, options: CleanListPageOptions): Promise<ListPage> {
    return this.#listings.page(prefix, options.limit, options.after);
  }

  protected override async _listFolder(prefix: string, options: CleanFolderOptions): Promise<ListPage> {
    return this.#listings.folder(prefix, options.delimiter, options.limit, options.after);
  }

  protected async _delete(key: string, options: CleanDeleteOptions): Promise<void> {
    // Only a live key gets a marker: deleting a missing key must not grow its history.
    const latest = await this.#latest(key);
    const live = latest !== null && !isDeleteMarker(latest.header);
    const conflict = async (message: string) => {
      // A retry whose earlier attempt took effect: the duplicate window tells.
      if (options.writeId !== undefined && (await wasStored(this.#js, this.#subject(key), options.writeId))) return;
      throw new ConditionFailedError(message);
    };
    if (!live) {
      if (options.ifMatch !== undefined) await conflict("the key does not exist (it was deleted, or never written)");
      return;
    }
    if (options.ifMatch !== undefined && String(latest.seq) !== options.ifMatch) return conflict("the key changed since the etag the delete names");
    const h = headers();
    h.set(HEADER.kvOperation, "DEL");
    await publishEntry(this.#js, {
      subject: this.#subject(key),
      payload: new Uint8Array(0),
      headers: h,
      ...(options.writeId ? { msgID: options.writeId } : {}),
      // Atomic with the check above: a write in between makes the delete a conflict.
      ...(options.ifMatch !== undefined ? { ifMatch: options.ifMatch } : {}),
      latest: () => this.#latest(key),
    });
  }

  protected override async _versions(key: string): Promise<VersionInfo[]> {
    const out: VersionInfo[] = [];
    for await (const m of await this.#readIndex(this.#subject(key), "all")) {
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

  protected override async _putMany(entries: CleanBatchEntry[], options: CleanWriteOptions): Promise<void> {
    await mapLimit(entries, BATCH_IN_FLIGHT, ({ key, data, ...rest }, i) => this._put(key, data, { ...rest, ...entryWrite(options, i) }));
  }

  protected override async _deleteMany(keys: string[], options: CleanWriteOptions): Promise<void> {
    await mapLimit(keys, BATCH_IN_FLIGHT, (key, i) => this._delete(key, entryWrite(options, i)));
  }

  protected override async _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    const feed = await followIndex(this.#js, this.layout.indexStream, this.layout.keySubject(prefixFilter(prefix).filter));
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
    return this.run("sweep", undefined, options.signal, () => sweepLargeObjects(this.#readIndex, this.layout, this.#large, grace, this.#unreferencedSince));
  }

  protected async _close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    for (const feed of [...this.#feeds]) feed.end();
    this.#listings.clear();
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
    const m = await this.#read(query);
    // A revision of another key is not a version of this one.
    return m && m.subject === subject ? m : null;
  }

  /** Index messages under `subject` (a filter) by `policy`; see readIndex. */
  readonly #readIndex: IndexReader = (subject, policy) => readIndex(this.#js, this.layout.indexStream, subject, policy, (seq) => this.#existsAfter(subject, seq));

  /** Whether an index message under `subject` (a filter) has a sequence above `seq`: one get. */
  async #existsAfter(subject: string, seq: number): Promise<boolean> {
    return (await this.#read({ next_by_subj: subject, seq: seq + 1 })) !== null;
  }

  /** One index message, read as the store reads (direct get or the stream leader); null when there is none. */
  async #read(query: { last_by_subj: string } | { seq: number } | { next_by_subj: string; seq: number }): Promise<StoredMsg | null> {
    if (this.directReads) return this.#jsm.direct.getMessage(this.layout.indexStream, query);
    return this.#jsm.streams.getMessage(this.layout.indexStream, query).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
      throw err;
    });
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


/** Fails a conditional write early when its condition already does not hold against `latest` (the server checks again on the entry). */
function checkCondition(latest: StoredMsg | null, options: CleanPutOptions): void {
  const live = latest !== null && !isDeleteMarker(latest.header);
  if (options.ifNoneMatch === "*" && live) throw new ConditionFailedError('the key exists (ifNoneMatch: "*")');
  if (options.ifMatch !== undefined && (!live || String(latest.seq) !== options.ifMatch)) throw new ConditionFailedError("the key changed (or was deleted) since the etag the write names");
}

/** One entry's share of a batch's write options: the signal, and its own id derived from the batch's. */
function entryWrite(options: CleanWriteOptions, index: number): CleanWriteOptions {
  const out: CleanWriteOptions = { signal: options.signal };
  if (options.writeId !== undefined) out.writeId = `${options.writeId}.${index}`;
  if (options.deadline !== undefined) out.deadline = options.deadline;
  return out;
}

/** `nats://[user:pass@|token@]host:port/BUCKET?history=…` and `tls://…`, on {@link NatsStore.open}; the URL's parts win over `options`. */
export async function openNatsStore(target: StoreUrl, options: NatsStoreOptions = {}): Promise<NatsStore> {
  return NatsStore.open(natsOptionsFromUrl(target, options));
}
