/** Turning a `file:` store URL into FileStore options. */
import { fileURLToPath } from "node:url";
import { StorageError } from "../../errors.js";
import { readUrlParams } from "../../internal/url-params.js";
import type { StoreUrl } from "../../types.js";
import type { NameMode } from "./names.js";
import type { FileStoreOptions } from "./options.js";

const NAME_MODES: readonly NameMode[] = ["readable", "portable"];
const EXAMPLES = "file:./data, file:/var/lib/app/data or file:///var/lib/app/data";

/**
 * `file:./rel`, `file:rel`, `file:/abs` and `file:///abs` (also `file://localhost/abs`), each
 * optionally followed by `?fsync=false` and/or `?names=portable`. The short forms take the path
 * literally (WHATWG parsing would drop a relative path); the `file://` form is a real URL, so
 * its path is percent-decoded.
 */
export function parseFileUrl(target: StoreUrl): FileStoreOptions & { root: string } {
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
  return { root, ...readUrlParams(params, "file", { fsync: "boolean", names: NAME_MODES }) };
}
