/** Reading value files: opening one safely, its header and etag, a range of its value. */
import { constants, type BigIntStats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { StorageError, type StorageOp } from "../../errors.js";
import { notFound } from "../../internal/not-found.js";
import { decodeHeader, HEADER_READ_BYTES, legacyEtag, type Header } from "./format.js";
import { errno } from "./safe-fs.js";

/** Opens a value file for reading, never through a symbolic link; `not_found` when it is missing. */
export async function openValueFile(path: string, op: StorageOp, key: string): Promise<FileHandle> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    // Classified here, not in run(): getMany's fallback calls _get and looks for not_found.
    if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") throw notFound(op, key);
    throw err;
  }
}

export interface ValueFile {
  header: Header;
  stats: BigIntStats;
  etag: string;
}

/** Reads and checks the header of an open value file, and that the file holds the whole value. */
export async function readHeader(handle: FileHandle, op: StorageOp, key: string): Promise<ValueFile> {
  const stats = await handle.stat({ bigint: true });
  const size = Number(stats.size);
  let want = HEADER_READ_BYTES;
  for (;;) {
    const buffer = Buffer.alloc(Math.min(want, size));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const result = decodeHeader(buffer.subarray(0, bytesRead));
    if ("needMore" in result && result.needMore <= size && want < result.needMore) {
      want = result.needMore;
      continue;
    }
    const header = checkedHeader(buffer.subarray(0, bytesRead), size, op, key);
    return { header, stats, etag: header.etag ?? legacyEtag(stats) };
  }
}

/** The header at the start of `bytes`, checked against the file's size; `fatal` when corrupt. */
export function checkedHeader(bytes: Uint8Array, fileBytes: number, op: StorageOp, key: string): Header {
  const result = decodeHeader(bytes);
  const problem =
    "problem" in result
      ? result.problem
      : "needMore" in result || result.header.headerBytes + result.header.valueBytes !== fileBytes
        ? "the file is truncated or has bytes after the value"
        : undefined;
  if (problem !== undefined || !("header" in result)) {
    throw new StorageError("fatal", `the value file is corrupt (${problem ?? "bad header"}); restore it from a backup or delete the key`, { op, key });
  }
  return result.header;
}

/** The etag of the value file at `path`, or undefined when there is none. */
export async function currentEtag(path: string, op: StorageOp, key: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if (errno(err) === "ENOENT") return undefined;
    throw err;
  }
  try {
    return (await readHeader(handle, op, key)).etag;
  } finally {
    await handle.close();
  }
}

/** Bytes `[start, end)` of the value, read at their position (the rest of the file is not read). */
export async function readRange(handle: FileHandle, header: Header, start: number, end: number, op: StorageOp, key: string): Promise<Uint8Array> {
  // A buffer of its own (not Node's shared pool): the caller may keep or transfer it.
  const out = new Uint8Array(Buffer.allocUnsafeSlow(end - start).buffer, 0, end - start);
  for (let filled = 0; filled < out.byteLength; ) {
    const { bytesRead } = await handle.read(out, filled, out.byteLength - filled, header.headerBytes + start + filled);
    if (bytesRead === 0) throw new StorageError("fatal", "the value file is corrupt (the file is truncated); restore it from a backup or delete the key", { op, key });
    filled += bytesRead;
  }
  return out;
}
