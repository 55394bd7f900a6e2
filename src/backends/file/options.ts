/** The file backend's options, checked and defaulted. */
import { resolve } from "node:path";
import { StorageError } from "../../errors.js";
import type { NameMode } from "./names.js";

/**
 * Options of the file backend. With `openStore("file:./data")` the directory comes from the URL;
 * `new FileStore({ root: "./data" })` takes it here.
 *
 * @example
 * const store = await FileStore.open({ root: "./data", fsync: false });
 */
export interface FileStoreOptions {
  /** The store's directory, created (with its parents) when missing. Relative to the working directory. */
  root?: string;
  /**
   * fsync each value file and its directory before a put or delete resolves (default true).
   * With false, writes stay atomic against a crashed process, but a power cut may lose the
   * latest ones (never tear them).
   */
  fsync?: boolean;
  /**
   * How keys are spelled as file names, chosen once when the store is created (default: probe
   * the filesystem; `portable` where it folds case or Unicode normalisation). See docs/file.md.
   */
  names?: NameMode;
  /** Temp files untouched for this many milliseconds are abandoned and removed by sweeps (default 1 hour). */
  staleTempMs?: number;
  /** Sweep stale temp files in the background when the store opens (default true). */
  sweepOnOpen?: boolean;
  /** Bytes per chunk of `getStream` (default 64 KiB); memory per open stream is about this. */
  chunkBytes?: number;
}

const HOUR = 60 * 60 * 1000;

export interface ResolvedFileOptions {
  root: string;
  fsync: boolean;
  names: NameMode | undefined;
  staleTempMs: number;
  sweepOnOpen: boolean;
  chunkBytes: number;
}

/** Checks `options` (refusing bad ones with kind `invalid`) and fills in the defaults. */
export function resolveFileOptions(options: FileStoreOptions): ResolvedFileOptions {
  const fail = (message: string) => new StorageError("invalid", message, { op: "open" });
  if (typeof options?.root !== "string" || options.root === "") throw fail("FileStore needs a root directory: new FileStore({ root: './data' })");
  if (options.names !== undefined && options.names !== "readable" && options.names !== "portable") throw fail(`names must be "readable" or "portable", got ${String(options.names)}`);
  const staleTempMs = options.staleTempMs ?? HOUR;
  if (typeof staleTempMs !== "number" || !(staleTempMs >= 0)) throw fail(`staleTempMs must be a number of milliseconds >= 0, got ${String(staleTempMs)}`);
  const chunkBytes = options.chunkBytes ?? 64 * 1024;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw fail(`chunkBytes must be a positive integer, got ${String(chunkBytes)}`);
  return {
    root: resolve(options.root),
    fsync: options.fsync ?? true,
    names: options.names,
    staleTempMs,
    sweepOnOpen: options.sweepOnOpen ?? true,
    chunkBytes,
  };
}
