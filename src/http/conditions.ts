/**
 * Conditional request headers: `If-None-Match` / `If-Modified-Since` on reads (304),
 * `If-Range` on ranged reads, `If-Match` / `If-None-Match: *` on writes (412).
 *
 * The ETag header is the store's etag as a quoted string (an etag that already is one, as
 * S3's are, is sent as it is). Tags from clients are compared in that wire form, so the
 * gateway never has to guess how a store spells its etags.
 */
import type { IncomingMessage } from "node:http";
import { isStorageError, StorageError } from "../errors.js";
import type { Store, WriteConditions } from "../types.js";
import { badRequest } from "./errors.js";

/** The ETag header for a store etag. */
export function entityTag(etag: string): string {
  return /^"[^"]*"$/.test(etag) ? etag : `"${etag}"`;
}

/** The tags listed in an `If-Match`/`If-None-Match` value, `W/` dropped (`*` kept). */
export function listedTags(header: string): string[] {
  const tags: string[] = [];
  for (const match of header.matchAll(/\s*(?:W\/)?("[^"]*"|[^\s,]+)\s*(?:,|$)/g)) tags.push(match[1]!);
  return tags;
}

/** True when a client's `tag` names the store's `etag` (a bare unquoted tag is taken too). */
function names(tag: string, etag: string): boolean {
  const wire = entityTag(etag);
  return tag === wire || `"${tag}"` === wire;
}

/** True when `If-None-Match` names the current etag (or `*`): the client's copy is current. */
export function notModified(req: IncomingMessage, etag: string, modified: Date): boolean {
  const header = req.headers["if-none-match"];
  if (header !== undefined) return listedTags(header).some((tag) => tag === "*" || names(tag, etag));
  return notNewerThan(req.headers["if-modified-since"], modified);
}

/** False when `If-Range` names another etag or an older date: then the whole value is sent. */
export function rangeStillValid(req: IncomingMessage, etag: string, modified: Date): boolean {
  const given = req.headers["if-range"];
  if (given === undefined) return true;
  const header = String(given).trim();
  if (header.startsWith('"') || header.startsWith("W/")) return names(listedTags(header)[0] ?? "", etag);
  return notNewerThan(header, modified);
}

function notNewerThan(date: string | undefined, modified: Date): boolean {
  if (date === undefined) return false;
  const time = Date.parse(date);
  // HTTP dates have whole seconds.
  return !Number.isNaN(time) && Math.floor(modified.getTime() / 1000) <= Math.floor(time / 1000);
}

/**
 * The conditions of a write on `key` from `If-Match` (one etag) and `If-None-Match` (only `*`).
 * `If-Match` is turned into the store's own etag by a `stat`: a tag naming another value (or
 * a missing key) is a conflict at once; a matching one is handed to the store, which checks it
 * again atomically, so a write in between still fails the condition.
 */
export async function writeConditions(store: Store, key: string, req: IncomingMessage, op: string, signal: AbortSignal): Promise<WriteConditions> {
  const conditions: WriteConditions = {};
  const ifNoneMatch = req.headers["if-none-match"];
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch.trim() !== "*") throw badRequest("a write takes only If-None-Match: * (create, never replace)", op);
    conditions.ifNoneMatch = "*";
  }
  const ifMatch = req.headers["if-match"];
  if (ifMatch === undefined) return conditions;
  const tags = listedTags(ifMatch);
  if (tags.length !== 1 || tags[0] === "*") throw badRequest("If-Match must name exactly one etag", op);
  if (!store.capabilities.conditionalWrites) throw new StorageError("unsupported", "this store cannot write conditionally", { op, key });
  const current = await store.stat(key, { signal }).catch((err: unknown) => {
    if (isStorageError(err, "not_found")) return undefined;
    throw err;
  });
  if (!current || !names(tags[0]!, current.etag)) throw new StorageError("conflict", "If-Match does not name the current value", { op, key });
  conditions.ifMatch = current.etag;
  return conditions;
}
