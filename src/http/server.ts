/**
 * Serving the gateway on a socket: loopback by default, refusing any other address without a
 * token, optional TLS, and limits so slow or oversized requests cannot hold the server.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { isIP } from "node:net";
import { StorageError } from "../errors.js";
import { listenOn } from "../internal/listen.js";
import type { Store } from "../types.js";
import { createGateway, type Gateway, type GatewayOptions } from "./gateway.js";

export interface ServerLimits {
  /** Time to receive a request's headers (default 10 s); a slower client is answered 408 and cut. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request, body included (default 5 min): bounds a slow upload. */
  requestTimeoutMs?: number;
  /** A connection with no traffic for this long is closed (default 60 s; watch streams send heartbeats). */
  idleTimeoutMs?: number;
  /** Largest request head (request line and headers) in bytes (default 16 KiB); larger is 431. */
  maxHeaderBytes?: number;
  /** Connections at once (default 1024); more are refused at accept. */
  maxConnections?: number;
}

export interface StartGatewayOptions extends GatewayOptions, ServerLimits {
  /** Address to bind (default 127.0.0.1). Anything but loopback needs `token` or `readToken`. */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** TLS certificate and key (PEM); both or neither. */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface GatewayServer {
  /** `http(s)://host:port` (a picked port filled in). */
  url: string;
  server: Server;
  gateway: Gateway;
  /** Stops accepting, ends watch streams, waits up to `graceMs` (default 5 s) for requests in flight, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

export const DEFAULT_HTTP_HOST = "127.0.0.1";
export const DEFAULT_HTTP_PORT = 8080;

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "");
  if (bare === "localhost") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  return bare === "::1";
}

export async function startGateway(store: Store, options: StartGatewayOptions = {}): Promise<GatewayServer> {
  const host = options.host ?? DEFAULT_HTTP_HOST;
  const port = options.port ?? DEFAULT_HTTP_PORT;
  if (!isLoopback(host) && !options.token && !options.readToken) {
    throw new StorageError("invalid", `refusing to serve on ${host} without a token: give --http-token or --http-read-token (or bind to 127.0.0.1)`, { op: "serve" });
  }
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new StorageError("invalid", "TLS needs both a certificate and a key", { op: "serve" });
  }
  const gateway = createGateway(store, options);
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const serverOptions = {
    maxHeaderSize: options.maxHeaderBytes ?? 16 * 1024,
    headersTimeout,
    requestTimeout: Math.max(options.requestTimeoutMs ?? 300_000, headersTimeout),
    // The timeouts above are checked on this interval: keep it well under them.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, headersTimeout / 4)),
    keepAliveTimeout: 5000,
  };
  const tls = options.cert !== undefined;
  const server: Server = tls ? createHttpsServer({ ...serverOptions, cert: options.cert, key: options.key }, gateway) : createHttpServer(serverOptions, gateway);
  server.maxConnections = options.maxConnections ?? 1024;
  server.setTimeout(options.idleTimeoutMs ?? 60_000, (socket) => socket.destroy());
  const address = await listenOn(server, port, host);
  let closed: Promise<void> | undefined;
  return {
    url: `${tls ? "https" : "http"}://${address.host}:${address.port}`,
    server,
    gateway,
    close(graceMs = 5000) {
      closed ??= new Promise<void>((resolve) => {
        gateway.close();
        const cut = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}
