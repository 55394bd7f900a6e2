import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  InvalidArgumentError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
  UserAuthenticationExpiredError,
} from "@nats-io/nats-core";
import { JetStreamApiCodes, JetStreamApiError, JetStreamError } from "@nats-io/jetstream";
import { StorageError, type StorageOp } from "../../errors.js";

/** Thrown by the backend itself for states only it can detect (a bucket of another kind…). */
export class NatsLayoutError extends Error {
  override readonly name: string = "NatsLayoutError";
}

/**
 * A large value's object is not (or no longer) in the object store. Reading a value that was
 * replaced can meet this once a sweep has reclaimed it; the store then tells that case apart.
 */
export class ObjectGoneError extends NatsLayoutError {
  override readonly name: string = "ObjectGoneError";
}

/** A write's condition (`ifMatch`, `ifNoneMatch`) did not hold: nothing was written. */
export class ConditionFailedError extends Error {
  override readonly name = "ConditionFailedError";
}

/**
 * Classifies what nats.js threw by class and JetStream API code, never by message text:
 * transport trouble is `transient` (a retry after reconnecting can work), refusals that need an
 * operator are `fatal` with what to do.
 */
export function classifyNatsError(err: unknown, op: StorageOp, key: string | undefined): StorageError {
  const make = (kind: "transient" | "fatal" | "not_found", message: string) => new StorageError(kind, message, { op, key, cause: err });
  if (err instanceof StorageError) return err;
  if (err instanceof NatsLayoutError) return make("fatal", err.message);
  if (err instanceof ConditionFailedError) return new StorageError("conflict", err.message, { op, key, cause: err });
  if (err instanceof TimeoutError) return make("transient", "NATS request timed out");
  if (err instanceof NoRespondersError) return make("transient", "no JetStream responder (server restarting or JetStream not ready); retry");
  if (err instanceof RequestError) {
    // nats.js wraps no-responders and timeouts of requests in a RequestError.
    if (err.isNoResponders() || err.cause instanceof NoRespondersError) {
      return make("transient", "no JetStream responder (JetStream disabled, server restarting, or reconnecting); retry, and check the server runs with -js");
    }
    if (err.cause instanceof Error) return classifyNatsError(err.cause, op, key);
    return make("transient", "NATS request failed");
  }
  if (err instanceof ClosedConnectionError || err instanceof DrainingConnectionError) return make("transient", "the NATS connection is closed or draining");
  if (err instanceof ConnectionError) return make("transient", "cannot reach the NATS server");
  if (err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError) {
    return make("fatal", "the NATS server refused the credentials: check user/password, token, nkey or creds file");
  }
  if (err instanceof PermissionViolationError) {
    return make("fatal", `permission denied for ${err.operation} on a JetStream subject: grant the user $JS.API.> and $KV.<bucket>.> / $O.<bucket>_large.>`);
  }
  if (err instanceof JetStreamApiError) {
    if (err.code === JetStreamApiCodes.JetStreamNotEnabledForAccount) return make("fatal", "JetStream is not enabled for this account: enable it in the server config (or run nats-server -js)");
    if (err.code === JetStreamApiCodes.StreamNotFound) return make("fatal", "the bucket's stream does not exist (deleted while the store was open?): reopen the store to recreate it");
    if (err.code === JetStreamApiCodes.NoMessageFound) return make("not_found", "no such message");
    // Only conditional writes publish with an expected last sequence.
    if (err.code === JetStreamApiCodes.StreamWrongLastSequence) return new StorageError("conflict", "the key changed since the etag the write names", { op, key, cause: err });
    // 10077: the stream's store refused the message, in practice "maximum bytes exceeded". The
    // server says 503, but retrying cannot help until someone frees space.
    if (err.code === 10077) return make("fatal", "the bucket's stream is full (its maxBytes limit or the server's JetStream storage): raise maxBytes, set a TTL, or delete data");
    if (err.status === 503 || err.status === 408) return make("transient", "JetStream is temporarily unavailable");
    return make("fatal", `JetStream refused the request (API error ${err.code}, status ${err.status})`);
  }
  if (err instanceof JetStreamError) {
    const code = (err as { code?: unknown }).code;
    if (code === 503 || code === 408 || code === 409) return make("transient", `JetStream status ${code}: retry`);
    if (err.name === "JetStreamNotEnabled") return make("fatal", "JetStream is not enabled on this server: run nats-server -js or enable jetstream in its config");
    return make("fatal", `JetStream error${typeof code === "number" ? ` (status ${code})` : ""}`);
  }
  if (err instanceof Error && err.name === "JetStreamNotEnabled") {
    // nats.js reports any JetStream request nobody answered as JetStreamNotEnabled. Once the
    // store is open, JetStream was there: nobody answering means the bucket's stream has no
    // leader right now (a cluster electing one after a node died) or the server is restarting.
    const noResponders = err.cause instanceof RequestError ? err.cause.isNoResponders() : err.cause instanceof NoRespondersError;
    if (noResponders && op !== "open") {
      return make("transient", "no JetStream responder for the bucket (its stream is electing a leader, or the server is restarting); retry");
    }
    return make("fatal", "JetStream is not enabled on this server: run nats-server -js or enable jetstream in its config");
  }
  if (err instanceof InvalidArgumentError) return make("fatal", "nats.js refused an argument (a stowage bug: please report it)");
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "ENOENT" || code === "EACCES") return make("fatal", "cannot read the NATS credentials or TLS file named in the options");
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return make("fatal", `unexpected NATS error: ${message}`);
}
