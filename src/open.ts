import { StorageError } from "./errors.js";
import { applyLayers } from "./layers/index.js";
import type { Store } from "./types.js";

/**
 * Options for the backends, one field per backend (`file`, `memory`, `nats`, `s3`,
 * `postgres`). Each backend module adds its own field by declaration merging, so a new backend
 * is one new file and one `registerBackend` line.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface BackendOptions {}

/** Options for the layers `openStore` stacks on the backend (cache, metrics, retry, timeout). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface LayerOptions {}

export interface OpenStoreOptions extends BackendOptions, LayerOptions {}

/** A store URL taken apart: what a backend factory receives. */
export interface StoreUrl {
  /** Lower-case scheme without the colon: `file`, `nats`, `s3`... */
  scheme: string;
  /** The URL as given. Holds secrets: never log it, use `redacted`. */
  href: string;
  /** The URL parsed by WHATWG rules (for `file:` relative paths, use `href`). */
  url: URL;
  /** The URL with any password or token replaced by `***`, safe for logs and errors. */
  redacted: string;
}

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

// Backends are imported lazily: a user of one backend never loads another's client library.
registerBackend("memory", async (target, options) => (await import("./backends/memory.js")).openMemoryStore(target, options));
registerBackend("file", async (target, options) => (await import("./backends/file.js")).openFileStore(target, options));
registerBackend("s3", async (target, options) => (await import("./backends/s3.js")).openS3Store(target, options));
registerBackend(["postgres", "postgresql"], async (target, options) => (await import("./backends/postgres.js")).openPostgresStore(target, options));
registerBackend(["nats", "tls"], async (target, options) => (await import("./backends/nats.js")).openNatsStore(target, options));

/**
 * Opens a store by URL: `memory:`, `file:<dir>`, `nats://host:port/BUCKET`,
 * `s3://BUCKET[/PREFIX]?endpoint=…`, `postgres://user@host/db?table=…`. The layers named in
 * `options` (cache, metrics, retry, timeout) are stacked on the backend.
 *
 * @example
 * const store = await openStore("file:./data");
 * await store.put("events/a", new TextEncoder().encode("hello"));
 */
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
  let url: URL;
  try {
    url = new URL(href);
  } catch (cause) {
    throw new StorageError("invalid", `store URL ${JSON.stringify(redactUrl(href))} is malformed`, { op: "open", cause });
  }
  return { scheme, href, url, redacted: redactUrl(href) };
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
    // Unparseable: hide anything between "//" and "@" (userinfo), the usual place for secrets.
    return href.replace(/\/\/[^@/]*@/, "//***@");
  }
}
