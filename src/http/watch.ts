/**
 * `GET /v1/watch?prefix=` streams the store's change feed as Server-Sent Events: an event
 * `ready` once the feed is live, then one `change` event per put or delete
 * (`data: {"key","op","version","time"}`), and a comment line every heartbeat so proxies and
 * the idle timeout keep the connection. The feed stops when the client goes or the gateway
 * closes. A client that reads slower than changes arrive is waited for (the feed is pulled,
 * not buffered).
 */
import type { ServerResponse } from "node:http";
import { StorageError } from "../errors.js";
import { HttpError } from "./errors.js";
import type { RouteContext } from "./route-context.js";
import { writable } from "./writable.js";

export async function watchRoute({ store, req, res, query, signal, heartbeatMs }: RouteContext): Promise<void> {
  if (req.method !== "GET") throw new HttpError(405, "watch takes GET", "method_not_allowed", { allow: "GET" });
  if (!store.capabilities.watch) throw new StorageError("unsupported", "this store has no change feed", { op: "watch" });
  const feed = await store.watch(query.get("prefix") ?? "", { signal });
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    // Tells nginx-style proxies not to buffer the stream.
    "x-accel-buffering": "no",
  });
  res.flushHeaders();
  const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), heartbeatMs);
  try {
    await send(res, "retry: 1000\nevent: ready\ndata: {}\n\n");
    for await (const change of feed) {
      const data = JSON.stringify({ key: change.key, op: change.op, version: change.version, time: change.time.toISOString() });
      await send(res, `event: change\ndata: ${data}\n\n`);
    }
  } catch (err) {
    // The client went away or the gateway closes: the feed's end, not a failure.
    if (!signal.aborted) throw err;
  } finally {
    clearInterval(heartbeat);
    if (!res.writableEnded && !res.destroyed) res.end();
  }
}

async function send(res: ServerResponse, text: string): Promise<void> {
  if (res.destroyed) throw new Error("the client went away");
  if (!res.write(text)) await writable(res);
}
