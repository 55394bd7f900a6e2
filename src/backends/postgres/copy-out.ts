/**
 * Reading large values with `COPY (SELECT ...) TO STDOUT (FORMAT binary)`.
 *
 * `pg` reads results in text format only, so a bytea arrives as hex: twice the bytes on the
 * wire, decoded again in JavaScript. Binary COPY sends the bytes as they are and streams
 * them, with backpressure, as they arrive (several times faster than a hex SELECT for a
 * 1 MiB value, docs/postgres.md), and a value is never held whole unless the caller gathers it.
 */
import type { Pool, PoolClient } from "pg";
import { to as copyTo } from "pg-copy-streams";
import { abortable } from "./chunks.js";

/** `PGCOPY\n\377\r\n\0`, then 32-bit flags and the length of a header extension. */
const SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]);
const HEADER_BYTES = SIGNATURE.length + 8;

/** Thrown when the COPY output is not one bytea column in binary COPY format. */
export class CopyFormatError extends Error {}

/**
 * Parses binary COPY output of a query selecting one non-null bytea column: `push` takes the
 * stream's pieces as they come (split anywhere) and returns the column's bytes in them, as
 * views; `rows` counts the finished rows and `ended` says the trailer was seen.
 */
export class BinaryCopyParser {
  rows = 0;
  ended = false;
  /** Bytes of a header, field count or length that straddle two pieces. */
  #pending = Buffer.alloc(0);
  #state: "header" | "extension" | "fields" | "length" | "data" = "header";
  #remaining = 0;

  push(piece: Buffer): Uint8Array[] {
    const out: Uint8Array[] = [];
    let offset = 0;
    while (offset < piece.length) {
      if (this.ended) throw new CopyFormatError("bytes after the end of the COPY output");
      if (this.#state === "data" || this.#state === "extension") {
        const n = Math.min(this.#remaining, piece.length - offset);
        if (this.#state === "data") out.push(piece.subarray(offset, offset + n));
        offset += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#finishField();
        continue;
      }
      const need = this.#state === "header" ? HEADER_BYTES : this.#state === "fields" ? 2 : 4;
      const take = Math.min(need - this.#pending.length, piece.length - offset);
      this.#pending = Buffer.concat([this.#pending, piece.subarray(offset, offset + take)]);
      offset += take;
      if (this.#pending.length < need) continue;
      const head = this.#pending;
      this.#pending = Buffer.alloc(0);
      this.#header(head);
    }
    return out;
  }

  #header(head: Buffer): void {
    switch (this.#state) {
      case "header":
        if (!head.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new CopyFormatError("not binary COPY output");
        this.#remaining = head.readUInt32BE(SIGNATURE.length + 4);
        this.#state = this.#remaining > 0 ? "extension" : "fields";
        return;
      case "fields": {
        const fields = head.readInt16BE(0);
        if (fields === -1) this.ended = true;
        else if (fields !== 1) throw new CopyFormatError(`expected one column per row, got ${fields}`);
        else this.#state = "length";
        return;
      }
      case "length":
        this.#remaining = head.readInt32BE(0);
        if (this.#remaining < 0) throw new CopyFormatError("a NULL where a value was expected");
        this.#state = "data";
        if (this.#remaining === 0) this.#finishField();
        return;
      default:
        throw new CopyFormatError(`unexpected state ${this.#state}`);
    }
  }

  #finishField(): void {
    if (this.#state === "data") this.rows++;
    this.#state = "fields";
  }
}

/** What a finished COPY read found. */
export interface CopyResult {
  rows: number;
  bytes: number;
}

/**
 * Runs `sql` (a `COPY (SELECT <one bytea column> ...) TO STDOUT (FORMAT binary)`) on a
 * connection of its own and yields the column's bytes of every row, in order, as they arrive;
 * returns the row and byte counts once the output has ended (`yield*` hands them to the
 * delegating generator). Stopping early or an abort discards the connection (it is mid-COPY),
 * never returns it to the pool.
 */
export async function* copyOut(pool: Pool, sql: string, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array, CopyResult> {
  signal?.throwIfAborted();
  const client: PoolClient = await pool.connect();
  let broken: Error | undefined = new Error("COPY read stopped before its end");
  // A connection that drops while checked out emits 'error'; unheard, that would crash the process.
  const onError = (err: Error) => (broken = err);
  client.on("error", onError);
  const stream = client.query(copyTo(sql));
  try {
    const parser = new BinaryCopyParser();
    let bytes = 0;
    for await (const piece of abortable<Buffer>(stream, signal)) {
      for (const part of parser.push(piece)) {
        bytes += part.byteLength;
        yield part;
      }
    }
    if (!parser.ended) throw new CopyFormatError("the COPY output ended without its trailer");
    broken = undefined;
    return { rows: parser.rows, bytes };
  } finally {
    if (broken) stream.destroy();
    client.off("error", onError);
    client.release(broken);
  }
}
