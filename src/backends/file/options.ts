/** The file backend's options, checked and defaulted. */
import { resolve } from "node:path";
import { StorageError } from "../../errors.js";
import type { NameMode } from "./names.js";

/**
 * Options of the file backend. With `openStore("file:./data")` the directory comes from the URL;
 * `FileStore.open({ root: "./data" })` takes it here.
 *
 * @example
 * const store = await FileStore.open({ root: "./data", fsync: false });
 */
export interface FileStoreOptions {
  /** The store's directory, created (with its parents) when missing. Relative to the working directory. */
  root?: string;
  /**
   * Create the directory (and its parents) when it is missing (default true). `false`: opening
   * creates nothing, and a missing directory, or one that holds no store, rejects with kind
   * `not_found` naming it.
   */
  create?: boolean;
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
  /**
   * Milliseconds after which a key's commit lock is taken from a holder that cannot be seen to
   * be alive (one on another machine, or in another container), default 30 s. A holder on this
   * machine that died is seen at once. A writer that held a lock for half this long gives up
   * its write (`transient`) instead of committing it. See docs/file.md, "Conditional writes".
   */
  staleLockMs?: number;
}

const HOUR = 60 * 60 * 1000;

export interface ResolvedFileOptions {
  root: string;
  create: boolean;
  fsync: boolean;
  names: NameMode | undefined;
  staleTempMs: number;
  sweepOnOpen: boolean;
  chunkBytes: number;
  staleLockMs: number;
}

/** Checks `options` (refusing bad ones with kind `invalid`) and fills in the defaults. */
export function resolveFileOptions(options: FileStoreOptions): ResolvedFileOptions {
  const fail = (message: string) => new StorageError("invalid", message, { op: "open" });
  if (options === null || typeof options !== "object") throw fail("FileStore.open needs options: FileStore.open({ root: './data' })");
  if (typeof options.root !== "string" || options.root === "") throw fail("FileStore needs a root directory: FileStore.open({ root: './data' })");
  if (options.names !== undefined && options.names !== "readable" && options.names !== "portable") throw fail(`names must be "readable" or "portable", got ${String(options.names)}`);
  for (const name of ["create", "fsync", "sweepOnOpen"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "boolean") throw fail(`${name} must be true or false, got ${String(options[name])}`);
  }
  const staleTempMs = options.staleTempMs ?? HOUR;
  if (typeof staleTempMs !== "number" || !(staleTempMs >= 0)) throw fail(`staleTempMs must be a number of milliseconds >= 0, got ${String(staleTempMs)}`);
  const staleLockMs = options.staleLockMs ?? 30_000;
  if (typeof staleLockMs !== "number" || !(staleLockMs > 0) || !Number.isFinite(staleLockMs)) throw fail(`staleLockMs must be a number of milliseconds > 0, got ${String(staleLockMs)}`);
  const chunkBytes = options.chunkBytes ?? 64 * 1024;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw fail(`chunkBytes must be a positive integer, got ${String(chunkBytes)}`);
  return {
    root: resolve(options.root),
    create: options.create ?? true,
    fsync: options.fsync ?? true,
    names: options.names,
    staleTempMs,
    sweepOnOpen: options.sweepOnOpen ?? true,
    chunkBytes,
    staleLockMs,
  };
}
