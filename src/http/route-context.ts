import type { IncomingMessage, ServerResponse } from "node:http";
import type { Store } from "../types.js";

/** What a route handler receives. */
export interface RouteContext {
  store: Store;
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  /** The path after the route's prefix (`/v1/objects/`), still percent-encoded. */
  rest: string;
  /** Aborted when the client goes away before the response ended, or the gateway closes. */
  signal: AbortSignal;
  /** Heartbeat interval of watch streams. */
  heartbeatMs: number;
  /** Stat calls in flight for one `list?stat=1`. */
  statConcurrency: number;
}

export type Route = (ctx: RouteContext) => Promise<void>;
