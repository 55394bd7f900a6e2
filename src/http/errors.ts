/**
 * Errors as HTTP answers: a StorageError's kind picks the status, the body is JSON
 * `{ "error": message, "kind" }`. Anything that is not a StorageError is a bug or a broken
 * connection: it answers 500 without its message, which may hold internals.
 */
import type { ServerResponse } from "node:http";
import { isStorageError, StorageError, type StorageErrorKind } from "../errors.js";

const STATUS: Record<StorageErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  conflict: 412,
  unsupported: 501,
  transient: 503,
  fatal: 500,
};

/** The HTTP status a StorageError of `kind` answers with. */
export function statusOf(kind: StorageErrorKind): number {
  return STATUS[kind];
}

/** An error the gateway itself raises with a status no StorageError kind gives (401, 403, 405…). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly kind: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Answers `body` as JSON with `status`, unless the response is already under way. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  res.end(text);
}

/**
 * Answers `err` as JSON. Once the body of a response has started, the status can no longer
 * change: the connection is cut so the client sees a truncated body, never a complete-looking one.
 */
export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message, kind: err.kind }, err.headers);
  if (isStorageError(err)) return sendJson(res, statusOf(err.kind), { error: err.message, kind: err.kind });
  sendJson(res, 500, { error: "internal error", kind: "fatal" });
}

/** A StorageError of kind `invalid` for a malformed request (bad header, query or path). */
export function badRequest(message: string, op: string): StorageError {
  return new StorageError("invalid", message, { op });
}
