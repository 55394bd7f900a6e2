/**
 * Range reads over GetObject's `Range` header. The answer is checked rather than trusted: a
 * server may ignore the header (200 with the whole object) or send more than asked (s3rver
 * answers `bytes=0-0` with the whole object), so the body is cut to the bytes asked for by where
 * its `Content-Range` says it starts.
 */
import type { ByteRange } from "../../types.js";

/** The `Range` header for `range`, whose length is not 0 (HTTP cannot ask for no bytes). */
export function rangeHeader(range: ByteRange): string {
  return `bytes=${range.offset}-${range.length === undefined ? "" : range.offset + range.length - 1}`;
}

/** Where a body starts in the object: from `Content-Range: bytes START-END/SIZE`, else 0 (the whole object). */
export function bodyStart(contentRange: string | undefined): number {
  const match = contentRange === undefined ? null : /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(contentRange.trim());
  return match ? Number(match[1]) : 0;
}

/** The bytes of `range` out of a buffered body that starts at byte `start` of the object. */
export function cutBuffer(body: Uint8Array, start: number, range: ByteRange): Uint8Array {
  const from = range.offset - start;
  const to = range.length === undefined ? body.byteLength : Math.min(body.byteLength, from + range.length);
  return from === 0 && to === body.byteLength ? body : body.slice(from, to);
}

/** The bytes of `range` out of a streamed body that starts at byte `start`; stops reading past them. */
export async function* cutStream(body: AsyncIterable<Uint8Array>, start: number, range: ByteRange): AsyncGenerator<Uint8Array> {
  const end = range.length === undefined ? Infinity : range.offset + range.length;
  let position = start;
  for await (const chunk of body) {
    const from = Math.max(range.offset - position, 0);
    const to = Math.min(end - position, chunk.byteLength);
    position += chunk.byteLength;
    if (to > from) yield from === 0 && to === chunk.byteLength ? chunk : chunk.subarray(from, to);
    if (position >= end) return;
  }
}
