/**
 * The conformance suite every store passes, exported as `stowage/testing` so a third-party
 * backend runs the same checks. Optional features are gated on `store.capabilities`, never on
 * a backend's name. It runs under node's own test runner by default, and under any runner with
 * `describe`/`it`/`before`/`after` (vitest and jest: `before: beforeAll, after: afterAll`).
 *
 * @example
 * import { describe, it, before, after } from "node:test";
 * import { testStore } from "stowage/testing";
 * testStore("my-backend", { open: () => MyStore.open(uniqueBucket()), destroy: dropBuckets, runner: { describe, it, before, after } });
 */
import * as nodeTest from "node:test";
import assert from "node:assert/strict";
import { StorageError } from "../errors.js";
import { MAX_KEY_BYTES, compareKeys } from "../keys.js";
import type { Store } from "../types.js";
import { conditionalWriteTests } from "./conditional-writes.js";
import { allBytes, assertInvalid, assertKind, collectBytes, INVALID_KEYS, ODD_KEYS, patterned, text } from "./helpers.js";
import { rangeAndFolderTests } from "./ranges-and-folders.js";
import { suiteContext, type SuiteContext, type TestRunner } from "./runner.js";

export type { TestRunner } from "./runner.js";

export interface ConformanceOptions {
  /** Opens a fresh, empty store (its own bucket, table or directory) on every call. */
  open: () => Promise<Store>;
  /** Removes whatever the opened stores created; runs once after the suite (stores are closed first). */
  destroy?: () => Promise<void>;
  /** Size of the large-value test in bytes (default 8 MiB). */
  largeValueBytes?: number;
  /** The test functions to declare the suite with (default: node's `node:test`). */
  runner?: TestRunner;
}

/** Declares the conformance tests for one store under `describe(name)`. */
export function testStore(name: string, options: ConformanceOptions): void {
  const runner: TestRunner = options.runner ?? (nodeTest as unknown as TestRunner);
  runner.describe(`conformance: ${name}`, () => {
    const ctx = suiteContext(runner, options.open);
    runner.before(() => ctx.setUp());
    runner.after(async () => {
      await ctx.tearDown();
      await options.destroy?.();
    });
    baseTests(ctx, options);
    conditionalWriteTests(ctx);
    rangeAndFolderTests(ctx);
  });
}

function baseTests(ctx: SuiteContext, options: ConformanceOptions): void {
  const { describe, it, ns, fresh } = ctx;
  // The shared store, opened by the suite's `before`.
  let store!: Store;
  ctx.onSetUp((s) => (store = s));
  {
    describe("values", () => {
      it("round-trips every byte value exactly", async () => {
        const key = `${ns()}bytes`;
        const data = allBytes(4);
        await store.put(key, data);
        assert.deepEqual(await store.get(key), data);
      });

      it("stores an empty value", async () => {
        const key = `${ns()}empty`;
        await store.put(key, new Uint8Array(0));
        const got = await store.get(key);
        assert.ok(got instanceof Uint8Array);
        assert.equal(got.byteLength, 0);
        assert.deepEqual(await store.list(key), [key]);
      });

      it("stores a large value", async () => {
        const size = Math.min(options.largeValueBytes ?? 8 * 1024 * 1024, store.capabilities.maxValueBytes);
        const key = `${ns()}large`;
        const data = patterned(size);
        await store.put(key, data);
        const got = await store.get(key);
        assert.equal(got.byteLength, size);
        assert.ok(Buffer.from(got).equals(Buffer.from(data)), "large value differs");
      });

      it("overwrites: get returns the latest value", async () => {
        const key = `${ns()}k`;
        await store.put(key, text("one"));
        await store.put(key, text("two, longer"));
        await store.put(key, text("3"));
        assert.deepEqual(await store.get(key), text("3"));
        assert.deepEqual(await store.list(key), [key]);
      });

      it("is not affected by the caller mutating its buffers", async () => {
        const key = `${ns()}mutate`;
        const data = text("original");
        await store.put(key, data);
        data.fill(0);
        const got = await store.get(key);
        assert.deepEqual(got, text("original"));
        got.fill(1);
        assert.deepEqual(await store.get(key), text("original"));
      });

      it("accepts a Buffer and a Uint8Array view into a larger buffer", async () => {
        const p = ns();
        await store.put(`${p}buf`, Buffer.from("buffer"));
        assert.deepEqual(Buffer.from(await store.get(`${p}buf`)).toString(), "buffer");
        const backing = text("xxVIEWxx");
        await store.put(`${p}view`, backing.subarray(2, 6));
        assert.deepEqual(Buffer.from(await store.get(`${p}view`)).toString(), "VIEW");
      });
    });

    describe("missing keys and delete", () => {
      it("get of a missing key rejects with not_found, op and key", async () => {
        const key = `${ns()}missing`;
        const err = await assertKind(store.get(key), "not_found");
        assert.equal(err.op, "get");
        assert.equal(err.key, key);
        assert.equal(err.name, "StorageError");
      });

      it("delete removes the value and the key from listings", async () => {
        const p = ns();
        await store.put(`${p}a`, text("a"));
        await store.put(`${p}b`, text("b"));
        await store.delete(`${p}a`);
        await assertKind(store.get(`${p}a`), "not_found");
        assert.deepEqual(await store.list(p), [`${p}b`]);
      });

      it("delete is idempotent: missing keys and repeated deletes resolve", async () => {
        const key = `${ns()}gone`;
        await store.delete(key);
        await store.put(key, text("x"));
        await store.delete(key);
        await store.delete(key);
        await assertKind(store.get(key), "not_found");
      });

      it("a key can be written again after delete", async () => {
        const key = `${ns()}again`;
        await store.put(key, text("1"));
        await store.delete(key);
        await store.put(key, text("2"));
        assert.deepEqual(await store.get(key), text("2"));
      });
    });

    describe("list", () => {
      it("returns [] when nothing matches", async () => {
        assert.deepEqual(await store.list(`${ns()}nothing/`), []);
      });

      it("lists everything for \"\" and nothing else (fresh store)", async () => {
        const own = await fresh();
        assert.deepEqual(await own.list(""), []);
        assert.deepEqual(await own.list(), []);
        const keys = ["b", "a/x", "a", "c/d/e"];
        for (const k of keys) await own.put(k, text(k));
        assert.deepEqual(await own.list(""), ["a", "a/x", "b", "c/d/e"]);
        assert.deepEqual(await own.list(), ["a", "a/x", "b", "c/d/e"]);
      });

      it("orders keys by their UTF-8 bytes", async () => {
        const p = ns();
        const names = ["b", "a", "a/b", "a.b", "a-b", "a b", "A", "a~", "é", "z", "\uffff", "\u{1F600}", "\ue000", "1", "a/", "a//b"];
        for (const k of names) await store.put(p + k, text(k));
        const expected = names.map((k) => p + k).sort(compareKeys);
        assert.deepEqual(await store.list(p), expected);
        // Byte order, checked independently of compareKeys.
        const byBytes = [...expected].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        assert.deepEqual(expected, byBytes);
      });

      it("matches prefixes that do not end at '/'", async () => {
        const p = ns();
        for (const k of ["log", "logs/1", "logistics", "lo", "l/x", "logs"]) await store.put(p + k, text(k));
        assert.deepEqual(await store.list(`${p}log`), [`${p}log`, `${p}logistics`, `${p}logs`, `${p}logs/1`]);
        assert.deepEqual(await store.list(`${p}logs/`), [`${p}logs/1`]);
        assert.deepEqual(await store.list(`${p}logs/1`), [`${p}logs/1`]);
        assert.deepEqual(await store.list(`${p}logs/2`), []);
        assert.deepEqual(await store.list(`${p}l`), [`${p}l/x`, `${p}lo`, `${p}log`, `${p}logistics`, `${p}logs`, `${p}logs/1`]);
      });

      it("treats %, _, *, >, . and spaces in a prefix literally", async () => {
        const p = ns();
        const keys = ["100%/a", "100x/a", "a_b", "axb", "s*/1", "sx/1", "t>/1", "tx/1", "d.e/1", "dxe/1", "sp ace/1", "spxace/1"];
        for (const k of keys) await store.put(p + k, text(k));
        for (const [prefix, expected] of [
          ["100%", ["100%/a"]],
          ["a_", ["a_b"]],
          ["s*", ["s*/1"]],
          ["t>", ["t>/1"]],
          ["d.e", ["d.e/1"]],
          ["sp ace", ["sp ace/1"]],
        ] as const) {
          assert.deepEqual(await store.list(p + prefix), expected.map((k) => p + k), `prefix ${prefix}`);
        }
      });

      it("lists unicode prefixes exactly", async () => {
        const p = ns();
        for (const k of ["ünï/1", "ünï/2", "üni/3", "😀/a", "😀x", "😁"]) await store.put(p + k, text(k));
        assert.deepEqual(await store.list(`${p}ünï/`), [`${p}ünï/1`, `${p}ünï/2`]);
        assert.deepEqual(await store.list(`${p}😀`), [`${p}😀/a`, `${p}😀x`]);
      });
    });

    describe("keys", () => {
      it("round-trips, lists and deletes every odd key", async () => {
        const p = ns();
        const keys = ODD_KEYS.map((k) => p + k);
        for (const key of keys) await store.put(key, text(`value of ${key}`));
        for (const key of keys) assert.deepEqual(await store.get(key), text(`value of ${key}`), `get ${JSON.stringify(key)}`);
        assert.deepEqual(await store.list(p), [...keys].sort(compareKeys));
        for (const key of keys) assert.deepEqual(await store.list(key), keys.filter((k) => k.startsWith(key)).sort(compareKeys), `list ${JSON.stringify(key)}`);
        for (const key of keys) await store.delete(key);
        assert.deepEqual(await store.list(p), []);
      });

      it("accepts a key of exactly the longest length (1024 UTF-8 bytes) and refuses one byte more", async () => {
        const p = ns();
        const max = store.capabilities.maxKeyBytes ?? MAX_KEY_BYTES;
        const fill = (bytes: number) => p + "é".repeat(Math.floor((bytes - p.length) / 2)) + "x".repeat((bytes - p.length) % 2);
        const longest = fill(max);
        assert.equal(Buffer.byteLength(longest), max);
        await store.put(longest, text("long"));
        assert.deepEqual(await store.get(longest), text("long"));
        assert.deepEqual(await store.list(p), [longest]);
        await assertInvalid(store.put(fill(max + 1), text("x")));
      });

      it("refuses every invalid key on every method, writing nothing", async () => {
        const own = await fresh();
        const caps = own.capabilities;
        for (const [label, key] of INVALID_KEYS) {
          const k = key as string;
          const calls: [string, () => Promise<unknown>][] = [
            ["put", () => own.put(k, text("x"))],
            ["get", () => own.get(k)],
            ["delete", () => own.delete(k)],
            ["putStream", () => own.putStream(k, [text("x")])],
            ["getStream", () => own.getStream(k)],
            ["putMany", () => own.putMany([{ key: k, data: text("x") }])],
            ["getMany", () => own.getMany([k])],
            ["deleteMany", () => own.deleteMany([k])],
          ];
          if (caps.stat) calls.push(["stat", () => own.stat(k)]);
          if (caps.versions) calls.push(["versions", () => own.versions(k)]);
          for (const [method, call] of calls) await assertInvalid(call(), `${method}(${label})`);
        }
        assert.deepEqual(await own.list(""), []);
      });

      it("refuses invalid prefixes", async () => {
        for (const prefix of ["a\u0000", "a\nb", "\ud800", 42, null]) {
          await assertInvalid(store.list(prefix as string), `list(${JSON.stringify(prefix)})`);
        }
      });
    });

    describe("bad values and options", () => {
      it("refuses data that is not bytes, writing nothing", async () => {
        const p = ns();
        for (const bad of [null, undefined, "text", 42, [1, 2], { length: 1 }, new ArrayBuffer(2)]) {
          await assertInvalid(store.put(`${p}k`, bad as unknown as Uint8Array), `put(${String(bad)})`);
        }
        await assertInvalid(store.putStream(`${p}k`, 42 as unknown as Iterable<Uint8Array>));
        await assertInvalid(store.putStream(`${p}k`, ["not bytes"] as unknown as Iterable<Uint8Array>));
        await assertInvalid(store.putMany("nope" as unknown as []));
        assert.deepEqual(await store.list(p), []);
      });

      it("refuses bad metadata and bad page limits", async () => {
        const p = ns();
        for (const bad of [{ "bad name": "x" }, { ok: 1 }, { ok: "line\nbreak" }, "str", { big: "x".repeat(3000) }]) {
          await assertInvalid(store.put(`${p}k`, text("x"), { metadata: bad as unknown as Record<string, string> }), `metadata ${JSON.stringify(bad).slice(0, 40)}`);
        }
        assert.deepEqual(await store.list(p), []);
        for (const limit of [0, -1, 1.5, 1e9]) await assertInvalid(store.listPage(p, { limit }), `limit ${limit}`);
      });

      it("asks for versions only where the store keeps them", async () => {
        if (store.capabilities.versions) return;
        const key = `${ns()}v`;
        await store.put(key, text("x"));
        await assertKind(store.get(key, { version: "1" }), "unsupported");
        await assertKind(store.versions(key), "unsupported");
      });
    });

    describe("cancellation", () => {
      it("rejects at once with the reason of an already aborted signal, writing nothing", async () => {
        const p = ns();
        const reason = new Error("stop");
        const signal = AbortSignal.abort(reason);
        await assert.rejects(store.put(`${p}k`, text("x"), { signal }), (err) => err === reason);
        await assert.rejects(store.get(`${p}k`, { signal }), (err) => err === reason);
        await assert.rejects(store.list(p, { signal }), (err) => err === reason);
        await assert.rejects(store.delete(`${p}k`, { signal }), (err) => err === reason);
        await assert.rejects(store.putStream(`${p}k`, [text("x")], { signal }), (err) => err === reason);
        assert.deepEqual(await store.list(p), []);
      });

      it("an abort during a large put rejects promptly and leaves no partial value", async () => {
        const key = `${ns()}abort`;
        const size = Math.min(8 * 1024 * 1024, store.capabilities.maxValueBytes);
        const controller = new AbortController();
        const reason = new Error("cancelled mid-put");
        const pending = store.put(key, patterned(size), { signal: controller.signal }).then(
          () => "completed" as const,
          (err: unknown) => err,
        );
        let abortedAt = 0;
        setImmediate(() => {
          abortedAt = Date.now();
          controller.abort(reason);
        });
        const outcome = await pending;
        // A store fast enough to finish before the abort took hold resolves; otherwise the
        // rejection is the signal's reason, promptly.
        if (outcome !== "completed") {
          assert.equal(outcome, reason);
          assert.ok(Date.now() - abortedAt < 2000, "abort was not prompt");
        }
        await settle();
        try {
          const got = await store.get(key);
          assert.equal(got.byteLength, size, "a partial value is visible after abort");
        } catch (err) {
          assert.ok(err instanceof StorageError && err.kind === "not_found", `unexpected ${String(err)}`);
        }
      });

      it("an abort during a streamed put leaves the old value", async () => {
        const key = `${ns()}abort-stream`;
        await store.put(key, text("old"));
        const controller = new AbortController();
        const reason = new Error("stop streaming");
        async function* body() {
          yield patterned(64 * 1024);
          controller.abort(reason);
          await new Promise((r) => setTimeout(r, 20));
          yield patterned(64 * 1024);
        }
        await assert.rejects(store.putStream(key, body(), { signal: controller.signal }), (err) => err === reason);
        await settle();
        assert.deepEqual(await store.get(key), text("old"));
      });

      it("a body that fails midway stores nothing", async () => {
        const key = `${ns()}failing-body`;
        async function* body() {
          yield patterned(1000);
          throw new Error("source broke");
        }
        // The body's failure is the caller's: the same kind on every backend, the cause kept.
        const err = await assertKind(store.putStream(key, body()), "invalid");
        assert.match(err.message, /source broke/);
        await settle();
        await assertKind(store.get(key), "not_found");
        assert.deepEqual(await store.list(key), []);
      });
    });

    describe("concurrency", () => {
      it("100 parallel puts of distinct keys all land", async () => {
        const p = ns();
        const keys = Array.from({ length: 100 }, (_, i) => `${p}${String(i).padStart(3, "0")}`);
        await Promise.all(keys.map((k) => store.put(k, text(`v-${k}`))));
        assert.deepEqual(await store.list(p), keys);
        const values = await Promise.all(keys.map((k) => store.get(k)));
        values.forEach((v, i) => assert.deepEqual(v, text(`v-${keys[i]}`)));
      });

      it("50 parallel overwrites of one key leave one complete value", async () => {
        const key = `${ns()}contended`;
        const candidates = Array.from({ length: 50 }, (_, i) => patterned(1000 + i * 37, i));
        await Promise.all(candidates.map((v) => store.put(key, v)));
        const got = await store.get(key);
        assert.ok(candidates.some((c) => Buffer.from(c).equals(Buffer.from(got))), "the value is not one of those written");
        assert.deepEqual(await store.list(key), [key]);
      });

      it("parallel puts and deletes of one key end in a state some order gives", async () => {
        const key = `${ns()}racy`;
        const ops = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? store.delete(key) : store.put(key, text(`v${i}`))));
        await Promise.all(ops);
        const listed = await store.list(key);
        try {
          const got = Buffer.from(await store.get(key)).toString();
          assert.match(got, /^v\d+$/);
          assert.deepEqual(listed, [key]);
        } catch (err) {
          assert.ok(err instanceof StorageError && err.kind === "not_found");
          assert.deepEqual(listed, []);
        }
      });
    });

    describe("lifecycle", () => {
      it("close is idempotent and later calls reject with fatal", async () => {
        const own = await fresh();
        await own.put("k", text("v"));
        assert.equal(own.closed, false);
        await own.close();
        assert.equal(own.closed, true);
        await own.close();
        await assertKind(own.get("k"), "fatal");
        await assertKind(own.put("k", text("v")), "fatal");
        await assertKind(own.list(""), "fatal");
      });
    });

    describe("pagination and batches", () => {
      it("listPage pages through a prefix in order, and keys() iterates it all", async () => {
        const p = ns();
        const keys = Array.from({ length: 23 }, (_, i) => `${p}${String.fromCharCode(97 + (i % 26))}${i}`).sort(compareKeys);
        await store.putMany(keys.map((key) => ({ key, data: text(key) })));
        await store.put(`${p.slice(0, -1)}~outside`, text("x"));
        const seen: string[] = [];
        let after: string | undefined;
        let pages = 0;
        for (;;) {
          const page = await store.listPage(p, { limit: 5, after });
          pages++;
          assert.ok(page.keys.length <= 5);
          seen.push(...page.keys);
          if (page.next === undefined) break;
          after = page.next;
        }
        assert.deepEqual(seen, keys);
        assert.equal(pages, 5);
        const iterated: string[] = [];
        for await (const k of store.keys(p, { limit: 4 })) iterated.push(k);
        assert.deepEqual(iterated, keys);
        assert.deepEqual(await store.listPage(`${p}zz`, { limit: 5 }), { keys: [] });
      });

      it("putMany, getMany and deleteMany", async () => {
        const p = ns();
        const entries = Array.from({ length: 30 }, (_, i) => ({ key: `${p}${i}`, data: text(`value ${i}`) }));
        await store.putMany(entries);
        const got = await store.getMany([...entries.map((e) => e.key), `${p}missing`]);
        assert.equal(got.length, 31);
        entries.forEach((e, i) => assert.deepEqual(got[i], e.data));
        assert.equal(got[30], undefined);
        await store.deleteMany([entries[0]!.key, entries[1]!.key, `${p}missing`]);
        assert.equal((await store.list(p)).length, 28);
        await store.putMany([]);
        assert.deepEqual(await store.getMany([]), []);
        await store.deleteMany([]);
      });
    });

    describe("streaming", () => {
      it("putStream and getStream round-trip uneven chunks", async () => {
        const key = `${ns()}stream`;
        const chunks = [patterned(1), patterned(100_000, 1), new Uint8Array(0), patterned(3 * 1024 * 1024 + 7, 2), patterned(65_536, 3)];
        await store.putStream(key, (async function* () {
          yield* chunks;
        })());
        const expected = Buffer.concat(chunks);
        const got = await collectBytes(await store.getStream(key));
        assert.ok(got.equals(expected), `streamed value differs (${got.length} vs ${expected.length} bytes)`);
        assert.ok(Buffer.from(await store.get(key)).equals(expected));
      });

      it("putStream of an empty body stores an empty value", async () => {
        const key = `${ns()}empty-stream`;
        await store.putStream(key, []);
        assert.equal((await store.get(key)).byteLength, 0);
        assert.equal((await collectBytes(await store.getStream(key))).length, 0);
      });

      it("getStream of a missing key rejects before yielding", async () => {
        await assertKind(store.getStream(`${ns()}nope`), "not_found");
      });

      it("a body released before or while it is read ends there, and the store goes on serving", async () => {
        const key = `${ns()}released`;
        const value = patterned(3 * 1024 * 1024 + 5, 4);
        await store.put(key, value);
        // Twenty bodies opened and let go unread, then one let go after its first chunk.
        for (let i = 0; i < 20; i++) {
          const body = (await store.getStream(key))[Symbol.asyncIterator]();
          assert.deepEqual(await body.return?.(), { done: true, value: undefined });
          assert.equal((await body.next()).done, true, "a released body yields nothing more");
        }
        const body = (await store.getStream(key))[Symbol.asyncIterator]();
        assert.equal((await body.next()).done, false);
        await body.return?.();
        assert.equal((await body.next()).done, true);
        assert.ok(Buffer.from(await collectBytes(await store.getStream(key))).equals(Buffer.from(value)));
      });
    });

    describe("stat and metadata", () => {
      it("stat gives size, time and metadata; missing keys are not_found", async (skip) => {
        if (!store.capabilities.stat) return skip("no stat capability");
        const key = `${ns()}stat`;
        const before = Date.now();
        const metadata = { "content-type": "application/json", "x-unicode": "héllo 😀 — ok", empty: "" };
        await store.put(key, text('{"a":1}'), { metadata });
        const info = await store.stat(key);
        assert.equal(info.key, key);
        assert.equal(info.size, 7);
        assert.ok(info.modified instanceof Date);
        assert.ok(Math.abs(info.modified.getTime() - before) < 60_000, "modified time is far from now");
        if (store.capabilities.metadata) assert.deepEqual(info.metadata, metadata);
        await assertKind(store.stat(`${ns()}nope`), "not_found");
      });

      it("metadata names are case-insensitive and a put replaces the metadata", async (skip) => {
        if (!store.capabilities.metadata) return skip("no metadata capability");
        const key = `${ns()}meta`;
        await store.put(key, text("1"), { metadata: { "X-Source": "sensor-1" } });
        assert.deepEqual((await store.stat(key)).metadata, { "x-source": "sensor-1" });
        await store.put(key, text("2"));
        assert.deepEqual((await store.stat(key)).metadata, {});
        await store.putStream(key, [text("3")], { metadata: { a: "b" } });
        assert.deepEqual((await store.stat(key)).metadata, { a: "b" });
        // Names that are also properties of every object are ordinary names.
        await store.put(key, text("4"), { metadata: { constructor: "c", tostring: "t", hasownproperty: "h" } });
        assert.deepEqual((await store.stat(key)).metadata, { constructor: "c", tostring: "t", hasownproperty: "h" });
      });
    });

    describe("versions", () => {
      it("keeps every version, oldest first, readable by version", async (skip) => {
        if (!store.capabilities.versions) return skip("no versions capability");
        const key = `${ns()}versioned`;
        assert.deepEqual(await store.versions(key), []);
        await store.put(key, text("first"));
        await store.put(key, text("second!"));
        const versions = await store.versions(key);
        assert.equal(versions.length, 2);
        assert.notEqual(versions[0]!.version, versions[1]!.version);
        assert.deepEqual(versions.map((v) => [v.size, v.deleted]), [[5, false], [7, false]]);
        assert.ok(versions.every((v) => v.modified instanceof Date));
        assert.deepEqual(await store.get(key, { version: versions[0]!.version }), text("first"));
        assert.deepEqual(await store.get(key, { version: versions[1]!.version }), text("second!"));
        assert.deepEqual(await store.get(key), text("second!"));
      });

      it("lists a dozen versions oldest first (version 10 after 9, not after 1)", async (skip) => {
        if (!store.capabilities.versions) return skip("no versions capability");
        const key = `${ns()}dozen-versions`;
        for (let size = 1; size <= 12; size++) await store.put(key, patterned(size, size));
        // A store may keep fewer (a bounded history): what it keeps is the newest, in order.
        const kept = await store.versions(key);
        const sizes = kept.map((v) => v.size);
        assert.ok(sizes.length >= 2, `kept ${sizes.length} versions`);
        assert.deepEqual(sizes, Array.from({ length: sizes.length }, (_, i) => 13 - sizes.length + i));
        const tenth = kept.find((v) => v.size === 10);
        if (tenth) assert.deepEqual(await store.get(key, { version: tenth.version }), patterned(10, 10));
      });

      it("delete leaves a marker and keeps the history", async (skip) => {
        if (!store.capabilities.versions) return skip("no versions capability");
        const key = `${ns()}history`;
        await store.put(key, text("kept"));
        await store.delete(key);
        await assertKind(store.get(key), "not_found");
        assert.deepEqual(await store.list(key), []);
        const versions = await store.versions(key);
        assert.equal(versions.length, 2);
        assert.equal(versions[0]!.deleted, false);
        assert.equal(versions[1]!.deleted, true);
        assert.deepEqual(await store.get(key, { version: versions[0]!.version }), text("kept"));
        await assertKind(store.get(key, { version: versions[1]!.version }), "not_found");
        await store.put(key, text("back"));
        assert.equal((await store.versions(key)).length, 3);
        assert.deepEqual(await store.get(key), text("back"));
      });

      it("an unknown version is not_found", async (skip) => {
        if (!store.capabilities.versions) return skip("no versions capability");
        const key = `${ns()}unknown-version`;
        await store.put(key, text("x"));
        await assertKind(store.get(key, { version: "999999999" }), "not_found");
      });
    });

    describe("watch", () => {
      it("reports puts and deletes under the prefix, in order, until aborted", async (skip) => {
        if (!store.capabilities.watch) return skip("no watch capability");
        const p = ns();
        const controller = new AbortController();
        const feed = await store.watch(`${p}in/`, { signal: controller.signal });
        const seen: string[] = [];
        const done = (async () => {
          for await (const event of feed) {
            seen.push(`${event.op} ${event.key.slice(p.length)}`);
            assert.ok(event.time instanceof Date);
            if (seen.length === 3) controller.abort();
          }
        })();
        await store.put(`${p}out/x`, text("not watched"));
        await store.put(`${p}in/a`, text("1"));
        await store.put(`${p}in/b`, text("2"));
        await store.delete(`${p}in/a`);
        await withTimeout(done, 10_000, "watch did not deliver 3 events");
        assert.deepEqual(seen, ["put in/a", "put in/b", "delete in/a"]);
      });
    });
  }
}

/** Lets background clean-up after an abort run before the store is checked. */
function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 100));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
