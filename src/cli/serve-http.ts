/**
 * `stowage serve --http`: turns the HTTP flags into gateway options (address, tokens from the
 * flags or the environment, TLS files) and starts the gateway on a store.
 */
import { readFileSync } from "node:fs";
import type { Store } from "../types.js";
import { openStore, redactUrl } from "../open.js";
import type { Logger, StorageComponent } from "../component/index.js";
import { startGateway, DEFAULT_HTTP_HOST, type GatewayServer, type RequestHandler, type StartGatewayOptions } from "../http/index.js";
import { CliError, EXIT } from "./errors.js";

export interface HttpFlags {
  http?: string;
  httpToken?: string;
  httpReadToken?: string;
  httpCert?: string;
  httpKey?: string;
}

/** Tokens may come from the environment so they stay out of `ps` output and shell history. */
export const HTTP_TOKEN_ENV = { token: "STOWAGE_HTTP_TOKEN", readToken: "STOWAGE_HTTP_READ_TOKEN" } as const;

/** The gateway options the flags describe. Throws a usage error for a bad address or an unreadable file. */
export function gatewayOptions(flags: HttpFlags & { http: string }, env: Record<string, string | undefined>): StartGatewayOptions {
  const { host, port } = parseAddress(flags.http);
  const options: StartGatewayOptions = { host, port };
  const token = flags.httpToken ?? nonEmpty(env[HTTP_TOKEN_ENV.token]);
  const readToken = flags.httpReadToken ?? nonEmpty(env[HTTP_TOKEN_ENV.readToken]);
  if (token !== undefined) options.token = token;
  if (readToken !== undefined) options.readToken = readToken;
  if ((flags.httpCert === undefined) !== (flags.httpKey === undefined)) throw new CliError(EXIT.usage, "--http-cert and --http-key go together");
  if (flags.httpCert !== undefined && flags.httpKey !== undefined) {
    options.cert = readPem(flags.httpCert, "--http-cert");
    options.key = readPem(flags.httpKey, "--http-key");
  }
  return options;
}

/** Starts the gateway on `store`; `fallback` serves the paths outside the API (the console). */
export async function startHttp(store: Store, options: StartGatewayOptions, fallback?: RequestHandler): Promise<GatewayServer> {
  try {
    return await startGateway(store, { ...options, fallback });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
      throw new CliError(EXIT.failure, `cannot listen on ${options.host}:${options.port}: ${code}`, { cause });
    }
    throw cause;
  }
}

/** `host:port`, `[v6]:port` or a bare port (on 127.0.0.1). */
export function parseAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim()) ?? /^()()(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new CliError(EXIT.usage, `--http must be host:port such as 127.0.0.1:8080, got ${JSON.stringify(text)}`);
  return { host: match[1] || match[2] || DEFAULT_HTTP_HOST, port };
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new CliError(EXIT.usage, `cannot read ${flag} file ${path}: ${(cause as NodeJS.ErrnoException).code ?? "error"}`, { cause });
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

/** What `serve` runs: the NATS component, the gateway, or both; started and stopped as one. */
export interface Served {
  start(): Promise<void>;
  stop(drainMs: number): Promise<void>;
}

/**
 * The gateway on a store opened from `storeUrl`, without NATS. Logs `started` with the
 * gateway's URL (the store URL redacted), as the component does.
 */
export function gatewayOnly(storeUrl: string, http: StartGatewayOptions, logger: Logger, fallback?: RequestHandler): Served {
  let store: Store | undefined;
  let server: GatewayServer | undefined;
  return {
    async start() {
      store = await openStore(storeUrl);
      server = await startHttp(store, http, fallback);
      logger.info("started", { http: server.url, store: redactUrl(storeUrl), auth: authMode(http) });
    },
    async stop(drainMs) {
      await server?.close(drainMs);
      await store?.close();
      logger.info("stopped");
    },
  };
}

/** The component, with the gateway on the component's store once the component runs. */
export function componentWithGateway(component: StorageComponent, http: StartGatewayOptions | undefined, logger: Logger, fallback?: RequestHandler): Served {
  let server: GatewayServer | undefined;
  let stopping = false;
  return {
    async start() {
      await component.start();
      if (http === undefined || stopping) return;
      server = await startHttp(component.store!, http, fallback);
      logger.info("http started", { http: server.url, auth: authMode(http) });
    },
    async stop(drainMs) {
      stopping = true;
      // The gateway first: its requests use the store the component closes.
      await server?.close(drainMs);
      await component.stop(drainMs);
    },
  };
}

/** How requests are authorised, for the log (never the tokens themselves). */
function authMode(http: StartGatewayOptions): string {
  if (http.token && http.readToken) return "read-write and read-only tokens";
  if (http.token) return "read-write token";
  if (http.readToken) return "read-only token";
  return "none (loopback only)";
}
