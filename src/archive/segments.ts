import { createHash } from "node:crypto";

/** The longest segment made from message data, in UTF-8 bytes: keys stay far below 1024. */
export const MAX_SEGMENT_BYTES = 200;
const HASH_CHARS = 16;
const UNSAFE = /[%/\u0000-\u001f\u007f]/g;

/**
 * Turns text from a message (an entity id or type) into one valid key segment, or undefined
 * when it is empty. Reversible escaping keeps distinct inputs distinct: `%` `/` and control
 * characters become `%XX`, a `.` or `..` segment becomes `%2E`/`%2E%2E`, a lone surrogate
 * (not valid in a key) becomes `%uD800`-style. Text longer than {@link MAX_SEGMENT_BYTES} is cut and tagged with a hash of
 * the whole, so long ids still map to distinct segments.
 *
 * @example
 * toSegment("sensor/12") // "sensor%2F12"
 * toSegment("..")        // "%2E%2E"
 */
export function toSegment(text: string): string | undefined {
  if (text === "") return undefined;
  let segment = escapeLoneSurrogates(text.replace(UNSAFE, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`));
  if (segment === ".") segment = "%2E";
  else if (segment === "..") segment = "%2E%2E";
  if (Buffer.byteLength(segment) <= MAX_SEGMENT_BYTES) return segment;
  const hash = createHash("sha256").update(text).digest("hex").slice(0, HASH_CHARS);
  return `${truncateUtf8(segment, MAX_SEGMENT_BYTES - HASH_CHARS - 1)}~${hash}`;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Each lone surrogate as `%uXXXX` (after `%` was escaped, so the escape cannot collide). */
function escapeLoneSurrogates(text: string): string {
  return text.isWellFormed() ? text : text.replace(LONE_SURROGATE, (unit) => `%u${unit.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Why `segment` cannot be one `/`-separated part of a key, or undefined when it can. */
export function segmentProblem(segment: string): string | undefined {
  if (segment === "") return "has an empty segment (a leading, trailing or doubled '/')";
  if (segment === "." || segment === "..") return "has a '.' or '..' segment";
  if (/[\u0000-\u001f\u007f]/.test(segment)) return "has a control character";
  if (!segment.isWellFormed()) return "is not well-formed Unicode";
  return undefined;
}

/** The longest prefix of `text` (whole code points) of at most `maxBytes` UTF-8 bytes. */
export function truncateUtf8(text: string, maxBytes: number): string {
  let bytes = 0;
  let out = "";
  for (const ch of text) {
    const size = Buffer.byteLength(ch);
    if (bytes + size > maxBytes) break;
    bytes += size;
    out += ch;
  }
  return out;
}
