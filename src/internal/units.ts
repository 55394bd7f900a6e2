/**
 * Durations and sizes as people write them, in configuration files and on the command line: a
 * number (milliseconds, bytes) or a string with a unit (`"500ms"`, `"30s"`, `"5m"`, `"1h"`;
 * `"512KiB"`, `"1MiB"`, `"10MB"`). One rule for both places: size units in any case, `KB`/`MB`/
 * `GB` powers of ten, `K`/`M`/`G` and `KiB`/`MiB`/`GiB` powers of two.
 *
 * The patterns are spelled without regex flags because the configuration's JSON Schema carries
 * them as `pattern`, which has none.
 */

export const DURATION_PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*([bB]|[kKmMgG](?:[iI]?[bB])?)?$/;
const SIZE_BYTES: Record<string, number> = { b: 1, k: 1024, kb: 1e3, kib: 1024, m: 1024 ** 2, mb: 1e6, mib: 1024 ** 2, g: 1024 ** 3, gb: 1e9, gib: 1024 ** 3 };

/** Milliseconds in a duration, or undefined when the text is not one. */
export function parseDuration(value: number | string): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  const match = DURATION_PATTERN.exec(value.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * DURATION_MS[match[2]!]!);
}

/** Whole bytes in a size (a fraction of a byte rounds down), or undefined when the text is not one. */
export function parseSize(value: number | string): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const match = SIZE_PATTERN.exec(value.trim());
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * SIZE_BYTES[(match[2] ?? "b").toLowerCase()]!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A size for messages: `1048576` -> `"1 MiB"`, `1000` -> `"1000 bytes"`. */
export function formatSize(bytes: number): string {
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
