/**
 * Listing a file store in key order by walking only the directories a prefix can reach, and
 * sweeping stale temp files. Symbolic links are never followed: a directory entry is taken as
 * a value only when it is a regular file and as a directory only when it is a real directory.
 */
import { lstat, readdir, unlink } from "node:fs/promises";
import type { Dirent } from "node:fs";
import { join } from "node:path";
import { compareKeys, keyProblem } from "../../keys.js";
import { isCanonical, parseName, unescapePiece, type NameMode } from "./names.js";

/** Temp files: hidden, and ending in `.tmp`, which no key's name ever does. */
export const TEMP_NAME = /^\.stowage-[0-9a-f]{16}[^/]*\.tmp$/;

/** A key segment found in a directory: a value, or a directory of longer keys. */
interface Entry {
  segment: string;
  kind: "value" | "dir";
  path: string;
}

/** A directory's entries; a directory removed meanwhile (a concurrent delete pruning it) is empty. */
async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw err;
  }
}

/**
 * The segments stored in `dir` whose text could start with `rest`, in the order of the keys
 * they hold. Long segments are spread over `.p` directories; they are joined back here, so the
 * order never depends on where a segment was cut.
 */
async function segmentsIn(dir: string, rest: string, mode: NameMode, signal?: AbortSignal): Promise<Entry[]> {
  const found: Entry[] = [];
  async function scan(path: string, textSoFar: string, namesSoFar: string[]): Promise<void> {
    signal?.throwIfAborted();
    for (const dirent of await entriesOf(path)) {
      const parsed = parseName(dirent.name);
      if (!parsed) continue;
      const piece = unescapePiece(parsed.piece);
      if (piece === undefined) continue;
      const text = textSoFar + piece;
      const names = [...namesSoFar, dirent.name];
      const child = join(path, dirent.name);
      if (parsed.kind === "piece") {
        if (dirent.isDirectory() && (text.startsWith(rest) || rest.startsWith(text))) await scan(child, text, names);
        continue;
      }
      const ok = parsed.kind === "value" ? dirent.isFile() : dirent.isDirectory();
      if (ok && text.startsWith(rest) && isCanonical(text, parsed.kind, names, mode)) found.push({ segment: text, kind: parsed.kind, path: child });
    }
  }
  await scan(dir, "", []);
  // A value covers exactly one key, a directory every key starting with "<segment>/": ranges
  // that never overlap, so ordering them by their first key orders every key they hold.
  const first = (e: Entry) => (e.kind === "dir" ? `${e.segment}/` : e.segment);
  return found.sort((a, b) => compareKeys(first(a), first(b)));
}

export interface WalkOptions {
  mode: NameMode;
  /** Only keys after this one (exclusive), for pagination. */
  after?: string;
  signal?: AbortSignal;
}

/**
 * Yields the keys under `dir` (which holds the keys starting with `dirKey`) whose next segment
 * starts with `rest`, in {@link compareKeys} order, reading each directory only when reached.
 */
export async function* walkKeys(dir: string, dirKey: string, rest: string, options: WalkOptions): AsyncGenerator<string> {
  const { after } = options;
  for (const entry of await segmentsIn(dir, rest, options.mode, options.signal)) {
    if (entry.kind === "value") {
      const key = dirKey + entry.segment;
      if ((after === undefined || compareKeys(key, after) > 0) && keyProblem(key) === undefined) yield key;
      continue;
    }
    const sub = `${dirKey}${entry.segment}/`;
    if (after === undefined || compareKeys(after, sub) < 0) {
      yield* walkKeys(entry.path, sub, "", { ...options, after: undefined });
    } else if (after.startsWith(sub)) {
      yield* walkKeys(entry.path, sub, "", options);
    }
    // Otherwise every key below `sub` sorts before `after`: the directory is skipped unread.
  }
}

/**
 * Removes temp files last modified more than `olderThanMs` ago anywhere under `dir`, and
 * returns how many. Writers keep their temp file's mtime fresh, so only abandoned ones (a
 * killed process) qualify.
 */
export async function sweepTempFiles(dir: string, olderThanMs: number, signal?: AbortSignal): Promise<number> {
  let removed = 0;
  const cutoff = Date.now() - olderThanMs;
  for (const dirent of await entriesOf(dir)) {
    signal?.throwIfAborted();
    const path = join(dir, dirent.name);
    if (TEMP_NAME.test(dirent.name) && dirent.isFile()) {
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
