/** Turning a `file:` store URL into FileStore options. */
import { fileURLToPath } from "node:url";
import { StorageError } from "../../errors.js";
import type { StoreUrl } from "../../open.js";
import type { NameMode } from "./names.js";

export interface FileUrlOptions {
  root: string;
  fsync?: boolean;
  names?: NameMode;
}

const EXAMPLES = "file:./data, file:/var/lib/app/data or file:///var/lib/app/data";

/**
 * `file:./rel`, `file:rel`, `file:/abs` and `file:///abs` (also `file://localhost/abs`), each
 * optionally followed by `?fsync=false` and/or `?names=portable`. The short forms take the path
 * literally (WHATWG parsing would drop a relative path); the `file://` form is a real URL, so
 * its path is percent-decoded.
 */
export function parseFileUrl(target: StoreUrl): FileUrlOptions {
  const fail = (message: string) => new StorageError("invalid", message, { op: "open" });
  const rest = target.href.slice(target.href.indexOf(":") + 1);
  let root: string;
  let params: URLSearchParams;
  if (rest.startsWith("//")) {
    const host = target.url.hostname;
    if (host !== "" && host !== "localhost") throw fail(`file: URLs name a local directory, not a host (got host ${JSON.stringify(host)}); use ${EXAMPLES}`);
    try {
      root = fileURLToPath(new URL(target.url.pathname, "file://"));
    } catch (cause) {
      throw new StorageError("invalid", `cannot take a directory from ${target.redacted}; use ${EXAMPLES}`, { op: "open", cause });
    }
    params = target.url.searchParams;
  } else {
    const query = rest.indexOf("?");
    root = query < 0 ? rest : rest.slice(0, query);
    params = new URLSearchParams(query < 0 ? "" : rest.slice(query + 1));
  }
  if (root === "") throw fail(`a file: URL needs a directory, e.g. ${EXAMPLES}`);
  const options: FileUrlOptions = { root };
  for (const [name, value] of params) {
    if (name === "fsync") {
      if (value !== "true" && value !== "false") throw fail(`file: fsync must be true or false, got ${JSON.stringify(value)}`);
      options.fsync = value === "true";
    } else if (name === "names") {
      if (value !== "readable" && value !== "portable") throw fail(`file: names must be readable or portable, got ${JSON.stringify(value)}`);
      options.names = value;
    } else {
      throw fail(`unknown file: URL option ${JSON.stringify(name)}; known options: fsync, names`);
    }
  }
  return options;
}
