/**
 * User metadata as S3 keeps it: `x-amz-meta-*` HTTP headers, so values must be printable
 * ASCII, and servers trim leading and trailing spaces. Values that would not survive that are
 * sent as one RFC 2047 encoded word, `=?UTF-8?B?<base64 of the UTF-8 bytes>?=`, which is also
 * how S3 itself returns non-ASCII metadata set by other tools; values that merely look like an
 * encoded word are encoded too, so decoding is exact for every value.
 */
import type { Metadata } from "../../types.js";

/** S3's limit on user metadata: names plus values as sent, in bytes. */
export const S3_METADATA_LIMIT = 2048;

const PLAIN = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;
const ENCODED_WORD = /^=\?utf-8\?b\?([A-Za-z0-9+/]*={0,2})\?=$/i;

/** The header value for `value`: itself when it is safe as a header, else an encoded word. */
export function encodeMetadataValue(value: string): string {
  if (PLAIN.test(value) && !ENCODED_WORD.test(value)) return value;
  return `=?UTF-8?B?${Buffer.from(value, "utf8").toString("base64")}?=`;
}

/** The value `header` stands for (the inverse of {@link encodeMetadataValue}). */
export function decodeMetadataValue(header: string): string {
  const match = ENCODED_WORD.exec(header);
  if (!match) return header;
  const bytes = Buffer.from(match[1]!, "base64");
  // Only a canonical, valid UTF-8 encoding is ours (or AWS's); anything else stays as sent.
  if (bytes.toString("base64") !== match[1]) return header;
  const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  try {
    return text.decode(bytes);
  } catch {
    return header;
  }
}

/** Metadata as headers, and their size as S3 counts it. */
export function encodeMetadata(metadata: Metadata | undefined): { headers: Record<string, string>; bytes: number } {
  const headers: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(metadata ?? {})) {
    const encoded = encodeMetadataValue(value);
    headers[name] = encoded;
    bytes += name.length + encoded.length;
  }
  return { headers, bytes };
}

/** Metadata from the headers S3 returned (names lower-cased: header names are case-insensitive). */
export function decodeMetadata(headers: Record<string, string> | undefined): Metadata {
  const out: Metadata = {};
  for (const [name, value] of Object.entries(headers ?? {})) out[name.toLowerCase()] = decodeMetadataValue(value);
  return out;
}
