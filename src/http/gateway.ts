/**
 * The HTTP gateway as a request handler: routes `/v1/…` to the store, `/healthz` and
 * `/metrics`, and everything else to an optional fallback (the console). It opens no socket:
 * `startGateway` (server.ts) serves it with limits and TLS, or hand it to your own server.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { setMaxListeners } from "node:events";
import type { Registry } from "prom-client";
import type { Store } from "../types.js";
import { createAuthorizer, type TokenOptions } from "./auth.js";
import { HttpError, sendError, sendJson } from "./errors.js";
import { statRoute, versionsRoute } from "./key-info.js";
import { listRoute } from "./listing.js";
import { createGatewayMetrics } from "./metrics.js";
import { objectRoute } from "./objects.js";
import { splitTarget } from "./request-target.js";
import type { Route } from "./route-context.js";
import { watchRoute } from "./watch.js";

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface GatewayOptions extends TokenOptions {
  /** Serves every path outside `/v1/`, `/healthz` and `/metrics` (default: 404 JSON). */
  fallback?: RequestHandler;
  /** Where the request metrics register (default: a registry of the gateway's own). */
  registry?: Registry;
  /** Interval of comment lines on watch streams (default 15 s). */
  heartbeatMs?: number;
  /** Stat calls in flight for one `list?stat=1` (default 16). */
  statConcurrency?: number;
}

/** A `(req, res)` handler for `http.createServer`, with what it holds. */
export interface Gateway extends RequestHandler {
  (req: IncomingMessage, res: ServerResponse): Promise<void>;
  readonly registry: Registry;
  /** Ends the watch streams and answers 503 to new requests; the store stays open (it is the caller's). */
  close(): void;
}

/** Routes under `/v1/` that end in a key (prefix → handler) and the fixed ones. */
const KEY_ROUTES: [string, string, Route][] = [
  ["/v1/objects/", "objects", objectRoute],
  ["/v1/stat/", "stat", statRoute],
  ["/v1/versions/", "versions", versionsRoute],
];
const FIXED_ROUTES: Record<string, [string, Route]> = {
  "/v1/list": ["list", listRoute],
  "/v1/watch": ["watch", watchRoute],
};
const WRITES = new Set(["PUT", "DELETE", "POST", "PATCH"]);

export function createGateway(store: Store, options: GatewayOptions = {}): Gateway {
  const authorize = createAuthorizer(options);
  const metrics = createGatewayMetrics(options.registry);
  let closed = false;
  // The requests in flight, aborted when the gateway closes (ends watch streams).
  const inFlight = new Set<AbortController>();
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const statConcurrency = options.statConcurrency ?? 16;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    let route = "other";
    res.once("close", () => metrics.observe(route, req.method ?? "", res.statusCode, (performance.now() - started) / 1000));
    try {
      if (closed) throw new HttpError(503, "the gateway is closing", "transient");
      const { path, query } = splitTarget(req.url);
      if (path === "/healthz") {
        route = "healthz";
        return sendJson(res, store.closed ? 503 : 200, { status: store.closed ? "closed" : "ok" });
      }
      if (path === "/metrics") {
        route = "metrics";
        authorize(req, query, false);
        const text = await metrics.registry.metrics();
        res.writeHead(200, { "content-type": metrics.registry.contentType, "cache-control": "no-store" }).end(text);
        return;
      }
      if (!path.startsWith("/v1/")) {
        route = "fallback";
        if (options.fallback) return await options.fallback(req, res);
        throw new HttpError(404, `nothing at ${path}`, "not_found");
      }
      const found = findRoute(path);
      if (!found) throw new HttpError(404, `no route ${path}; see docs/http.md`, "not_found");
      route = found.name;
      authorize(req, query, WRITES.has(req.method ?? ""));
      const gone = new AbortController();
      const signal = gone.signal;
      // Hundreds of stat calls of one listing may listen to it.
      setMaxListeners(0, signal);
      inFlight.add(gone);
      res.once("close", () => {
        inFlight.delete(gone);
        if (!res.writableFinished) gone.abort(new HttpError(499, "the client went away", "transient"));
      });
      await found.handler({ store, req, res, query, rest: found.rest, signal, heartbeatMs, statConcurrency });
    } catch (err) {
      sendError(res, err);
    }
  }

  const gateway = Object.assign(handle, {
    registry: metrics.registry,
    close() {
      closed = true;
      for (const request of inFlight) request.abort(new HttpError(503, "the gateway is closing", "transient"));
    },
  });
  return gateway;
}

function findRoute(path: string): { name: string; handler: Route; rest: string } | undefined {
  for (const [prefix, name, handler] of KEY_ROUTES) {
    if (path.startsWith(prefix)) return { name, handler, rest: path.slice(prefix.length) };
  }
  const fixed = FIXED_ROUTES[path];
  return fixed ? { name: fixed[0], handler: fixed[1], rest: "" } : undefined;
}
