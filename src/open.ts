import { StorageError } from "./errors.js";
import { applyLayers, type LayerOptions } from "./layers/index.js";
import type { CachedStore } from "./layers/cache.js";
import type { MetricsStore } from "./layers/metrics.js";
import type { RetryStore } from "./layers/retry.js";
import type { TimeoutStore } from "./layers/timeout.js";
import type { FileStoreOptions } from "./backends/file/options.js";
import type { MemoryStoreOptions } from "./backends/memory.js";
import type { NatsStoreOptions } from "./backends/nats/options.js";
import type { PostgresStoreOptions } from "./backends/postgres.js";
import type { S3StoreOptions } from "./backends/s3/config.js";
import type { Store, StoreUrl } from "./types.js";

export type { StoreUrl } from "./types.js";
export type { LayerOptions } from "./layers/index.js";

/** Options for the built-in backends, one field each; a URL's own parameters win over them. */
export interface BackendOptions {
  memory?: MemoryStoreOptions;
  file?: Partial<FileStoreOptions>;
  nats?: NatsStoreOptions;
  s3?: S3StoreOptions;
  postgres?: PostgresStoreOptions;
}

export interface OpenStoreOptions extends BackendOptions, LayerOptions {
  /**
   * Create the bucket, stream, table or directory when it is missing (default true). `false`:
   * opening creates nothing, and a missing one rejects with kind `not_found` naming it, as the
   * CLI's read-only commands want.
   */
  create?: boolean;
}

/**
 * What `openStore` resolves to for these options: the outermost layer asked for (metrics, then
 * cache, retry, timeout), so e.g. `openStore(url, { cache: {} })` has `cacheStats()` and `ready`.
 */
export type OpenedStore<O extends OpenStoreOptions> = O extends { metrics: true | object }
  ? MetricsStore
  : O extends { cache: true | object }
    ? CachedStore
    : O extends { retry: true | object }
      ? RetryStore
      : O extends { timeout: number }
        ? TimeoutStore
        : Store;

export type BackendFactory = (target: StoreUrl, options: OpenStoreOptions) => Promise<Store>;

const registry = new Map<string, BackendFactory>();

/** Makes `openStore` open URLs of these schemes with `factory` (replacing any earlier one). */
export function registerBackend(schemes: string | string[], factory: BackendFactory): void {
  for (const scheme of [schemes].flat()) registry.set(scheme.toLowerCase(), factory);
}

/** The schemes `openStore` knows, sorted. */
export function registeredSchemes(): string[] {
  return [...registry.keys()].sort();
}

/** A backend's own options with the `create` flag of `openStore` added when given. */
const withCreate = <T extends object>(own: T | undefined, options: OpenStoreOptions): T =>
  ({ ...own, ...(options.create !== undefined ? { create: options.create } : {}) }) as T;

// Backends are imported lazily: a user of one backend never loads another's client library.
registerBackend("memory", async (target, options) => (await import("./backends/memory.js")).openMemoryStore(target, options.memory));
registerBackend("file", async (target, options) => (await import("./backends/file.js")).openFileStore(target, withCreate(options.file, options)));
registerBackend("s3", async (target, options) => (await import("./backends/s3.js")).openS3Store(target, withCreate(options.s3, options)));
registerBackend(["postgres", "postgresql"], async (target, options) => (await import("./backends/postgres.js")).openPostgresStore(target, withCreate(options.postgres, options)));
registerBackend(["nats", "tls"], async (target, options) => (await import("./backends/nats.js")).openNatsStore(target, withCreate(options.nats, options)));

/**
 * Opens a store by URL: `memory:`, `file:<dir>`, `nats://host:port/BUCKET`,
 * `s3://BUCKET[/PREFIX]?endpoint=…`, `postgres://user@host/db?table=…`. The layers named in
 * `options` (cache, metrics, retry, timeout) are stacked on the backend.
 *
 * @example
 * const store = await openStore("file:./data");
 * await store.put("events/a", new TextEncoder().encode("hello"));
 */
export async function openStore<const O extends OpenStoreOptions = Record<never, never>>(url: string, options?: O): Promise<OpenedStore<O>>;
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  const target = parseStoreUrl(url);
  const factory = registry.get(target.scheme);
  if (!factory) {
    throw new StorageError("invalid", `unknown store scheme "${target.scheme}:" in ${target.redacted}; known schemes: ${registeredSchemes().map((s) => `${s}:`).join(", ")}`, { op: "open" });
  }
  const store = await factory(target, options);
  try {
    return await applyLayers(store, options, target);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;

/** Parses a store URL, refusing malformed ones with a StorageError of kind `invalid`. */
export function parseStoreUrl(href: string): StoreUrl {
  if (typeof href !== "string" || href.trim() === "") {
    throw new StorageError("invalid", "store URL must be a non-empty string such as file:./data or nats://127.0.0.1:4222/BUCKET", { op: "open" });
  }
  const scheme = SCHEME.exec(href)?.[1]?.toLowerCase();
  if (!scheme) {
    throw new StorageError("invalid", `store URL ${JSON.stringify(redactUrl(href))} has no scheme; use e.g. file:./data, memory:, nats://host:4222/BUCKET`, { op: "open" });
  }
  const redacted = redactUrl(href);
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    // No `cause`: the parser's TypeError carries the raw URL, password included, in `input`.
    const hint = /\/\/[^?#]*\/[^?#]*@/.test(href) ? " (a '/', '@', '?' or '#' in a user name or password must be percent-encoded, e.g. %2F)" : "";
    throw new StorageError("invalid", `store URL ${JSON.stringify(redacted)} is malformed${hint}`, { op: "open" });
  }
  for (const part of [url.username, url.password, url.pathname]) {
    try {
      decodeURIComponent(part);
    } catch {
      throw new StorageError("invalid", `store URL ${JSON.stringify(redacted)} has a malformed percent-escape (write % as %25)`, { op: "open" });
    }
  }
  return { scheme, href, url, redacted };
}

const NATS_SCHEMES = /^(nats|tls|wss?):$/i;
const SECRET_PARAMS = /^(password|pass|token|secret|secretaccesskey|secret_access_key|sessiontoken|nkey|seed|creds)$/i;

/** `href` with the password and secret-looking query parameters replaced by `***`. */
export function redactUrl(href: string): string {
  try {
    const url = new URL(href);
    if (url.password) url.password = "***";
    // NATS reads a user without a password as a token (nats://TOKEN@host): hide it too.
    else if (url.username && NATS_SCHEMES.test(url.protocol)) url.username = "***";
    for (const name of [...url.searchParams.keys()]) {
      if (SECRET_PARAMS.test(name)) url.searchParams.set(name, "***");
    }
    return url.href.replace(/%2A%2A%2A/g, "***");
  } catch {
    // Unparseable: hide everything between "//" and the last "@" before the query, the usual
    // place of secrets, even when a password holds an unescaped '/' or '@'.
    return href.replace(/\/\/[^?#]*@/, "//***@");
  }
}
