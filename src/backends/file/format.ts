/**
 * The value file format: a small header, then the value's bytes. Keeping the metadata in the
 * same file as the value makes a put replace both in one atomic rename.
 *
 * ```
 * offset 0   8 bytes  magic "STOWAGE" + format version byte 0x01
 * offset 8   4 bytes  metadata length M, unsigned big-endian
 * offset 12  8 bytes  value length N, unsigned big-endian
 * offset 20  M bytes  metadata as a UTF-8 JSON object of strings
 * offset 20+M N bytes the value
 * ```
 *
 * The value length lets a reader tell a complete file from a truncated one (a file copied
 * half-way, a disk that lied about fsync) instead of returning a short value.
 */
import type { Metadata } from "../../types.js";

const MAGIC = Buffer.from("STOWAGE\u0001", "latin1");
export const FIXED_HEADER_BYTES = 20;
/** Enough to read the fixed part and any valid metadata in one read (2 KiB of text, JSON-escaped). */
export const HEADER_READ_BYTES = 8192;

export interface Header {
  metadata: Metadata;
  /** Bytes of the value. */
  valueBytes: number;
  /** Bytes before the value (fixed part + metadata). */
  headerBytes: number;
}

/** The header for `metadata` and a value of `valueBytes` bytes. */
export function encodeHeader(metadata: Metadata | undefined, valueBytes: number): Buffer {
  const json = Buffer.from(JSON.stringify(metadata ?? {}), "utf8");
  const header = Buffer.alloc(FIXED_HEADER_BYTES + json.length);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(json.length, 8);
  header.writeBigUInt64BE(BigInt(valueBytes), 12);
  json.copy(header, FIXED_HEADER_BYTES);
  return header;
}

/** Why the header in `bytes` is unusable; `needMore` when more bytes must be read first. */
export type HeaderResult = { header: Header } | { problem: string } | { needMore: number };

/** Parses the header at the start of `bytes` (which may hold more: the value). */
export function decodeHeader(bytes: Uint8Array): HeaderResult {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < FIXED_HEADER_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    return { problem: "not a stowage value file (bad or missing header)" };
  }
  const metadataBytes = buf.readUInt32BE(8);
  const valueBytes = Number(buf.readBigUInt64BE(12));
  const headerBytes = FIXED_HEADER_BYTES + metadataBytes;
  if (metadataBytes > HEADER_READ_BYTES * 4 || !Number.isSafeInteger(valueBytes)) return { problem: "corrupt header" };
  if (buf.length < headerBytes) return { needMore: headerBytes };
  let metadata: unknown;
  try {
    metadata = JSON.parse(buf.toString("utf8", FIXED_HEADER_BYTES, headerBytes));
  } catch {
    return { problem: "corrupt metadata in header" };
  }
  if (!isMetadata(metadata)) return { problem: "corrupt metadata in header" };
  return { header: { metadata, valueBytes, headerBytes } };
}

function isMetadata(value: unknown): value is Metadata {
  return value !== null && typeof value === "object" && !Array.isArray(value) && Object.values(value).every((v) => typeof v === "string");
}
