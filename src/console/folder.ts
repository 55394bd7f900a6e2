/**
 * The folder view: one level of the open prefix, sub-folders first, then objects, each with
 * size, time and type. Pages load as the list scrolls (or with "Load more"), so a folder of
 * thousands of keys opens at once; changes from the live feed insert and remove rows in place.
 */
import { headObject, listFolder, type Entry } from "./api.js";
import { fill, h } from "./dom.js";
import { formatShortTime, formatSize, formatTime, typeOf } from "./format.js";
import type { Change } from "./live.js";
import { compareKeys, insertionIndex } from "./order.js";

const PAGE_SIZE = 500;
/** Rows without a size from the listing get one by HEAD, this many at a time. */
const STAT_CONCURRENCY = 4;

export interface FolderHost {
  openFolder(prefix: string): void;
  openKey(key: string): void;
  error(context: string, error: unknown): void;
}

interface Group {
  names: string[];
  rows: HTMLTableRowElement[];
}

export class FolderView {
  prefix = "";
  private folders: Group = { names: [], rows: [] };
  private objects: Group = { names: [], rows: [] };
  private next: string | undefined;
  private loading = false;
  private generation = 0;
  private statQueue: string[] = [];
  private statRunning = 0;
  private selected: string | undefined;

  constructor(
    private readonly body: HTMLTableSectionElement,
    private readonly more: HTMLButtonElement,
    private readonly status: HTMLElement,
    private readonly host: FolderHost,
  ) {
    more.addEventListener("click", () => void this.loadMore());
    // Load the next page before the reader reaches the end of the list.
    new IntersectionObserver((seen) => {
      if (seen.some((entry) => entry.isIntersecting)) void this.loadMore();
    }).observe(more);
    body.addEventListener("keydown", (event) => this.onKey(event));
  }

  /** Shows `prefix` from its first page. */
  async open(prefix: string): Promise<void> {
    this.generation++;
    this.prefix = prefix;
    this.folders = { names: [], rows: [] };
    this.objects = { names: [], rows: [] };
    this.next = undefined;
    this.statQueue = [];
    this.selected = undefined;
    this.loading = false;
    fill(this.body);
    this.status.textContent = "Loading…";
    this.more.hidden = true;
    await this.loadPage(undefined);
  }

  async loadMore(): Promise<void> {
    if (this.next !== undefined && !this.loading) await this.loadPage(this.next);
  }

  private async loadPage(after: string | undefined): Promise<void> {
    const mine = this.generation;
    this.loading = true;
    try {
      const page = await listFolder(this.prefix, after, PAGE_SIZE);
      if (mine !== this.generation) return;
      for (const prefix of page.prefixes) this.insert(this.folders, prefix, () => this.folderRow(prefix));
      for (const entry of page.entries) this.upsertEntry(entry);
      this.next = page.next;
    } catch (error) {
      if (mine !== this.generation) return;
      this.host.error("Listing", error);
    } finally {
      if (mine === this.generation) {
        this.loading = false;
        this.showStatus();
      }
    }
  }

  /** A change from the live feed, or an upload or delete made here. */
  apply(change: Change): void {
    if (!change.key.startsWith(this.prefix)) return;
    const rest = change.key.slice(this.prefix.length);
    const slash = rest.indexOf("/");
    const name = slash < 0 ? change.key : this.prefix + rest.slice(0, slash + 1);
    // Beyond the pages loaded so far: the next page will bring it.
    if (this.next !== undefined && compareKeys(name, this.next) > 0) return;
    if (slash >= 0) {
      if (change.op === "put") this.insert(this.folders, name, () => this.folderRow(name), true);
    } else if (change.op === "put") {
      this.upsertEntry({ key: name }, true);
      this.queueStat(name);
    } else this.remove(this.objects, name);
    this.showStatus();
  }

  /** Marks the row of `key` as the selected one (and focuses it when asked). */
  select(key: string | undefined, focus = false): void {
    this.selected = key;
    for (const row of this.body.querySelectorAll<HTMLTableRowElement>("tr[aria-selected=true]")) row.setAttribute("aria-selected", "false");
    const row = key === undefined ? undefined : this.rowOf(key);
    if (!row) return;
    row.setAttribute("aria-selected", "true");
    this.setFocusable(row);
    if (focus) row.focus();
    row.scrollIntoView({ block: "nearest" });
  }

  /** Focuses the row of `name`, else the selected row, else the first. */
  focus(name?: string): void {
    const wanted = name ?? this.selected;
    const row = (wanted !== undefined ? this.rowOf(wanted) : undefined) ?? this.allRows()[0];
    if (row) {
      this.setFocusable(row);
      row.focus();
    }
  }

  private rowOf(name: string): HTMLTableRowElement | undefined {
    for (const group of [this.objects, this.folders]) {
      const index = insertionIndex(group.names, name);
      if (group.names[index] === name) return group.rows[index];
    }
    return undefined;
  }

  private allRows(): HTMLTableRowElement[] {
    return [...this.folders.rows, ...this.objects.rows];
  }

  private upsertEntry(entry: Entry, fresh = false): void {
    const row = this.insert(this.objects, entry.key, () => this.objectRow(entry.key), fresh);
    if (entry.size !== undefined) this.setStat(row, entry);
    else if (!fresh) this.queueStat(entry.key);
  }

  private insert(group: Group, name: string, make: () => HTMLTableRowElement, fresh = false): HTMLTableRowElement {
    const last = group.names.length - 1;
    const index = last < 0 || compareKeys(group.names[last]!, name) < 0 ? last + 1 : insertionIndex(group.names, name);
    if (group.names[index] === name) {
      if (fresh) flash(group.rows[index]!);
      return group.rows[index]!;
    }
    const row = make();
    // Objects come after every folder; within a group, in key order.
    const before = group.rows[index] ?? (group === this.folders ? this.objects.rows[0] : undefined) ?? null;
    this.body.insertBefore(row, before);
    group.names.splice(index, 0, name);
    group.rows.splice(index, 0, row);
    if (this.allRows().length === 1) this.setFocusable(row);
    if (fresh) flash(row);
    return row;
  }

  private remove(group: Group, name: string): void {
    const index = insertionIndex(group.names, name);
    if (group.names[index] !== name) return;
    const row = group.rows[index]!;
    const focused = document.activeElement === row;
    const neighbour = group.rows[index + 1] ?? group.rows[index - 1];
    row.remove();
    group.names.splice(index, 1);
    group.rows.splice(index, 1);
    if (focused && neighbour) neighbour.focus();
  }

  private folderRow(prefix: string): HTMLTableRowElement {
    const name = prefix.slice(this.prefix.length);
    return h(
      "tr",
      { class: "row folder", attrs: { tabindex: "-1", "data-name": prefix, "aria-selected": "false" }, on: { click: () => this.host.openFolder(prefix) } },
      h("td", { class: "name" }, h("span", { class: "icon", attrs: { "aria-hidden": "true" } }), h("span", { class: "label" }, name)),
      h("td", { class: "size" }),
      h("td", { class: "time" }),
      h("td", { class: "type" }, "folder"),
    );
  }

  private objectRow(key: string): HTMLTableRowElement {
    const name = key.slice(this.prefix.length);
    return h(
      "tr",
      { class: "row object", attrs: { tabindex: "-1", "data-name": key, "aria-selected": "false" }, on: { click: () => this.host.openKey(key) } },
      h("td", { class: "name" }, h("span", { class: "icon", attrs: { "aria-hidden": "true" } }), h("span", { class: "label" }, name)),
      h("td", { class: "size" }),
      h("td", { class: "time" }),
      h("td", { class: "type" }, typeOf(key, undefined)),
    );
  }

  private setStat(row: HTMLTableRowElement, entry: Entry): void {
    const [, size, time, type] = row.cells;
    size!.textContent = entry.size === undefined ? "" : formatSize(entry.size);
    time!.textContent = formatShortTime(entry.modified);
    time!.title = formatTime(entry.modified);
    type!.textContent = typeOf(entry.key, entry.contentType);
  }

  private queueStat(key: string): void {
    this.statQueue.push(key);
    while (this.statRunning < STAT_CONCURRENCY && this.statQueue.length > 0) void this.statNext(this.generation);
  }

  private async statNext(generation: number): Promise<void> {
    this.statRunning++;
    try {
      for (let key = this.statQueue.shift(); key !== undefined; key = this.statQueue.shift()) {
        try {
          const head = await headObject(key);
          const row = generation === this.generation ? this.rowOf(key) : undefined;
          if (row) this.setStat(row, head);
        } catch {
          // deleted meanwhile: the feed removes the row
        }
        if (generation !== this.generation) return;
      }
    } finally {
      this.statRunning--;
    }
  }

  private showStatus(): void {
    const folders = this.folders.rows.length;
    const objects = this.objects.rows.length;
    const more = this.next !== undefined;
    const counts = [folders ? plural(folders, "folder") : "", objects ? plural(objects, "object") : ""].filter(Boolean).join(", ");
    this.status.textContent = counts ? `${counts}${more ? " so far" : ""}` : "This folder is empty.";
    this.more.hidden = !more;
  }

  /** One row in the tab order at a time (the list is one stop; arrows move within it). */
  private setFocusable(row: HTMLTableRowElement): void {
    for (const other of this.body.querySelectorAll<HTMLTableRowElement>("tr[tabindex='0']")) other.tabIndex = -1;
    row.tabIndex = 0;
  }

  private onKey(event: KeyboardEvent): void {
    const rows = this.allRows();
    const current = (event.target as HTMLElement).closest("tr");
    const index = current ? rows.indexOf(current as HTMLTableRowElement) : -1;
    let target: HTMLTableRowElement | undefined;
    switch (event.key) {
      case "ArrowDown":
        target = rows[Math.min(index + 1, rows.length - 1)];
        if (index >= rows.length - 2) void this.loadMore();
        break;
      case "ArrowUp":
        target = rows[Math.max(index - 1, 0)];
        break;
      case "Home":
        target = rows[0];
        break;
      case "End":
        target = rows[rows.length - 1];
        break;
      case "Enter":
      case "ArrowRight":
        if (current) current.click();
        event.preventDefault();
        return;
      default:
        return;
    }
    event.preventDefault();
    if (target) {
      this.setFocusable(target);
      target.focus();
      target.scrollIntoView({ block: "nearest" });
    }
  }
}

function flash(row: HTMLTableRowElement): void {
  row.classList.remove("fresh");
  void row.offsetWidth; // restart the animation
  row.classList.add("fresh");
}

function plural(count: number, noun: string): string {
  return `${count.toLocaleString()} ${noun}${count === 1 ? "" : "s"}`;
}
