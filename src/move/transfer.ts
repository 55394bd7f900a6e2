/**
 * One key from one store to another: the unit `copy` and `mirror` are made of.
 *
 * Skip rule. A destination that already holds the same bytes under the same metadata is left
 * alone. Etags cannot tell: each backend makes its own (a NATS revision, a PostgreSQL version, a
 * random tag in a file, an MD5 that depends on the part size in S3), so two equal values in two
 * stores never share one. Sizes and metadata are compared first, from `stat` (two cheap calls);
 * only when both match are the two values read and their SHA-256 digests compared. A rerun of a
 * copy thus reads both sides of each key but writes nothing, and the destination keeps exactly
 * the source's metadata (no marker of ours is added to it).
 *
 * Verification. A value up to {@link SMALL_VALUE_BYTES} is read whole, its length checked
 * against the size `stat` gave, and written with one `put` of exactly those bytes. A larger one
 * is piped chunk by chunk (memory: a chunk or so, plus whatever the destination buffers for its
 * own uploads), its bytes counted on the way through; a body whose length is not the size
 * `stat` gave fails before the write completes, and after the write the destination's `stat`
 * must show that many bytes. A length that does not match means the value changed while it was
 * read: the transfer starts over with a fresh `stat`.
 */
import { createHash } from "node:crypto";
import { StorageError, isStorageError } from "../errors.js";
import type { Metadata, ObjectInfo, Store } from "../types.js";

/** `missing`: the source key vanished (deleted between the listing and the read). */
export type TransferOutcome = "copied" | "skipped" | "missing";

export interface TransferOptions {
  signal?: AbortSignal;
  /**
   * The source's `stat` of the key when the caller already has it (copy's `since` needs one),
   * saving a call. A stale one is harmless: a size that no longer matches starts the transfer
   * over with a fresh `stat`.
   */
  sourceInfo?: ObjectInfo;
  /**
   * The caller knows the destination key does not exist (copy walks the destination's listing
   * beside the source's), saving the `stat` that looks for it. Should the key appear meanwhile,
   * it is written over with the source's value, which is what a copy leaves there anyway.
   */
  destinationAbsent?: boolean;
}

export interface TransferResult {
  outcome: TransferOutcome;
  /** Bytes written to the destination (0 when skipped or missing). */
  bytes: number;
}

/**
 * Values up to this size are read whole and written with one `put`; larger ones are streamed.
 * Per worker, that is the memory a chunk of a stream takes anyway.
 */
export const SMALL_VALUE_BYTES = 1024 * 1024;

/** Attempts when the source value keeps changing under the transfer. */
const ATTEMPTS = 3;

/**
 * Copies `key` of `source` to `destinationKey` of `destination` with its metadata, unless the
 * destination already holds the same bytes and metadata (see the skip rule above). Rejects with
 * the StorageError of the step that failed; a key the source no longer has is `missing`, not
 * an error.
 */
export async function transferKey(source: Store, destination: Store, key: string, destinationKey: string, options: TransferOptions = {}): Promise<TransferResult> {
  let known = options.sourceInfo;
  for (let attempt = 1; ; attempt++) {
    try {
      return await transferOnce(source, destination, key, destinationKey, known, options.destinationAbsent === true, options.signal);
    } catch (err) {
      if (!(err instanceof SourceChanged) || attempt === ATTEMPTS) throw err;
      known = undefined;
    }
  }
}

/** The source's value changed between its `stat` and its read. */
class SourceChanged extends StorageError {
  constructor(key: string, expected: number, got: number) {
    super("transient", `the value changed while it was copied (${expected} bytes expected, ${got} read); copy it again`, { op: "copy", key });
  }
}

async function transferOnce(
  source: Store,
  destination: Store,
  key: string,
  destinationKey: string,
  known: ObjectInfo | undefined,
  absent: boolean,
  signal: AbortSignal | undefined,
): Promise<TransferResult> {
  const info = known ?? (source.capabilities.stat ? await statIfThere(source, key, signal) : null);
  if (info === undefined) return { outcome: "missing", bytes: 0 };
  const size = info?.size;
  if (size !== undefined && size > destination.capabilities.maxValueBytes) {
    throw new StorageError("invalid", `the value is ${size} bytes, more than the destination takes (${destination.capabilities.maxValueBytes})`, { op: "copy", key });
  }
  if (info && !absent && destination.capabilities.stat) {
    const existing = await statIfThere(destination, destinationKey, signal);
    if (existing && sameMetadata(info.metadata, existing.metadata, destination) && existing.size === info.size) {
      const same = await sameBytes(source, key, destination, destinationKey, info.size, signal);
      if (same === "missing") return { outcome: "missing", bytes: 0 };
      if (same) return { outcome: "skipped", bytes: 0 };
    }
  }

  const metadata = info && Object.keys(info.metadata).length > 0 ? { metadata: info.metadata } : {};
  if (size !== undefined && size <= SMALL_VALUE_BYTES) {
    // A small value is read whole and written with one put: no streaming machinery per key
    // (an S3 multipart buffer, a chunked NATS object), and memory stays within a chunk or so.
    let data: Uint8Array;
    try {
      data = await source.get(key, { signal });
    } catch (err) {
      if (isStorageError(err, "not_found")) return { outcome: "missing", bytes: 0 };
      throw err;
    }
    if (data.byteLength !== size) throw new SourceChanged(key, size, data.byteLength);
    // The put sends exactly these bytes, checked against the stat above: nothing to stat after.
    await destination.put(destinationKey, data, { signal, ...metadata });
    return { outcome: "copied", bytes: data.byteLength };
  }

  let body: AsyncIterable<Uint8Array>;
  try {
    body = await source.getStream(key, { signal });
  } catch (err) {
    if (isStorageError(err, "not_found")) return { outcome: "missing", bytes: 0 };
    throw err;
  }
  let through = 0;
  let sourceFailure: unknown;
  // Counts what passes and refuses a body of the wrong length before the write completes,
  // so a value rewritten mid-read never lands under the old metadata.
  async function* counted(): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of body) {
        through += chunk.byteLength;
        if (size !== undefined && through > size) throw new SourceChanged(key, size, through);
        yield chunk;
      }
    } catch (err) {
      sourceFailure = err;
      throw err;
    }
    if (size !== undefined && through !== size) throw (sourceFailure = new SourceChanged(key, size, through));
  }
  try {
    await destination.putStream(destinationKey, counted(), { signal, ...metadata });
  } catch (err) {
    // A destination that failed before reading the body leaves it open: release it.
    await body[Symbol.asyncIterator]().return?.().catch(() => undefined);
    // The source key deleted while its body was read: gone, like one deleted before.
    if (sourceFailure !== undefined && isStorageError(sourceFailure, "not_found")) return { outcome: "missing", bytes: 0 };
    throw sourceFailure instanceof SourceChanged ? sourceFailure : err;
  }
  // A streamed body passed through several hands (the source's reader, the destination's
  // uploader): the destination must now hold exactly what was counted.
  if (destination.capabilities.stat) {
    const written = await statIfThere(destination, destinationKey, signal);
    if (written === undefined || written.size !== through) {
      const found = written === undefined ? "no value" : `${written.size} bytes`;
      throw new StorageError("transient", `the destination holds ${found} after writing ${through} bytes (written over meanwhile?); copy it again`, { op: "copy", key: destinationKey });
    }
  }
  return { outcome: "copied", bytes: through };
}

/** `stat`, or undefined when the key does not exist. */
export async function statIfThere(store: Store, key: string, signal: AbortSignal | undefined): Promise<ObjectInfo | undefined> {
  try {
    return await store.stat(key, { signal });
  } catch (err) {
    if (isStorageError(err, "not_found")) return undefined;
    throw err;
  }
}

/** Equal metadata (a destination that keeps none cannot differ in it). */
function sameMetadata(a: Metadata, b: Metadata, destination: Store): boolean {
  if (!destination.capabilities.metadata) return true;
  const names = Object.keys(a);
  return names.length === Object.keys(b).length && names.every((name) => Object.hasOwn(b, name) && b[name] === a[name]);
}

/** Whether both values have the same SHA-256, reading both at once; `missing` when the source's is gone. */
async function sameBytes(source: Store, key: string, destination: Store, destinationKey: string, size: number, signal: AbortSignal | undefined): Promise<boolean | "missing"> {
  if (size === 0) return true;
  const [theirs, ours] = await Promise.all([digestIfThere(source, key, signal), digestIfThere(destination, destinationKey, signal)]);
  if (theirs === undefined) return "missing";
  return ours !== undefined && theirs === ours;
}

async function digestIfThere(store: Store, key: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  try {
    const hash = createHash("sha256");
    for await (const chunk of await store.getStream(key, { signal })) hash.update(chunk);
    return hash.digest("hex");
  } catch (err) {
    if (isStorageError(err, "not_found")) return undefined;
    throw err;
  }
}
