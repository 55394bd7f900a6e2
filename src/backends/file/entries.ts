/**
 * Reading one directory of a file store as key segments in key order. Symbolic links are never
 * followed: an entry is taken as a value only when it is a regular file and as a directory only
 * when it is a real directory.
 *
 * A filesystem returns a directory's names unsorted, so every listing of a directory reads all
 * of it. For large directories the sorted entries are kept, so that paging through one costs
 * each page a stat of the directory, not a read of the whole: a kept listing is used only while
 * the directory's inode, mtime and ctime are what they were when it was read. Timestamps have a
 * coarse clock (a change in the same tick leaves mtime as it was), so a listing is kept only
 * when its stamp had already been seen {@link SETTLE_MS} earlier: every change after the read
 * then comes at least that much later on the filesystem's clock and gives a new stamp.
 */
import type { BigIntStats, Dirent } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { LRUCache } from "lru-cache";
import { compareKeys } from "../../keys.js";
import { isCanonical, parseName, unescapePiece, type NameMode } from "./names.js";

/** A key segment found in a directory: a value, or a directory of longer keys. */
export interface Entry {
  segment: string;
  kind: "value" | "dir";
  /** The first key it holds, relative to its directory: a value its own, a directory `<segment>/`. */
  first: string;
  /** Path components below the directory: `.p` pieces of a long segment, then the entry's name. */
  names: string[];
}

/** Directories with fewer entries are read again each time: cheap, and not worth the memory. */
const KEEP_FROM_ENTRIES = 1000;
/** Entries kept over all directories of a store (a few hundred bytes each). */
const KEEP_AT_MOST_ENTRIES = 200_000;
/** Longer than the coarsest timestamp clock (FAT's 2 s) with a margin. */
export const SETTLE_MS = 3000;

interface Kept {
  stamp: string;
  /** When this stamp was first seen (performance.now()). */
  seenAt: number;
  entries?: Entry[];
}

/** A directory's entries; a directory removed meanwhile (a concurrent delete pruning it) is empty. */
export async function direntsOf(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw err;
  }
}

async function stampOf(dir: string): Promise<string | undefined> {
  let info: BigIntStats;
  try {
    info = await lstat(dir, { bigint: true });
  } catch {
    return undefined;
  }
  return `${info.dev}:${info.ino}:${info.mtimeNs}:${info.ctimeNs}`;
}

export class DirectoryReader {
  readonly #mode: NameMode;
  readonly #kept = new LRUCache<string, Kept>({ maxSize: KEEP_AT_MOST_ENTRIES, sizeCalculation: (kept) => Math.max(1, kept.entries?.length ?? 0) });

  constructor(mode: NameMode) {
    this.#mode = mode;
  }

  /**
   * The entries of `dir` whose segment starts with `rest`, sorted by their first key in
   * {@link compareKeys} order. Long segments spread over `.p` directories are joined back here,
   * so the order never depends on where a segment was cut.
   */
  async entries(dir: string, rest: string, signal?: AbortSignal): Promise<Entry[]> {
    const kept = this.#kept.get(dir);
    if (kept === undefined) {
      const { entries, complete, read } = await this.#scan(dir, rest, signal);
      if (complete && read >= KEEP_FROM_ENTRIES) {
        const stamp = await stampOf(dir);
        if (stamp !== undefined) this.#kept.set(dir, { stamp, seenAt: performance.now() });
      }
      return entries;
    }
    const started = performance.now();
    const stamp = await stampOf(dir);
    if (stamp === kept.stamp && kept.entries) return withPrefix(kept.entries, rest);
    const { entries, complete, read } = await this.#scan(dir, "", signal);
    const after = await stampOf(dir);
    if (after === undefined || !complete || read < KEEP_FROM_ENTRIES) {
      this.#kept.delete(dir);
    } else if (after !== stamp || stamp !== kept.stamp) {
      this.#kept.set(dir, { stamp: after, seenAt: performance.now() });
    } else if (kept.seenAt <= started - SETTLE_MS) {
      this.#kept.set(dir, { stamp, seenAt: kept.seenAt, entries });
    }
    return withPrefix(entries, rest);
  }

  /**
   * Reads `dir`: `read` names at its top, `complete` false when `.p` directories were skipped
   * for not matching `rest`.
   */
  async #scan(dir: string, rest: string, signal?: AbortSignal): Promise<{ entries: Entry[]; complete: boolean; read: number }> {
    const mode = this.#mode;
    const found: Entry[] = [];
    let complete = true;
    let read = 0;
    async function scan(path: string, textSoFar: string, namesSoFar: string[]): Promise<void> {
      signal?.throwIfAborted();
      const dirents = await direntsOf(path);
      if (namesSoFar.length === 0) read = dirents.length;
      for (const dirent of dirents) {
        const parsed = parseName(dirent.name);
        if (!parsed) continue;
        const piece = unescapePiece(parsed.piece);
        if (piece === undefined) continue;
        const text = textSoFar + piece;
        const names = namesSoFar.length === 0 ? [dirent.name] : [...namesSoFar, dirent.name];
        if (parsed.kind === "piece") {
          if (!dirent.isDirectory()) continue;
          if (text.startsWith(rest) || rest.startsWith(text)) await scan(join(path, dirent.name), text, names);
          else complete = false;
          continue;
        }
        const ok = parsed.kind === "value" ? dirent.isFile() : dirent.isDirectory();
        if (ok && text.startsWith(rest) && isCanonical(text, parsed.kind, names, mode)) {
          found.push({ segment: text, kind: parsed.kind, first: parsed.kind === "dir" ? `${text}/` : text, names });
        }
      }
    }
    await scan(dir, "", []);
    // A value covers exactly one key, a directory every key starting with "<segment>/": ranges
    // that never overlap, so ordering them by their first key orders every key they hold.
    found.sort((a, b) => compareKeys(a.first, b.first));
    return { entries: found, complete, read };
  }
}

/** The run of sorted `entries` whose segment starts with `rest` (a run: `rest` has no "/"). */
function withPrefix(entries: Entry[], rest: string): Entry[] {
  if (rest === "") return entries;
  const start = lowerBound(entries, (e) => compareKeys(e.first, rest) < 0);
  let end = start;
  while (end < entries.length && entries[end]!.segment.startsWith(rest)) end++;
  return entries.slice(start, end);
}

/** The first index at which `before` is false (it must be true on a leading run, then false). */
export function lowerBound<T>(items: readonly T[], before: (item: T) => boolean): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(items[mid]!)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
