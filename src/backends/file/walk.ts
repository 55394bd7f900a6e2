/**
 * Listing a file store in key order by walking only the directories a prefix can reach and, with
 * `after`, only those that can hold later keys; one-level (folder) listings; sweeping stale temp
 * files. Symbolic links are never followed.
 */
import { lstat, opendir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { compareKeys, keyProblem } from "../../keys.js";
import type { ListPage } from "../../types.js";
import { direntsOf, lowerBound, type DirectoryReader, type Entry } from "./entries.js";
import { isCanonical, parseName, unescapePiece, type NameMode } from "./names.js";

/** Temp files: hidden, and ending in `.tmp`, which no key's name ever does. */
export const TEMP_NAME = /^\.stowage-[0-9a-f]{16}[^/]*\.tmp$/;
/** A stale lock being taken away (file/lock.ts), left behind only by a process killed meanwhile. */
const STALE_LOCK_NAME = /^\.stowage-[0-9a-f]{16}\.stale-lock$/;

export interface WalkOptions {
  reader: DirectoryReader;
  /** Only keys after this one (exclusive), for pagination. */
  after?: string;
  signal?: AbortSignal;
}

/**
 * True when every key `entry` holds sorts at or before `after`. Entries hold disjoint, ordered
 * ranges of keys, so this is true on a leading run of a directory's sorted entries.
 */
function entirelyBefore(entry: Entry, dirKey: string, after: string): boolean {
  const first = dirKey + entry.first;
  return entry.kind === "value" ? compareKeys(first, after) <= 0 : compareKeys(first, after) <= 0 && !after.startsWith(first);
}

/**
 * Yields the keys under `dir` (which holds the keys starting with `dirKey`) whose next segment
 * starts with `rest`, in {@link compareKeys} order, reading each directory only when reached.
 * With `after`, each directory's entries are searched for the first that can hold a later key,
 * and only the directory `after` itself lies in is entered with it.
 */
export async function* walkKeys(dir: string, dirKey: string, rest: string, options: WalkOptions): AsyncGenerator<string> {
  const { after, reader } = options;
  const entries = await reader.entries(dir, rest, options.signal);
  const start = after === undefined ? 0 : lowerBound(entries, (e) => entirelyBefore(e, dirKey, after));
  for (let i = start; i < entries.length; i++) {
    const entry = entries[i]!;
    if (entry.kind === "value") {
      const key = dirKey + entry.segment;
      if (keyProblem(key) === undefined) yield key;
      continue;
    }
    const sub = `${dirKey}${entry.segment}/`;
    const within = after !== undefined && after.startsWith(sub);
    yield* walkKeys(join(dir, ...entry.names), sub, "", { ...options, after: within ? after : undefined });
  }
}

export interface FolderOptions {
  reader: DirectoryReader;
  mode: NameMode;
  limit: number;
  after?: string;
  signal?: AbortSignal;
}

/**
 * One page of a one-level listing: the keys in `dir` (holding keys starting with `dirKey`) whose
 * segment starts with `rest`, and a prefix for each such directory that holds a key. One read
 * of `dir`; each directory returned as a prefix is opened only until its first key is found.
 */
export async function folderPage(dir: string, dirKey: string, rest: string, options: FolderOptions): Promise<ListPage> {
  const { after, limit } = options;
  const entries = await options.reader.entries(dir, rest, options.signal);
  // An `after` that is a returned prefix, or lies under one, sorts at or after it: skipped whole.
  const start = after === undefined ? 0 : lowerBound(entries, (e) => compareKeys(dirKey + e.first, after) <= 0);
  const keys: string[] = [];
  const prefixes: string[] = [];
  let last: string | undefined;
  for (let i = start; i < entries.length; i++) {
    const entry = entries[i]!;
    const name = dirKey + entry.first;
    const listed = entry.kind === "value" ? keyProblem(name) === undefined : await holdsKey(join(dir, ...entry.names), name, options.mode, options.signal);
    if (!listed) continue;
    if (keys.length + prefixes.length === limit) return { keys, prefixes, next: last };
    (entry.kind === "value" ? keys : prefixes).push((last = name));
  }
  return { keys, prefixes };
}

/**
 * True when the directory `dir` (holding keys starting with `dirKey`) holds at least one key.
 * Reads names a batch at a time and stops at the first key: a large directory costs one batch.
 */
export async function holdsKey(dir: string, dirKey: string, mode: NameMode, signal?: AbortSignal, textSoFar = "", namesSoFar: string[] = []): Promise<boolean> {
  signal?.throwIfAborted();
  const deeper: { path: string; text: string; names: string[]; piece: boolean }[] = [];
  let handle;
  try {
    handle = await opendir(dir, { bufferSize: 64 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return false;
    throw err;
  }
  for await (const dirent of handle) {
    const parsed = parseName(dirent.name);
    const piece = parsed && unescapePiece(parsed.piece);
    if (!parsed || piece === undefined) continue;
    const text = textSoFar + piece;
    const names = [...namesSoFar, dirent.name];
    if (parsed.kind === "value") {
      if (dirent.isFile() && isCanonical(text, "value", names, mode) && keyProblem(dirKey + text) === undefined) return true;
    } else if (dirent.isDirectory() && (parsed.kind === "piece" || isCanonical(text, "dir", names, mode))) {
      deeper.push({ path: join(dir, dirent.name), text, names, piece: parsed.kind === "piece" });
    }
  }
  for (const sub of deeper) {
    const found = sub.piece
      ? await holdsKey(sub.path, dirKey, mode, signal, sub.text, sub.names)
      : await holdsKey(sub.path, `${dirKey}${sub.text}/`, mode, signal);
    if (found) return true;
  }
  return false;
}

/**
 * Removes temp files (and stale locks left half taken away) last modified more than
 * `olderThanMs` ago anywhere under `dir`, and returns how many. Writers keep their temp file's
 * mtime fresh, so only abandoned ones (a killed process) qualify.
 */
export async function sweepTempFiles(dir: string, olderThanMs: number, signal?: AbortSignal): Promise<number> {
  let removed = 0;
  const cutoff = Date.now() - olderThanMs;
  for (const dirent of await direntsOf(dir)) {
    signal?.throwIfAborted();
    const path = join(dir, dirent.name);
    if ((TEMP_NAME.test(dirent.name) && dirent.isFile()) || (STALE_LOCK_NAME.test(dirent.name) && (dirent.isSymbolicLink() || dirent.isFile()))) {
      try {
        if ((await lstat(path)).mtimeMs <= cutoff) {
          await unlink(path);
          removed++;
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    } else if (dirent.isDirectory() && /^(dir|piece)$/.test(parseName(dirent.name)?.kind ?? "")) {
      removed += await sweepTempFiles(path, olderThanMs, signal);
    }
  }
  return removed;
}
