#!/usr/bin/env node
// Bundles the storage console (src/console) into dist/console: index.html, app.js, app.css and
// the icon. index.html names each asset with a hash of its content (`app.js?v=…`), so the
// gateway can let browsers cache the assets for good while index.html is always revalidated.
// `node scripts/build-console.mjs [outdir]`; `npm run build` runs it after tsc.
import { build } from "esbuild";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "src/console");

const hashOf = (bytes) => createHash("sha256").update(bytes).digest("hex").slice(0, 16);

/** Builds the console into `outdir`; returns each file's size and gzipped size. */
export async function buildConsole(outdir = join(root, "dist/console")) {
  const result = await build({
    entryPoints: { app: join(source, "main.ts"), "app-style": join(source, "app.css") },
    bundle: true,
    minify: true,
    format: "iife",
    target: ["es2022", "chrome111", "firefox113", "safari16.4"],
    legalComments: "none",
    write: false,
    outdir: "out",
    logLevel: "warning",
  });
  const js = result.outputFiles.find((file) => file.path.endsWith(".js")).contents;
  const css = result.outputFiles.find((file) => file.path.endsWith(".css")).contents;
  const html = readFileSync(join(source, "index.html"), "utf8").replace("%JS_HASH%", hashOf(js)).replace("%CSS_HASH%", hashOf(css));
  const files = { "index.html": Buffer.from(html), "app.js": js, "app.css": css, "favicon.svg": readFileSync(join(source, "favicon.svg")) };
  mkdirSync(outdir, { recursive: true });
  const sizes = {};
  for (const [name, bytes] of Object.entries(files)) {
    writeFileSync(join(outdir, name), bytes);
    sizes[name] = { bytes: bytes.length, gzipped: gzipSync(bytes).length };
  }
  return sizes;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const sizes = await buildConsole(process.argv[2] ? resolve(process.argv[2]) : undefined);
  const total = Object.values(sizes).reduce((sum, size) => sum + size.gzipped, 0);
  console.log(`console: ${Object.entries(sizes).map(([name, size]) => `${name} ${size.bytes} B`).join(", ")}; ${total} B gzipped`);
}
