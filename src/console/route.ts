/**
 * Where the console is, kept in the URL's fragment so a folder or an object can be bookmarked
 * and the browser's back button works: `#/a/b/` is the folder `a/b/`, `#/a/b/c.json` the
 * object `a/b/c.json` (in its folder), `?version=` an old version of it. Segments are escaped,
 * so any key survives the trip.
 */

export interface Route {
  prefix: string;
  key?: string;
  version?: string;
}

export function parseRoute(hash: string): Route {
  const text = hash.replace(/^#\/?/, "");
  const question = text.indexOf("?");
  const path = question < 0 ? text : text.slice(0, question);
  const query = new URLSearchParams(question < 0 ? "" : text.slice(question + 1));
  let decoded: string;
  try {
    decoded = path.split("/").map(decodeURIComponent).join("/");
  } catch {
    return { prefix: "" }; // a hand-edited fragment that is not valid escaping
  }
  if (decoded === "" || decoded.endsWith("/")) return { prefix: decoded };
  return { prefix: decoded.slice(0, decoded.lastIndexOf("/") + 1), key: decoded, version: query.get("version") ?? undefined };
}

export function routeHash(route: Route): string {
  const path = (route.key ?? route.prefix).split("/").map(encodeURIComponent).join("/");
  return `#/${path}${route.key && route.version ? `?version=${encodeURIComponent(route.version)}` : ""}`;
}
