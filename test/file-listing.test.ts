/**
 * The file backend's listings against the memory store as the oracle: pages that seek with
 * `after`, folder pages, directories that hold no key, and the sorted entries kept for large
 * directories between pages.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { FileStore, MemoryStore, compareKeys, type ListPageOptions, type Store } from "../src/index.js";
import { SETTLE_MS } from "../src/backends/file/entries.js";
import { assertKind, text } from "../src/testing/helpers.js";

const base = await mkdtemp(join(tmpdir(), "stowage-file-list-"));
let dirs = 0;
const freshDir = () => join(base, `store-${++dirs}`);
after(() => rm(base, { recursive: true, force: true }));

/** Every page of a listing, concatenated, with the number of pages. */
async function pages(store: Store, prefix: string, options: ListPageOptions): Promise<{ keys: string[]; prefixes: string[] }> {
  const keys: string[] = [];
  const prefixes: string[] = [];
  let afterKey = options.after;
  for (let n = 0; n < 10_000; n++) {
    const page = await store.listPage(prefix, { ...options, after: afterKey });
    keys.push(...page.keys);
    prefixes.push(...(page.prefixes ?? []));
    if (page.next === undefined) return { keys, prefixes };
    afterKey = page.next;
  }
  throw new Error("the listing never ended");
}

describe("file backend listings", () => {
  it("pages and folder pages from any `after` match the memory store's, in both name modes (fast-check)", async () => {
    const segment = fc.constantFrom("", "a", "b", "a.b", "a!", "A", "é", "😀", "%", "x y", "p".repeat(250), "q".repeat(245) + "é");
    const keyArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => parts.join("/")).filter((k) => k !== "" && !k.startsWith("/"));
    const prefixArb = fc.oneof(fc.constant(""), keyArb.map((k) => k.slice(0, Math.ceil(k.length / 2))), keyArb.map((k) => `${k}/`)).filter((p) => p.isWellFormed());
    for (const names of ["readable", "portable"] as const) {
      const file = await FileStore.open({ root: freshDir(), names, fsync: false });
      let round = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(keyArb, { minLength: 1, maxLength: 12 }),
          prefixArb,
          fc.option(fc.oneof(keyArb, prefixArb, fc.string({ maxLength: 6 }).filter((a) => a.isWellFormed() && !/[\u0000-\u001f\u007f]/.test(a))), { nil: undefined }),
          fc.integer({ min: 1, max: 5 }),
          async (keys, prefix, afterKey, limit) => {
            const p = `r${++round}/`;
            const memory = new MemoryStore();
            for (const key of keys) {
              await file.put(p + key, text(key));
              await memory.put(p + key, text(key));
            }
            const options = { limit, after: afterKey === undefined ? undefined : p + afterKey };
            assert.deepEqual(await pages(file, p + prefix, options), await pages(memory, p + prefix, options), "pages");
            const folder = { ...options, delimiter: "/" as const };
            assert.deepEqual(await pages(file, p + prefix, folder), await pages(memory, p + prefix, folder), "folder pages");
            const fromKeys: string[] = [];
            for await (const key of file.keys(p + prefix, options)) fromKeys.push(key);
            assert.deepEqual(fromKeys, (await pages(memory, p + prefix, options)).keys, "keys()");
            await file.deleteMany(keys.map((k) => p + k));
          },
        ),
        { numRuns: 120 },
      );
      await file.close();
    }
  });

  it("a directory that holds no key is no folder prefix", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, names: "readable" });
    await store.put("top/real/k", text("v"));
    await mkdir(join(root, "top.d", "empty.d"));
    await mkdir(join(root, "top.d", "nested.d", "deeper.d"), { recursive: true });
    await mkdir(join(root, "top.d", "temp-only.d"));
    await writeFile(join(root, "top.d", "temp-only.d", ".stowage-0123456789abcdef.tmp"), "partial");
    await mkdir(join(root, "top.d", "foreign.d"));
    await writeFile(join(root, "top.d", "foreign.d", "README.txt"), "not a key");
    await writeFile(join(root, "top.d", "foreign.d", "%2a.v"), "non-canonical name");
    await mkdir(join(root, "top.d", "locked.d"));
    await symlink("{}", join(root, "top.d", "locked.d", "k.v.lock"));
    await mkdir(join(root, "top.d", "deep-key.d", "a.d", "b.d"), { recursive: true });
    await writeFile(join(root, "top.d", "deep-key.d", "a.d", "b.d", "c.v"), Buffer.alloc(0));
    await store.put("top/deep-key/a/b/c", text("real"));
    assert.deepEqual(await store.listPage("top/", { delimiter: "/" }), { keys: [], prefixes: ["top/deep-key/", "top/real/"] });
    assert.deepEqual(await store.listPage("top/", { delimiter: "/", limit: 1 }), { keys: [], prefixes: ["top/deep-key/"], next: "top/deep-key/" });
    await store.close();
  });

  it("refuses to list through a linked directory, with keys() too", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root });
    await store.put("a/k", text("v"));
    await symlink(join(root, "a.d"), join(root, "evil.d"));
    await assertKind(store.listPage("evil/", { delimiter: "/" }), "fatal");
    await assertKind((async () => {
      for await (const _key of store.keys("evil/")) void _key;
    })(), "fatal");
    await store.close();
  });

  it("a large directory kept sorted between pages still sees every change at once", async () => {
    const root = freshDir();
    const store = await FileStore.open({ root, fsync: false });
    const keyOf = (i: number) => `big/${String(i).padStart(5, "0")}`;
    await store.putMany(Array.from({ length: 1500 }, (_, i) => ({ key: keyOf(i * 2), data: text("v") })));
    const all = await store.list("big/");
    assert.equal(all.length, 1500);
    // Read it, let its stamp settle, read it again: from now on pages come from the kept listing.
    await store.listPage("big/", { limit: 10 });
    await sleep(SETTLE_MS + 200);
    await store.listPage("big/", { limit: 10 });
    assert.deepEqual((await store.listPage("big/", { limit: 3, after: keyOf(1000) })).keys, [keyOf(1002), keyOf(1004), keyOf(1006)]);
    const model = new Set(all);
    const expected = (afterKey: string) => [...model].sort(compareKeys).filter((k) => compareKeys(k, afterKey) > 0).slice(0, 3);
    for (let round = 0; round < 20; round++) {
      // A put and a delete right after a read, well within one tick of the timestamp clock.
      const from = keyOf(1000 + round * 2);
      const added = keyOf(1001 + round * 2);
      await store.put(added, text("new"));
      model.add(added);
      assert.deepEqual((await store.listPage("big/", { limit: 3, after: from })).keys, expected(from), `round ${round}: after a put`);
      const removed = keyOf(1002 + round * 2);
      await store.delete(removed);
      model.delete(removed);
      assert.deepEqual((await store.listPage("big/", { limit: 3, after: from })).keys, expected(from), `round ${round}: after a delete`);
      assert.deepEqual((await store.listPage("big/", { limit: 3, after: from, delimiter: "/" })).keys, expected(from), `round ${round}: folder page`);
    }
    assert.deepEqual(await store.list("big/"), (await pages(store, "big/", { limit: 97 })).keys);
    await store.close();
  });
});
