/**
 * Whether a `nats://`/`tls://` store rides on the component's own NATS connection.
 *
 * It does when the store URL adds nothing to what `nats` already says: no server of its own
 * (`nats:///BUCKET`) or one of `nats.servers` (compared as written: host and port, port 4222
 * when absent), and no credentials or TLS files of its own. The store then inherits the
 * component's whole server list (so it fails over with it and starts when any listed server
 * is up) and its credentials and TLS. A URL naming another server, or other credentials,
 * means a different NATS system or identity for the data: the store connects on its own, as
 * the URL says.
 */
import type { ComponentConfig } from "./config.js";

/** Query parameters of a NATS store URL that set who or how the store connects. */
const CONNECTION_PARAMS = ["token", "nkey", "creds", "caFile", "certFile", "keyFile", "name"] as const;

/** `true` when the store should use the component's connection rather than open its own. */
export function sharesComponentConnection(config: ComponentConfig): boolean {
  let url: URL;
  try {
    url = new URL(config.store);
  } catch {
    return false; // openStore reports the bad URL
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (scheme !== "nats" && scheme !== "tls") return false;
  if (url.username !== "" || url.password !== "") return false;
  if (CONNECTION_PARAMS.some((p) => url.searchParams.has(p))) return false;
  // tls:// asks for an encrypted connection: only share one that is.
  if (scheme === "tls" && config.nats.tls === undefined && !config.nats.servers.some((s) => /^tls:\/\//i.test(s))) return false;
  if (url.host === "") return true;
  const target = hostPort(url);
  return config.nats.servers.some((server) => serverHostPort(server) === target);
}

function serverHostPort(server: string): string | undefined {
  try {
    return hostPort(new URL(server.includes("://") ? server : `nats://${server}`));
  } catch {
    return undefined;
  }
}

function hostPort(url: URL): string {
  return `${url.hostname.toLowerCase()}:${url.port === "" ? "4222" : url.port}`;
}
