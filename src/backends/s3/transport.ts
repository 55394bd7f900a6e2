/**
 * How a direct request (direct.ts) reaches the server once it is signed: the S3 client's own
 * request handler (when the caller gave one: a proxy agent, custom TLS, a test recorder), or a
 * keep-alive connection pool of the store's own on undici, which costs less client CPU per
 * request than Node's `http` module behind the SDK's default handler (measured against s3rver:
 * 1 KiB get 0.23 → 0.12 ms, 1 MiB get 4.5 → 3.0 ms).
 */
import type { Readable } from "node:stream";
import { buildQueryString } from "@smithy/core/protocols";
import type { HttpHandlerOptions, HttpRequest, RequestHandler } from "@smithy/types";
import { Pool } from "undici";

/** An answer, its body still to be read. */
export interface Response {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

export interface Transport {
  /** Sends a signed request; rejects when no answer came (refused or dropped connection, abort). */
  send(request: HttpRequest, signal: AbortSignal | undefined): Promise<Response>;
  /**
   * Closes the connections of its own at once, as the SDK client's `destroy()` does: requests in
   * flight fail rather than hold `close()` (a client's handler is the client's to close).
   */
  close(): Promise<void>;
}

/** As many connections per server as the SDK's Node handler opens by default. */
const MAX_CONNECTIONS = 50;

/** Requests through the client's request handler (the SDK's `NodeHttpHandler` or the caller's own). */
export function handlerTransport(handler: RequestHandler<unknown, unknown, HttpHandlerOptions>): Transport {
  return {
    async send(request, signal) {
      const { response } = await handler.handle(request, signal ? { abortSignal: signal } : {});
      return response as Response;
    },
    async close() {},
  };
}

/** Requests over a keep-alive undici pool to the one origin a store talks to. */
export function poolTransport(origin: string): Transport {
  const pool = new Pool(origin, { connections: MAX_CONNECTIONS });
  return {
    async send(request, signal) {
      const query = buildQueryString(request.query ?? {});
      const { statusCode, headers, body } = await pool.request({
        method: request.method as "GET" | "PUT" | "DELETE",
        path: query ? `${request.path}?${query}` : request.path,
        headers: request.headers,
        body: request.body as Uint8Array | undefined,
        signal,
      });
      return { statusCode, headers, body };
    },
    close: () => pool.destroy(),
  };
}
