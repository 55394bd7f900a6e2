/**
 * The `Range` request header (RFC 9110 §14), single byte ranges only: `bytes=a-b`, `bytes=a-`
 * and the suffix `bytes=-n`. Several ranges are answered with the whole value (allowed: a
 * server may ignore Range), which keeps responses plain instead of multipart.
 */
import type { ByteRange } from "../types.js";

/** What to answer: the whole value, a part of it (206), or 416. */
export type RangeAnswer = { kind: "whole" } | { kind: "part"; range: Required<ByteRange> } | { kind: "unsatisfiable" };

const SINGLE = /^bytes=(\d*)-(\d*)$/;

/** Reads `header` against a value of `size` bytes. A header that is not a single byte range is ignored. */
export function parseRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: "whole" };
  const match = SINGLE.exec(header.replace(/\s+/g, ""));
  if (!match) return { kind: "whole" };
  const [, first, last] = match as unknown as [string, string, string];
  if (first === "" && last === "") return { kind: "whole" };
  if (first === "") {
    // Suffix: the last n bytes (all of them when n exceeds the size); zero bytes cannot be served.
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    const length = Math.min(n, size);
    return { kind: "part", range: { offset: size - length, length } };
  }
  const offset = Number(first);
  if (offset >= size) return { kind: "unsatisfiable" };
  if (last === "") return { kind: "part", range: { offset, length: size - offset } };
  const end = Number(last);
  // last < first is a syntactically invalid range: ignored, as the RFC says.
  if (end < offset) return { kind: "whole" };
  return { kind: "part", range: { offset, length: Math.min(end, size - 1) - offset + 1 } };
}

/** `Content-Range` of a part: `bytes first-last/size`. */
export function contentRange(range: Required<ByteRange>, size: number): string {
  return `bytes ${range.offset}-${range.offset + range.length - 1}/${size}`;
}
