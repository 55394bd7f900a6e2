/**
 * `s3://` URLs and {@link S3StoreOptions} turned into what the store needs: bucket, key prefix,
 * an S3Client configuration and the tuning numbers.
 */
import type { S3Client, S3ClientConfig, ServerSideEncryption } from "@aws-sdk/client-s3";
import { StorageError } from "../../errors.js";
import { keyProblem } from "../../keys.js";
import type { StoreUrl } from "../../types.js";
import { readUrlParams } from "../../internal/url-params.js";
import { NoThrottlingRetries, SDK_MAX_ATTEMPTS } from "./retry.js";

const MiB = 1024 * 1024;
/** S3's smallest part (all but the last). */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's largest part. */
export const MAX_PART_SIZE = 5 * 1024 * MiB;

/**
 * Options for the S3 backend (`openStore("s3://…", { s3: { … } })` or `new S3Store(…)`).
 * Values in the URL's query win over these.
 *
 * @example
 * // MinIO on loopback, credentials from the environment (AWS_ACCESS_KEY_ID…)
 * const store = await openStore("s3://events/tenant-a?endpoint=http://127.0.0.1:9000&forcePathStyle=true");
 * @example
 * // An S3Client you own (it is not destroyed by close())
 * const store = await S3Store.open({ client, bucket: "events", prefix: "tenant-a" });
 */
export interface S3StoreOptions {
  /** A client to use instead of creating one; the caller owns it (close() leaves it alone). */
  client?: S3Client;
  /**
   * `false`: open writes nothing (the store never creates buckets; with `false` it also skips
   * the conditional-write probe, so `conditionalWrites` is false unless given as true). A
   * missing bucket rejects with kind `not_found` either way.
   */
  create?: boolean;
  /** The bucket (the URL's host). */
  bucket?: string;
  /**
   * A key prefix acting as a namespace: keys and listings are relative to it. A `/` is added
   * when missing, so `tenant-a` stores `k` as `tenant-a/k`. Prefix plus key must fit S3's
   * 1024 bytes.
   */
  prefix?: string;
  /** An S3-compatible endpoint such as `http://127.0.0.1:9000` (MinIO); default AWS. */
  endpoint?: string;
  /** Region; default from the AWS chain (AWS_REGION, profile), else `us-east-1` with an endpoint. */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which MinIO and most S3-compatible servers want. */
  forcePathStyle?: boolean;
  /** Explicit credentials; default the AWS chain (environment, shared profile, SSO, instance role). */
  credentials?: S3ClientConfig["credentials"];
  /** A named profile of ~/.aws/config and ~/.aws/credentials. */
  profile?: string;
  /**
   * When the SDK adds checksums (default `"WHEN_REQUIRED"`). `"WHEN_SUPPORTED"`, the SDK's own
   * default, sends stream bodies `aws-chunked` with a trailing checksum, which S3-compatible
   * servers that do not know that encoding store verbatim (framing included).
   */
  checksums?: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  /**
   * Bytes per multipart part, at least 5 MiB (default 8 MiB). Values above it are uploaded in
   * parts; a stream can be at most 10,000 parts (78 GiB at 8 MiB). Memory for one upload is
   * about `partSize × (queueSize + 1)`.
   */
  partSize?: number;
  /** Parts uploaded in parallel for one object (default 4). */
  queueSize?: number;
  /** Requests in flight for `getMany`/`putMany` (default 16). */
  concurrency?: number;
  /**
   * Whether to use bucket versioning: `"auto"` (default) asks the bucket at open
   * (GetBucketVersioning, Status `Enabled`); `true`/`false` skip that request.
   */
  versioning?: boolean | "auto";
  /**
   * Whether the server honours `If-Match` / `If-None-Match` on writes: `"auto"` (default) finds
   * out at open with one PutObject whose condition cannot hold (a server that honours it refuses
   * it and writes nothing; one that ignores it writes a 0-byte probe object, deleted at once);
   * `true`/`false` skip that request. Sets `capabilities.conditionalWrites`.
   */
  conditionalWrites?: boolean | "auto";
  /**
   * Server-side encryption for every object the store writes: `"AES256"` (SSE-S3),
   * `"aws:kms"` (SSE-KMS with the bucket's or AWS's default key) or `{ kmsKeyId }` (SSE-KMS
   * with that key). Default: none requested (the bucket's default encryption applies).
   */
  sse?: "AES256" | "aws:kms" | { kmsKeyId: string };
  /**
   * Any other S3Client settings (request handler, `maxAttempts`…); the options above win.
   * `maxAttempts` (default 3) is per HTTP request and does not apply to throttling, which the
   * store reports at once (see docs/s3.md, "Retries"); a `retryStrategy` of yours replaces that.
   */
  clientConfig?: S3ClientConfig;
}

/** The encryption fields of PutObject and CreateMultipartUpload. */
export interface SseParams {
  ServerSideEncryption?: ServerSideEncryption;
  SSEKMSKeyId?: string;
}

export interface ResolvedS3Config {
  bucket: string;
  /** "" or ending in "/". */
  prefix: string;
  clientConfig: S3ClientConfig;
  partSize: number;
  queueSize: number;
  concurrency: number;
  versioning: boolean | "auto";
  conditionalWrites: boolean | "auto";
  sse: SseParams;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$|^[a-zA-Z0-9._-]{1,255}$/;

/** Checks and completes options (from a URL or given directly). */
export function resolveS3Config(options: S3StoreOptions): ResolvedS3Config {
  const fail = (message: string) => new StorageError("invalid", message, { op: "open" });
  const bucket = options.bucket;
  if (!bucket || !BUCKET.test(bucket)) throw fail(`s3: bucket name ${JSON.stringify(bucket ?? "")} is not valid (3-63 characters of a-z 0-9 . -)`);
  const prefix = normalizePrefix(options.prefix ?? "");
  const partSize = options.partSize ?? 8 * MiB;
  if (!Number.isInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
    throw fail(`s3: partSize must be an integer number of bytes from ${MIN_PART_SIZE} (5 MiB) to ${MAX_PART_SIZE}, got ${String(partSize)}`);
  }
  const queueSize = positiveInteger(options.queueSize ?? 4, "queueSize");
  const concurrency = positiveInteger(options.concurrency ?? 16, "concurrency");
  const checksums = options.checksums ?? "WHEN_REQUIRED";
  if (checksums !== "WHEN_REQUIRED" && checksums !== "WHEN_SUPPORTED") throw fail(`s3: checksums must be WHEN_REQUIRED or WHEN_SUPPORTED, got ${String(checksums)}`);
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (options.endpoint ? "us-east-1" : undefined);
  // The SDK's client constructor throws a bare "Region is missing" on "": name the option instead.
  if (region === "") throw fail("s3: region must not be empty (e.g. region=us-east-1), or leave it out");
  // The SDK puts the region in host names and refuses anything else at the first request.
  if (region !== undefined && !/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(region)) {
    throw fail(`s3: region must be a name such as us-east-1 (letters, digits and dashes), got ${JSON.stringify(region)}`);
  }
  if (options.endpoint !== undefined && !/^https?:\/\/[^/]/i.test(options.endpoint)) {
    throw fail(`s3: endpoint must be an http:// or https:// URL, got ${JSON.stringify(options.endpoint)}`);
  }
  const maxAttempts = options.clientConfig?.maxAttempts ?? SDK_MAX_ATTEMPTS;
  if (typeof maxAttempts !== "number" || !Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw fail(`s3: clientConfig.maxAttempts must be a positive integer, got ${String(maxAttempts)}`);
  }
  const clientConfig: S3ClientConfig = {
    // The SDK otherwise rebuilds each command's middleware chain on every send, a good part of
    // its CPU per small request. The store adds no middleware of its own.
    cacheMiddleware: true,
    maxAttempts,
    retryStrategy: new NoThrottlingRetries(maxAttempts),
    ...options.clientConfig,
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    ...(region !== undefined && { region }),
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    ...(options.forcePathStyle !== undefined && { forcePathStyle: options.forcePathStyle }),
    ...(options.credentials !== undefined && { credentials: options.credentials }),
    ...(options.profile !== undefined && { profile: options.profile }),
  };
  const versioning = options.versioning ?? "auto";
  if (versioning !== "auto" && typeof versioning !== "boolean") throw fail(`s3: versioning must be auto, true or false, got ${String(versioning)}`);
  const conditionalWrites = options.conditionalWrites ?? "auto";
  if (conditionalWrites !== "auto" && typeof conditionalWrites !== "boolean") {
    throw fail(`s3: conditionalWrites must be auto, true or false, got ${String(conditionalWrites)}`);
  }
  return { bucket, prefix, clientConfig, partSize, queueSize, concurrency, versioning, conditionalWrites, sse: sseParams(options.sse) };

  function positiveInteger(value: number, name: string): number {
    if (!Number.isInteger(value) || value < 1) throw fail(`s3: ${name} must be a positive integer, got ${String(value)}`);
    return value;
  }
}

function sseParams(sse: S3StoreOptions["sse"]): SseParams {
  if (sse === undefined) return {};
  if (sse === "AES256" || sse === "aws:kms") return { ServerSideEncryption: sse };
  if (sse !== null && typeof sse === "object" && typeof sse.kmsKeyId === "string" && sse.kmsKeyId !== "") {
    return { ServerSideEncryption: "aws:kms", SSEKMSKeyId: sse.kmsKeyId };
  }
  throw new StorageError("invalid", `s3: sse must be "AES256", "aws:kms" or { kmsKeyId: "…" }, got ${JSON.stringify(sse)}`, { op: "open" });
}

function normalizePrefix(prefix: string): string {
  if (prefix === "") return "";
  const withSlash = prefix.endsWith("/") ? prefix : `${prefix}/`;
  // The prefix is itself the start of every key, so it must obey the key rules.
  const problem = keyProblem(`${withSlash}k`);
  if (problem) throw new StorageError("invalid", `s3: prefix ${JSON.stringify(prefix)} is not valid: ${problem.replace(/^key/, "prefix")}`, { op: "open" });
  return withSlash;
}

/** The URL's query parameters and their types. */
const URL_PARAMS = {
  endpoint: "string",
  region: "string",
  forcePathStyle: "boolean",
  profile: "string",
  checksums: "string",
  partSize: "size",
  queueSize: "integer",
  concurrency: "integer",
  versioning: "string",
  conditionalWrites: "string",
  sse: ["AES256", "aws:kms"],
  sseKmsKeyId: "string",
} as const;

/**
 * Options from `s3://[ACCESS_KEY:SECRET@]BUCKET[/PREFIX]?endpoint=…&region=…&forcePathStyle=true`
 * (also `profile`, `checksums`, `partSize`, `queueSize`, `concurrency`, `versioning=auto|true|false`,
 * `conditionalWrites=auto|true|false`, `sse=AES256|aws:kms`, `sseKmsKeyId`).
 */
export function optionsFromUrl(target: StoreUrl): S3StoreOptions {
  const { url } = target;
  const fail = (message: string) => new StorageError("invalid", `${message} in ${target.redacted}`, { op: "open" });
  const options: S3StoreOptions = {};
  if (!url.hostname) throw fail("s3: the URL names no bucket (s3://BUCKET[/PREFIX])");
  options.bucket = decodeURIComponent(url.hostname);
  if (url.port) throw fail("s3: a port belongs in ?endpoint=, not after the bucket");
  const path = url.pathname.replace(/^\//, "");
  if (path) options.prefix = decodeURIComponent(path);
  if (url.username || url.password) {
    if (!url.username || !url.password) throw fail("s3: credentials in the URL need both ACCESS_KEY:SECRET");
    options.credentials = { accessKeyId: decodeURIComponent(url.username), secretAccessKey: decodeURIComponent(url.password) };
  }
  const { versioning, conditionalWrites, sse, sseKmsKeyId, checksums, ...rest } = readUrlParams(target, "s3", URL_PARAMS);
  Object.assign(options, rest);
  if (checksums !== undefined) options.checksums = checksums.toUpperCase() as S3StoreOptions["checksums"];
  if (versioning !== undefined) options.versioning = autoOrBoolean("versioning", versioning);
  if (conditionalWrites !== undefined) options.conditionalWrites = autoOrBoolean("conditionalWrites", conditionalWrites);
  if (sseKmsKeyId !== undefined) {
    if (sse !== "aws:kms") throw fail("s3: sseKmsKeyId needs sse=aws:kms");
    options.sse = { kmsKeyId: sseKmsKeyId };
  } else if (sse !== undefined) {
    options.sse = sse;
  }
  return options;
}

/** `auto`, or a boolean in the URL helper's vocabulary. */
function autoOrBoolean(name: string, value: string): boolean | "auto" {
  if (value.toLowerCase() === "auto") return "auto";
  const parsed = readUrlParams(new URLSearchParams([[name, value]]), "s3", { [name]: "boolean" })[name];
  return parsed === true;
}

/**
 * The SDK's per-send options for `signal`: none without one, because a client with
 * `cacheMiddleware` reuses its resolved middleware chain only for sends that pass no options.
 */
export function sendOptions(signal: AbortSignal | undefined): { abortSignal: AbortSignal } | undefined {
  return signal ? { abortSignal: signal } : undefined;
}
