import { readFile } from "node:fs/promises";
import { credsAuthenticator, nkeyAuthenticator, type Authenticator, type NatsConnection } from "@nats-io/nats-core";
import { connect, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { ResolvedNatsOptions } from "./options.js";

/** Opens the store's own connection from resolved options (credentials never reach a message). */
export async function connectNats(options: ResolvedNatsOptions): Promise<NatsConnection> {
  const authenticator: Authenticator[] = [];
  if (options.credsFile) authenticator.push(credsAuthenticator(await readFile(options.credsFile)));
  if (options.nkeySeed) authenticator.push(nkeyAuthenticator(new TextEncoder().encode(options.nkeySeed)));
  const connectOptions: NodeConnectionOptions = {
    servers: options.servers,
    name: options.name ?? "stowage",
    user: options.user,
    pass: options.pass,
    token: options.token,
    tls: options.tls,
    timeout: options.timeout,
    // A store outlives server restarts: keep reconnecting; requests in between fail as transient.
    maxReconnectAttempts: -1,
    ...(authenticator.length > 0 ? { authenticator } : {}),
  };
  return connect(connectOptions);
}
