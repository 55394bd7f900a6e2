/**
 * Store keys <-> NATS KV keys. A KV key is a NATS subject tail: tokens separated by `.`, each
 * token non-empty and made of `[-/_=A-Za-z0-9]`. We map every `/`-separated segment of a store
 * key to one token, so a prefix that ends at a `/` becomes a subject filter (`a/b/` ->
 * `a.b.>`) the server resolves without reading the rest of the bucket.
 *
 * Token encoding (reversible, a quoted-printable variant so ASCII keys stay readable):
 * - `A-Z a-z 0-9 - _` stand for themselves;
 * - every other byte of the segment's UTF-8 encoding becomes `=XX` (two upper-case hex digits),
 *   so `.`, `*`, `>`, `=`, `/`-free punctuation, spaces and unicode can never act as subject
 *   syntax (a token is never a bare `*` or `>` wildcard);
 * - an empty segment (`a//b`, a trailing `/`) becomes the token `=` alone, which no non-empty
 *   segment encodes to (there `=` is always followed by two hex digits).
 *
 * The encoded form is at most 3 characters per key byte (3072 for the longest key), which keeps
 * `$JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>` inside the server's 4 KiB control line.
 * It does not preserve order (`=` sorts between digits and letters), so listings sort the
 * decoded keys.
 */

const PLAIN = /^[A-Za-z0-9_-]$/;
const PLAIN_RUN = /^[A-Za-z0-9_-]+$/;
const TOKEN = /^(?:=|(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+)$/;
const EMPTY_SEGMENT = "=";
const HEX = "0123456789ABCDEF";
const encoder = new TextEncoder();
// ignoreBOM: a key may start with U+FEFF, which the decoder would otherwise drop.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** One `/`-segment of a key as one KV key token. */
export function encodeSegment(segment: string): string {
  if (segment.length === 0) return EMPTY_SEGMENT;
  if (PLAIN_RUN.test(segment)) return segment;
  let out = "";
  for (const byte of encoder.encode(segment)) {
    const char = String.fromCharCode(byte);
    out += PLAIN.test(char) ? char : `=${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** The segment a token stands for; throws on a token this codec cannot have written. */
export function decodeSegment(token: string): string {
  if (token === EMPTY_SEGMENT) return "";
  if (!TOKEN.test(token)) throw new KeyCodecError(`not a stowage key token: ${JSON.stringify(token)}`);
  if (!token.includes("=")) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === "=") {
      const byte = parseInt(token.slice(i + 1, i + 3), 16);
      // Canonical form only: an escaped plain character would make two KV keys one store key.
      if (PLAIN.test(String.fromCharCode(byte))) throw new KeyCodecError(`token ${JSON.stringify(token)} escapes a plain character`);
      bytes.push(byte);
      i += 2;
    } else {
      bytes.push(token.charCodeAt(i));
    }
  }
  try {
    return decoder.decode(new Uint8Array(bytes));
  } catch (cause) {
    throw new KeyCodecError(`token ${JSON.stringify(token)} is not UTF-8`, { cause });
  }
}

/** A store key as a KV key (`events/a b/x.y` -> `events.a=20b.x=2Ey`). */
export function encodeKey(key: string): string {
  return key.split("/").map(encodeSegment).join(".");
}

/** The store key a KV key stands for; throws {@link KeyCodecError} for keys other tools wrote. */
export function decodeKey(kvKey: string): string {
  return kvKey.split(".").map(decodeSegment).join("/");
}

/** The decoded key, or undefined for a KV key stowage did not write (foreign keys are skipped). */
export function tryDecodeKey(kvKey: string): string | undefined {
  try {
    return decodeKey(kvKey);
  } catch {
    return undefined;
  }
}

/**
 * The KV key filter serving `prefix`: its complete `/`-segments become literal tokens and the
 * rest is a `>` wildcard (`a/b/c` -> `a.b.>`; `""` -> `>`). Every key starting with `prefix`
 * matches the filter; the caller still checks `key.startsWith(prefix)` for the partial last
 * segment (`c` above).
 */
export function prefixFilter(prefix: string): string {
  const segments = prefix.split("/");
  segments.pop(); // the partial segment after the last '/' (or the whole prefix without one)
  return [...segments.map(encodeSegment), ">"].join(".");
}

/** Thrown for KV keys or tokens that stowage's codec did not produce. */
export class KeyCodecError extends Error {
  override readonly name = "KeyCodecError";
}
