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
    servers: n.servers,
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
