/**
 * `/v1/objects/{key}`: GET and HEAD stream a value (ranges, conditional requests, versions),
 * PUT streams the body into the store, DELETE removes it.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { StorageError } from "../errors.js";
import type { Metadata, Store } from "../types.js";
import { entityTag, notModified, rangeStillValid, writeConditions } from "./conditions.js";
import { safetyHeaders, servedContentType } from "./content-safety.js";
import { HttpError, sendJson } from "./errors.js";
import { contentRange, parseRange } from "./range.js";
import { decodeOnce } from "./request-target.js";
import { writable } from "./writable.js";
import type { RouteContext } from "./route-context.js";

const META_HEADER = "x-stowage-meta-";
/** Bodies up to this size are read with `get` and sent in one write; larger ones are streamed. */
const SMALL_BODY_BYTES = 64 * 1024;

/** What a read answers with before any byte of the value. */
interface Described {
  size: number;
  modified: Date;
  contentType: string;
  metadata: Metadata;
  /** Absent for an old version: validators name the current value only. */
  etag?: string;
}

export async function objectRoute(ctx: RouteContext): Promise<void> {
  const key = decodeOnce(ctx.rest);
  switch (ctx.req.method) {
    case "GET":
    case "HEAD":
      return read(ctx, key);
    case "PUT":
      return write(ctx, key);
    case "DELETE":
      return remove(ctx, key);
    default:
      throw new HttpError(405, `${ctx.req.method} is not allowed on an object`, "method_not_allowed", { allow: "GET, HEAD, PUT, DELETE" });
  }
}

async function read({ store, req, res, query, signal }: RouteContext, key: string): Promise<void> {
  const version = query.get("version") ?? undefined;
  const info = await describe(store, key, version, signal);
  const headers: Record<string, string | number> = {
    ...safetyHeaders(key, info.contentType),
    "accept-ranges": "bytes",
    "last-modified": info.modified.toUTCString(),
    // The browser keeps the value but asks each time (a cheap 304 when unchanged).
    "cache-control": "private, no-cache",
  };
  if (info.etag !== undefined) headers.etag = entityTag(info.etag);
  for (const [name, value] of Object.entries(info.metadata)) {
    // Values outside printable ASCII cannot travel as header values: /v1/stat has them all.
    if (name !== "content-type" && /^[\x20-\x7e]*$/.test(value)) headers[`${META_HEADER}${name}`] = value;
  }
  if (info.etag !== undefined && notModified(req, info.etag, info.modified)) {
    res.writeHead(304, headers).end();
    return;
  }
  const ranged = info.etag === undefined || rangeStillValid(req, info.etag, info.modified);
  const answer = ranged ? parseRange(req.headers.range, info.size) : ({ kind: "whole" } as const);
  if (answer.kind === "unsatisfiable") {
    sendJson(res, 416, { error: `the range ${req.headers.range} is outside the value's ${info.size} bytes`, kind: "invalid" }, { "content-range": `bytes */${info.size}` });
    return;
  }
  const range = answer.kind === "part" ? answer.range : undefined;
  headers["content-type"] = info.contentType;
  headers["content-length"] = range ? range.length : info.size;
  if (range) headers["content-range"] = contentRange(range, info.size);
  if (req.method === "HEAD") {
    res.writeHead(range ? 206 : 200, headers).end();
    return;
  }
  const length = range ? range.length : info.size;
  if (length <= SMALL_BODY_BYTES) {
    // One read and one write: cheaper than a stream for what fits a socket buffer anyway.
    const body = await store.get(key, { version, range, signal });
    if (body.byteLength !== length) throw new StorageError("transient", "the value changed while it was read", { op: "get", key });
    res.writeHead(range ? 206 : 200, headers).end(body);
    return;
  }
  const chunks = await store.getStream(key, { version, range, signal });
  res.writeHead(range ? 206 : 200, headers);
  await sendExactly(res, chunks, length);
}

/**
 * Writes the chunks, waiting whenever the client's socket is full, and checks them against the
 * length announced: a value replaced between `stat` and the read fails (the connection is cut)
 * rather than send bytes of two values. A plain loop rather than `stream.pipeline`, which costs
 * an AbortController and an exception object per response.
 */
async function sendExactly(res: ServerResponse, chunks: AsyncIterable<Uint8Array>, expected: number): Promise<void> {
  let sent = 0;
  for await (const chunk of chunks) {
    sent += chunk.byteLength;
    if (sent > expected) throw new Error("the value changed while it was read");
    if (res.destroyed) throw new Error("the client went away");
    if (!res.write(chunk)) await writable(res);
  }
  if (sent !== expected) throw new Error("the value changed while it was read");
  res.end();
}

async function describe(store: Store, key: string, version: string | undefined, signal: AbortSignal): Promise<Described> {
  const info = await store.stat(key, { signal }).catch((err: unknown) => {
    // An old version may outlive the current value (deleted since).
    if (version !== undefined && err instanceof StorageError && err.kind === "not_found") return undefined;
    throw err;
  });
  const current = (meta: Metadata) => servedContentType(meta["content-type"]);
  if (info && (version === undefined || info.version === version)) {
    return { size: info.size, modified: info.modified, etag: info.etag, metadata: info.metadata, contentType: current(info.metadata) };
  }
  const found = (await store.versions(key, { signal })).find((v) => v.version === version);
  if (!found || found.deleted) throw new StorageError("not_found", `version ${JSON.stringify(version)} does not exist`, { op: "get", key });
  // The metadata of an old version is not kept apart from its value: served as plain bytes.
  return { size: found.size, modified: found.modified, metadata: {}, contentType: servedContentType(undefined) };
}

async function write({ store, req, res, signal }: RouteContext, key: string): Promise<void> {
  const conditions = await writeConditions(store, key, req, "putStream", signal);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > store.capabilities.maxValueBytes) {
    throw new HttpError(413, `the body is ${declared} bytes, the store takes at most ${store.capabilities.maxValueBytes}`, "invalid");
  }
  // A client that goes away mid-body aborts the put: the store lands the whole value or nothing.
  await store.putStream(key, req, { ...conditions, metadata: metadataOf(req), signal });
  sendJson(res, 201, { key });
}

async function remove({ store, req, res, signal }: RouteContext, key: string): Promise<void> {
  if (req.headers["if-none-match"] !== undefined) throw new HttpError(400, "DELETE takes If-Match only", "invalid");
  const { ifMatch } = await writeConditions(store, key, req, "delete", signal);
  await store.delete(key, { ifMatch, signal });
  res.writeHead(204).end();
}

/** Metadata from `x-stowage-meta-*` headers and `Content-Type`; the store validates it. */
function metadataOf(req: IncomingMessage): Metadata | undefined {
  const metadata: Metadata = {};
  let any = false;
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith(META_HEADER) || value === undefined) continue;
    metadata[name.slice(META_HEADER.length)] = Array.isArray(value) ? value.join(", ") : value;
    any = true;
  }
  const type = req.headers["content-type"];
  if (type !== undefined) {
    metadata["content-type"] = type;
    any = true;
  }
  return any ? metadata : undefined;
}
