import { createReadStream, fstatSync } from "node:fs";
import { open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Writable } from "node:stream";
import type { CliIo } from "./context.js";
import { CliError, EXIT } from "./errors.js";

/** Where `put` reads from: a stream of chunks, and its size when known (for the progress bar). */
export interface Source {
  chunks: AsyncIterable<Uint8Array>;
  size?: number;
}

/**
 * Opens the body for `put`: the file named, or stdin when the name is `-` or missing. Reading
 * is streamed, never whole. Refuses to wait on an interactive terminal for stdin.
 */
export async function openSource(file: string | undefined, io: CliIo): Promise<Source> {
  if (file === undefined || file === "-") {
    if (io.stdin.isTTY) {
      throw new CliError(EXIT.usage, "no FILE given and stdin is a terminal: pass a FILE, or pipe the value in (`... | stowage put KEY -`)");
    }
    return { chunks: io.stdin, size: stdinSize(io) };
  }
  let size: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new CliError(EXIT.usage, `${JSON.stringify(file)} is not a regular file`);
    size = info.size;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw fileError(err, file, "read");
  }
  const stream = createReadStream(file);
  return { chunks: stream, size };
}

/** stdin redirected from a file (`< big.bin`) has a known size; a pipe has none. */
function stdinSize(io: CliIo): number | undefined {
  if (typeof io.stdin.fd !== "number") return undefined;
  try {
    const info = fstatSync(io.stdin.fd);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes `chunks` to `file` atomically: into a temporary file beside it, flushed to disk, then
 * renamed over it. A failed or interrupted `get -o` leaves any earlier file untouched and no
 * partial one behind.
 */
export async function writeFileAtomic(file: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString("hex")}.stowage-tmp`);
  let handle;
  try {
    handle = await open(temp, "wx");
  } catch (err) {
    throw fileError(err, file, "write");
  }
  try {
    try {
      for await (const chunk of chunks) {
        let offset = 0;
        while (offset < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
          offset += bytesWritten;
        }
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file).catch((err: unknown) => {
      throw fileError(err, file, "write");
    });
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

/** Writes text to a stream, waiting when its buffer is full (long listings stay bounded). */
export async function writeText(stream: Writable, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, "drain");
}

/** A local file error as one clear line with the right exit code. */
export function fileError(err: unknown, file: string, action: "read" | "write"): CliError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === "ENOENT" ? (action === "read" ? "no such file" : "its folder does not exist")
    : code === "EACCES" || code === "EPERM" ? "permission denied"
    : code === "EISDIR" ? "it is a folder"
    : code === "ENOSPC" ? "no space left on device"
    : err instanceof Error ? err.message : String(err);
  // A missing or unreadable input file is bad input; failing to write the output is a failure.
  const exitCode = action === "read" ? EXIT.usage : EXIT.failure;
  return new CliError(exitCode, `cannot ${action} ${JSON.stringify(file)}: ${reason}`, { cause: err });
}
