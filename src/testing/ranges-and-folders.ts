import assert from "node:assert/strict";
import { compareKeys } from "../keys.js";
import type { ListPage, ListPageOptions, Store } from "../types.js";
import { assertInvalid, assertKind, collectBytes, patterned, text } from "./helpers.js";
import type { SuiteContext } from "./runner.js";

/** Range reads (`get`/`getStream` with `range`) and one-level listings (`delimiter: "/"`). */
export function rangeAndFolderTests(ctx: SuiteContext): void {
  const { describe, it, ns } = ctx;
  let store!: Store;
  ctx.onSetUp((s) => (store = s));

  describe("range reads", () => {
    it("get returns exactly the bytes of a range, cut at the end", async () => {
      const key = `${ns()}ranged`;
      const data = patterned(10_000, 3);
      await store.put(key, data);
      const cases: [number, number | undefined, number, number][] = [
        [0, 1, 0, 1],
        [0, 10_000, 0, 10_000],
        [1234, 4321, 1234, 5555],
        [9_999, 1, 9_999, 10_000],
        [9_000, undefined, 9_000, 10_000],
        [9_000, 5_000, 9_000, 10_000],
        [5, 0, 5, 5],
        [10_000, undefined, 10_000, 10_000],
      ];
      for (const [offset, length, start, end] of cases) {
        const got = await store.get(key, { range: length === undefined ? { offset } : { offset, length } });
        assert.ok(Buffer.from(got).equals(Buffer.from(data.subarray(start, end))), `range ${offset}+${String(length)}`);
      }
      await assertInvalid(store.get(key, { range: { offset: 10_001 } }), "offset past the end");
    });

    it("getStream streams a range across chunk boundaries", async () => {
      const key = `${ns()}ranged-stream`;
      const data = patterned(3 * 1024 * 1024 + 7, 5);
      await store.put(key, data);
      for (const [offset, length] of [
        [0, 100],
        [1024 * 1024 - 10, 1024 * 1024 + 20],
        [3 * 1024 * 1024, undefined],
        [2_000_000, 10],
      ] as const) {
        const range = length === undefined ? { offset } : { offset, length };
        const got = await collectBytes(await store.getStream(key, { range }));
        const end = length === undefined ? data.byteLength : offset + length;
        assert.ok(got.equals(Buffer.from(data.subarray(offset, end))), `stream range ${offset}+${String(length)}`);
      }
      await assertInvalid(
        (async () => collectBytes(await store.getStream(key, { range: { offset: data.byteLength + 1 } })))(),
        "stream offset past the end",
      );
    });

    it("an empty value has only the empty range", async () => {
      const key = `${ns()}empty-ranged`;
      await store.put(key, new Uint8Array(0));
      assert.equal((await store.get(key, { range: { offset: 0 } })).byteLength, 0);
      assert.equal((await store.get(key, { range: { offset: 0, length: 10 } })).byteLength, 0);
      await assertInvalid(store.get(key, { range: { offset: 1 } }));
    });

    it("a range of a missing key is not_found, and a malformed range is invalid", async () => {
      const p = ns();
      await assertKind(store.get(`${p}nope`, { range: { offset: 0, length: 1 } }), "not_found");
      await store.put(`${p}k`, text("abc"));
      for (const bad of [{ offset: -1 }, { offset: 1.5 }, { offset: 0, length: -1 }, { offset: "1" }, null, 3]) {
        await assertInvalid(store.get(`${p}k`, { range: bad as { offset: number } }), `range ${JSON.stringify(bad)}`);
      }
    });

    it("a range of an old version reads that version", async (skip) => {
      if (!store.capabilities.versions) return skip("no versions capability");
      const key = `${ns()}ranged-version`;
      await store.put(key, text("first value"));
      await store.put(key, text("second value"));
      const [first] = await store.versions(key);
      assert.equal(Buffer.from(await store.get(key, { version: first!.version, range: { offset: 6, length: 5 } })).toString(), "value");
    });
  });

  describe("folder listings", () => {
    /** Every page of a one-level listing, concatenated. */
    const walk = async (prefix: string, limit?: number): Promise<{ keys: string[]; prefixes: string[]; pages: number }> => {
      const keys: string[] = [];
      const prefixes: string[] = [];
      let after: string | undefined;
      let pages = 0;
      for (;;) {
        const options: ListPageOptions = { delimiter: "/", after };
        if (limit !== undefined) options.limit = limit;
        const page: ListPage = await store.listPage(prefix, options);
        pages++;
        assert.ok(Array.isArray(page.prefixes), "a delimited page has prefixes");
        if (limit !== undefined) assert.ok(page.keys.length + page.prefixes!.length <= limit, "page over its limit");
        keys.push(...page.keys);
        prefixes.push(...page.prefixes!);
        if (page.next === undefined) return { keys, prefixes, pages };
        assert.notEqual(page.next, after, "next did not move");
        after = page.next;
      }
    };

    it("lists one level: keys under the prefix and each deeper level once", async () => {
      const p = ns();
      const keys = ["a", "b/1", "b/2", "b/3/x", "c d/e", "c%/f", "c_/g", "d*/h", "e>/i", "ünï/j", "😀/k", "z", "y/", "x//w"];
      for (const k of keys) await store.put(p + k, text(k));
      const top = await walk(p);
      assert.deepEqual(top.keys, ["a", "z"].map((k) => p + k));
      assert.deepEqual(top.prefixes, ["b/", "c d/", "c%/", "c_/", "d*/", "e>/", "x/", "y/", "ünï/", "😀/"].map((k) => p + k).sort(compareKeys));
      const b = await walk(`${p}b/`);
      assert.deepEqual(b.keys, [`${p}b/1`, `${p}b/2`]);
      assert.deepEqual(b.prefixes, [`${p}b/3/`]);
      const y = await walk(`${p}y/`);
      assert.deepEqual(y, { keys: [`${p}y/`], prefixes: [], pages: 1 }, "a key equal to the prefix is listed as a key");
      assert.deepEqual(await walk(`${p}x/`), { keys: [], prefixes: [`${p}x//`], pages: 1 });
    });

    it("takes prefixes that do not end at '/'", async () => {
      const p = ns();
      for (const k of ["log", "logs/1", "logs/2", "logistics", "lo/x"]) await store.put(p + k, text(k));
      const got = await walk(`${p}log`);
      assert.deepEqual(got.keys, [`${p}log`, `${p}logistics`]);
      assert.deepEqual(got.prefixes, [`${p}logs/`]);
    });

    it("pages through keys and prefixes together, skipping what is under a returned prefix", async () => {
      const p = ns();
      const keys: string[] = [];
      for (let i = 0; i < 6; i++) keys.push(`${p}k${i}`);
      for (let d = 0; d < 5; d++) for (let i = 0; i < 7; i++) keys.push(`${p}d${d}/f${i}`);
      await store.putMany(keys.map((key) => ({ key, data: text(key) })));
      const whole = await walk(p);
      assert.equal(whole.keys.length, 6);
      assert.equal(whole.prefixes.length, 5);
      for (const limit of [1, 2, 3, 4, 10, 11]) {
        const paged = await walk(p, limit);
        assert.deepEqual({ keys: paged.keys, prefixes: paged.prefixes }, { keys: whole.keys, prefixes: whole.prefixes }, `limit ${limit}`);
        // A store may end on a full page with a `next` that finds nothing more: one page extra.
        assert.ok(paged.pages >= Math.ceil(11 / limit) && paged.pages <= Math.ceil(11 / limit) + 1, `limit ${limit}: ${paged.pages} pages for 11 entries`);
      }
    });

    it("a walk of every level finds exactly the keys list finds", async () => {
      const p = ns();
      const keys = ["a/b/c", "a/b/d", "a/e", "f", "g/h/i/j", "g/h/k", "g/l", "m/"].map((k) => p + k);
      for (const k of keys) await store.put(k, text(k));
      const found: string[] = [];
      const visit = async (prefix: string): Promise<void> => {
        const level = await walk(prefix, 2);
        found.push(...level.keys);
        for (const sub of level.prefixes) await visit(sub);
      };
      await visit(p);
      assert.deepEqual(found.sort(compareKeys), await store.list(p));
    });

    it("an empty or missing prefix lists nothing, and only '/' is a delimiter", async () => {
      const p = ns();
      assert.deepEqual(await store.listPage(`${p}none/`, { delimiter: "/" }), { keys: [], prefixes: [] });
      await assertInvalid(store.listPage(p, { delimiter: "." as "/" }));
    });
  });
}
