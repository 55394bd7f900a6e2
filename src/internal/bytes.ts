import { StorageError, type StorageOp } from "../errors.js";
import type { ByteSource } from "../types.js";

/** Reads a whole body into one buffer, refusing bodies over `maxBytes`. */
export async function collect(source: AsyncIterable<Uint8Array>, maxBytes: number, op: StorageOp, key?: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new StorageError("invalid", `value is larger than this store's limit of ${maxBytes} bytes`, { op, key });
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

/** True for anything `putStream` can read from. */
export function isByteSource(value: unknown): value is ByteSource {
  return (
    value !== null &&
    typeof value === "object" &&
    (Symbol.asyncIterator in value || Symbol.iterator in value) &&
    !(value instanceof Uint8Array) &&
    typeof value !== "string"
  );
}

/**
 * Iterates a body, checking that every chunk is bytes (a string chunk would be silently
 * re-encoded) and that the signal has not aborted. Skips empty chunks.
 *
 * An error the body itself throws is the caller's, not the store's: it becomes an `invalid`
 * StorageError ("the body failed"), the same on every backend, whatever the backend would have
 * made of it (a StorageError from another store, such as a copy's source, is kept as it is).
 */
export async function* validatedChunks(source: ByteSource, op: StorageOp, key?: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : (source as Iterable<Uint8Array>)[Symbol.iterator]();
  let done = false;
  try {
    for (;;) {
      // Stop reading as soon as the caller gave up: the store must not commit a cancelled body.
      signal?.throwIfAborted();
      let next: IteratorResult<unknown>;
      try {
        next = await iterator.next();
      } catch (err) {
        done = true; // a body that threw is finished: do not ask it to return
        throw bodyFailed(err, op, key, signal);
      }
      if (next.done) {
        done = true;
        return;
      }
      const chunk = next.value;
      if (!(chunk instanceof Uint8Array)) {
        throw new StorageError("invalid", `stream chunks must be Uint8Array, got ${typeof chunk}`, { op, key });
      }
      if (chunk.byteLength > 0) yield chunk;
    }
  } finally {
    if (!done) await iterator.return?.();
  }
}

function bodyFailed(err: unknown, op: StorageOp, key: string | undefined, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted || err instanceof StorageError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StorageError("invalid", `the body failed while it was being read: ${message}`, { op, key, cause: err });
}
