import { StorageError, type StorageOp } from "./errors.js";

/** The longest key, in UTF-8 bytes. S3's limit, so every backend can hold every valid key. */
export const MAX_KEY_BYTES = 1024;

// C0 controls (NUL included) and DEL: invisible in listings and logs, unsafe as file names.
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;

/**
 * The reason `key` is not a valid key, or undefined when it is valid.
 *
 * A key is a non-empty, well-formed Unicode string of at most {@link MAX_KEY_BYTES} UTF-8
 * bytes, without control characters, not starting with `/`, with no `.` or `..` segment.
 * Everything else is allowed and round-trips on every backend: spaces, unicode, `*`, `>`, `%`,
 * `_`, `.` inside a segment, empty segments (`a//b`) and a trailing `/`.
 */
export function keyProblem(key: unknown): string | undefined {
  if (typeof key !== "string") return `key must be a string, got ${describe(key)}`;
  if (key.length === 0) return "key must not be empty";
  const problem = textProblem(key, "key");
  if (problem) return problem;
  if (key.startsWith("/")) return "key must not start with '/'";
  if (DOT_SEGMENT.test(key)) return "key must not contain a '.' or '..' segment";
  return undefined;
}

/** The reason `prefix` is not a valid listing prefix (`""` lists everything). */
export function prefixProblem(prefix: unknown): string | undefined {
  if (typeof prefix !== "string") return `prefix must be a string, got ${describe(prefix)}`;
  return textProblem(prefix, "prefix");
}

function textProblem(text: string, what: string): string | undefined {
  if (CONTROL_CHAR.test(text)) {
    return text.includes("\u0000")
      ? `${what} must not contain a NUL character`
      : `${what} must not contain control characters`;
  }
  if (!text.isWellFormed()) return `${what} must be well-formed Unicode (it has a lone surrogate)`;
  // Cheap upper bound first: a UTF-16 unit is at most 3 UTF-8 bytes.
  if (text.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(text, "utf8") > MAX_KEY_BYTES) {
    return `${what} is ${Buffer.byteLength(text, "utf8")} UTF-8 bytes, the limit is ${MAX_KEY_BYTES}`;
  }
  return undefined;
}

/** Throws a StorageError of kind `invalid` unless `key` is valid. */
export function assertKey(key: unknown, op: StorageOp): asserts key is string {
  const problem = keyProblem(key);
  if (problem) throw new StorageError("invalid", problem, { op, key: typeof key === "string" ? key : undefined });
}

/** Throws a StorageError of kind `invalid` unless `prefix` is a valid prefix. */
export function assertPrefix(prefix: unknown, op: StorageOp): asserts prefix is string {
  const problem = prefixProblem(prefix);
  if (problem) throw new StorageError("invalid", problem, { op });
}

/**
 * Orders keys by the bytes of their UTF-8 encoding (= by code point), the order `list` returns.
 * JavaScript's default string order compares UTF-16 units, which differs for characters above
 * U+FFFF against U+E000..U+FFFF; this fixes exactly that case without encoding.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (0xD800..0xDFFF) encode code points above every BMP unit: move them up.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Sorts keys in place in {@link compareKeys} order and returns them. */
export function sortKeys(keys: string[]): string[] {
  return keys.sort(compareKeys);
}

/**
 * The smallest string greater (in {@link compareKeys} order) than every string starting with
 * `prefix`, or undefined when no such bound exists (prefix empty or all U+10FFFF). Turns a prefix
 * into a range `key >= prefix AND key < bound`, which an index serves without LIKE.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = Array.from(prefix);
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      // Skip the surrogate block: it cannot appear in well-formed text.
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      return points.join("") + String.fromCodePoint(next);
    }
  }
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}
