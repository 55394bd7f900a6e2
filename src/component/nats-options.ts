import { readFileSync } from "node:fs";
import {
  credsAuthenticator,
  nkeyAuthenticator,
  tokenAuthenticator,
  usernamePasswordAuthenticator,
  type Authenticator,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import { StorageError } from "../errors.js";
import { redactUrl } from "../open.js";
import type { ComponentConfig } from "./config.js";

/** Connection options for the component's NATS connection (secrets go into authenticators, never into logs). */
export function natsConnectionOptions(config: ComponentConfig): NodeConnectionOptions {
  const n = config.nats;
  const authenticator: Authenticator[] = [];
  if (n.user !== undefined) authenticator.push(usernamePasswordAuthenticator(n.user, n.pass));
  if (n.token !== undefined) authenticator.push(tokenAuthenticator(n.token));
  if (n.nkeySeed !== undefined) authenticator.push(nkeyAuthenticator(new TextEncoder().encode(n.nkeySeed)));
  // nats.js ignores credentials in server URLs, which Go clients and the nats CLI honour
  // (nats://user:pass@host, nats://token@host): take them from there unless given apart.
  const fromUrl = n.user === undefined && n.token === undefined ? urlCredentials(n.servers) : undefined;
  if (fromUrl) authenticator.push(fromUrl.pass === undefined ? tokenAuthenticator(fromUrl.user) : usernamePasswordAuthenticator(fromUrl.user, fromUrl.pass));
  if (n.credsFile !== undefined) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(n.credsFile);
    } catch (cause) {
      throw new StorageError("invalid", `nats.creds_file ${JSON.stringify(n.credsFile)} cannot be read: ${(cause as NodeJS.ErrnoException).code ?? "error"}`, { op: "start", cause });
    }
    authenticator.push(credsAuthenticator(creds));
  }
  return {
    // Without the userinfo: the client has no use for it, and cannot echo it then.
    servers: n.servers.map((server) => server.replace(USERINFO, "$1")),
    name: n.connectionName ?? `stowage-${config.name}`,
    // A storage component outlives server restarts: keep reconnecting.
    maxReconnectAttempts: -1,
    authenticator: authenticator.length > 0 ? authenticator : undefined,
    tls: n.tls && { caFile: n.tls.caFile, certFile: n.tls.certFile, keyFile: n.tls.keyFile, handshakeFirst: n.tls.handshakeFirst },
  };
}

/** The servers, safe for messages (passwords in URLs replaced). */
export function redactedServers(config: ComponentConfig): string {
  return config.nats.servers.map((s) => (s.includes("://") ? redactUrl(s) : s.replace(/^[^@]*@/, "***@"))).join(", ");
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
    if (url.username) return { user: decodeURIComponent(url.username), pass: url.password ? decodeURIComponent(url.password) : undefined };
  }
  return undefined;
}
