import { createHash } from "node:crypto";
import { nuid } from "@nats-io/nats-core";
import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { Objm, StorageType, type ObjectStore } from "@nats-io/obj";
import type { LargeRef } from "./entry.js";
import { NatsLayoutError } from "./errors.js";
import type { NatsLayout } from "./layout.js";

/** Chunks of a large value in flight while reading: the memory bound of `getStream`. */
const READ_AHEAD_CHUNKS = 4;

export interface LargeStoreConfig {
  chunkSize: number;
  replicas?: number;
  storage?: "file" | "memory";
  maxBytes?: number;
  /** Milliseconds. */
  ttl?: number;
}

/**
 * Large values in the bucket's object store. Writes go through `@nats-io/obj` (so `nats object`
 * tools read them); reads use an ordered pull consumer on the object's chunk subject, which
 * pulls only as fast as the caller reads (the object store's own `get` buffers without limit)
 * and checks the SHA-256 digest at the end.
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
   * Writes `source` as a new object and returns its reference. On any failure, the abort of
   * `signal` included, nothing stays behind (the object store purges the partial chunks).
   */
  async write(key: string, source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<LargeRef> {
    const objects = await this.#objects();
    const name = nuid.next();
    const info = await objects.put(
      { name, description: `stowage value of ${JSON.stringify(key)}`, options: { max_chunk_size: this.#config.chunkSize } },
      readableOf(source, signal),
    );
    const ref: LargeRef = { name, nuid: info.nuid, size: info.size, digest: info.digest };
    if (signal?.aborted) {
      await this.remove(ref).catch(() => undefined);
      throw signal.reason;
    }
    return ref;
  }

  /** The bytes of an object, chunk by chunk, digest checked after the last one. */
  async read(ref: LargeRef): Promise<AsyncIterable<Uint8Array>> {
    if (ref.size === 0) return (async function* () {})();
    const subject = this.#layout.chunkSubject(ref.nuid);
    // A missing object would make the consumer wait forever: look for its last chunk first.
    const last = await this.#jsm.streams.getMessage(this.#layout.objectStream, { last_by_subj: subject }).catch((err: unknown) => {
      // Only "no message" means missing; a timeout or a stream without a leader (failover) is
      // thrown on, to be classified transient.
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
      throw err;
    });
    if (!last) throw new NatsLayoutError(`the large object ${ref.name} of this value is missing from ${this.#layout.objectStream} (removed by another tool?)`);
    const consumer = await this.#js.consumers.get(this.#layout.objectStream, { filter_subjects: subject });
    const messages = await consumer.consume({ max_messages: READ_AHEAD_CHUNKS });
    return (async function* () {
      const sha = createHash("sha256");
      let received = 0;
      try {
        for await (const m of messages) {
          sha.update(m.data);
          received += m.data.byteLength;
          if (m.data.byteLength > 0) yield m.data;
          if (received >= ref.size || m.info.pending === 0) break;
        }
      } finally {
        messages.stop();
      }
      const digest = `SHA-256=${sha.digest("base64url")}`;
      if (received !== ref.size || digest.replace(/=+$/, "") !== ref.digest.replace(/=+$/, "")) {
        throw new NatsLayoutError(`large object ${ref.name} is corrupt: read ${received} of ${ref.size} bytes, digest ${digest}, expected ${ref.digest}`);
      }
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

/** A pull-driven ReadableStream over an async iterable: reads the source only when asked. */
function readableOf(source: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): ReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        signal?.throwIfAborted();
        const next = await iterator.next();
        signal?.throwIfAborted();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      },
      async cancel(reason) {
        await iterator.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Splits a buffer into views of at most `size` bytes (no copies). */
export function* slices(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, Math.min(i + size, data.byteLength));
}
