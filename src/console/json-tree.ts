/** A JSON value as a tree of <details> elements: pretty-printed, each object and array foldable. */
import { h, type Child } from "./dom.js";

/** Levels open at first; deeper ones start folded so a big document stays readable. */
const OPEN_LEVELS = 2;
/** Children shown per object or array; the rest are counted, not rendered. */
const MAX_CHILDREN = 1000;

export function jsonTree(value: unknown): HTMLElement {
  const root = h("div", { class: "json" }, node(undefined, value, 0, true));
  return root;
}

function node(name: string | undefined, value: unknown, depth: number, last: boolean): HTMLElement {
  const label: Child[] = name === undefined ? [] : [h("span", { class: "j-key" }, JSON.stringify(name)), ": "];
  const comma = last ? "" : ",";
  if (value === null || typeof value !== "object") return h("div", { class: "j-line" }, ...label, primitive(value), comma);
  const isArray = Array.isArray(value);
  const entries: [string | undefined, unknown][] = isArray ? value.map((item) => [undefined, item]) : Object.entries(value);
  const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
  if (entries.length === 0) return h("div", { class: "j-line" }, ...label, open + close, comma);
  const shown = entries.slice(0, MAX_CHILDREN);
  const children = h(
    "div",
    { class: "j-children" },
    ...shown.map(([childName, child], index) => node(childName, child, depth + 1, index === entries.length - 1)),
    entries.length > shown.length ? h("div", { class: "j-more" }, `… ${entries.length - shown.length} more`) : null,
  );
  const details = h(
    "details",
    { class: "j-node" },
    h("summary", {}, ...label, open, h("span", { class: "j-count" }, ` ${entries.length} ${isArray ? "items" : "keys"} `), h("span", { class: "j-folded" }, `${close}${comma}`)),
    children,
    h("div", { class: "j-line" }, close, comma),
  );
  details.open = depth < OPEN_LEVELS;
  return details;
}

function primitive(value: unknown): HTMLElement {
  const kind = value === null ? "null" : typeof value;
  return h("span", { class: `j-${kind}` }, JSON.stringify(value) ?? String(value));
}

/** Opens or folds every level of a tree. */
export function setTreeOpen(tree: HTMLElement, open: boolean): void {
  for (const details of tree.querySelectorAll("details")) details.open = open;
}
