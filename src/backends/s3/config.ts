/**
 * `s3://` URLs and {@link S3StoreOptions} turned into what the store needs: bucket, key prefix,
 * an S3Client configuration and the tuning numbers.
 */
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { StorageError } from "../../errors.js";
import { keyProblem } from "../../keys.js";
import type { StoreUrl } from "../../open.js";

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
 * const store = new S3Store({ client, bucket: "events", prefix: "tenant-a" });
 */
export interface S3StoreOptions {
  /** A client to use instead of creating one; the caller owns it (close() leaves it alone). */
  client?: S3Client;
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
   * Send single-object GetObject, PutObject and DeleteObject requests and ListObjectsV2 pages
   * without the SDK's per-command middleware and XML deserializer (default true; see
   * docs/s3.md): a 1 KiB get costs about 3× less client CPU, a 1000-key page 3–5× less. They
   * use the client's endpoint, credentials and signer, and go over the `requestHandler` of
   * `clientConfig` when there is one, else over a connection pool of the store's own. Any
   * answer other than success (or a missing key) is re-sent through the SDK. Only for clients
   * the store creates with `checksums: "WHEN_REQUIRED"`: a client you pass keeps every request
   * on its own middleware stack.
   */
  directRequests?: boolean;
  /** Any other S3Client settings (retries, request handler…); the options above win. */
  clientConfig?: S3ClientConfig;
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
  /** Whether a client the store creates sends direct object requests. */
  directRequests: boolean;
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
  if (options.endpoint !== undefined && !/^https?:\/\/[^/]/i.test(options.endpoint)) {
    throw fail(`s3: endpoint must be an http:// or https:// URL, got ${JSON.stringify(options.endpoint)}`);
  }
  const clientConfig: S3ClientConfig = {
    // The SDK otherwise rebuilds each command's middleware chain on every send: ~20% of its CPU
    // per small request here. The store adds no middleware after the first request.
    cacheMiddleware: true,
    ...options.clientConfig,
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    ...(region !== undefined && { region }),
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    ...(options.forcePathStyle !== undefined && { forcePathStyle: options.forcePathStyle }),
    ...(options.credentials !== undefined && { credentials: options.credentials }),
    ...(options.profile !== undefined && { profile: options.profile }),
  };
  // With WHEN_SUPPORTED the SDK adds and checks checksums, which direct requests do not.
  const directRequests = (options.directRequests ?? true) && checksums === "WHEN_REQUIRED";
  return { bucket, prefix, clientConfig, partSize, queueSize, concurrency, versioning: options.versioning ?? "auto", directRequests };

  function positiveInteger(value: number, name: string): number {
    if (!Number.isInteger(value) || value < 1) throw fail(`s3: ${name} must be a positive integer, got ${String(value)}`);
    return value;
  }
}

function normalizePrefix(prefix: string): string {
  if (prefix === "") return "";
  const withSlash = prefix.endsWith("/") ? prefix : `${prefix}/`;
  // The prefix is itself the start of every key, so it must obey the key rules.
  const problem = keyProblem(`${withSlash}k`);
  if (problem) throw new StorageError("invalid", `s3: prefix ${JSON.stringify(prefix)} is not valid: ${problem.replace(/^key/, "prefix")}`, { op: "open" });
  return withSlash;
}

const BOOLEAN: Record<string, boolean> = { true: true, "1": true, yes: true, false: false, "0": false, no: false };
const KNOWN_PARAMS = new Set(["endpoint", "region", "forcePathStyle", "profile", "checksums", "partSize", "queueSize", "concurrency", "versioning", "directRequests"]);

/**
 * Options from `s3://[ACCESS_KEY:SECRET@]BUCKET[/PREFIX]?endpoint=…&region=…&forcePathStyle=true`
 * (also `profile`, `checksums`, `partSize`, `queueSize`, `concurrency`, `versioning=auto|true|false`,
 * `directRequests=true|false`).
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
  for (const [name, value] of url.searchParams) {
    if (!KNOWN_PARAMS.has(name)) throw fail(`s3: unknown parameter "${name}" (known: ${[...KNOWN_PARAMS].join(", ")})`);
    switch (name) {
      case "forcePathStyle":
      case "directRequests":
        options[name] = parseBoolean(value, name);
        break;
      case "versioning":
        options.versioning = value === "auto" ? "auto" : parseBoolean(value, name);
        break;
      case "partSize":
      case "queueSize":
      case "concurrency":
        if (!/^\d+$/.test(value)) throw fail(`s3: ${name} must be a positive integer, got ${JSON.stringify(value)}`);
        options[name] = Number(value);
        break;
      case "checksums":
        options.checksums = value.toUpperCase() as S3StoreOptions["checksums"];
        break;
      case "endpoint":
      case "region":
      case "profile":
        options[name] = value;
        break;
    }
  }
  return options;

  function parseBoolean(value: string, name: string): boolean {
    const parsed = BOOLEAN[value.toLowerCase()];
    if (parsed === undefined) throw fail(`s3: ${name} must be true or false, got ${JSON.stringify(value)}`);
    return parsed;
  }
}

/**
 * The SDK's per-send options for `signal`: none without one, because a client with
 * `cacheMiddleware` reuses its resolved middleware chain only for sends that pass no options.
 */
export function sendOptions(signal: AbortSignal | undefined): { abortSignal: AbortSignal } | undefined {
  return signal ? { abortSignal: signal } : undefined;
}
