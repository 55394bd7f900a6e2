/**
 * Classifies what the AWS SDK throws by the error's `name` (the S3 error code), the HTTP status
 * in `$metadata.httpStatusCode` and Node's network `code`: never by message text.
 */
import { StorageError, type StorageOp } from "../../errors.js";

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  cause?: unknown;
}

/** S3 codes that mean "try again later". */
const TRANSIENT_CODES = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "RequestThrottled",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "ServiceUnavailable",
  "InternalError",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
  "OperationAborted", // a conflicting operation on the bucket is in progress
  "XMinioServerNotInitialized",
]);

/** Node and undici network failures: the server could not be reached or dropped us. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "ENETDOWN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

const CREDENTIAL_CODES = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "InvalidClientTokenId",
  "CredentialsProviderError",
]);

const INVALID_CODES = new Set([
  "KeyTooLongError",
  "MetadataTooLarge",
  "EntityTooLarge",
  "EntityTooSmall",
  "InvalidArgument",
  "InvalidRequest",
  "InvalidPart",
  "InvalidPartOrder",
  "InvalidObjectName",
]);

const NOT_FOUND_CODES = new Set(["NoSuchKey", "NotFound", "NoSuchVersion"]);

/** Where the error came from, for messages that say what to do. */
export interface ErrorContext {
  op: StorageOp;
  key: string | undefined;
  bucket: string;
}

/** Turns an SDK (or network) error into a StorageError; `StorageError`s pass through. */
export function classifyS3Error(err: unknown, { op, key, bucket }: ErrorContext): StorageError {
  if (err instanceof StorageError) return err;
  const shape = (err ?? {}) as SdkErrorShape;
  const code = shape.name === "Error" || shape.name === undefined ? (shape.Code ?? shape.code ?? shape.name) : shape.name;
  const status = shape.$metadata?.httpStatusCode;
  const make = (kind: StorageError["kind"], message: string) => new StorageError(kind, message, { op, key, cause: err });
  const detail = `${code ?? "error"}${status ? ` (HTTP ${status})` : ""}`;

  if (code === "NoSuchBucket") {
    return make("fatal", `bucket "${bucket}" does not exist: create it (aws s3 mb s3://${bucket}, mc mb) or fix the URL`);
  }
  if (code && NOT_FOUND_CODES.has(code)) return make("not_found", "no value at this key");
  if (code && CREDENTIAL_CODES.has(code)) {
    return make("fatal", `${detail}: the S3 credentials were refused or missing; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or pass s3.credentials`);
  }
  if (code === "AccessDenied" || code === "AllAccessDisabled" || status === 403) {
    return make("fatal", `${detail}: access to bucket "${bucket}" was denied; grant these credentials s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it`);
  }
  if (code === "NotImplemented" || code === "MethodNotAllowed" || status === 501) {
    return make("fatal", `${detail}: this S3 server does not implement the request`);
  }
  if (code && TRANSIENT_CODES.has(code)) return make("transient", `${detail}: the S3 server is busy or timed out; retry later`);
  const network = networkCode(err);
  if (network) return make("transient", `cannot reach the S3 endpoint (${network}); retry later`);
  if (status === 429 || (status !== undefined && status >= 500)) return make("transient", `${detail}: the S3 server failed; retry later`);
  if (code && INVALID_CODES.has(code)) return make("invalid", `${detail}: the S3 server refused the request as invalid`);
  if (status === 404) return make("not_found", "no value at this key");
  if (status === 400) return make("invalid", `${detail}: the S3 server refused the request as invalid`);
  if (status === undefined && err instanceof Error) {
    // Not from S3 at all: a failing source stream, a bug. Say what it was.
    return make("fatal", `unexpected error: ${err.name === "Error" ? "" : `${err.name}: `}${err.message}`);
  }
  return make("fatal", `unexpected S3 error ${detail}`);
}

/** The network error code of `err` or of one of its causes. */
function networkCode(err: unknown): string | undefined {
  for (let e = err as SdkErrorShape | undefined, depth = 0; e && depth < 5; e = e.cause as SdkErrorShape | undefined, depth++) {
    if (typeof e.code === "string" && NETWORK_CODES.has(e.code)) return e.code;
    if (e.name === "TimeoutError") return "timeout";
  }
  return undefined;
}
