/**
 * The storage console: a folder view of the store behind the gateway, a preview and the details
 * of the selected object, uploads, and live changes. State lives in the URL's fragment
 * (route.ts); everything shown comes from /v1/ on the same origin.
 */
import { byId, fill, h } from "./dom.js";
import { clearDetails, showDetails, shownKey, type DetailsHost } from "./details.js";
import { FolderView } from "./folder.js";
import { follow, type LiveState } from "./live.js";
import { parseRoute, routeHash, type Route } from "./route.js";
import { toastError } from "./toast.js";
import { setUpUploads } from "./upload.js";

const main = byId("main");
const detailsPanel = byId("details");
let route: Route = { prefix: "" };
let stopLive: (() => void) | undefined;

const folder = new FolderView(byId<HTMLTableSectionElement>("rows"), byId<HTMLButtonElement>("more"), byId("count"), {
  openFolder: (prefix) => go({ prefix }),
  openKey: (key) => go({ prefix: route.prefix, key }),
  error: toastError,
});

const detailsHost: DetailsHost = {
  openVersion: (key, version) => go({ prefix: route.prefix, key, version }),
  deleted: (key) => {
    folder.apply({ key, op: "delete" });
    go({ prefix: route.prefix });
  },
  close: () => {
    go({ prefix: route.prefix });
    folder.focus();
  },
};

function go(next: Route): void {
  const hash = routeHash(next);
  if (location.hash === hash) void show(parseRoute(hash));
  else location.hash = hash;
}

async function show(next: Route): Promise<void> {
  const folderChanged = next.prefix !== folder.prefix || !main.dataset.ready;
  route = next;
  main.dataset.ready = "1";
  renderCrumbs(next);
  document.title = `${next.key ?? (next.prefix || "/")} · stowage`;
  main.classList.toggle("has-details", next.key !== undefined);
  if (folderChanged) {
    const left = folder.prefix;
    clearDetails(detailsPanel);
    startLive(next.prefix);
    await folder.open(next.prefix);
    // Keys keep working after a move: up lands on the folder just left, down on the first row.
    if (next.key === undefined) folder.focus(left.startsWith(next.prefix) ? left.slice(0, left.indexOf("/", next.prefix.length) + 1) : undefined);
  }
  folder.select(next.key);
  if (next.key === undefined) {
    if (!folderChanged) clearDetails(detailsPanel);
    return;
  }
  await showDetails(detailsPanel, next.key, next.version, detailsHost);
}

function renderCrumbs(current: Route): void {
  const parts = current.prefix.split("/").slice(0, -1);
  const crumbs: HTMLElement[] = [h("a", { attrs: { href: routeHash({ prefix: "" }) } }, "root")];
  let prefix = "";
  for (const part of parts) {
    prefix += `${part}/`;
    crumbs.push(h("span", { class: "sep", attrs: { "aria-hidden": "true" } }, "/"), h("a", { attrs: { href: routeHash({ prefix }) } }, part));
  }
  if (current.key) crumbs.push(h("span", { class: "sep", attrs: { "aria-hidden": "true" } }, "/"), h("span", { class: "crumb-key" }, current.key.slice(current.prefix.length)));
  crumbs[crumbs.length - 1]!.setAttribute("aria-current", "page");
  fill(byId("crumbs"), ...crumbs);
}

function startLive(prefix: string): void {
  stopLive?.();
  const badge = byId("live");
  stopLive = follow({
    prefix,
    onChange: (change) => {
      folder.apply(change);
      // The open object changed under us: show what it is now.
      if (change.key === route.key && !route.version) {
        if (change.op === "delete") go({ prefix: route.prefix });
        else if (shownKey() === change.key) void showDetails(detailsPanel, change.key, undefined, detailsHost);
      }
    },
    onState: (state: LiveState) => {
      badge.hidden = state === "unsupported";
      badge.dataset.state = state;
      badge.textContent = state === "live" ? "live" : state === "connecting" ? "connecting" : "offline";
      badge.title = state === "live" ? "New and deleted objects appear as they happen" : "Reconnecting to the change feed";
    },
  });
}

function parentOf(prefix: string): string {
  const trimmed = prefix.slice(0, -1);
  return trimmed.slice(0, trimmed.lastIndexOf("/") + 1);
}

document.addEventListener("keydown", (event) => {
  const target = event.target as HTMLElement;
  if (target.closest("input, textarea, select, dialog, [contenteditable]")) return;
  if (event.key === "Backspace" || (event.key === "ArrowLeft" && target.closest("#rows"))) {
    event.preventDefault();
    if (route.key !== undefined) detailsHost.close();
    else if (route.prefix) go({ prefix: parentOf(route.prefix) });
  } else if (event.key === "Escape" && route.key !== undefined) detailsHost.close();
});

setUpUploads({ prefix: () => route.prefix, uploaded: (key) => folder.apply({ key, op: "put" }) });
// The gateway serves this page for any path: `/browse/a/b/` is taken as the folder `a/b/`.
if (location.pathname !== "/") {
  const path = location.pathname.startsWith("/browse/") ? location.pathname.slice("/browse/".length) : "";
  history.replaceState(null, "", `/${location.hash || `#/${path}`}`);
}
window.addEventListener("hashchange", () => void show(parseRoute(location.hash)));
void show(parseRoute(location.hash));
