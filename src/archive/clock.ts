import { StorageError } from "../errors.js";

// Keys embed a 4-digit year; outside 0000-9999 they would not sort (or parse).
const MIN_MS = Date.parse("0000-01-01T00:00:00.000Z");
const MAX_MS = Date.parse("+010000-01-01T00:00:00.000Z");

/** The current time from an injectable clock, refusing invalid or out-of-range dates. */
export function readClock(now: () => Date): Date {
  const at = now();
  const ms = at instanceof Date ? at.getTime() : Number.NaN;
  if (Number.isNaN(ms)) throw new StorageError("invalid", "the clock returned an invalid Date", { op: "archive" });
  if (ms < MIN_MS || ms >= MAX_MS) {
    throw new StorageError("invalid", `the clock returned year ${at.getUTCFullYear()}, outside 0000-9999`, { op: "archive" });
  }
  return at;
}
