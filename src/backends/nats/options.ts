import type { NatsConnection } from "@nats-io/nats-core";
import { StorageError } from "../../errors.js";
import { readUrlParams } from "../../internal/url-params.js";
import type { StoreUrl } from "../../types.js";

/**
 * Options of the NATS JetStream backend: `NatsStore.open({ bucket, … })`, or
 * `openStore("nats://…", { nats: {…} })` where the URL's own parts win over these.
 *
 * @example
 * const store = await NatsStore.open({ bucket: "EVENTS", servers: "nats://127.0.0.1:4222", history: 16 });
 * const same = await openStore("nats://127.0.0.1:4222/EVENTS?history=16", {
 *   nats: { credsFile: "/etc/nats/app.creds", tls: { caFile: "/etc/nats/ca.pem" } },
 * });
 */
export interface NatsStoreOptions {
  /**
   * An open connection to use instead of connecting. The caller owns it: `store.close()`
   * leaves it open.
   */
  connection?: NatsConnection;
  /** Servers to connect to (default: the URL's host and port, else `127.0.0.1:4222`). */
  servers?: string | string[];
  /**
   * The bucket (the URL path wins): `[-_A-Za-z0-9]+`, at most 245 characters (its object store
   * stream `OBJ_<bucket>_large` must fit JetStream's 255).
   */
  bucket?: string;
  /**
   * Create the bucket when it is missing (default true). `false`: opening creates nothing and a
   * missing bucket rejects with kind `not_found` naming it.
   */
  create?: boolean;
  /** User and password (the URL's `user:pass@` wins). */
  user?: string;
  pass?: string;
  /** An auth token (the URL's `token@host` or `?token=` wins). */
  token?: string;
  /** An nkey seed (`SU…`) to authenticate with. */
  nkeySeed?: string;
  /** A `.creds` file (JWT + nkey seed), as written by `nsc` (URL: `?creds=/path`). */
  credsFile?: string;
  /** TLS: PEM file paths or contents (URL: `tls://` scheme, `?caFile=&certFile=&keyFile=`). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string; ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
  /** Connection name shown by `nats server report connections` (default `stowage`). */
  name?: string;
  /** Milliseconds a JetStream request may take before it fails as `transient` (default 5000). */
  timeout?: number;

  /** Bucket replicas when the bucket is created: 1, 3 or 5 (default 1). */
  replicas?: number;
  /** Bucket storage when it is created: `"file"` (default) or `"memory"`. */
  storage?: "file" | "memory";
  /** Most bytes the bucket's index stream keeps (default unlimited). */
  maxBytes?: number;
  /** Milliseconds a value lives before the server removes it (default forever). */
  ttl?: number;
  /** Versions kept per key, 1 to 64 (default 8; 1 means no history). */
  history?: number;

  /**
   * Whether `get`, `stat`, `getStream` and `delete` read the index with JetStream direct get,
   * which any replica of the bucket answers (URL `?directReads=true|false`). Default: `true`
   * for a bucket with 1 replica (one server: direct get is always current), `false` for
   * replicated buckets, whose reads then go to the stream leader (`$JS.API.STREAM.MSG.GET`),
   * so a caller's acknowledged put is visible to its next read. `true` on a replicated bucket
   * spreads reads over every replica and saves the leader the work, but a replica that has
   * not applied a put yet answers with the value before it (stale by a few milliseconds on a
   * healthy cluster). Ignored (leader reads) when the bucket has `allow_direct` off.
   */
  directReads?: boolean;

  /**
   * Largest value stored inline in its index entry, in bytes (default and ceiling: the server's
   * max_payload minus 16 KiB for headers). Larger values go to the bucket's object store.
   */
  inlineMax?: number;
  /** Chunk size of large values in the object store, in bytes (default 128 KiB, at most max_payload). */
  chunkSize?: number;
  /**
   * Milliseconds between sweeps that delete large objects no retained index revision refers to
   * (default 10 minutes; 0 turns the automatic sweep off, `store.sweep()` still works).
   */
  sweepInterval?: number;
  /** An unreferenced large object younger than this (ms) is kept by a sweep (default 5 minutes). */
  sweepGrace?: number;
}

/** The options after checking every value: what the store is built from. */
export interface ResolvedNatsOptions extends NatsStoreOptions {
  bucket: string;
  servers: string | string[];
  /** Options the caller gave explicitly: an existing bucket must match these. */
  explicit: Set<"history" | "replicas" | "storage" | "maxBytes" | "ttl">;
}

export const DEFAULT_HISTORY = 8;
export const MAX_HISTORY = 64;
const BUCKET = /^[-\w]+$/;
/** JetStream's longest stream name, and what the longest of ours (`OBJ_<bucket>_large`) adds to the bucket. */
const MAX_STREAM_NAME = 255;
export const MAX_BUCKET_LENGTH = MAX_STREAM_NAME - "OBJ__large".length;

/** The URL's query parameters, by type (anything else is refused). */
const URL_PARAMS = {
  token: "string",
  nkey: "string",
  creds: "string",
  name: "string",
  caFile: "string",
  certFile: "string",
  keyFile: "string",
  timeout: "duration",
  replicas: "integer",
  storage: ["file", "memory"],
  maxBytes: "size",
  ttl: "duration",
  history: "integer",
  directReads: "boolean",
  inlineMax: "size",
  chunkSize: "size",
  sweepInterval: "duration",
  sweepGrace: "duration",
} as const;

/** Merges `nats://[user:pass@|token@]host:port/BUCKET?…` (or `tls://`) into `options`; the URL wins. */
export function natsOptionsFromUrl(target: StoreUrl, options: NatsStoreOptions = {}): NatsStoreOptions {
  const merged: NatsStoreOptions = { ...options };
  const { url } = target;
  const path = url.pathname.replace(/^\/+/, "").replace(/\/+$/, "");
  if (path) {
    try {
      merged.bucket = decodeURIComponent(path);
    } catch {
      throw new StorageError("invalid", `${target.redacted}: the bucket name is not valid percent-encoding`, { op: "open" });
    }
  }
  if (url.host) merged.servers = `${target.scheme === "tls" ? "tls" : "nats"}://${url.host}`;
  if (url.username && url.password) {
    merged.user = decodeURIComponent(url.username);
    merged.pass = decodeURIComponent(url.password);
  } else if (url.username) {
    merged.token = decodeURIComponent(url.username);
  }
  const q = readUrlParams(target, target.redacted, URL_PARAMS);
  const assign = <K extends keyof NatsStoreOptions>(name: K, value: NatsStoreOptions[K] | undefined) => {
    if (value !== undefined) merged[name] = value;
  };
  assign("token", q.token);
  assign("nkeySeed", q.nkey);
  assign("credsFile", q.creds);
  assign("name", q.name);
  assign("timeout", q.timeout);
  assign("replicas", q.replicas);
  assign("storage", q.storage);
  assign("maxBytes", q.maxBytes);
  assign("ttl", q.ttl);
  assign("history", q.history);
  assign("directReads", q.directReads);
  assign("inlineMax", q.inlineMax);
  assign("chunkSize", q.chunkSize);
  assign("sweepInterval", q.sweepInterval);
  assign("sweepGrace", q.sweepGrace);
  const tlsFiles = { caFile: q.caFile, certFile: q.certFile, keyFile: q.keyFile };
  if (target.scheme === "tls" || Object.values(tlsFiles).some((v) => v !== undefined)) {
    merged.tls = { ...merged.tls, ...Object.fromEntries(Object.entries(tlsFiles).filter(([, v]) => v !== undefined)) };
  }
  // Checked here too, so that a bad value is reported with the URL it came from (redacted).
  resolveNatsOptions(merged, target.redacted);
  return merged;
}

/** Checks every option (whatever it came from), refusing a bad one as `invalid`. */
export function resolveNatsOptions(options: NatsStoreOptions, where = "nats options"): ResolvedNatsOptions {
  if (options === null || typeof options !== "object") throw new StorageError("invalid", "nats options must be an object", { op: "open" });
  const fail = (message: string) => new StorageError("invalid", `${where}: ${message}`, { op: "open" });
  const bucket = options.bucket;
  if (!bucket) throw fail("no bucket: use nats://host:4222/BUCKET or give { bucket }");
  if (typeof bucket !== "string" || !BUCKET.test(bucket)) throw fail(`bucket ${JSON.stringify(bucket)} must be letters, digits, '-' and '_'`);
  if (bucket.length > MAX_BUCKET_LENGTH) {
    throw fail(`bucket name is ${bucket.length} characters, at most ${MAX_BUCKET_LENGTH}: its object store stream OBJ_<bucket>_large must fit JetStream's ${MAX_STREAM_NAME}-character stream names`);
  }
  const positive = (name: keyof NatsStoreOptions, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (value !== undefined && (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max)) {
      throw fail(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
    }
  };
  positive("history", options.history, 1, MAX_HISTORY);
  positive("replicas", options.replicas, 1, 5);
  positive("maxBytes", options.maxBytes, 1);
  positive("ttl", options.ttl, 1);
  positive("inlineMax", options.inlineMax, 0);
  positive("chunkSize", options.chunkSize, 1024);
  positive("timeout", options.timeout, 1);
  positive("sweepInterval", options.sweepInterval, 0);
  positive("sweepGrace", options.sweepGrace, 0);
  for (const name of ["directReads", "create"] as const) {
    if (options[name] !== undefined && typeof options[name] !== "boolean") throw fail(`${name} must be a boolean, got ${JSON.stringify(options[name])}`);
  }
  if (options.storage !== undefined && options.storage !== "file" && options.storage !== "memory") {
    throw fail(`storage must be "file" or "memory", got ${JSON.stringify(options.storage)}`);
  }
  const explicit = new Set<"history" | "replicas" | "storage" | "maxBytes" | "ttl">();
  for (const name of ["history", "replicas", "storage", "maxBytes", "ttl"] as const) if (options[name] !== undefined) explicit.add(name);
  return { ...options, bucket, servers: options.servers ?? "nats://127.0.0.1:4222", explicit };
}
