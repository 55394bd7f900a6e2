import { createHash, type Hash } from "node:crypto";
import { headers } from "@nats-io/nats-core";
import type { JetStreamClient } from "@nats-io/jetstream";

/** The header on each chunk message giving the byte offset of its first byte in the value. */
export const CHUNK_OFFSET_HEADER = "Stowage-Offset";

/** What a finished writer wrote, in the object store's terms. */
export interface WrittenChunks {
  /** Bytes written. */
  size: number;
  /** Messages published on the chunk subject. */
  chunks: number;
  /** `SHA-256=<padded base64url>` of the bytes, as `@nats-io/obj` writes it in an ObjectInfo. */
  digest: string;
  /** The stream sequence of the first chunk (undefined when nothing was written). */
  firstSeq?: number;
  /** The stream sequence of the last chunk. */
  lastSeq?: number;
}

export interface ChunkWriterOptions {
  /** The subject every chunk is published on (`$O.<bucket>.C.<nuid>`). */
  subject: string;
  /** Bytes per chunk message (the last one may be shorter); at most the server's max_payload. */
  chunkSize: number;
  /** Chunks published whose acknowledgement has not come back yet, at most (≥ 1). */
  window: number;
}

/**
 * Cuts a byte stream into fixed-size chunks and publishes them on one subject of a JetStream
 * stream, keeping up to `window` publishes in flight instead of waiting for each chunk's
 * acknowledgement (`@nats-io/obj` waits: one round trip per chunk). Messages of one connection
 * reach the stream in publish order, so the chunks are stored in order. Memory is bounded by
 * `(window + 1) × chunkSize`: the chunks in flight and the one being filled.
 *
 * The bytes are copied into the writer's own chunk buffers: a source may reuse the buffer it
 * handed out once asked for the next one, while a publish still holds the earlier chunk. A
 * buffer is reused once its chunk is acknowledged (the server has it, so the connection no
 * longer does): a put allocates `window + 1` buffers, not one per chunk.
 *
 * @example
 * const writer = new ChunkWriter(js, { subject: "$O.B_large.C.abc", chunkSize: 256 * 1024, window: 8 });
 * for await (const part of source) await writer.write(part);
 * const { size, chunks, digest } = await writer.end();
 */
export class ChunkWriter {
  readonly #js: JetStreamClient;
  readonly #subject: string;
  readonly #chunkSize: number;
  readonly #window: number;
  readonly #sha: Hash = createHash("sha256");
  readonly #inFlight = new Set<Promise<void>>();
  /** Chunk buffers whose publish was acknowledged, ready to be filled again. */
  readonly #free: Uint8Array[] = [];
  #buffer: Uint8Array | undefined;
  #filled = 0;
  #size = 0;
  #chunks = 0;
  #failure: { error: unknown } | undefined;
  #ended = false;
  #firstSeq: number | undefined;
  #lastSeq: number | undefined;

  constructor(js: JetStreamClient, options: ChunkWriterOptions) {
    if (!(options.chunkSize >= 1) || !(options.window >= 1)) throw new RangeError("chunkSize and window must be at least 1");
    this.#js = js;
    this.#subject = options.subject;
    this.#chunkSize = options.chunkSize;
    this.#window = options.window;
  }

  /** Bytes accepted so far. */
  get size(): number {
    return this.#size + this.#filled;
  }

  /**
   * Adds bytes; resolves once they are buffered or published with the window respected.
   * Rejects with the first failed publish (the writer is then unusable: `settle()`, then purge).
   */
  async write(data: Uint8Array): Promise<void> {
    this.#throwIfFailed();
    let offset = 0;
    while (offset < data.byteLength) {
      this.#buffer ??= this.#free.pop() ?? new Uint8Array(this.#chunkSize);
      const n = Math.min(this.#chunkSize - this.#filled, data.byteLength - offset);
      this.#buffer.set(data.subarray(offset, offset + n), this.#filled);
      this.#filled += n;
      offset += n;
      if (this.#filled === this.#chunkSize) await this.#send();
    }
  }

  /** Publishes the last partial chunk and waits for every acknowledgement. */
  async end(): Promise<WrittenChunks> {
    if (this.#ended) throw new Error("ChunkWriter.end() called twice");
    this.#ended = true;
    if (this.#filled > 0) await this.#send();
    await this.settle();
    this.#throwIfFailed();
    // The object store writes the digest as padded base64url.
    const b64 = this.#sha.digest("base64url");
    const written: WrittenChunks = { size: this.#size, chunks: this.#chunks, digest: `SHA-256=${b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")}` };
    if (this.#firstSeq !== undefined) written.firstSeq = this.#firstSeq;
    if (this.#lastSeq !== undefined) written.lastSeq = this.#lastSeq;
    return written;
  }

  /**
   * Waits until no publish is in flight, whatever their outcome: after a failure the caller
   * purges the chunk subject, and a chunk still in flight could land after the purge.
   */
  async settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  async #send(): Promise<void> {
    const buffer = this.#buffer as Uint8Array;
    const payload = this.#filled === buffer.byteLength ? buffer : buffer.subarray(0, this.#filled);
    this.#buffer = undefined;
    this.#filled = 0;
    this.#sha.update(payload);
    this.#size += payload.byteLength;
    this.#chunks++;
    this.#throwIfFailed();
    const first = this.#chunks === 1;
    // Each chunk says where it starts in the value, so a range read can tell which chunk a
    // message is without counting from the first (object store readers ignore the header).
    const h = headers();
    h.set(CHUNK_OFFSET_HEADER, String(this.#size - payload.byteLength));
    const ack: Promise<void> = this.#js.publish(this.#subject, payload, { headers: h }).then(
      (pubAck) => {
        if (first) this.#firstSeq = pubAck.seq;
        this.#lastSeq = Math.max(this.#lastSeq ?? 0, pubAck.seq);
        this.#inFlight.delete(ack);
        this.#free.push(buffer);
      },
      (error: unknown) => {
        this.#inFlight.delete(ack);
        this.#failure ??= { error };
      },
    );
    this.#inFlight.add(ack);
    while (this.#inFlight.size >= this.#window) await Promise.race(this.#inFlight);
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }
}
