import type { Readable, Writable } from "node:stream";
import { openStore } from "../open.js";
import type { Store } from "../types.js";

/** Where the CLI reads and writes: the process's streams in `main.ts`, others in tests. */
export interface CliIo {
  stdin: Readable & { isTTY?: boolean; fd?: number };
  stdout: Writable;
  stderr: Writable & { isTTY?: boolean; columns?: number };
  env: Record<string, string | undefined>;
  /** Aborted on Ctrl-C; commands pass it to every store call. */
  signal?: AbortSignal;
}

/** The store used when neither `--store` nor `STOWAGE_STORE` names one. */
export const DEFAULT_STORE_URL = "file:./.stowage";
/** The environment variable naming the store (the `--store` flag wins over it). */
export const STORE_ENV = "STOWAGE_STORE";

/**
 * What every command's `register(program, context)` receives: the IO, the global options and
 * the store they name. Commands open the store only inside their action, via `withStore`.
 */
export interface CliContext {
  readonly io: CliIo;
  /** Aborted on Ctrl-C (undefined in tests that do not need it). */
  readonly signal: AbortSignal | undefined;
  /** The store URL: `--store`, else `$STOWAGE_STORE`, else `file:./.stowage`. May hold secrets: print `redactUrl(...)` of it. */
  storeUrl(): string;
  /**
   * Opens the store named by {@link storeUrl}; the caller closes it. `readOnly`: create nothing
   * (no bucket, table or directory); a missing one is `not_found`.
   */
  openStore(options?: { readOnly?: boolean }): Promise<Store>;
  /** Opens the store, runs `work`, and closes the store whatever happens. */
  withStore<T>(work: (store: Store) => Promise<T>, options?: { readOnly?: boolean }): Promise<T>;
  /** True when progress bars may be drawn (stderr is a terminal). */
  readonly interactive: boolean;
}

export function createContext(io: CliIo, globalStore: () => string | undefined): CliContext {
  const storeUrl = (): string => globalStore() ?? nonEmpty(io.env[STORE_ENV]) ?? DEFAULT_STORE_URL;
  const open = (options: { readOnly?: boolean } = {}): Promise<Store> => openStore(storeUrl(), options.readOnly ? { create: false } : {});
  return {
    io,
    signal: io.signal,
    storeUrl,
    openStore: open,
    interactive: io.stderr.isTTY === true,
    async withStore<T>(work: (store: Store) => Promise<T>, options?: { readOnly?: boolean }): Promise<T> {
      const store = await open(options);
      try {
        return await work(store);
      } finally {
        // A failing close must not hide the command's own error or result.
        await store.close().catch(() => undefined);
      }
    },
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}
