/**
 * Serves the storage console (built by `npm run build` into dist/console) for every path the
 * gateway does not route: the assets by name, and index.html for `/` and any other page path,
 * so a deep link into the app loads the app. The page gets a strict Content-Security-Policy:
 * only its own script and style run, and images and media come from the gateway itself or
 * blobs, so even a stored value that slipped into the page could not run script.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { RequestHandler } from "./gateway.js";

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "font-src 'none'",
  "object-src 'none'",
  "frame-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

/** Assets are named in index.html with `?v=` and a hash of their content. */
const IMMUTABLE = "public, max-age=31536000, immutable";

interface Asset {
  body: Buffer;
  type: string;
  /** The first 16 hex digits of the content's SHA-256, as index.html names it. */
  hash: string;
}

/**
 * Where the built console is: next to this module's directory when running from dist/
 * (dist/http → dist/console), or in dist/ when running from src/ under tsx.
 */
export function consoleDirectory(): string {
  const candidates = [new URL("../console/", import.meta.url), new URL("../../dist/console/", import.meta.url)].map((url) => fileURLToPath(url));
  // app.js, not index.html: src/console holds the page's template, never a built console.
  return candidates.find((dir) => existsSync(`${dir}app.js`)) ?? candidates[candidates.length - 1]!;
}

function loadAssets(dir: string): Map<string, Asset> | undefined {
  if (!existsSync(join(dir, "app.js"))) return undefined;
  const assets = new Map<string, Asset>();
  for (const name of ["index.html", "app.js", "app.css", "favicon.svg"]) {
    const body = readFileSync(join(dir, name));
    assets.set(`/${name}`, { body, type: TYPES[name.slice(name.lastIndexOf(".") + 1)]!, hash: createHash("sha256").update(body).digest("hex").slice(0, 16) });
  }
  return assets;
}

/** A handler serving the console built in `dir` (default: {@link consoleDirectory}), read once. */
export function createConsoleHandler(dir?: string): RequestHandler {
  let assets: Map<string, Asset> | undefined;
  return (req, res) => {
    assets ??= loadAssets(dir ?? consoleDirectory());
    serve(assets, req, res);
  };
}

/** The gateway's fallback in `stowage serve`: the console from dist/console. */
export const serveConsole: RequestHandler = createConsoleHandler();

function serve(assets: Map<string, Asset> | undefined, req: IncomingMessage, res: ServerResponse): void {
  const common = { "content-security-policy": CONSOLE_CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY" };
  if (req.method !== "GET" && req.method !== "HEAD") {
    return answer(res, req, 405, { ...common, allow: "GET, HEAD", "content-type": "application/json; charset=utf-8" }, JSON.stringify({ error: `${req.method} is not allowed here`, kind: "method_not_allowed" }));
  }
  if (!assets) {
    const text = "The storage console is not built: run `npm run build` (it bundles src/console into dist/console). The API under /v1/ works without it.\n";
    return answer(res, req, 503, { ...common, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, text);
  }
  const target = req.url ?? "/";
  const mark = target.indexOf("?");
  const path = mark < 0 ? target : target.slice(0, mark);
  const version = new URLSearchParams(mark < 0 ? "" : target.slice(mark + 1)).get("v");
  const asset = path === "/index.html" ? undefined : assets.get(path);
  // A path whose last segment has an extension asks for a file: a missing one is a 404, not the app.
  if (!asset && /\.[A-Za-z0-9]+$/.test(path) && path !== "/index.html") {
    return answer(res, req, 404, { ...common, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" }, `no console asset at ${path}\n`);
  }
  const served = asset ?? assets.get("/index.html")!;
  const etag = `"${served.hash}"`;
  const headers: Record<string, string> = {
    ...common,
    "content-type": served.type,
    etag,
    // The page itself is always revalidated, so a new build's asset names reach the browser.
    "cache-control": asset && version === served.hash ? IMMUTABLE : "no-cache",
  };
  if (req.headers["if-none-match"] === etag) return answer(res, req, 304, headers, undefined);
  answer(res, req, 200, { ...headers, "content-length": String(served.body.length) }, served.body);
}

function answer(res: ServerResponse, req: IncomingMessage, status: number, headers: Record<string, string>, body: string | Buffer | undefined): void {
  res.writeHead(status, headers);
  res.end(req.method === "HEAD" ? undefined : body);
}
