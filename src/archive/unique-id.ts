import { randomBytes } from "node:crypto";

/**
 * Time-ordered unique ids: `20241008T103000.123Z-00000f-k3j9x2pq` — the UTC time to the
 * millisecond, a per-process sequence number and a per-process random tag, each fixed width,
 * so ids sort by time (to the millisecond) as plain strings and by creation order within one
 * process.
 *
 * Never collides: within a process the sequence never repeats (it would take 2 billion ids in
 * one millisecond to wrap); across processes the 40-bit random tag differs (1 in a trillion
 * for two processes to share one).
 */
const SEQUENCE_WIDTH = 6;
const SEQUENCE_LIMIT = 36 ** SEQUENCE_WIDTH;
// Crockford's base32 alphabet: no i, l, o, u, so tags are unambiguous to read aloud.
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const PROCESS_TAG = randomTag(8);

let sequence = 0;

/** The next unique id for time `at` (UTC). */
export function timeOrderedId(at: Date): string {
  return `${compactUtc(at)}-${nextSuffix()}`;
}

/** The part of an id after the time: sequence number and process tag, `00000f-k3j9x2pq`. */
export function nextSuffix(): string {
  const seq = sequence;
  sequence = (sequence + 1) % SEQUENCE_LIMIT;
  return `${seq.toString(36).padStart(SEQUENCE_WIDTH, "0")}-${PROCESS_TAG}`;
}

/** `2024-10-08T10:30:00.123Z` -> `20241008T103000.123Z` (fixed width for years 0000-9999). */
export function compactUtc(at: Date): string {
  return utcParts(at).compact;
}

/** `YYYY/MM/DD/HH` of `at` in UTC. */
export function hourBucket(at: Date): string {
  return utcParts(at).hour;
}

// Keys made in a burst share their millisecond: format each millisecond once.
let cachedMs = Number.NaN;
let cached = { compact: "", hour: "" };

function utcParts(at: Date): { compact: string; hour: string } {
  const ms = at.getTime();
  if (ms !== cachedMs) {
    const iso = at.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ for years 0000-9999
    cached = {
      compact: `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 23)}Z`,
      hour: `${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(11, 13)}`,
    };
    cachedMs = ms;
  }
  return cached;
}

function randomTag(length: number): string {
  const bytes = randomBytes(length);
  let tag = "";
  for (const byte of bytes) tag += ALPHABET[byte & 31];
  return tag;
}
