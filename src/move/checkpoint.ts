/**
 * Where a mirror keeps its progress: a small JSON document, in a key of the destination
 * (`.stowage/mirror/<name>` by default) or in a local file. It is written only after the
 * changes it covers were applied, so a mirror killed at any moment restarts from a position
 * that is never ahead of the destination.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { StorageError, isStorageError } from "../errors.js";
import { assertKey } from "../keys.js";
import type { Store } from "../types.js";

/** The folder of the destination that holds mirror checkpoints. */
export const CHECKPOINT_FOLDER = ".stowage/mirror/";

/** What a checkpoint records. */
export interface CheckpointState {
  /** Format of this document. */
  format: 1;
  /** Every change of the source made before this time (epoch ms) is applied to the destination. */
  appliedUntil: number;
  /** When the last complete reconcile pass (deletes) finished, epoch ms. */
  reconciledAt?: number;
  /** Source prefix and destination prefix it was written for: a different pair starts afresh. */
  prefix: string;
  destinationPrefix: string;
}

/** Where a checkpoint lives: a key of the destination, or a local file. */
export type CheckpointLocation = { key: string } | { file: string };

export interface Checkpoint {
  /** The destination key it lives in, when it lives there (mirroring never touches it). */
  readonly key: string | undefined;
  /** Read it; undefined when none was written yet. */
  read(signal?: AbortSignal): Promise<CheckpointState | undefined>;
  write(state: CheckpointState, signal?: AbortSignal): Promise<void>;
}

/** The default checkpoint key of a mirror called `name`. */
export function defaultCheckpointKey(name: string): string {
  return `${CHECKPOINT_FOLDER}${name}`;
}

/**
 * The location a CLI argument names: `file:PATH`, or a path starting with `/`, `./` or `../`,
 * is a local file; anything else is a key of the destination.
 */
export function parseCheckpointLocation(text: string): CheckpointLocation {
  if (text.startsWith("file:")) return { file: text.slice("file:".length) };
  if (/^(\/|\.\.?\/)/.test(text)) return { file: text };
  return { key: text };
}

export function openCheckpoint(destination: Store, location: CheckpointLocation): Checkpoint {
  return "file" in location ? fileCheckpoint(location.file) : keyCheckpoint(destination, location.key);
}

function keyCheckpoint(destination: Store, key: string): Checkpoint {
  assertKey(key, "mirror");
  return {
    key,
    async read(signal) {
      try {
        return parse(new TextDecoder().decode(await destination.get(key, { signal })), `key ${key}`);
      } catch (err) {
        if (isStorageError(err, "not_found")) return undefined;
        throw err;
      }
    },
    async write(state, signal) {
      await destination.put(key, encode(state), { signal, metadata: { "content-type": "application/json" } });
    },
  };
}

function fileCheckpoint(path: string): Checkpoint {
  return {
    key: undefined,
    async read() {
      try {
        return parse(await readFile(path, "utf8"), `file ${path}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
    },
    async write(state) {
      // Written aside and renamed over: a crash leaves the old checkpoint or the new, never half of one.
      await mkdir(dirname(path), { recursive: true });
      const temporary = `${path}.${process.pid}.tmp`;
      await writeFile(temporary, encode(state));
      await rename(temporary, path);
    },
  };
}

function encode(state: CheckpointState): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(state)}\n`);
}

function parse(text: string, where: string): CheckpointState {
  let value: Partial<CheckpointState>;
  try {
    value = JSON.parse(text) as Partial<CheckpointState>;
  } catch {
    throw new StorageError("invalid", `the mirror checkpoint in ${where} is not JSON: delete it to copy everything again`, { op: "mirror" });
  }
  if (value?.format !== 1 || typeof value.appliedUntil !== "number" || typeof value.prefix !== "string" || typeof value.destinationPrefix !== "string") {
    throw new StorageError("invalid", `the mirror checkpoint in ${where} is not one this version wrote: delete it to copy everything again`, { op: "mirror" });
  }
  return value as CheckpointState;
}
