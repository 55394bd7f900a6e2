import { createHash } from "node:crypto";
import { headers, nuid } from "@nats-io/nats-core";
import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, JsHeaders, type JetStreamClient, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { Objm, StorageType, type ObjectStore } from "@nats-io/obj";
import { CHUNK_OFFSET_HEADER, ChunkWriter } from "./chunk-writer.js";
import type { LargeRef } from "./entry.js";
import { NatsLayoutError, ObjectGoneError } from "./errors.js";
import type { NatsLayout } from "./layout.js";
import { readToEnd, type EndProbe } from "./stall.js";

/**
 * Bytes of chunks a large put publishes ahead of their acknowledgements, counted in whole
 * chunks (2–32; 8 of the default 128 KiB): a put holds at most these plus the chunk it fills,
 * and pays a round trip per window rather than per chunk. Beyond a few chunks ahead the
 * server's write rate is the limit, not the round trips (docs/nats.md).
 */
const WRITE_AHEAD_BYTES = 1024 * 1024;
/**
 * Bytes of a large value a read asks the server for ahead of the caller, counted in the
 * store's chunk size (2–32 chunks; 16 of the default 128 KiB): the memory bound of `getStream`.
 */
const READ_AHEAD_BYTES = 2 * 1024 * 1024;
/**
 * How long a read waits for its next chunk before asking the server whether that chunk still
 * exists: the object of a value that was replaced can be reclaimed while a reader streams it,
 * and its consumer would then wait for chunks that will never come.
 */
const GONE_CHECK_MS = 250;

/** `bytes` in whole chunks of `chunkSize`, at least 2 (overlap) and at most 32. */
function chunksIn(bytes: number, chunkSize: number): number {
  return Math.min(32, Math.max(2, Math.floor(bytes / chunkSize)));
}

export interface LargeStoreConfig {
  chunkSize: number;
  replicas?: number;
  storage?: "file" | "memory";
  maxBytes?: number;
  /** Milliseconds. */
  ttl?: number;
  /**
   * Read chunks by sequence with direct get (any replica; the raw payload) instead of the
   * leader's API (the payload base64 in JSON). Follows the store's `directReads`.
   */
  directReads?: boolean;
}

/**
 * Large values in the bucket's object store, in its own layout (chunks on `$O.<bucket>.C.<nuid>`,
 * the ObjectInfo on `$O.<bucket>.M.<name>`), so `@nats-io/obj` and `nats object` read them.
 * Writes keep several chunk publishes in flight (`ChunkWriter`); reads use an ordered pull
 * consumer on the object's chunk subject, which pulls only as fast as the caller reads (the
 * object store's own `get` buffers without limit), and check the SHA-256 digest at the end.
 */
export class LargeObjects {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #layout: NatsLayout;
  readonly #config: LargeStoreConfig;
  #store: Promise<ObjectStore> | undefined;

  constructor(js: JetStreamClient, jsm: JetStreamManager, layout: NatsLayout, config: LargeStoreConfig) {
    this.#js = js;
    this.#jsm = jsm;
    this.#layout = layout;
    this.#config = config;
  }

  /** The object store, created on first use (a store of small values never has one). */
  #objects(): Promise<ObjectStore> {
    this.#store ??= new Objm(this.#js)
      .create(this.#layout.objectBucket, {
        storage: this.#config.storage === "memory" ? StorageType.Memory : StorageType.File,
        replicas: this.#config.replicas ?? 1,
        ...(this.#config.ttl ? { ttl: this.#config.ttl * 1_000_000 } : {}),
        ...(this.#config.maxBytes ? ({ max_bytes: this.#config.maxBytes } as object) : {}),
      })
      .catch((err: unknown) => {
        this.#store = undefined;
        throw err;
      });
    return this.#store;
  }

  /**
   * Writes `source` as a new object and returns its reference. The chunks and the ObjectInfo
   * are the object store's own layout (so `@nats-io/obj` and `nats object get` read the value),
   * but published with about `WRITE_AHEAD_BYTES` of acknowledgements pending instead of one, and
   * hashed with node's SHA-256 (the object store's default is a pure-JS hash). On any failure,
   * the abort of `signal` included, nothing stays behind: the publishes in flight settle, then
   * the chunks (and the info, if it was sent) are purged.
   */
  async write(key: string, source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<LargeRef> {
    await this.#objects(); // creates the stream on the first large put
    const ref = { name: nuid.next(), nuid: nuid.next() };
    const writer = new ChunkWriter(this.#js, { subject: this.#layout.chunkSubject(ref.nuid), chunkSize: this.#config.chunkSize, window: chunksIn(WRITE_AHEAD_BYTES, this.#config.chunkSize) });
    let infoSent = false;
    try {
      for await (const part of source) {
        signal?.throwIfAborted();
        await writer.write(part);
      }
      signal?.throwIfAborted();
      const written = await writer.end();
      const info = {
        bucket: this.#layout.objectBucket,
        nuid: ref.nuid,
        size: written.size,
        chunks: written.chunks,
        name: ref.name,
        description: `stowage value of ${JSON.stringify(key)}`,
        options: { max_chunk_size: this.#config.chunkSize },
        mtime: new Date().toISOString(),
        digest: written.digest,
        deleted: false,
      };
      const h = headers();
      h.set(JsHeaders.RollupHdr, JsHeaders.RollupValueSubject);
      infoSent = true;
      await this.#js.publish(this.#layout.metaSubject(ref.name), JSON.stringify(info), { headers: h });
      signal?.throwIfAborted();
      const done: LargeRef = { ...ref, size: written.size, digest: written.digest };
      if (written.firstSeq !== undefined) done.seq = written.firstSeq;
      if (written.firstSeq !== undefined && written.lastSeq !== undefined) {
        done.lastSeq = written.lastSeq;
        done.chunkSize = this.#config.chunkSize;
      }
      return done;
    } catch (err) {
      await writer.settle();
      const stream = this.#layout.objectStream;
      await this.#jsm.streams.purge(stream, { filter: this.#layout.chunkSubject(ref.nuid) }).catch(() => undefined);
      if (infoSent) await this.#jsm.streams.purge(stream, { filter: this.#layout.metaSubject(ref.name) }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * The bytes of an object, chunk by chunk, digest checked after the last one. With the first
   * chunk's sequence known (every value written since it was recorded), that chunk is one
   * get by sequence, and only a value of several chunks needs a consumer, which starts right
   * after it. Without it (older entries), the chunk subject's last message proves the object
   * is there and the consumer starts from the subject's first message. Looking up a subject
   * makes the server search its stream (on nats-server 2.9 a node that has just taken over
   * reads its blocks from disk for that, slowly: see docs/nats.md); a sequence is found directly.
   */
  async read(ref: LargeRef): Promise<AsyncIterable<Uint8Array>> {
    if (ref.size === 0) return (async function* () {})();
    const stream = this.#layout.objectStream;
    const subject = this.#layout.chunkSubject(ref.nuid);
    const missing = () => new ObjectGoneError(`the large object ${ref.name} of this value is missing from ${stream}`);
    let first: Uint8Array | undefined;
    let start: { deliver_policy: DeliverPolicy; opt_start_seq?: number } = { deliver_policy: DeliverPolicy.All };
    if (ref.seq !== undefined) {
      const m = await this.#message({ seq: ref.seq });
      if (!m || m.subject !== subject) throw missing();
      first = m.data;
      start = { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: ref.seq + 1 };
    } else if (!(await this.#message({ last_by_subj: subject }))) {
      // A missing object would make the consumer wait forever.
      throw missing();
    }
    // The consumer is made only once the caller wants more than the first chunk, and is read at
    // once: a caller that stops early never leaves a consumer pulling behind it.
    const more = () => this.#chunks(subject, start, ref);
    return (async function* () {
      const sha = createHash("sha256");
      let received = 0;
      const take = (data: Uint8Array) => {
        sha.update(data);
        received += data.byteLength;
      };
      if (first) {
        take(first);
        if (first.byteLength > 0) yield first;
      }
      if (received < ref.size) {
        for await (const data of await more()) {
          take(data);
          if (data.byteLength > 0) yield data;
          if (received >= ref.size) break;
        }
      }
      const digest = `SHA-256=${sha.digest("base64url")}`;
      if (received !== ref.size || digest.replace(/=+$/, "") !== ref.digest.replace(/=+$/, "")) {
        throw new NatsLayoutError(`large object ${ref.name} is corrupt: read ${received} of ${ref.size} bytes, digest ${digest}, expected ${ref.digest}`);
      }
    })();
  }

  /**
   * Bytes `[start, end)` of an object. A value written with chunk offsets starts at the chunk
   * that holds `start` (found by `findChunk`, without reading the chunks before it) and stops
   * once `end` is reached; the digest, which covers the whole value, is not checked. Other
   * objects are read from their start and cut.
   */
  async readRange(ref: LargeRef, start: number, end: number): Promise<AsyncIterable<Uint8Array>> {
    if (start === 0 && end >= ref.size) return this.read(ref);
    if (end <= start) return (async function* () {})();
    const chunkSize = ref.chunkSize;
    const found = chunkSize !== undefined ? await this.#findChunk(ref, Math.floor(start / chunkSize)) : undefined;
    if (found === undefined) return cut(await this.read(ref), start, end);
    const subject = this.#layout.chunkSubject(ref.nuid);
    // Pull no more chunks than the range still needs.
    const needed = Math.ceil((end - found.offset - found.data.byteLength) / chunkSize!);
    const more = () => this.#chunks(subject, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: found.seq + 1 }, ref, needed);
    const name = ref.name;
    return (async function* () {
      let position = found.offset;
      const take = (data: Uint8Array) => {
        const from = Math.max(start - position, 0);
        const to = Math.min(end - position, data.byteLength);
        position += data.byteLength;
        return to > from ? data.subarray(from, to) : undefined;
      };
      const first = take(found.data);
      if (first) yield first;
      if (position < end) {
        for await (const data of await more()) {
          const piece = take(data);
          if (piece) yield piece;
          if (position >= end) break;
        }
      }
      if (position < end) throw new NatsLayoutError(`large object ${name} is corrupt: it ends at byte ${position}, before ${end}`);
    })();
  }

  /**
   * Chunk `index` of an object (its sequence, data and offset), located by the offsets the
   * chunks carry. Chunks of one object have increasing sequences, interleaved with other puts'
   * chunks when puts ran at once: chunk i lies between first + i and last - (n - 1 - i), and a
   * get of the next message on the chunk subject from any sequence tells which chunk is there.
   * So the search narrows that window (one get when no other put interleaved). Undefined when
   * the chunks carry no offsets (written by another tool or an earlier stowage).
   */
  async #findChunk(ref: LargeRef, index: number): Promise<{ seq: number; data: Uint8Array; offset: number } | undefined> {
    const { seq: firstSeq, lastSeq, chunkSize } = ref;
    if (firstSeq === undefined || lastSeq === undefined || chunkSize === undefined) return undefined;
    const subject = this.#layout.chunkSubject(ref.nuid);
    const count = Math.ceil(ref.size / chunkSize);
    const gone = () => new ObjectGoneError(`the large object ${ref.name} of this value is missing from ${this.#layout.objectStream}`);
    let lo = firstSeq + index;
    let hi = lastSeq - (count - 1 - index);
    for (let probes = 0; lo <= hi; probes++) {
      // Interpolate first (exact when the chunks are contiguous), then halve.
      const at = probes < 2 ? Math.min(hi, Math.max(lo, firstSeq + Math.round((index * (lastSeq - firstSeq)) / Math.max(1, count - 1)))) : Math.floor((lo + hi) / 2);
      const m = await this.#message({ next_by_subj: subject, seq: at });
      if (!m || m.seq > lastSeq) throw gone();
      const offset = Number(m.header?.get(CHUNK_OFFSET_HEADER));
      if (!Number.isSafeInteger(offset) || offset % chunkSize !== 0) return undefined;
      const found = offset / chunkSize;
      if (found === index) return { seq: m.seq, data: m.data, offset };
      if (found < index) lo = Math.max(lo, m.seq + (index - found));
      else hi = Math.min(hi, at - 1, m.seq - (found - index));
    }
    throw new NatsLayoutError(`large object ${ref.name} is corrupt: chunk ${index} is not between its first and last chunks`);
  }

  /** A message of the object stream by sequence or subject; null when there is none. */
  async #message(query: { seq: number } | { last_by_subj: string } | { next_by_subj: string; seq: number }): Promise<StoredMsg | null> {
    if (this.#config.directReads && "seq" in query) {
      // A chunk never changes once written, so any replica that has it returns the right bytes;
      // one that does not have it yet (or a stream without direct get) leaves it to the leader.
      const direct = await this.#jsm.direct.getMessage(this.#layout.objectStream, query).catch(() => null);
      if (direct) return direct;
    }
    return this.#jsm.streams.getMessage(this.#layout.objectStream, query).catch((err: unknown) => {
      // Only "no message" means missing; a timeout or a stream without a leader (failover) is
      // thrown on, to be classified transient.
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
      throw err;
    });
  }

  /**
   * The chunk subject's messages from `start` on, through an ordered pull consumer that pulls
   * only as fast as the caller reads; ends when the stream has no more (pending 0).
   */
  async #chunks(subject: string, start: { deliver_policy: DeliverPolicy; opt_start_seq?: number }, ref: LargeRef, needed = Infinity): Promise<AsyncIterable<Uint8Array>> {
    const consumer = await this.#js.consumers.get(this.#layout.objectStream, { filter_subjects: subject, ...start });
    const messages = await consumer.consume({ max_messages: Math.max(1, Math.min(needed, chunksIn(READ_AHEAD_BYTES, this.#config.chunkSize))) });
    const gone: EndProbe = {
      everyMs: GONE_CHECK_MS,
      run: async (last) => {
        if (await this.#message({ next_by_subj: subject, seq: last + 1 })) return "wait";
        throw new ObjectGoneError(`the large object ${ref.name} of this value was removed from ${this.#layout.objectStream} while it was being read`);
      },
    };
    return (async function* () {
      for await (const m of readToEnd(messages, consumer, gone, (start.opt_start_seq ?? 1) - 1)) yield m.data;
    })();
  }

  /** Deletes an object outright: its chunks and its info (no tombstone left behind). */
  async remove(ref: { name?: string; nuid: string }): Promise<void> {
    const stream = this.#layout.objectStream;
    await this.#jsm.streams.purge(stream, { filter: this.#layout.chunkSubject(ref.nuid) });
    if (ref.name !== undefined) await this.#jsm.streams.purge(stream, { filter: this.#layout.metaSubject(ref.name) });
  }

  /**
   * Every object in the object store, by chunk nuid: those with an ObjectInfo (name, completion
   * time) and chunks without one (a put whose process or server died before it finished), with
   * the time of their last chunk. Empty when the object store does not exist.
   */
  async inventory(): Promise<StoredObject[]> {
    const stream = this.#layout.objectStream;
    const chunkFilter = this.#layout.chunkSubject("*");
    const info = await this.#jsm.streams.info(stream, { subjects_filter: chunkFilter }).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
      throw err;
    });
    if (!info) return [];
    const objects = new Map<string, StoredObject>();
    for (const o of await (await this.#objects()).list()) objects.set(o.nuid, { nuid: o.nuid, name: o.name, written: new Date(o.mtime) });
    const prefix = chunkFilter.slice(0, -1);
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const nuid = subject.slice(prefix.length);
      if (objects.has(nuid)) continue;
      const last = await this.#message({ last_by_subj: subject });
      if (last) objects.set(nuid, { nuid, written: last.time });
    }
    return [...objects.values()];
  }
}

/** An object found by {@link LargeObjects.inventory}. */
export interface StoredObject {
  nuid: string;
  /** Absent for chunks without an ObjectInfo. */
  name?: string;
  /** When it was completed, or its last chunk written. */
  written: Date;
}

/** Bytes `[start, end)` of a body read from its start. */
async function* cut(body: AsyncIterable<Uint8Array>, start: number, end: number): AsyncGenerator<Uint8Array> {
  let position = 0;
  for await (const chunk of body) {
    const from = Math.max(start - position, 0);
    const to = Math.min(end - position, chunk.byteLength);
    position += chunk.byteLength;
    if (to > from) yield chunk.subarray(from, to);
    if (position >= end) return;
  }
}

/** Splits a buffer into views of at most `size` bytes (no copies). */
export function* slices(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, Math.min(i + size, data.byteLength));
}
