/**
 * The filesystem: raw `node:fs` (plain writeFile/readFile/readdir/unlink, no atomic rename, no
 * fsync: the floor), stowage's file backend, unstorage's fs driver, flydrive's fs driver and
 * OpenDAL's fs service, each in its own temporary directory.
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { mkdir, readdir, readFile, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Disk } from "flydrive";
import { FSDriver } from "flydrive/drivers/fs";
import { Operator } from "opendal";
import { createStorage } from "unstorage";
import fsDriver from "unstorage/drivers/fs";
import { openStore } from "../stowage.js";
import type { Store } from "../../src/types.js";
import { defineSuite } from "../harness.js";
import { standardCases, storeAdapter, type Adapter } from "../standard.js";
import { flydriveAdapter, opendalAdapter, unstorageAdapter } from "../peers.js";

function rawFsAdapter(root: string): Adapter {
  const path = (key: string) => join(root, key);
  const made = new Set<string>();
  const ensureDir = async (file: string) => {
    const dir = dirname(file);
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true });
    made.add(dir);
  };
  return {
    name: "node:fs",
    put: async (key, data) => {
      await ensureDir(path(key));
      await writeFile(path(key), data);
    },
    get: (key) => readFile(path(key)),
    // The benchmark's prefixes end at "/": a directory listing is what a raw user would do.
    list: async (prefix) => (await readdir(path(prefix))).map((name) => prefix + name).sort(),
    delete: (key) => unlink(path(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    }),
    putStream: async (key, source) => {
      await ensureDir(path(key));
      await pipeline(Readable.from(source), createWriteStream(path(key)));
    },
    getStream: async (key) => createReadStream(path(key)),
  };
}

export default defineSuite("file", async (b) => {
  const root = mkdtempSync(join(tmpdir(), "stowage-bench-"));
  const dir = (name: string) => join(root, name);
  let ours: Store | undefined;
  const adapters: Adapter[] = [rawFsAdapter(dir("raw"))];
  try {
    try {
      ours = await openStore(`file:${dir("stowage")}`);
      adapters.push(storeAdapter("stowage file:", ours));
    } catch (err) {
      adapters.push({ ...rawFsAdapter(""), name: "stowage file:", skip: `cannot open: ${err instanceof Error ? err.message : String(err)}` });
    }
    adapters.push(
      unstorageAdapter("unstorage fs", createStorage({ driver: fsDriver({ base: dir("unstorage") }) })),
      flydriveAdapter("flydrive fs", new Disk(new FSDriver({ location: pathToFileURL(dir("flydrive") + "/"), visibility: "public" }))),
      opendalAdapter("OpenDAL fs", new Operator("fs", { root: dir("opendal") })),
    );
    await standardCases(b, adapters, { baseline: "node:fs" });
  } finally {
    await ours?.close();
    rmSync(root, { recursive: true, force: true });
  }
});
