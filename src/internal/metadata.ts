import { StorageError, type StorageOp } from "../errors.js";
import type { Metadata } from "../types.js";

/** Metadata limit in bytes (names plus values), S3's, so every backend can keep every valid set. */
export const MAX_METADATA_BYTES = 2048;
const NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;

/** Validates metadata and returns it with lower-cased names (header names are case-insensitive). */
export function normalizeMetadata(metadata: unknown, op: StorageOp, key?: string): Metadata | undefined {
  if (metadata === undefined) return undefined;
  const fail = (message: string) => new StorageError("invalid", message, { op, key });
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw fail("metadata must be an object of string values");
  }
  const out: Metadata = {};
  let bytes = 0;
  for (const [rawName, value] of Object.entries(metadata)) {
    const name = rawName.toLowerCase();
    if (!NAME.test(name)) throw fail(`metadata name ${JSON.stringify(rawName)} must be 1-128 characters of a-z, 0-9, '-', '_', '.'`);
    if (typeof value !== "string") throw fail(`metadata ${JSON.stringify(rawName)} must be a string, got ${typeof value}`);
    if (CONTROL_CHAR.test(value)) throw fail(`metadata ${JSON.stringify(rawName)} must not contain control characters`);
    if (!value.isWellFormed()) throw fail(`metadata ${JSON.stringify(rawName)} must be well-formed Unicode`);
    if (Object.hasOwn(out, name)) throw fail(`metadata name ${JSON.stringify(rawName)} is given twice (names are case-insensitive)`);
    out[name] = value;
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  }
  if (bytes > MAX_METADATA_BYTES) throw fail(`metadata is ${bytes} bytes, the limit is ${MAX_METADATA_BYTES}`);
  return out;
}
