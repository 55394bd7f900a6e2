/**
 * The file backend's key <-> path codec. Pure functions, no I/O; docs/file.md describes the
 * layout for people looking at a store on disk.
 *
 * A key is split at `/` into segments. Every segment but the last names a directory, the last
 * one a value file. Each segment is escaped (`%XX`, upper-case hex, per UTF-8 byte) and gets a
 * suffix saying what the entry is:
 *
 * - `<seg>.v`: the value of the key ending in this segment;
 * - `<seg>.d`: a directory holding the keys that continue with `<seg>/`;
 * - `<piece>.p`: a directory holding the rest of a segment whose escaped form is too long for
 *   one file name (NAME_MAX is 255 bytes); the last piece carries the real `.v`/`.d` suffix.
 *
 * So `a` and `a/b` coexist (`a.v` beside `a.d/b.v`), `a//b` is `a.d/.d/b.v` and `a/` is
 * `a.d/.v`. No encoded name is ever `.`, `..`, empty, or contains a separator, so a key cannot
 * address anything outside the root; names that do not end in one of the three suffixes
 * (temp files, the layout marker, foreign files) are never taken for keys.
 */

/**
 * How names are spelled. `readable` escapes only what some filesystem forbids or reserves;
 * `portable` also escapes upper-case ASCII letters and every non-ASCII byte, so keys differing
 * only in case or in Unicode normalisation stay distinct on case-insensitive or
 * normalisation-insensitive filesystems (macOS, Windows).
 */
export type NameMode = "readable" | "portable";

export type EntryKind = "value" | "dir" | "piece";

export const SUFFIXES: Readonly<Record<EntryKind, string>> = { value: ".v", dir: ".d", piece: ".p" };

/**
 * Longest escaped piece in UTF-8 bytes: NAME_MAX (255) minus the suffix, with room to spare for
 * filesystems that add their own bytes to names.
 */
export const MAX_PIECE_BYTES = 240;

// Forbidden or special in file names on Windows (and so on SMB/NTFS mounts), plus our escape
// character. `/` never reaches here: it separates segments.
const ALWAYS_ESCAPED = new Set(["%", "\\", ":", "*", "?", '"', "<", ">", "|"]);
// Windows device names are reserved whatever follows the first dot ("CON.v" is the console).
const DEVICE_NAME = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)/i;
const utf8 = new TextEncoder();
// ignoreBOM: a key may start with U+FEFF, which the decoder would otherwise drop.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function escapeBytes(char: string): string {
  let out = "";
  for (const byte of utf8.encode(char)) out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}

function mustEscape(char: string, mode: NameMode): boolean {
  const code = char.codePointAt(0)!;
  if (code < 0x20 || code === 0x7f || ALWAYS_ESCAPED.has(char)) return true;
  return mode === "portable" && (code > 0x7f || (code >= 0x41 && code <= 0x5a));
}

/** The escaped units of a segment, one per code point (a literal character or its `%XX`s). */
function escapeUnits(segment: string, mode: NameMode): string[] {
  const units = Array.from(segment, (char) => (mustEscape(char, mode) ? escapeBytes(char) : char));
  if (units.length > 0 && DEVICE_NAME.test(segment) && !units[0]!.startsWith("%")) units[0] = escapeBytes(units[0]!);
  return units;
}

/** The escaped segment split into pieces of at most {@link MAX_PIECE_BYTES}, never inside a unit. */
export function segmentPieces(segment: string, mode: NameMode): string[] {
  const pieces: string[] = [];
  let piece = "";
  let bytes = 0;
  for (const unit of escapeUnits(segment, mode)) {
    const size = Buffer.byteLength(unit);
    if (bytes + size > MAX_PIECE_BYTES) {
      pieces.push(piece);
      piece = "";
      bytes = 0;
    }
    piece += unit;
    bytes += size;
  }
  pieces.push(piece);
  return pieces;
}

/** The path components naming `segment` as a value or a directory (more than one when it is long). */
export function segmentNames(segment: string, kind: "value" | "dir", mode: NameMode): string[] {
  const pieces = segmentPieces(segment, mode);
  return pieces.map((piece, i) => piece + (i === pieces.length - 1 ? SUFFIXES[kind] : SUFFIXES.piece));
}

/** The components of the directory holding the keys that start with `segments.join("/") + "/"`. */
export function dirNames(segments: readonly string[], mode: NameMode): string[] {
  return segments.flatMap((segment) => segmentNames(segment, "dir", mode));
}

/** Where a key lives: the components of its directory, and the components of its value file. */
export interface KeyPath {
  /** Directory components below the root (empty for a key without `/`). */
  dir: string[];
  /** The value's components below `dir`: one name, or `.p` pieces then the `.v` name. */
  file: string[];
}

export function keyPath(key: string, mode: NameMode): KeyPath {
  const segments = key.split("/");
  const last = segments.pop()!;
  const file = segmentNames(last, "value", mode);
  // A long last segment puts its pieces in directories of their own: they belong to `dir`.
  return { dir: [...dirNames(segments, mode), ...file.slice(0, -1)], file: file.slice(-1) };
}

/** Splits a directory entry's name into its kind and escaped piece; undefined for other names. */
export function parseName(name: string): { kind: EntryKind; piece: string } | undefined {
  const suffix = name.slice(-2);
  const kind = suffix === ".v" ? "value" : suffix === ".d" ? "dir" : suffix === ".p" ? "piece" : undefined;
  return kind && { kind, piece: name.slice(0, -2) };
}

/**
 * The text of an escaped piece, or undefined when it is not something this codec writes
 * (a bad escape or invalid UTF-8). Callers also check that re-encoding gives the same names,
 * which rejects escapes of characters that need none and lower-case hex.
 */
export function unescapePiece(piece: string): string | undefined {
  if (!piece.includes("%")) return piece;
  const bytes: number[] = [];
  for (let i = 0; i < piece.length; ) {
    if (piece[i] === "%") {
      const hex = piece.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      const char = String.fromCodePoint(piece.codePointAt(i)!);
      bytes.push(...utf8.encode(char));
      i += char.length;
    }
  }
  try {
    return strictUtf8.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

// A character some segment keeps as itself in no spelling of the mode (see mustEscape).
const ESCAPED_IN: Readonly<Record<NameMode, RegExp>> = {
  readable: /[\u0000-\u001f\u007f%\\:*?"<>|]/,
  portable: /[\u0000-\u001f\u007f%\\:*?"<>|A-Z\u0080-\uffff]/,
};

/** True when `names` is exactly how this codec spells `segment` as `kind` (the canonical form). */
export function isCanonical(segment: string, kind: "value" | "dir", names: readonly string[], mode: NameMode): boolean {
  // The common case without building the spelling: one name, nothing escaped. Then the name is
  // canonical exactly when no character of it needs escaping and it is short enough for one piece.
  if (names.length === 1 && !ESCAPED_IN[mode].test(segment) && !DEVICE_NAME.test(segment) && segment.length * 3 <= MAX_PIECE_BYTES) {
    return names[0] === segment + SUFFIXES[kind];
  }
  const expected = segmentNames(segment, kind, mode);
  return expected.length === names.length && expected.every((name, i) => name === names[i]);
}
