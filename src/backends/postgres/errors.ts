/**
 * Classifying what `pg` throws: by SQLSTATE (`err.code` on a server error) or by the Node
 * system error code (`ECONNREFUSED`…), never by message text.
 */
import { StorageError, type StorageErrorKind, type StorageOp } from "../../errors.js";
import { DEADLINE_PASSED } from "./schema.js";

/** SQLSTATE classes (first two characters) and codes, with the kind and advice for each. */
const BY_CODE: Record<string, [StorageErrorKind, string]> = {
  // Retry may help: the server is restarting, overloaded, or chose us as a victim.
  "40001": ["transient", "serialization failure; retry"],
  "40P01": ["transient", "deadlock detected; retry"],
  "53300": ["transient", "too many connections on the server; retry later or lower the pool size"],
  "53200": ["transient", "the server is out of memory"],
  "55P03": ["transient", "lock not available"],
  "57014": ["transient", "the statement was cancelled (statement_timeout or a cancel request)"],
  "57P01": ["transient", "the server is shutting down (admin shutdown)"],
  "57P02": ["transient", "the server crashed (crash shutdown)"],
  "57P03": ["transient", "the server is starting up or shutting down; retry"],
  "58000": ["transient", "system error on the server"],
  // The fence (schema.ts): the write arrived after its deadline and changed nothing.
  [DEADLINE_PASSED]: ["transient", "the write reached PostgreSQL after its deadline and was not applied"],
  // Retrying will not help; a person must act.
  "42501": ["fatal", "insufficient privilege: GRANT the role SELECT, INSERT, UPDATE, DELETE on the store's tables and USAGE on its sequence (see docs/postgres.md)"],
  "3D000": ["fatal", "the database does not exist: create it or fix the database name in the URL"],
  "3F000": ["fatal", "the schema does not exist: create it or fix ?schema="],
  "42P01": ["fatal", "a store table is missing (dropped after the store opened?): reopen the store to recreate it, or apply docs/postgres.md"],
  "42883": ["fatal", "a stowage function is missing (the table was made by an earlier stowage or by hand): open the store once with a role that may CREATE, or apply the SQL in docs/postgres.md"],
  "42703": ["fatal", "a store table lacks a column: the table is not a stowage table; choose another ?table= or migrate it (docs/postgres.md)"],
  "42804": ["fatal", "a store table has a column of the wrong type: the table is not a stowage table; choose another ?table= or migrate it (docs/postgres.md)"],
  "53100": ["fatal", "the server's disk is full"],
  "25006": ["fatal", "the server is read-only (a standby, or default_transaction_read_only): connect to the primary"],
  "54000": ["invalid", "a value exceeds a PostgreSQL limit"],
};
const BY_CLASS: Record<string, [StorageErrorKind, string]> = {
  "08": ["transient", "connection exception"],
  "28": ["fatal", "authentication failed: check the user and password in the URL and pg_hba.conf"],
  "22": ["invalid", "the server refused a value (data exception)"],
  "23": ["fatal", "a constraint of a store table was violated: the table is not used as stowage expects"],
  "42": ["fatal", "the server refused a statement (syntax or access rule): the table may not be a stowage table"],
  "XX": ["fatal", "internal error on the server"],
};

/** Node system error codes of sockets and DNS. */
const SYSTEM: Record<string, [StorageErrorKind, string]> = {
  ECONNREFUSED: ["transient", "connection refused: is PostgreSQL running at that host and port?"],
  ECONNRESET: ["transient", "connection reset by the server"],
  ETIMEDOUT: ["transient", "connection timed out"],
  EPIPE: ["transient", "connection closed by the server"],
  EHOSTUNREACH: ["transient", "host unreachable"],
  ENETUNREACH: ["transient", "network unreachable"],
  EAI_AGAIN: ["transient", "temporary DNS failure"],
  ENOTFOUND: ["fatal", "host not found: check the host name in the URL"],
  EACCES: ["fatal", "permission denied opening the connection (Unix socket permissions?)"],
};

function kindOf(err: unknown): [StorageErrorKind, string] | undefined {
  if (err === null || typeof err !== "object") return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") {
    if (code in SYSTEM) return SYSTEM[code];
    if (/^[0-9A-Z]{5}$/.test(code)) return BY_CODE[code] ?? BY_CLASS[code.slice(0, 2)] ?? ["fatal", `server error SQLSTATE ${code}`];
  }
  // AggregateError from a multi-address connect (IPv4 + IPv6): classify by its first error.
  if (err instanceof AggregateError && err.errors.length > 0) return kindOf(err.errors[0]);
  return undefined;
}

/**
 * Turns an error from `pg` into a StorageError. Errors `pg` raises itself without a code
 * (a connection that ended, a pool connect timeout) are plain `Error`s: those are about the
 * connection, so they are `transient`. Programming errors (TypeError…) stay `fatal`.
 */
export function classifyPgError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
  if (err instanceof StorageError) return err;
  const found = kindOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (found) return new StorageError(found[0], `${found[1]} (${detail})`, { op, key, cause: err });
  if (err instanceof Error && err.constructor === Error) {
    return new StorageError("transient", `connection to PostgreSQL failed (${detail})`, { op, key, cause: err });
  }
  return new StorageError("fatal", `unexpected error: ${detail}`, { op, key, cause: err });
}

/**
 * True when the server answered the statement with an error (a SQLSTATE) on a connection that
 * is still good to use; false for a lost connection (class 08, a server shutting down) or an
 * error raised by `pg` itself.
 */
export function answeredByServer(err: unknown): boolean {
  const code = err !== null && typeof err === "object" ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith("08") && !code.startsWith("57P");
}
