import { StorageError } from "../errors.js";
import type { Codec } from "./types.js";

const encoder = new TextEncoder();

/**
 * The default codec. Bytes (`Uint8Array`, `Buffer`) are stored unchanged, as
 * `application/octet-stream`. Everything else is stored as JSON (`application/json`) —
 * strings too: `archive("hi")` stores `"hi"` with its quotes, so whatever reads the archive
 * decodes every non-binary value the same way (pass `Buffer.from(text)` to store raw text).
 *
 * Refused with a StorageError of kind `invalid`, op `archive`, because JSON would lose them
 * silently or cannot hold them: `undefined` and `null` messages, functions and symbols,
 * bigints, non-finite numbers (JSON turns them into `null`), `Map` and `Set` (they become
 * `{}`), and cycles. Undefined object properties are left out, as JSON does.
 */
export const jsonCodec: Codec = Object.freeze({
  contentType: "application/json",
  contentTypeFor(message: unknown): string {
    return message instanceof Uint8Array ? "application/octet-stream" : "application/json";
  },
  encode(message: unknown): Uint8Array {
    if (message instanceof Uint8Array) return message;
    if (message === undefined || message === null) {
      throw new StorageError("invalid", `cannot archive ${String(message)}: the message must be a value`, { op: "archive" });
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(message, checkJsonValue);
    } catch (cause) {
      if (cause instanceof StorageError) throw cause;
      // JSON.stringify throws TypeError for cycles and bigints; its message names the problem.
      const why = cause instanceof Error ? cause.message : String(cause);
      throw new StorageError("invalid", `message cannot be encoded as JSON: ${why}`, { op: "archive", cause });
    }
    if (json === undefined) throw new StorageError("invalid", `message of type ${typeof message} cannot be encoded as JSON`, { op: "archive" });
    return encoder.encode(json);
  },
});

function checkJsonValue(this: unknown, name: string, value: unknown): unknown {
  const where = name === "" ? "the message" : `property ${JSON.stringify(name)}`;
  const refuse = (what: string) => new StorageError("invalid", `message cannot be encoded as JSON: ${where} is ${what}`, { op: "archive" });
  switch (typeof value) {
    case "function":
      throw refuse("a function");
    case "symbol":
      throw refuse("a symbol");
    case "bigint":
      throw refuse("a bigint (convert it to a string)");
    case "number":
      if (!Number.isFinite(value)) throw refuse(`${value} (JSON has no such number)`);
      return value;
    default:
      if (value instanceof Map || value instanceof Set) throw refuse(`a ${value instanceof Map ? "Map" : "Set"} (convert it to an object or array)`);
      return value;
  }
}
