/**
 * The request target taken apart without normalisation. WHATWG URL parsing would resolve
 * `..` and `%2e%2e` segments before routing (`/v1/objects/%2e%2e/x` would become `/v1/x`), so
 * the path is split by hand and a key is percent-decoded exactly once: `a%2Fb` is the key
 * `a/b`, `%252e` is the literal three characters `%2e`, and `%2e%2e` decodes to `..`, which the
 * contract's key validation refuses (400).
 */
import { badRequest } from "./errors.js";

export interface RequestTarget {
  /** The path as sent, still percent-encoded. */
  path: string;
  query: URLSearchParams;
}

export function splitTarget(url: string | undefined): RequestTarget {
  const raw = url ?? "/";
  const mark = raw.indexOf("?");
  const path = mark === -1 ? raw : raw.slice(0, mark);
  let query: URLSearchParams;
  try {
    // URLSearchParams decodes leniently (a bad escape stays as is); check first so it is a 400.
    if (mark !== -1) decodeURIComponent(raw.slice(mark + 1).replace(/\+/g, " "));
    query = new URLSearchParams(mark === -1 ? "" : raw.slice(mark + 1));
  } catch {
    throw badRequest("the query string has malformed percent-encoding", "http");
  }
  return { path, query };
}

/** Decodes a key (or prefix) from the path once; malformed percent-encoding is a 400. */
export function decodeOnce(encoded: string, what = "key"): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw badRequest(`the ${what} in the path has malformed percent-encoding`, "http");
  }
}
