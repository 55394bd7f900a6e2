/**
 * The layout marker `.stowage.json` at the root of a file store: which name spelling the store
 * uses. Chosen once, when the store is created, by probing the filesystem; kept so that a store
 * copied to another filesystem keeps reading its own names.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { link, lstat, open, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { StorageError } from "../../errors.js";
import type { NameMode } from "./names.js";

export const LAYOUT_FILE = ".stowage.json";
const FORMAT = "stowage-file";

interface LayoutFile {
  format: typeof FORMAT;
  version: 1;
  names: NameMode;
}

/** A fresh temp file name in the store's temp-name pattern (see TEMP_NAME). */
export function tempName(tag = ""): string {
  return `.stowage-${randomBytes(8).toString("hex")}${tag}.tmp`;
}

/**
 * The name spelling of the store at `root` (a real directory). Creates the marker when missing,
 * with `wanted` or, when not given, `portable` if the filesystem folds case or Unicode
 * normalisation, else `readable`; with `create` false, a missing marker is `not_found`.
 */
export async function loadLayout(root: string, wanted: NameMode | undefined, create = true): Promise<NameMode> {
  const path = join(root, LAYOUT_FILE);
  let layout = await readLayout(path);
  if (!layout && !create) {
    throw new StorageError("not_found", `${root} holds no file store (no ${LAYOUT_FILE}); opened with create: false, which creates nothing`, { op: "open" });
  }
  if (!layout) {
    const names = wanted ?? ((await foldsNames(root)) ? "portable" : "readable");
    const temp = join(root, tempName());
    await writeFile(temp, `${JSON.stringify({ format: FORMAT, version: 1, names } satisfies LayoutFile)}\n`, { flag: "wx" });
    try {
      // link() fails if another process created the marker meanwhile: theirs wins, read it.
      await link(temp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    layout = await readLayout(path);
    if (!layout) throw new StorageError("fatal", `the layout file ${LAYOUT_FILE} vanished while the store was being created`, { op: "open" });
  }
  if (wanted !== undefined && wanted !== layout.names) {
    throw new StorageError("invalid", `this store was created with names=${layout.names}; it cannot be opened with names=${wanted}`, { op: "open" });
  }
  return layout.names;
}

async function readLayout(path: string): Promise<LayoutFile | undefined> {
  let text: string;
  try {
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = await handle.readFile("utf8");
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const layout = parsed as Partial<LayoutFile> | undefined;
  if (layout?.format !== FORMAT || layout.version !== 1 || (layout.names !== "readable" && layout.names !== "portable")) {
    throw new StorageError("fatal", `${LAYOUT_FILE} in the store directory is not a stowage layout file this version reads (format ${FORMAT}, version 1); was the directory made by another tool or a newer stowage?`, { op: "open" });
  }
  return layout as LayoutFile;
}

/** True when the filesystem at `root` treats "Aé" like "aé" or like its decomposed form. */
async function foldsNames(root: string): Promise<boolean> {
  const hex = randomBytes(8).toString("hex");
  const name = (tail: string) => join(root, `.stowage-${hex}-probe-${tail}.tmp`);
  const created = name("A\u00e9");
  await writeFile(created, "", { flag: "wx" });
  try {
    for (const variant of [name("a\u00e9"), name("Ae\u0301")]) {
      if (await lstat(variant).then(() => true, () => false)) return true;
    }
    return false;
  } finally {
    await unlink(created).catch(() => undefined);
  }
}
