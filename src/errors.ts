/**
 * The one error class stowage throws. Callers branch on {@link StorageError.kind}, never on the
 * message: kinds are stable, messages may improve.
 *
 * - `invalid`: the caller's input is wrong (key, value, metadata, option, URL). Retrying the same
 *   call can never succeed.
 * - `not_found`: the key (or the version asked for) does not exist.
 * - `transient`: the backend could not be reached or was temporarily unable (timeouts, lost
 *   connections, throttling, 5xx, serialization failures). The same call may succeed later;
 *   `withRetry` retries exactly these.
 * - `fatal`: the backend refused in a way retrying will not fix (permissions, missing bucket,
 *   wrong schema, a closed store, a bug). The message says what to do.
 * - `unsupported`: the store cannot do this operation at all (for example `versions` on a backend
 *   without history). Distinct from `invalid` because the input was fine; check
 *   `store.capabilities` first.
 * - `conflict`: the condition of a conditional write (`ifMatch`, `ifNoneMatch`) did not hold;
 *   nothing was changed. Read the key again and decide.
 */
export type StorageErrorKind = "invalid" | "not_found" | "transient" | "fatal" | "unsupported" | "conflict";

/** The operation an error came from; `open` covers URL parsing and connecting. */
export type StorageOp =
  | "open"
  | "close"
  | "put"
  | "get"
  | "list"
  | "delete"
  | "stat"
  | "versions"
  | "putStream"
  | "getStream"
  | "putMany"
  | "getMany"
  | "deleteMany"
  | "watch"
  | "archive"
  | (string & {});

export interface StorageErrorOptions {
  op: StorageOp;
  key?: string;
  cause?: unknown;
}

/**
 * Marks every StorageError, so `isStorageError` recognises one made by another copy of this
 * package (two versions in one dependency tree), where `instanceof` would not.
 */
const BRAND = Symbol.for("stowage.StorageError");

export class StorageError extends Error {
  override readonly name = "StorageError";
  declare readonly [BRAND]: true;
  readonly kind: StorageErrorKind;
  readonly op: StorageOp;
  readonly key: string | undefined;
  /** The message without the operation and key it starts with. */
  readonly detail: string;

  constructor(kind: StorageErrorKind, message: string, options: StorageErrorOptions) {
    super(formatMessage(options.op, options.key, message), { cause: options.cause });
    this.detail = message;
    this.kind = kind;
    this.op = options.op;
    this.key = options.key;
  }

  /** True for errors a retry may fix (`transient`). */
  get retryable(): boolean {
    return this.kind === "transient";
  }

  /** A plain object for logs and wire formats (the component's error responses). */
  toJSON(): { name: string; kind: StorageErrorKind; op: string; key?: string; message: string } {
    return { name: this.name, kind: this.kind, op: this.op, key: this.key, message: this.message };
  }
}

function formatMessage(op: string, key: string | undefined, message: string): string {
  if (key === undefined) return `${op}: ${message}`;
  // Keys can be long or hold control characters (the ones we refuse); keep messages one line.
  const shown = JSON.stringify(key.length > 120 ? `${key.slice(0, 117)}...` : key);
  return `${op} ${shown}: ${message}`;
}

Object.defineProperty(StorageError.prototype, BRAND, { value: true });

/**
 * True when `err` is a StorageError, optionally of the given kind. Works across copies of the
 * package (it checks a brand, not the class).
 */
export function isStorageError(err: unknown, kind?: StorageErrorKind): err is StorageError {
  return typeof err === "object" && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true && (kind === undefined || (err as StorageError).kind === kind);
}

/**
 * True when `err` is the rejection of an aborted signal (the signal's reason, or the
 * AbortError/TimeoutError a client library threw for it).
 */
export function isAbortError(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted && err === signal.reason) return true;
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}
