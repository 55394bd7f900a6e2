/**
 * Claim keys: `<prefix>YYYY/MM/DD/HH/<YYYYMMDDTHHMMSS.mmmZ>-<sequence>-<process tag>`, e.g.
 * `claims/2024/10/08/10/20241008T103000.123Z-00000f-k3j9x2pq` (UTC). Keys sort by the time the
 * claim was made, so expiry reads them oldest first and stops at the first young one; the hour
 * folders let it list one hour at a time, which a store that cannot page a listing (NATS)
 * serves without reading every claim. The id is the archiver's time-ordered id: unique across
 * processes.
 */
import { compactUtc, hourBucket, nextSuffix } from "../archive/unique-id.js";

export const HOUR_MS = 3_600_000;

/** A new key for a claim made at `at`. */
export function claimKey(prefix: string, at: Date): string {
  return `${prefix}${hourBucket(at)}/${compactUtc(at)}-${nextSuffix()}`;
}

/** The folder (ending in `/`) that holds the claims of the hour starting at `hourMs`. */
export function hourFolder(prefix: string, hourMs: number): string {
  return `${prefix}${hourBucket(new Date(hourMs))}/`;
}

/** The start of the hour that holds `ms`. */
export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

/**
 * A listing position after every key of the hour folder starting at `hourMs` and before the
 * next hour's: U+10FFFF sorts after the ASCII ids inside the folder.
 */
export function afterHour(prefix: string, hourMs: number): string {
  return `${hourFolder(prefix, hourMs)}\u{10FFFF}`;
}

const CLAIM_PATH = /^(\d{4})\/(\d{2})\/(\d{2})\/(\d{2})\/((\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z)-[0-9a-z]{6}-[0-9a-z]{8}$/;

/**
 * When the claim at `key` was made (epoch ms), or undefined when `key` is not a claim key
 * under `prefix` (expiry leaves such keys alone).
 */
export function claimTime(prefix: string, key: string): number | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const m = CLAIM_PATH.exec(key.slice(prefix.length));
  if (!m) return undefined;
  const [, fy, fm, fd, fh, compact, y, mo, d, h, mi, s, ms] = m as unknown as string[];
  const time = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}Z`);
  if (Number.isNaN(time)) return undefined;
  // Only a real instant filed under its own hour is one of ours (no 30 February, no key moved
  // to another folder).
  const at = new Date(time);
  if (compactUtc(at) !== compact || hourBucket(at) !== `${fy}/${fm}/${fd}/${fh}`) return undefined;
  return time;
}
