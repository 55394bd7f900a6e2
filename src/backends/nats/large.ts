import { createHash } from "node:crypto";
import { headers, nuid } from "@nats-io/nats-core";
import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, JsHeaders, type JetStreamClient, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { Objm, StorageType, type ObjectStore } from "@nats-io/obj";
import { ChunkWriter } from "./chunk-writer.js";
import type { LargeRef } from "./entry.js";
import { NatsLayoutError } from "./errors.js";
import type { NatsLayout } from "./layout.js";
import { readToEnd } from "./stall.js";

/**
 * Bytes of chunks a large put publishes ahead of their acknowledgements, counted in whole
 * chunks (2–32; 8 of the default 128 KiB): a put holds at most these plus the chunk it fills,
 * and pays a round trip per window rather than per chunk. Measured here, beyond 8 chunks the
 * server's write rate is the limit, not the round trips.
 */
const WRITE_AHEAD_BYTES = 1024 * 1024;
/**
 * Bytes of a large value a read asks the server for ahead of the caller, counted in the
 * store's chunk size (2–32 chunks; 16 of the default 128 KiB): the memory bound of `getStream`.
 */
const READ_AHEAD_BYTES = 2 * 1024 * 1024;

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
   * reads its blocks from disk for that: about a second per lookup after a failover, measured
   * in the cluster test); a sequence is found directly.
   */
  async read(ref: LargeRef): Promise<AsyncIterable<Uint8Array>> {
    if (ref.size === 0) return (async function* () {})();
    const stream = this.#layout.objectStream;
    const subject = this.#layout.chunkSubject(ref.nuid);
    const missing = () => new NatsLayoutError(`the large object ${ref.name} of this value is missing from ${stream} (removed by another tool?)`);
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
    const more = () => this.#chunks(subject, start);
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

  /** A message of the object stream by sequence or subject; null when there is none. */
  async #message(query: { seq: number } | { last_by_subj: string }): Promise<StoredMsg | null> {
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
  async #chunks(subject: string, start: { deliver_policy: DeliverPolicy; opt_start_seq?: number }): Promise<AsyncIterable<Uint8Array>> {
    const consumer = await this.#js.consumers.get(this.#layout.objectStream, { filter_subjects: subject, ...start });
    const messages = await consumer.consume({ max_messages: chunksIn(READ_AHEAD_BYTES, this.#config.chunkSize) });
    return (async function* () {
      for await (const m of readToEnd(messages, consumer)) yield m.data;
    })();
  }

  /** Deletes an object outright: its chunks and its info (no tombstone left behind). */
  async remove(ref: Pick<LargeRef, "name" | "nuid">): Promise<void> {
    const stream = this.#layout.objectStream;
    await this.#jsm.streams.purge(stream, { filter: this.#layout.chunkSubject(ref.nuid) });
    await this.#jsm.streams.purge(stream, { filter: this.#layout.metaSubject(ref.name) });
  }

  /** Every object (name, nuid, completion time); empty when the object store does not exist. */
  async list(): Promise<{ name: string; nuid: string; mtime: Date }[]> {
    const exists = await this.#jsm.streams.info(this.#layout.objectStream).then(
      () => true,
      (err: unknown) => {
        if ((err as { code?: number }).code === 10059) return false;
        throw err;
      },
    );
    if (!exists) return [];
    const objects = await this.#objects();
    return (await objects.list()).map((o) => ({ name: o.name, nuid: o.nuid, mtime: new Date(o.mtime) }));
  }
}

/** Splits a buffer into views of at most `size` bytes (no copies). */
export function* slices(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, Math.min(i + size, data.byteLength));
}
