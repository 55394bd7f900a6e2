/**
 * The claim reference: what a claimed message carries instead of its payload. A JSON object in
 * the message body and two headers, readable from any language:
 *
 * ```
 * Stowage-Claim: media
 * Stowage-Claim-Key: claims/2024/10/08/10/20241008T103000.123Z-00000f-k3j9x2pq
 *
 * {"storage_instance":"media","key":"claims/2024/…","content_type":"video/mp4","size":5242880,"sha256":"<64 hex digits>"}
 * ```
 */
import { StorageError, type StorageOp } from "../errors.js";
import { keyProblem } from "../keys.js";

/** The header that marks a claimed message; its value is the storage instance. */
export const CLAIM_HEADER = "Stowage-Claim";
/** The header that carries the claim's key (the same as the reference's `key`). */
export const CLAIM_KEY_HEADER = "Stowage-Claim-Key";

/**
 * Where a claimed payload is and how to check it. The field names are the original storage
 * package's `StorageReference` plus a digest.
 */
export interface ClaimReference {
  /** The storage instance (the component's name) whose store holds the payload. */
  storage_instance: string;
  /** The payload's key in that store. */
  key: string;
  /** The payload's media type, as given to `checkIn` (default `application/octet-stream`). */
  content_type: string;
  /** The payload's length in bytes. */
  size: number;
  /** SHA-256 of the payload, 64 lower-case hex digits. */
  sha256: string;
}

/** Storage instance names: the component's name rule (they appear in NATS subjects). */
export const INSTANCE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The message body for a reference (field order fixed, so equal references are equal bytes). */
export function encodeReference(ref: ClaimReference): Uint8Array {
  const { storage_instance, key, content_type, size, sha256 } = ref;
  return encoder.encode(JSON.stringify({ storage_instance, key, content_type, size, sha256 }));
}

/**
 * Reads and checks the reference in a claimed message's body: every field present and well
 * formed (unknown extra fields are ignored, so a later version may add some). A body that is
 * not one is `invalid`: the message was not written by a claim check, or was damaged.
 */
export function decodeReference(body: Uint8Array, op: StorageOp): ClaimReference {
  const fail = (problem: string) => new StorageError("invalid", `the message has a ${CLAIM_HEADER} header but its body is not a claim reference: ${problem}`, { op });
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(body));
  } catch {
    throw fail("it is not UTF-8 JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw fail("it is not a JSON object");
  const { storage_instance, key, content_type, size, sha256 } = parsed as Record<string, unknown>;
  if (typeof storage_instance !== "string" || !INSTANCE_NAME.test(storage_instance)) throw fail("storage_instance must be 1-64 characters of A-Z a-z 0-9 _ -");
  if (typeof key !== "string" || keyProblem(key) !== undefined) throw fail(`key must be a valid store key${typeof key === "string" ? ` (${keyProblem(key)})` : ""}`);
  if (typeof content_type !== "string") throw fail("content_type must be a string");
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) throw fail("size must be a non-negative integer");
  if (typeof sha256 !== "string" || !SHA256_HEX.test(sha256)) throw fail("sha256 must be 64 lower-case hex digits");
  return { storage_instance, key, content_type, size, sha256 };
}
