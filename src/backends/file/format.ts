/**
 * The value file format: a small header, then the value's bytes. Keeping the metadata in the
 * same file as the value makes a put replace both in one atomic rename.
 *
 * ```
 * offset 0   8 bytes   magic "STOWAGE" + format version byte 0x02
 * offset 8   4 bytes   metadata length M, unsigned big-endian
 * offset 12  8 bytes   value length N, unsigned big-endian
 * offset 20  16 bytes  etag: random bytes drawn for this write
 * offset 36  M bytes   metadata as a UTF-8 JSON object of strings
 * offset 36+M N bytes  the value
 * ```
 *
 * Version 0x01 files (written before etags existed) have no etag field: the metadata starts at
 * offset 20. They are read as they are; the next put of the key writes version 0x02.
 *
 * The value length lets a reader tell a complete file from a truncated one (a file copied
 * half-way, a disk that lied about fsync) instead of returning a short value. The etag is drawn
 * at random rather than derived from the inode and mtime, which repeat: inodes are reused after
 * a delete, and mtime has a coarse clock.
 */
import { randomBytes } from "node:crypto";
import type { Metadata } from "../../types.js";

const MAGIC = Buffer.from("STOWAGE", "latin1");
const VERSION = 0x02;
const LEGACY_VERSION = 0x01;
const LEGACY_FIXED_BYTES = 20;
export const FIXED_HEADER_BYTES = 36;
export const ETAG_BYTES = 16;
/** Enough to read the fixed part and any valid metadata in one read (2 KiB of text, JSON-escaped). */
export const HEADER_READ_BYTES = 8192;

export interface Header {
  metadata: Metadata;
  /** Bytes of the value. */
  valueBytes: number;
  /** Bytes before the value (fixed part + metadata). */
  headerBytes: number;
  /** The write's tag as text; undefined in a version 0x01 file (see {@link legacyEtag}). */
  etag: string | undefined;
}

/** A fresh etag for one write. */
export function newEtag(): Buffer {
  return randomBytes(ETAG_BYTES);
}

/** The header for `metadata` and a value of `valueBytes` bytes, tagged `etag`. */
export function encodeHeader(metadata: Metadata | undefined, valueBytes: number, etag: Buffer = newEtag()): Buffer {
  const json = Buffer.from(JSON.stringify(metadata ?? {}), "utf8");
  const header = Buffer.alloc(FIXED_HEADER_BYTES + json.length);
  MAGIC.copy(header, 0);
  header[7] = VERSION;
  header.writeUInt32BE(json.length, 8);
  header.writeBigUInt64BE(BigInt(valueBytes), 12);
  etag.copy(header, 20, 0, ETAG_BYTES);
  json.copy(header, FIXED_HEADER_BYTES);
  return header;
}

/** Why the header in `bytes` is unusable; `needMore` when more bytes must be read first. */
export type HeaderResult = { header: Header } | { problem: string } | { needMore: number };

/** Parses the header at the start of `bytes` (which may hold more: the value). */
export function decodeHeader(bytes: Uint8Array): HeaderResult {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = buf[7];
  const fixed = version === VERSION ? FIXED_HEADER_BYTES : LEGACY_FIXED_BYTES;
  if (buf.length < fixed || !buf.subarray(0, MAGIC.length).equals(MAGIC) || (version !== VERSION && version !== LEGACY_VERSION)) {
    return { problem: "not a stowage value file (bad or missing header)" };
  }
  const metadataBytes = buf.readUInt32BE(8);
  const valueBytes = Number(buf.readBigUInt64BE(12));
  const headerBytes = fixed + metadataBytes;
  if (metadataBytes > HEADER_READ_BYTES * 4 || !Number.isSafeInteger(valueBytes)) return { problem: "corrupt header" };
  if (buf.length < headerBytes) return { needMore: headerBytes };
  let metadata: unknown;
  try {
    metadata = JSON.parse(buf.toString("utf8", fixed, headerBytes));
  } catch {
    return { problem: "corrupt metadata in header" };
  }
  if (!isMetadata(metadata)) return { problem: "corrupt metadata in header" };
  const etag = version === VERSION ? buf.toString("base64url", 20, 20 + ETAG_BYTES) : undefined;
  return { header: { metadata, valueBytes, headerBytes, etag } };
}

/**
 * The etag of a version 0x01 file, which carries none: its inode, change time and size. It
 * changes when the file is replaced (every put writes a tagged file); prefixed so it can never
 * equal a drawn tag.
 */
export function legacyEtag(stats: { ino: bigint; ctimeNs: bigint; size: bigint }): string {
  return `v1.${stats.ino.toString(36)}.${stats.ctimeNs.toString(36)}.${stats.size.toString(36)}`;
}

function isMetadata(value: unknown): value is Metadata {
  return value !== null && typeof value === "object" && !Array.isArray(value) && Object.values(value).every((v) => typeof v === "string");
}
