/**
 * `GET /v1/list?prefix=&delimiter=/&after=&limit=` answers a ListPage as JSON; `&stat=1` adds
 * `entries` with size, time, etag and content type of each key (a folder view's columns), read
 * with a bounded number of stat calls at once.
 */
import { mapLimit } from "../internal/concurrency.js";
import { isStorageError } from "../errors.js";
import type { ListPageOptions } from "../types.js";
import { servedContentType } from "./content-safety.js";
import { badRequest, HttpError, sendJson } from "./errors.js";
import type { RouteContext } from "./route-context.js";

export interface ListEntry {
  key: string;
  size: number;
  modified: string;
  etag: string;
  contentType: string;
}

export async function listRoute({ store, req, res, query, signal, statConcurrency }: RouteContext): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(405, "list takes GET", "method_not_allowed", { allow: "GET" });
  const options: ListPageOptions = { signal };
  const delimiter = query.get("delimiter");
  if (delimiter !== null && delimiter !== "") {
    if (delimiter !== "/") throw badRequest('delimiter must be "/"', "list");
    options.delimiter = "/";
  }
  const after = query.get("after");
  if (after !== null && after !== "") options.after = after;
  const limit = query.get("limit");
  if (limit !== null && limit !== "") {
    if (!/^\d{1,9}$/.test(limit)) throw badRequest("limit must be a positive whole number", "list");
    options.limit = Number(limit);
  }
  const page = await store.listPage(query.get("prefix") ?? "", options);
  const withStat = query.get("stat");
  if (withStat !== "1" && withStat !== "true") return sendJson(res, 200, page);
  const entries = await mapLimit(page.keys, statConcurrency, async (key) => {
    try {
      const info = await store.stat(key, { signal });
      return { key, size: info.size, modified: info.modified.toISOString(), etag: info.etag, contentType: servedContentType(info.metadata["content-type"]) };
    } catch (err) {
      // Deleted between the listing and the stat: left out of `entries`, still in `keys`.
      if (isStorageError(err, "not_found")) return undefined;
      throw err;
    }
  });
  sendJson(res, 200, { ...page, entries: entries.filter((e): e is ListEntry => e !== undefined) });
}
