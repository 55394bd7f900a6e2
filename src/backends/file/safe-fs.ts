/**
 * Filesystem steps the file store takes with care: directories made one level at a time without
 * following symbolic links, a containment check before touching a directory, full writes, and
 * directory fsync.
 */
import type { FileHandle } from "node:fs/promises";
import { lstat, mkdir, open, realpath, stat } from "node:fs/promises";
import { StorageError } from "../../errors.js";
import { dirname, join } from "node:path";

export function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Thrown when a directory inside the root is a symbolic link or a file: we never follow or
 * replace it. Carries ELOOP, the code the kernel gives for O_NOFOLLOW on a link, so both are
 * classified alike.
 */
export function notAStoreDirectory(relative: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${relative} is a symbolic link or not a directory`);
  err.code = "ELOOP";
  return err;
}

/**
 * True when `root/components...` exists and is a real directory reached without symbolic links
 * (its real path is exactly the lexical one; `root` is already a real path). False when it does
 * not exist; throws when it exists somewhere else. With `checkKind` false, a file there counts
 * too: for callers that create in it next, which then fail with ENOTDIR.
 */
export async function isContainedDir(root: string, components: readonly string[], checkKind = true): Promise<boolean> {
  if (components.length === 0) return true;
  const path = join(root, ...components);
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    const code = errno(err);
    if (code === "ENOENT" || code === "ENOTDIR") return false;
    throw err;
  }
  if (real !== path) throw notAStoreDirectory(components.join("/"));
  if (!checkKind) return true;
  let isDirectory: boolean;
  try {
    isDirectory = (await lstat(path)).isDirectory();
  } catch (err) {
    if (errno(err) === "ENOENT") return false; // pruned by a concurrent delete just now
    throw err;
  }
  if (!isDirectory) throw notAStoreDirectory(components.join("/"));
  return true;
}

/**
 * Makes `root/components...` exist as real directories, one level at a time: `mkdir` of an
 * existing name never follows it, and each existing one is checked with `lstat`. A concurrent
 * delete may remove an empty directory between two steps; the caller retries on ENOENT.
 * With `sync`, each parent that got a new entry is fsynced, so the new directory survives a
 * power cut.
 */
export async function ensureDir(root: string, components: readonly string[], sync: boolean): Promise<string> {
  if (await isContainedDir(root, components, false)) return join(root, ...components);
  let path = root;
  for (let i = 0; i < components.length; i++) {
    const parent = path;
    path = join(path, components[i]!);
    try {
      await mkdir(path);
      if (sync) await syncDir(parent);
    } catch (err) {
      if (errno(err) !== "EEXIST") throw err;
      if (!(await lstat(path)).isDirectory()) throw notAStoreDirectory(components.slice(0, i + 1).join("/"));
    }
  }
  return path;
}

/**
 * Creates the store's root directory and its missing parents. Not `mkdir(…, { recursive: true })`:
 * on Linux that loops forever where mkdir answers ENOENT under an existing parent (as in /proc).
 * A root (or parent) that exists but is not a directory, or where no directory can be made, is
 * refused as `fatal`.
 */
export async function makeRootDir(root: string): Promise<void> {
  const cannot = (why: string, cause?: unknown) => new StorageError("fatal", `cannot use ${root} as the store directory: ${why}`, { op: "open", cause });
  const missing: string[] = [];
  for (let path = root; ; path = dirname(path)) {
    const info = await stat(path).catch((err: unknown) => {
      if (errno(err) === "ENOENT") return undefined;
      throw err;
    });
    if (info) {
      if (!info.isDirectory()) throw cannot(`${path} exists and is not a directory`);
      break;
    }
    missing.unshift(path);
    if (dirname(path) === path) break;
  }
  for (const dir of missing) {
    await mkdir(dir).catch((err: unknown) => {
      if (errno(err) === "EEXIST") return; // another opener made it meanwhile
      throw errno(err) === "ENOENT" ? cannot(`no directory can be made at ${dir}`, err) : err;
    });
  }
}

/**
 * Checks that the store directory `root` exists, creating nothing: `not_found` naming it when it
 * does not, `fatal` when it or a part of its path is not a directory.
 */
export async function requireRootDir(root: string): Promise<void> {
  let info;
  try {
    info = await stat(root);
  } catch (err) {
    if (errno(err) === "ENOENT") {
      throw new StorageError("not_found", `the store directory ${root} does not exist (opened with create: false, which creates nothing)`, { op: "open", cause: err });
    }
    if (errno(err) === "ENOTDIR") throw new StorageError("fatal", `cannot use ${root} as the store directory: a part of its path is a file`, { op: "open", cause: err });
    throw err;
  }
  if (!info.isDirectory()) throw new StorageError("fatal", `cannot use ${root} as the store directory: it exists and is not a directory`, { op: "open" });
}

// Large values go in slices so an abort is noticed between them.
const WRITE_SLICE = 1024 * 1024;

/** Writes all of `parts` one after the other from `position`, in one system call when it can. */
export async function writeAllParts(handle: FileHandle, parts: readonly Uint8Array[], position: number, signal?: AbortSignal): Promise<void> {
  const total = parts.reduce((sum, part) => sum + part.byteLength, 0);
  if (total <= WRITE_SLICE) {
    const { bytesWritten } = await handle.writev(parts as Uint8Array[], position);
    if (bytesWritten === total) return;
  }
  // Large or short-written: part by part (a write of a large part goes in slices).
  let offset = position;
  for (const part of parts) {
    await writeAll(handle, part, offset, signal);
    offset += part.byteLength;
  }
}


/** Writes all of `data` (a single write may be short). */
export async function writeAll(handle: FileHandle, data: Uint8Array, position: number | null = null, signal?: AbortSignal): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) {
    signal?.throwIfAborted();
    const length = Math.min(WRITE_SLICE, data.byteLength - offset);
    const { bytesWritten } = await handle.write(data, offset, length, position === null ? null : position + offset);
    offset += bytesWritten;
  }
}

/** Makes a directory's entries (a rename, a new file) durable. */
export async function syncDir(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory; there is nothing more to do there.
    if (errno(err) !== "EINVAL" && errno(err) !== "EISDIR") throw err;
  } finally {
    await handle.close();
  }
}
