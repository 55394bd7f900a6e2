import { headers, type MsgHdrs } from "@nats-io/nats-core";
import type { Metadata } from "../../types.js";

/**
 * The index entry: one KV message per version of a key. Its payload is the value itself when
 * the value is small (so `nats kv get BUCKET <key>` shows it as is); a large value leaves the
 * payload empty and names its object store object in headers. Headers (all optional):
 *
 * | header                | meaning                                                                |
 * |-----------------------|------------------------------------------------------------------------|
 * | `Stowage-Meta`        | user metadata as a JSON object, non-ASCII escaped as `\uXXXX`          |
 * | `Stowage-Object`      | large value: the object's name in the `BUCKET_large` object store      |
 * | `Stowage-Object-Nuid` | large value: the object's nuid (chunks are on `$O.BUCKET_large.C.<nuid>`) |
 * | `Stowage-Size`        | large value: its size in bytes                                         |
 * | `Stowage-Digest`      | large value: `SHA-256=<base64url>` of the bytes, as the object store writes it |
 * | `Stowage-Object-Seq`  | large value: the stream sequence of its first chunk (reads start there, no subject scan) |
 * | `Stowage-Object-Last-Seq` | large value: the stream sequence of its last chunk (bounds a range read's search) |
 * | `Stowage-Chunk-Size`  | large value: bytes per chunk (all but the last), for range reads |
 *
 * A delete is the KV delete marker (`KV-Operation: DEL`, empty payload).
 */
export const HEADER = {
  meta: "Stowage-Meta",
  object: "Stowage-Object",
  nuid: "Stowage-Object-Nuid",
  size: "Stowage-Size",
  digest: "Stowage-Digest",
  seq: "Stowage-Object-Seq",
  lastSeq: "Stowage-Object-Last-Seq",
  chunkSize: "Stowage-Chunk-Size",
  kvOperation: "KV-Operation",
  markerReason: "Nats-Marker-Reason",
  msgSize: "Nats-Msg-Size",
} as const;

/** Where a large value's bytes are. */
export interface LargeRef {
  name: string;
  nuid: string;
  size: number;
  digest: string;
  /** The stream sequence of the first chunk (entries written before it was recorded have none). */
  seq?: number;
  /** The stream sequence of the last chunk, and the chunk size (values written with chunk offsets). */
  lastSeq?: number;
  chunkSize?: number;
}

/** One version of a key as read from the index. */
export interface IndexEntry {
  revision: number;
  time: Date;
  deleted: boolean;
  size: number;
  metadata: Metadata;
  /** The value, for a small value read with its payload. */
  inline?: Uint8Array;
  large?: LargeRef;
}

/** Headers for a new index entry (undefined when a small value has no metadata: no header at all). */
export function entryHeaders(metadata: Metadata | undefined, large?: LargeRef): MsgHdrs | undefined {
  const hasMeta = metadata !== undefined && Object.keys(metadata).length > 0;
  if (!hasMeta && !large) return undefined;
  const h = headers();
  if (hasMeta) h.set(HEADER.meta, asciiJson(metadata));
  if (large) {
    h.set(HEADER.object, large.name);
    h.set(HEADER.nuid, large.nuid);
    h.set(HEADER.size, String(large.size));
    h.set(HEADER.digest, large.digest);
    if (large.seq !== undefined) h.set(HEADER.seq, String(large.seq));
    if (large.lastSeq !== undefined) h.set(HEADER.lastSeq, String(large.lastSeq));
    if (large.chunkSize !== undefined) h.set(HEADER.chunkSize, String(large.chunkSize));
  }
  return h;
}

/**
 * Reads an index message. `payloadSize` is the size of the payload when the message was read
 * headers-only (the server's `Nats-Msg-Size`); then `inline` stays unset.
 */
export function parseEntry(h: MsgHdrs | undefined, data: Uint8Array, revision: number, time: Date, headersOnly = false): IndexEntry {
  const deleted = isDeleteMarker(h);
  const entry: IndexEntry = { revision, time, deleted, size: 0, metadata: {} };
  if (deleted) return entry;
  const meta = h?.get(HEADER.meta);
  if (meta) entry.metadata = parseMetadata(meta);
  const name = h?.get(HEADER.object);
  if (name) {
    const size = Number(h!.get(HEADER.size));
    entry.large = { name, nuid: h!.get(HEADER.nuid), size, digest: h!.get(HEADER.digest) };
    const positive = (name: string) => {
      const n = Number(h!.get(name));
      return Number.isSafeInteger(n) && n > 0 ? n : undefined;
    };
    const seq = positive(HEADER.seq);
    if (seq !== undefined) entry.large.seq = seq;
    const lastSeq = positive(HEADER.lastSeq);
    const chunkSize = positive(HEADER.chunkSize);
    if (seq !== undefined && lastSeq !== undefined && chunkSize !== undefined && lastSeq >= seq) {
      entry.large.lastSeq = lastSeq;
      entry.large.chunkSize = chunkSize;
    }
    entry.size = size;
  } else if (headersOnly) {
    entry.size = Number(h?.get(HEADER.msgSize) || data.byteLength);
  } else {
    entry.inline = data;
    entry.size = data.byteLength;
  }
  return entry;
}

/** A KV delete or purge marker (or a server marker on newer servers): the key has no value. */
export function isDeleteMarker(h: MsgHdrs | undefined): boolean {
  const op = h?.get(HEADER.kvOperation);
  return op === "DEL" || op === "PURGE" || (h?.has(HEADER.markerReason) ?? false);
}

// NATS header values are one line of text; escaping everything outside printable ASCII keeps
// any metadata value (unicode, leading spaces inside the JSON string) exact through any server.
function asciiJson(value: Metadata): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function parseMetadata(text: string): Metadata {
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      return Object.fromEntries(Object.entries(parsed).filter(([, v]) => typeof v === "string")) as Metadata;
    }
  } catch {
    // A foreign writer's header: the value is still readable, without metadata.
  }
  return {};
}
