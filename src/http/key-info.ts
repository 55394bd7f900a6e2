/** `GET /v1/stat/{key}` (size, time, etag, version, metadata) and `GET /v1/versions/{key}`, as JSON. */
import { servedContentType } from "./content-safety.js";
import { HttpError, sendJson } from "./errors.js";
import { decodeOnce } from "./request-target.js";
import type { RouteContext } from "./route-context.js";

function onlyGet(ctx: RouteContext, what: string): void {
  if (ctx.req.method !== "GET" && ctx.req.method !== "HEAD") throw new HttpError(405, `${what} takes GET`, "method_not_allowed", { allow: "GET" });
}

export async function statRoute(ctx: RouteContext): Promise<void> {
  onlyGet(ctx, "stat");
  const info = await ctx.store.stat(decodeOnce(ctx.rest), { signal: ctx.signal });
  sendJson(ctx.res, 200, { ...info, modified: info.modified.toISOString(), contentType: servedContentType(info.metadata["content-type"]) });
}

export async function versionsRoute(ctx: RouteContext): Promise<void> {
  onlyGet(ctx, "versions");
  const key = decodeOnce(ctx.rest);
  const versions = await ctx.store.versions(key, { signal: ctx.signal });
  sendJson(ctx.res, 200, { key, versions: versions.map((v) => ({ ...v, modified: v.modified.toISOString() })) });
}
