/** The selected object: what it is (size, time, type, etag, metadata), its versions, actions, and its preview. */
import { deleteObject, headObject, listVersions, readUrl, type Head } from "./api.js";
import { confirmDialog } from "./confirm.js";
import { fill, h } from "./dom.js";
import { formatSize, formatTime, typeOf } from "./format.js";
import { renderPreview } from "./preview.js";
import { toast, toastError } from "./toast.js";

export interface DetailsHost {
  /** Opens a version of the key (undefined: the current one). */
  openVersion(key: string, version: string | undefined): void;
  /** The key was deleted from here. */
  deleted(key: string): void;
  /** Closes the panel (the phone layout shows one pane at a time). */
  close(): void;
}

let generation = 0;
let shownHead: Head | undefined;

export function shownKey(): string | undefined {
  return shownHead?.key;
}

export async function showDetails(panel: HTMLElement, key: string, version: string | undefined, host: DetailsHost): Promise<void> {
  const mine = ++generation;
  const stale = () => mine !== generation;
  fill(panel, h("p", { class: "muted" }, "Loading…"));
  let head: Head;
  try {
    head = await headObject(key, version);
  } catch (error) {
    if (stale()) return;
    shownHead = undefined;
    fill(panel, header(key, host), h("p", { class: "error" }, error instanceof Error ? error.message : String(error)));
    return;
  }
  if (stale()) return;
  shownHead = head;
  const previewBox = h("section", { class: "preview", attrs: { "aria-label": "preview" } }, h("p", { class: "muted" }, "Loading preview…"));
  const versionsBox = h("section", { class: "versions" });
  fill(panel, header(key, host), actions(head, host), facts(head), previewBox, versionsBox);
  void showVersions(versionsBox, head, host, stale);
  try {
    const preview = await renderPreview(head);
    if (!stale()) fill(previewBox, preview);
  } catch (error) {
    if (!stale()) fill(previewBox, h("p", { class: "error" }, `No preview: ${error instanceof Error ? error.message : String(error)}`));
  }
}

/** Drops what the panel shows (the folder changed). */
export function clearDetails(panel: HTMLElement): void {
  generation++;
  shownHead = undefined;
  fill(panel, h("p", { class: "muted empty-details" }, "Select an object to see it here."));
}

function header(key: string, host: DetailsHost): HTMLElement {
  return h(
    "header",
    { class: "details-head" },
    h("button", { class: "back", title: "Back to the folder", on: { click: () => host.close() } }, "←"),
    h("h2", { class: "details-key", attrs: { "data-key": key } }, key),
  );
}

function actions(head: Head, host: DetailsHost): HTMLElement {
  const name = head.key.slice(head.key.lastIndexOf("/") + 1) || "download";
  const download = h("a", { class: "button", attrs: { href: readUrl(head.key, head.version), download: name } }, "Download");
  const remove = h(
    "button",
    {
      class: "danger",
      on: {
        click: async () => {
          if (!(await confirmDialog("Delete this object?", head.key, "Delete"))) return;
          try {
            await deleteObject(head.key, head.etag);
            toast(`Deleted ${head.key}`);
            host.deleted(head.key);
          } catch (error) {
            toastError("Delete", error);
          }
        },
      },
    },
    "Delete",
  );
  return h(
    "div",
    { class: "toolbar" },
    download,
    head.version ? h("button", { on: { click: () => host.openVersion(head.key, undefined) } }, "Current version") : remove,
  );
}

function facts(head: Head): HTMLElement {
  const rows: [string, string][] = [
    ["Size", `${formatSize(head.size)} (${head.size.toLocaleString()} bytes)`],
    ["Modified", formatTime(head.modified)],
    ["Type", typeOf(head.key, head.contentType) || head.contentType],
    ["ETag", head.etag ?? ""],
  ];
  if (head.version ?? head.current) rows.push(["Version", (head.version ?? head.current)!]);
  for (const [name, value] of Object.entries(head.metadata)) rows.push([name, value]);
  return h("dl", { class: "facts" }, ...rows.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

async function showVersions(box: HTMLElement, head: Head, host: DetailsHost, stale: () => boolean): Promise<void> {
  try {
    const versions = await listVersions(head.key);
    if (stale() || versions.length === 0) return;
    const items = versions.map((v) => {
      const label = `${formatTime(v.modified)} · ${v.deleted ? "deleted" : formatSize(v.size)}`;
      const current = v.version === (head.version ?? head.current);
      return h(
        "li",
        {},
        v.deleted
          ? h("span", { class: "muted" }, label)
          : h("button", { class: current ? "link current" : "link", title: `version ${v.version}`, attrs: { "data-version": v.version }, on: { click: () => host.openVersion(head.key, v.version) } }, label),
      );
    });
    fill(box, h("h3", {}, `Versions (${versions.length})`), h("ol", { class: "version-list" }, ...items));
  } catch {
    // a store without versions answers 501: the section stays empty
  }
}
