/**
 * The one way stowage opens a NATS connection: the NATS store's own connection and the storage
 * component's. Every credential becomes an authenticator; none reaches the client's server list,
 * an error message or a log line.
 */
import { readFile } from "node:fs/promises";
import {
  ConnectionError,
  credsAuthenticator,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type NatsConnection,
  type TlsOptions,
} from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { StorageError, type StorageOp } from "../../errors.js";

/** Who to connect to and as whom. */
export interface NatsConnectOptions {
  /**
   * Server URLs (or `host:port`). Credentials in a URL (`nats://user:pass@host`,
   * `nats://token@host`) are used when none are given apart, as Go clients and the nats CLI do:
   * nats.js itself ignores them.
   */
  servers: string | string[];
  /** Connection name shown by `nats server report connections` (default `stowage`). */
  name?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** An nkey seed (`SU…`). */
  nkeySeed?: string;
  /** A `.creds` file (JWT + nkey seed). */
  credsFile?: string;
  /** Present (even `{}`): require TLS. */
  tls?: TlsOptions;
  /** Milliseconds to wait for the first connection (the client's default when absent). */
  timeout?: number;
}

/**
 * Connects, reconnecting for ever after (a store or a component outlives server restarts;
 * calls in between fail as `transient`). Rejects with a `transient` StorageError naming the
 * servers (redacted) when none can be reached, `invalid` when the creds file cannot be read,
 * and otherwise with the client's own error for the caller to classify (a refused login…).
 */
export async function connectNats(options: NatsConnectOptions, op: StorageOp = "open"): Promise<NatsConnection> {
  const servers = [options.servers].flat();
  const authenticator: Authenticator[] = [];
  const fromUrl = options.user === undefined && options.token === undefined ? urlCredentials(servers) : undefined;
  const user = options.user ?? (fromUrl?.pass === undefined ? undefined : fromUrl.user);
  const pass = options.user === undefined ? fromUrl?.pass : options.pass;
  const token = options.token ?? (fromUrl !== undefined && fromUrl.pass === undefined ? fromUrl.user : undefined);
  if (user !== undefined) authenticator.push(usernamePasswordAuthenticator(user, pass));
  if (token !== undefined) authenticator.push(tokenAuthenticator(token));
  if (options.nkeySeed !== undefined) authenticator.push(nkeyAuthenticator(new TextEncoder().encode(options.nkeySeed)));
  if (options.credsFile !== undefined) {
    let creds: Uint8Array;
    try {
      creds = await readFile(options.credsFile);
    } catch (cause) {
      throw new StorageError("invalid", `the NATS creds file ${JSON.stringify(options.credsFile)} cannot be read: ${(cause as NodeJS.ErrnoException).code ?? "error"}`, { op, cause });
    }
    authenticator.push(credsAuthenticator(creds));
  }
  try {
    return await connect({
      // Without the userinfo: the client has no use for it, and cannot echo it then.
      servers: servers.map((server) => server.replace(USERINFO, "$1")),
      name: options.name ?? "stowage",
      maxReconnectAttempts: -1,
      ...(authenticator.length > 0 ? { authenticator } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    });
  } catch (cause) {
    if (cause instanceof ConnectionError) {
      throw new StorageError("transient", `cannot reach the NATS server at ${redactedServers(servers)}`, { op, cause });
    }
    throw cause;
  }
}

/** Server URLs safe for messages: userinfo (a password or a token) replaced by `***`. */
export function redactedServers(servers: string | string[]): string {
  return [servers]
    .flat()
    .map((server) => server.replace(USERINFO, "$1***@"))
    .join(", ");
}

const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i;

/** The user and password (or token: a user alone) of the first server URL that has them. */
function urlCredentials(servers: string[]): { user: string; pass?: string } | undefined {
  for (const server of servers) {
    let url: URL;
    try {
      url = new URL(server.includes("://") ? server : `nats://${server}`);
    } catch {
      continue;
    }
    if (url.username) return { user: safeDecode(url.username), pass: url.password ? safeDecode(url.password) : undefined };
  }
  return undefined;
}

/** Percent-decoded, or as written when it is not valid percent-encoding. */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
