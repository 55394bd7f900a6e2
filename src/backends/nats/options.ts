import type { NatsConnection } from "@nats-io/nats-core";
import { StorageError } from "../../errors.js";
import type { StoreUrl } from "../../open.js";

/**
 * Options of the NATS JetStream backend (`openStore("nats://…", { nats: {…} })` or
 * `new NatsStore(…)` through {@link openNatsStore}). Values in the URL's query win over these.
 *
 * @example
 * const store = await openStore("nats://127.0.0.1:4222/EVENTS?history=16&replicas=3", {
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
  /** The bucket (the URL path wins). `[-_A-Za-z0-9]+`. */
  bucket?: string;
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

/** The options after merging the URL in and checking every value. */
export interface ResolvedNatsOptions extends NatsStoreOptions {
  bucket: string;
  servers: string | string[];
  /** Options the caller gave explicitly: an existing bucket must match these. */
  explicit: Set<"history" | "replicas" | "storage" | "maxBytes" | "ttl">;
}

export const DEFAULT_HISTORY = 8;
export const MAX_HISTORY = 64;
const BUCKET = /^[-\w]+$/;

/** Merges `nats://[user:pass@]host:port/BUCKET?…` into `options`, validating every value. */
export function resolveNatsOptions(target: StoreUrl | undefined, options: NatsStoreOptions = {}): ResolvedNatsOptions {
  const merged: NatsStoreOptions = { ...options };
  const fail = (message: string) => new StorageError("invalid", `${target?.redacted ?? "nats options"}: ${message}`, { op: "open" });
  if (target) {
    const { url } = target;
    const path = decodeURIComponent(url.pathname.replace(/^\/+/, "").replace(/\/+$/, ""));
    if (path) merged.bucket = path;
    if (url.host) merged.servers = `${target.scheme === "tls" ? "tls" : "nats"}://${url.host}`;
    if (url.username && url.password) {
      merged.user = decodeURIComponent(url.username);
      merged.pass = decodeURIComponent(url.password);
    } else if (url.username) {
      merged.token = decodeURIComponent(url.username);
    }
    const q = url.searchParams;
    const text = (name: string) => q.get(name) ?? undefined;
    const int = (name: string) => {
      const raw = q.get(name);
      if (raw === null) return undefined;
      if (!/^\d+$/.test(raw)) throw fail(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
      return Number(raw);
    };
    const assign = <K extends keyof NatsStoreOptions>(name: K, value: NatsStoreOptions[K] | undefined) => {
      if (value !== undefined) merged[name] = value;
    };
    assign("token", text("token"));
    assign("nkeySeed", text("nkey"));
    assign("credsFile", text("creds"));
    assign("name", text("name"));
    assign("replicas", int("replicas"));
    assign("maxBytes", int("maxBytes"));
    assign("ttl", int("ttl"));
    assign("history", int("history"));
    assign("inlineMax", int("inlineMax"));
    assign("chunkSize", int("chunkSize"));
    assign("timeout", int("timeout"));
    assign("sweepInterval", int("sweepInterval"));
    assign("sweepGrace", int("sweepGrace"));
    const directReads = text("directReads");
    if (directReads !== undefined) {
      if (directReads !== "true" && directReads !== "false") throw fail(`directReads must be "true" or "false", got ${JSON.stringify(directReads)}`);
      merged.directReads = directReads === "true";
    }
    const storage = text("storage");
    if (storage !== undefined) {
      if (storage !== "file" && storage !== "memory") throw fail(`storage must be "file" or "memory", got ${JSON.stringify(storage)}`);
      merged.storage = storage;
    }
    const tlsFiles = { caFile: text("caFile"), certFile: text("certFile"), keyFile: text("keyFile") };
    if (target.scheme === "tls" || Object.values(tlsFiles).some((v) => v !== undefined)) {
      merged.tls = { ...merged.tls, ...Object.fromEntries(Object.entries(tlsFiles).filter(([, v]) => v !== undefined)) };
    }
  }
  const bucket = merged.bucket;
  if (!bucket) throw fail("no bucket: use nats://host:4222/BUCKET");
  if (!BUCKET.test(bucket)) throw fail(`bucket ${JSON.stringify(bucket)} must be letters, digits, '-' and '_'`);
  const positive = (name: keyof NatsStoreOptions, value: number | undefined, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < min || value > max)) {
      throw fail(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
    }
  };
  positive("history", merged.history, 1, MAX_HISTORY);
  positive("replicas", merged.replicas, 1, 5);
  positive("maxBytes", merged.maxBytes, 1);
  positive("ttl", merged.ttl, 1);
  positive("inlineMax", merged.inlineMax, 0);
  positive("chunkSize", merged.chunkSize, 1024);
  positive("timeout", merged.timeout, 1);
  positive("sweepInterval", merged.sweepInterval, 0);
  positive("sweepGrace", merged.sweepGrace, 0);
  if (merged.directReads !== undefined && typeof merged.directReads !== "boolean") {
    throw fail(`directReads must be a boolean, got ${JSON.stringify(merged.directReads)}`);
  }
  if (merged.storage !== undefined && merged.storage !== "file" && merged.storage !== "memory") {
    throw fail(`storage must be "file" or "memory", got ${JSON.stringify(merged.storage)}`);
  }
  const explicit = new Set<"history" | "replicas" | "storage" | "maxBytes" | "ttl">();
  for (const name of ["history", "replicas", "storage", "maxBytes", "ttl"] as const) if (merged[name] !== undefined) explicit.add(name);
  return { ...merged, bucket, servers: merged.servers ?? "nats://127.0.0.1:4222", explicit };
}
