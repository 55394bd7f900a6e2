/**
 * Classifies what the AWS SDK throws by the S3 error code (the error's `name`), the HTTP status
 * in `$metadata.httpStatusCode` and Node's network `code`: never by message text. Each code
 * S3 documents that a store can meet has a row in {@link S3_ERRORS}: its kind and a message that
 * says what to do.
 */
import { StorageError, type StorageErrorKind, type StorageOp } from "../../errors.js";

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
}

/** Where the error came from, for messages that say what to do. */
export interface ErrorContext {
  op: StorageOp;
  key: string | undefined;
  bucket: string;
  /** The store asks for SSE-KMS, so a denial may be KMS's. */
  kms?: boolean;
}

interface Row {
  kind: StorageErrorKind | ((context: ErrorContext) => StorageErrorKind);
  message: (context: ErrorContext, detail: string) => string;
}

const throttled: Row = { kind: "transient", message: (_, d) => `${d}: the S3 server is throttling requests; slow down and retry later` };
const busy: Row = { kind: "transient", message: (_, d) => `${d}: the S3 server is unavailable or timed out; retry later` };
const credentials: Row = {
  kind: "fatal",
  message: (_, d) => `${d}: the S3 credentials were refused or missing; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) or AWS_PROFILE, or pass s3.credentials`,
};
const expired: Row = { kind: "fatal", message: (_, d) => `${d}: the session token has expired; refresh the credentials (aws sso login, a new role session)` };
const denied: Row = { kind: "fatal", message: (c, d) => `${d}: ${deniedAdvice(c)}` };
const badRequest: Row = { kind: "invalid", message: (_, d) => `${d}: the S3 server refused the request as invalid` };
const missingKey: Row = { kind: "not_found", message: () => "no value at this key" };
const conflict: Row = { kind: "conflict", message: (_, d) => `${d}: the condition of this write did not hold (the key's etag changed, it exists, or it is missing); nothing was changed` };
const wrongRegion: Row = {
  kind: "fatal",
  message: (c, d) => `${d}: bucket "${c.bucket}" is in another region than the client's; set region= to the bucket's region`,
};

/** S3 error codes and what each means for a store. */
export const S3_ERRORS: Readonly<Record<string, Row>> = {
  NoSuchKey: missingKey,
  // A HEAD's 404 has no body: at open it is HeadBucket's (the bucket), else HeadObject's (the key).
  NotFound: { kind: "not_found", message: (c) => (c.op === "open" ? bucketMissing(c) : "no value at this key") },
  NoSuchVersion: { kind: "not_found", message: () => "no such version of this key" },
  NoSuchBucket: { kind: (c) => (c.op === "open" ? "not_found" : "fatal"), message: (c) => bucketMissing(c) },
  NoSuchUpload: { kind: "transient", message: (_, d) => `${d}: the multipart upload was aborted or expired on the server (a lifecycle rule, another client); retry the write` },

  SlowDown: throttled,
  Throttling: throttled,
  ThrottlingException: throttled,
  ThrottledException: throttled,
  RequestThrottled: throttled,
  RequestLimitExceeded: throttled,
  TooManyRequestsException: throttled,
  ServiceUnavailable: busy,
  InternalError: busy,
  RequestTimeout: busy,
  RequestTimeoutException: busy,
  TimeoutError: busy,
  OperationAborted: { kind: "transient", message: (_, d) => `${d}: a conflicting operation on the bucket is in progress; retry later` },
  XMinioServerNotInitialized: busy,

  // The SDK learns the server's clock from this answer, so the next request is signed right.
  RequestTimeTooSkewed: {
    kind: "transient",
    message: (_, d) => `${d}: this machine's clock differs from the S3 server's by more than 15 minutes; synchronise it (NTP: chrony, systemd-timesyncd). The client has adjusted to the server's clock, so a retry may pass`,
  },
  InvalidObjectState: {
    kind: "fatal",
    message: (c, d) => `${d}: the object is archived (Glacier or Deep Archive storage class) and cannot be read until restored; restore it first (aws s3api restore-object --bucket ${c.bucket} --key …) and read it once the restore has completed`,
  },
  AccessDenied: denied,
  AllAccessDisabled: denied,
  InvalidAccessKeyId: credentials,
  SignatureDoesNotMatch: credentials,
  InvalidToken: credentials,
  InvalidClientTokenId: credentials,
  CredentialsProviderError: credentials,
  ExpiredToken: expired,
  TokenRefreshRequired: expired,
  PermanentRedirect: wrongRegion,
  AuthorizationHeaderMalformed: wrongRegion,
  IllegalLocationConstraintException: wrongRegion,

  PreconditionFailed: conflict,
  // A concurrent conditional write to the same key won (AWS answers 409): nothing was changed.
  ConditionalRequestConflict: conflict,
  InvalidRange: { kind: "invalid", message: (_, d) => `${d}: the range starts past the end of the value` },

  NotImplemented: { kind: "unsupported", message: (_, d) => `${d}: this S3 server does not implement the request` },
  KeyTooLongError: badRequest,
  MetadataTooLarge: badRequest,
  EntityTooLarge: badRequest,
  EntityTooSmall: badRequest,
  InvalidArgument: badRequest,
  InvalidRequest: badRequest,
  InvalidPart: badRequest,
  InvalidPartOrder: badRequest,
  InvalidObjectName: badRequest,
  InvalidBucketName: badRequest,
  InvalidEncryptionAlgorithmError: { kind: "invalid", message: (_, d) => `${d}: the server does not accept this server-side encryption (sse); check the sse option` },
  KMSKeyNotFound: { kind: "fatal", message: (_, d) => `${d}: the KMS key for server-side encryption was not found; check sseKmsKeyId` },
};

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

/** What each operation needs from IAM, for an AccessDenied message that names it. */
const PERMISSIONS: Record<string, { request: string; permission: string }> = {
  open: { request: "the bucket check at open (HeadBucket / GetBucketVersioning)", permission: "s3:ListBucket" },
  get: { request: "GetObject", permission: "s3:GetObject (and s3:ListBucket, or a missing key reads as denied)" },
  getStream: { request: "GetObject", permission: "s3:GetObject (and s3:ListBucket, or a missing key reads as denied)" },
  getMany: { request: "GetObject", permission: "s3:GetObject (and s3:ListBucket)" },
  stat: { request: "HeadObject", permission: "s3:GetObject (and s3:ListBucket, or a missing key reads as denied)" },
  put: { request: "PutObject", permission: "s3:PutObject (and s3:AbortMultipartUpload for values above partSize)" },
  putStream: { request: "PutObject / multipart upload", permission: "s3:PutObject and s3:AbortMultipartUpload" },
  putMany: { request: "PutObject", permission: "s3:PutObject" },
  delete: { request: "DeleteObject", permission: "s3:DeleteObject" },
  deleteMany: { request: "DeleteObjects", permission: "s3:DeleteObject" },
  list: { request: "ListObjectsV2", permission: "s3:ListBucket" },
  versions: { request: "ListObjectVersions", permission: "s3:ListBucketVersions" },
};

function deniedAdvice(c: ErrorContext): string {
  const known = PERMISSIONS[c.op];
  const what = known ? `${known.request} was denied on bucket "${c.bucket}"; grant these credentials ${known.permission} on it` : `access to bucket "${c.bucket}" was denied`;
  const kms = c.kms && /^(get|put)/.test(c.op) ? " (with SSE-KMS, also kms:GenerateDataKey and kms:Decrypt on the key)" : "";
  return `${what}${kms}, or check the bucket policy`;
}

function bucketMissing(c: ErrorContext): string {
  return `bucket "${c.bucket}" does not exist: create it (aws s3 mb s3://${c.bucket}, mc mb) or fix the URL`;
}

/** Turns an SDK (or network) error into a StorageError; `StorageError`s pass through. */
export function classifyS3Error(err: unknown, context: ErrorContext): StorageError {
  if (err instanceof StorageError) return err;
  const { op, key } = context;
  const shape = (err ?? {}) as SdkErrorShape;
  const code = shape.name === "Error" || shape.name === undefined ? (shape.Code ?? shape.code ?? shape.name) : shape.name;
  const status = shape.$metadata?.httpStatusCode;
  const make = (kind: StorageErrorKind, message: string) => new StorageError(kind, message, { op, key, cause: err });
  const detail = `${code ?? "error"}${status ? ` (HTTP ${status})` : ""}`;

  const row = code === undefined ? undefined : Object.hasOwn(S3_ERRORS, code) ? S3_ERRORS[code] : undefined;
  if (row) return make(typeof row.kind === "function" ? row.kind(context) : row.kind, row.message(context, detail));
  // KMS's own codes come through S3 as `KMS.<Exception>`.
  if (code?.startsWith("KMS.")) return make("fatal", `${detail}: the KMS key for server-side encryption cannot be used (missing, disabled or not allowed); check sseKmsKeyId and the key policy`);
  const network = networkCode(err);
  if (network) return make("transient", `cannot reach the S3 endpoint (${network}); retry later`);
  // Codes without a row, by their HTTP status (a HEAD's errors have no body, so no code).
  if (status === 429) return make("transient", throttled.message(context, detail));
  if (status === 403) return make("fatal", denied.message(context, detail));
  if (status === 412) return make("conflict", conflict.message(context, detail));
  if (status === 416) return make("invalid", S3_ERRORS.InvalidRange!.message(context, detail));
  if (status === 501) return make("unsupported", S3_ERRORS.NotImplemented!.message(context, detail));
  if (status !== undefined && status >= 500) return make("transient", `${detail}: the S3 server failed; retry later`);
  if (status === 404) return op === "open" ? make("not_found", bucketMissing(context)) : make("not_found", "no value at this key");
  if (status === 400) return make("invalid", badRequest.message(context, detail));
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
