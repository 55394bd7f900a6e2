/**
 * Store keys <-> NATS KV keys. A KV key is a NATS subject tail: tokens separated by `.`, each
 * non-empty and made of `[-/_=A-Za-z0-9]`. A NATS subject filter matches whole tokens only
 * (`a.b.>`), so a listing prefix can be resolved by the server exactly when it ends at a token
 * boundary. Keys are therefore encoded one character per token: every prefix, also one that
 * ends inside a `/`-segment (`logs/2024-10-0`), becomes a filter (`l.o.g.s./.2.0.2.4.-.1.0.-.0.>`)
 * that matches exactly the keys starting with it, and the server reads nothing else.
 *
 * Tokens (the encoding is reversible and canonical):
 * - `A-Z a-z 0-9 - _` and `/` stand for themselves, one token each;
 * - a maximal run of any other characters is one token: the run's UTF-8 bytes as `=XX` (two
 *   upper-case hex digits each), so `.`, `*`, `>`, `=`, spaces and unicode never act as subject
 *   syntax (`a b` -> `a.=20.b`, `é` -> `=C3=A9`);
 * - every key ends with the token `=` alone, so a key is matched by the filter of its own
 *   prefix too (`ab` -> `a.b.=` is under `a.b.>`).
 *
 * An encoded key is at most 3 characters per key byte plus 2 (3,074 for the longest key),
 * which keeps `$JS.API.DIRECT.GET.KV_<bucket>.$KV.<bucket>.<key>` inside the server's 4 KiB
 * protocol line. It does not preserve order, so listings sort the decoded keys.
 */

const PLAIN = /^[A-Za-z0-9_-]$/;
const RUN = /^(?:=[0-9A-F]{2})+$/;
const END = "=";
const SLASH = "/";
const HEX = "0123456789ABCDEF";
const encoder = new TextEncoder();
// ignoreBOM: a key may start with U+FEFF, which the decoder would otherwise drop.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The tokens of `text` (a key or a prefix), without the end token; `run` tells whether the last one is an escaped run. */
function tokensOf(text: string): { tokens: string[]; lastIsRun: boolean } {
  const tokens: string[] = [];
  let run = "";
  for (const char of text) {
    if (char === SLASH || PLAIN.test(char)) {
      if (run) tokens.push(run);
      run = "";
      tokens.push(char);
    } else {
      for (const byte of encoder.encode(char)) run += `=${HEX[byte >> 4]}${HEX[byte & 15]}`;
    }
  }
  if (run) tokens.push(run);
  return { tokens, lastIsRun: run !== "" };
}

/** A store key as a KV key (`a b/x.y` -> `a.=20.b./.x.=2E.y.=`). */
export function encodeKey(key: string): string {
  const { tokens } = tokensOf(key);
  tokens.push(END);
  return tokens.join(".");
}

/** The store key a KV key stands for; throws {@link KeyCodecError} for keys this codec did not write. */
export function decodeKey(kvKey: string): string {
  const tokens = kvKey.split(".");
  if (tokens.pop() !== END) throw new KeyCodecError(`not a stowage key (no end token): ${JSON.stringify(kvKey)}`);
  let out = "";
  let previousWasRun = false;
  for (const token of tokens) {
    if (token.length === 1 && (token === SLASH || PLAIN.test(token))) {
      out += token;
      previousWasRun = false;
      continue;
    }
    // Canonical form only: two runs in a row, or a run escaping a character that stands for
    // itself, would make two KV keys one store key.
    if (!RUN.test(token) || previousWasRun) throw new KeyCodecError(`not a stowage key token: ${JSON.stringify(token)}`);
    out += decodeRun(token);
    previousWasRun = true;
  }
  if (out === "") throw new KeyCodecError("empty key");
  return out;
}

function decodeRun(token: string): string {
  const bytes = new Uint8Array(token.length / 3);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(token.slice(3 * i + 1, 3 * i + 3), 16);
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch (cause) {
    throw new KeyCodecError(`token ${JSON.stringify(token)} is not UTF-8`, { cause });
  }
  for (const char of text) {
    if (char === SLASH || PLAIN.test(char)) throw new KeyCodecError(`token ${JSON.stringify(token)} escapes a plain character`);
  }
  return text;
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
 * The KV key filter serving `prefix` (`""` -> `>`). It matches exactly the keys starting with
 * `prefix`, except when the prefix ends inside a run of escaped characters (`a b` does, `a `
 * ends in one): the key may continue that run in the same token, so the run is left to the
 * `>` and `exact` is false; the caller then checks `key.startsWith(prefix)`.
 */
export function prefixFilter(prefix: string): { filter: string; exact: boolean } {
  const { tokens, lastIsRun } = tokensOf(prefix);
  if (lastIsRun) tokens.pop();
  tokens.push(">");
  return { filter: tokens.join("."), exact: !lastIsRun };
}

/** Thrown for KV keys or tokens that stowage's codec did not produce. */
export class KeyCodecError extends Error {
  override readonly name = "KeyCodecError";
}
