/**
 * The preview of one value, chosen by its type: JSON as a tree, text, images, audio and video
 * (the media element has the value's own URL and asks the gateway for ranges as it seeks), and a hex dump of the
 * first bytes of anything else. Only what a preview needs is read: a prefix of text, 4 KiB of
 * bytes.
 */
import { readRange, readUrl, type Head } from "./api.js";
import { h } from "./dom.js";
import { formatSize, previewKind, typeOf } from "./format.js";
import { hexDump } from "./hex.js";
import { jsonTree, setTreeOpen } from "./json-tree.js";

const JSON_LIMIT = 4 * 1024 * 1024;
const TEXT_LIMIT = 256 * 1024;
const HEX_LIMIT = 4096;

export async function renderPreview(head: Head): Promise<HTMLElement> {
  if (head.size === 0) return h("p", { class: "muted" }, "An empty value.");
  const kind = previewKind(typeOf(head.key, head.contentType));
  switch (kind) {
    case "json":
      return head.size <= JSON_LIMIT ? jsonPreview(head) : textPreview(head);
    case "text":
      return textPreview(head);
    case "image":
      return h("div", { class: "media" }, h("img", { attrs: { src: readUrl(head.key, head.version), alt: head.key, "data-preview": "image" } }));
    case "audio":
    case "video":
      return h("div", { class: "media" }, h(kind, { attrs: { src: readUrl(head.key, head.version), controls: "", preload: "metadata", "data-preview": kind } }));
    case "bytes":
      return hexPreview(head);
  }
}

async function prefixText(head: Head, limit: number): Promise<{ text: string; cut: boolean }> {
  const length = Math.min(head.size, limit);
  const bytes = await readRange(head.key, 0, length, head.version);
  // fatal: false, so a cut in the middle of a character shows as one replacement mark.
  return { text: new TextDecoder("utf-8").decode(bytes), cut: head.size > length };
}

async function jsonPreview(head: Head): Promise<HTMLElement> {
  const { text } = await prefixText(head, JSON_LIMIT);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return textPreview(head, "Not valid JSON; shown as text.");
  }
  const tree = jsonTree(value);
  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("button", { on: { click: () => setTreeOpen(tree, true) } }, "Expand all"),
    h("button", { on: { click: () => setTreeOpen(tree, false) } }, "Collapse all"),
  );
  return h("div", { attrs: { "data-preview": "json" } }, toolbar, tree);
}

async function textPreview(head: Head, note?: string): Promise<HTMLElement> {
  const { text, cut } = await prefixText(head, TEXT_LIMIT);
  return h(
    "div",
    { attrs: { "data-preview": "text" } },
    note ? h("p", { class: "muted" }, note) : null,
    h("pre", { class: "text" }, text),
    cut ? h("p", { class: "muted" }, `The first ${formatSize(TEXT_LIMIT)} of ${formatSize(head.size)}.`) : null,
  );
}

async function hexPreview(head: Head): Promise<HTMLElement> {
  const bytes = await readRange(head.key, 0, Math.min(head.size, HEX_LIMIT), head.version);
  return h(
    "div",
    { attrs: { "data-preview": "hex" } },
    h("pre", { class: "hex" }, hexDump(bytes)),
    head.size > bytes.length ? h("p", { class: "muted" }, `The first ${formatSize(bytes.length)} of ${formatSize(head.size)}.`) : null,
  );
}
