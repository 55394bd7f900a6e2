/**
 * The PostgreSQL backend against the real server (DATABASE_URL or 127.0.0.1:5432/test): the
 * conformance suite with versions on and off, then what is special to this backend.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import { openStore } from "../src/open.js";
import { PostgresStore, SMALL_VALUE_BYTES } from "../src/backends/postgres.js";
import { bind, buildStatements, chunkRangeSql, type Statement } from "../src/backends/postgres/statements.js";
import { hasLz4, schemaSql, tableNames } from "../src/backends/postgres/schema.js";
import { compareKeys, sortKeys } from "../src/keys.js";
import { testStore } from "../src/testing/conformance.js";
import { assertKind, collectBytes, patterned, text } from "../src/testing/helpers.js";
import type { ChangeEvent, Store } from "../src/types.js";
import { dropStoreTables, findPostgres, storeUrl, uniqueTable } from "./fixtures/postgres.js";
import { freePort } from "./fixtures/services.js";

const MiB = 1024 * 1024;
const server = await findPostgres();

if ("skip" in server) {
  describe("postgres", { skip: server.skip }, () => undefined);
} else {
  const url = server.url;
  /** Opens stores on tables of their own and drops those tables afterwards. */
  const tables = (params: Record<string, string> = {}) => {
    const made: string[] = [];
    return {
      made,
      open: async (extra: Record<string, string> = {}): Promise<Store> => {
        const table = uniqueTable();
        made.push(table);
        return openStore(storeUrl(url, { ...params, ...extra, table }));
      },
      destroy: () => dropStoreTables(url, made.splice(0)),
    };
  };

  const versioned = tables({ watch: "true" });
  testStore("postgres", { open: () => versioned.open(), destroy: versioned.destroy });
  const unversioned = tables({ versions: "false" });
  testStore("postgres (versions off)", { open: () => unversioned.open(), destroy: unversioned.destroy });

  describe("postgres backend", () => {
    const own = tables();
    const admin = new pg.Pool({ connectionString: url, max: 2 });
    after(async () => {
      await own.destroy();
      await admin.end();
    });

    /** The plan of each statement as a prepared statement forced to its generic plan. */
    const genericPlans = async (statements: [Statement, string, string][], explain = ""): Promise<string[]> => {
      const client = await admin.connect();
      try {
        await client.query("SET plan_cache_mode = force_generic_plan");
        const plans: string[] = [];
        for (const [i, [statement, types, args]] of statements.entries()) {
          await client.query(`PREPARE plan${i}(${types}) AS ${statement.text}`);
          const { rows } = await client.query<{ "QUERY PLAN": string }>(`EXPLAIN ${explain ? `(${explain}) ` : ""}EXECUTE plan${i}(${args})`);
          plans.push(rows.map((r) => r["QUERY PLAN"]).join("\n"));
          await client.query(`DEALLOCATE plan${i}`);
        }
        return plans;
      } finally {
        await client.query("RESET plan_cache_mode").catch(() => undefined);
        client.release();
      }
    };

    describe("prefix listing over 100k keys with % and _ in them", () => {
      let store: Store;
      let table: string;
      const groupKeys = (g: number) => {
        // Even groups hold a literal "%_"; odd ones are decoys a LIKE pattern would also match.
        const name = g % 2 === 0 ? `x%_${g}` : `xq${g}`;
        return Array.from({ length: 1000 }, (_, i) => `data/${name}/item_${String(i).padStart(4, "0")}`);
      };
      before(async () => {
        store = await own.open({ versions: "false" });
        table = own.made.at(-1)!;
        for (let g = 0; g < 100; g++) {
          await store.putMany(groupKeys(g).map((key) => ({ key, data: text(key) })));
        }
        await admin.query(`ANALYZE "${table}"`);
      });
      after(() => store.close());

      it("lists exactly the 1000 keys of a prefix, LIKE metacharacters taken literally", async (t) => {
        const start = performance.now();
        const keys = await store.list("data/x%_2/");
        const ms = performance.now() - start;
        t.diagnostic(`list 1k of 100k: ${ms.toFixed(2)} ms`);
        assert.deepEqual(keys, sortKeys(groupKeys(2)));
        // "data/xq12/" matches the LIKE pattern 'data/x%_2/%' but not the prefix.
        assert.deepEqual(await store.list("data/x%_1"), sortKeys([...groupKeys(10), ...groupKeys(12), ...groupKeys(14), ...groupKeys(16), ...groupKeys(18)]));
        assert.deepEqual(await store.list("data/x_"), []);
        assert.equal((await store.list("data/")).length, 100_000);
      });

      it("pages through a prefix across pages, in order, ending without next", async () => {
        const seen: string[] = [];
        let after: string | undefined;
        let pages = 0;
        for (;;) {
          const page = await store.listPage("data/x%_4/", { limit: 300, after });
          pages++;
          seen.push(...page.keys);
          if (page.next === undefined) break;
          assert.equal(page.keys.length, 300);
          after = page.next;
        }
        assert.equal(pages, 4);
        assert.deepEqual(seen, sortKeys(groupKeys(4)));
        // `after` below the prefix starts at the prefix; above its range gives nothing.
        assert.deepEqual((await store.listPage("data/x%_4/", { limit: 2, after: "a" })).keys, sortKeys(groupKeys(4)).slice(0, 2));
        assert.deepEqual((await store.listPage("data/x%_4/", { after: "data/x%_5" })).keys, []);
      });

      it("lists one level (100 sub-prefixes over 100k keys) with one index probe per entry", async () => {
        const page = await store.listPage("data/", { delimiter: "/", limit: 1000 });
        const names = Array.from({ length: 100 }, (_, g) => `data/${g % 2 === 0 ? `x%_${g}` : `xq${g}`}/`);
        assert.deepEqual(page, { keys: [], prefixes: sortKeys(names) });
        const half = await store.listPage("data/", { delimiter: "/", limit: 50 });
        assert.equal(half.prefixes!.length, 50);
        assert.deepEqual((await store.listPage("data/", { delimiter: "/", after: half.next })).prefixes, sortKeys(names).slice(50));
        const sql = buildStatements(tableNames("public", table), { versions: false, history: undefined, smallBytes: SMALL_VALUE_BYTES });
        const [plan] = await genericPlans([[sql.folder, "text, text, text, int", "'data/', 'data/', 'data0', 1000"]], "ANALYZE, COSTS OFF, TIMING OFF");
        assert.doesNotMatch(plan!, /Seq Scan/, plan);
        // Each probe reads one index entry: 101 probes (the last finds nothing), not 100,000 keys.
        const read = [...plan!.matchAll(/Index Only Scan[^\n]*actual rows=(\d+) loops=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]) * Number(m[2]), 0);
        assert.ok(read > 0 && read <= 101, `${read} index entries read\n${plan}`);
      });

      it("the range query uses the primary key index under a generic plan", async () => {
        const sql = buildStatements(tableNames("public", table), { versions: false, history: undefined, smallBytes: SMALL_VALUE_BYTES });
        const plans = await genericPlans([
          [sql.range, "text, text, bigint", "'data/x%_2/', 'data/x%_20', 1001"],
          [sql.rangeAfter, "text, text, bigint", "'data/x%_2/item_0500', 'data/x%_20', 1001"],
        ]);
        for (const plan of plans) {
          assert.match(plan, /Index (Only )?Scan using/, plan);
          assert.doesNotMatch(plan, /Seq Scan/, plan);
        }
      });
    });

    it("finds a key's newest version in one backward index step under a generic plan, however long its history", async () => {
      const store = await own.open();
      const table = own.made.at(-1)!;
      await store.put("warm", text("warm"));
      // 100 keys of 2,000 versions each.
      await admin.query(`INSERT INTO "${table}_versions" (key, version, size, data) SELECT 'k' || (i % 100), i + 10, 1, '\\x07' FROM generate_series(1, 200000) i`);
      await admin.query(`INSERT INTO "${table}" (key, version) SELECT 'k' || (i % 100), max(i + 10) FROM generate_series(1, 200000) i GROUP BY 1`);
      await admin.query(`ANALYZE "${table}_versions"`);
      const sql = buildStatements(tableNames("public", table), { versions: true, history: undefined, smallBytes: SMALL_VALUE_BYTES });
      const plans = await genericPlans(
        [
          [sql.get, "text", "'k5'"],
          [sql.getMany, "text[]", "ARRAY['k5', 'k7', 'none']"],
          [sql.stat, "text", "'k5'"],
        ],
        "ANALYZE, COSTS OFF, TIMING OFF",
      );
      for (const plan of plans) {
        assert.match(plan, /Index Scan Backward using \S+_versions_pkey/, plan);
        assert.doesNotMatch(plan, /Sort|Seq Scan/, plan);
        // One row read of the key's 2,000 (per key asked).
        assert.equal(/Index Scan Backward[^\n]*actual rows=(\d+)/.exec(plan)?.[1], "1", plan);
      }
      assert.deepEqual(await store.getMany(["k5", "none", "warm"]), [new Uint8Array([7]), undefined, text("warm")]);
      await store.close();
    });

    it("reads a range from just the chunk rows that hold it, cut on the server, at any chunk boundary", async () => {
      const store = await own.open({ chunkBytes: "1024" });
      const table = own.made.at(-1)!;
      const data = patterned(100 * 1024 + 17, 9);
      await store.putStream("big", [data]);
      const inline = patterned(40_000, 4); // one row, over the size read with the row: substring of the row
      const plain = await own.open({ chunkBytes: "65536", versions: "false" });
      await plain.put("inline", inline);
      for (const [offset, length] of [[0, 1], [1023, 2], [1024, 1024], [1000, 3000], [100 * 1024, 17], [100 * 1024 + 16, 5], [5 * 1024 + 1, undefined], [0, undefined]] as const) {
        const range = length === undefined ? { offset } : { offset, length };
        const end = length === undefined ? data.byteLength : Math.min(data.byteLength, offset + length);
        assert.ok(Buffer.from(await store.get("big", { range })).equals(Buffer.from(data.subarray(offset, end))), `get ${offset}+${String(length)}`);
        assert.ok((await collectBytes(await store.getStream("big", { range }))).equals(Buffer.from(data.subarray(offset, end))), `getStream ${offset}+${String(length)}`);
        const inlineEnd = length === undefined ? inline.byteLength : Math.min(inline.byteLength, offset + length);
        if (offset <= inline.byteLength) assert.ok(Buffer.from(await plain.get("inline", { range })).equals(Buffer.from(inline.subarray(offset, inlineEnd))), `inline ${offset}+${String(length)}`);
      }
      const version = (await store.versions("big"))[0]!.version;
      const names = tableNames("public", table);
      const { rows } = await admin.query<{ "QUERY PLAN": string }>(
        `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ${chunkRangeSql(names.chunks, "'big'", BigInt(version), 100 * 1024 - 10, 100 * 1024 + 5)}`,
      );
      const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
      assert.doesNotMatch(plan, /Seq Scan/, plan);
      // The first chunk (for its length) and the two that hold the range: not the other 99.
      const read = [...plan.matchAll(/Index Scan[^\n]*actual rows=(\d+) loops=(\d+)/g)].map((m) => Number(m[1]) * Number(m[2]));
      assert.deepEqual(read.sort(), [1, 2], plan);
      await store.close();
      await plain.close();
    });

    describe("watch", () => {
      /** The next `count` events of a feed (fails after 10 s without them). */
      const take = async (feed: AsyncIterable<ChangeEvent>, count: number): Promise<ChangeEvent[]> => {
        const iterator = feed[Symbol.asyncIterator]();
        const seen: ChangeEvent[] = [];
        while (seen.length < count) {
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${seen.length} of ${count} events in 10 s`)), 10_000)));
          const next = await Promise.race([iterator.next(), timeout]).finally(() => clearTimeout(timer));
          if (next.done) break;
          seen.push(next.value);
        }
        return seen;
      };

      it("is off unless the table notifies; turning it on makes every writer of the table notify, other processes' too", async () => {
        const quiet = await own.open();
        const table = own.made.at(-1)!;
        assert.equal(quiet.capabilities.watch, false);
        await assertKind(quiet.watch(""), "unsupported");
        const watcher = await openStore(storeUrl(url, { table, watch: "true" }));
        assert.equal(watcher.capabilities.watch, true);
        const again = await openStore(storeUrl(url, { table }));
        assert.equal(again.capabilities.watch, true, "a table whose writes notify is watchable without asking");
        const controller = new AbortController();
        const feed = await watcher.watch("w/", { signal: controller.signal });
        // `quiet` opened before the table notified: its writes notify all the same (the table's triggers send them).
        await quiet.put("w/a", text("1"));
        await quiet.put("other", text("x"));
        await quiet.putMany([{ key: "w/c", data: text("3") }, { key: "w/b", data: text("2") }]);
        await quiet.deleteMany(["w/a", "w/b", "w/none"]);
        await quiet.putStream("w/big", [patterned(3 * MiB)]);
        const events = await take(feed, 6);
        controller.abort();
        assert.deepEqual(events.map((e) => `${e.op} ${e.key}`), ["put w/a", "put w/b", "put w/c", "delete w/a", "delete w/b", "put w/big"]);
        const versions = await Promise.all(events.map(async (e) => (await watcher.versions(e.key)).map((v) => v.version)));
        events.forEach((e, i) => assert.ok(versions[i]!.includes(e.version!), `${e.key}: event version ${e.version} is one of the key's versions`));
        assert.ok(events.every((e) => e.time instanceof Date && Math.abs(e.time.getTime() - Date.now()) < 60_000));
        for (const s of [quiet, watcher, again]) await s.close();
      });

      it("delivers the longest keys (1,024 bytes of multi-byte characters) whole", async () => {
        const store = await own.open({ watch: "true", versions: "false" });
        const key = `w/${"é".repeat(511)}`;
        assert.equal(Buffer.byteLength(key), 1024);
        const controller = new AbortController();
        const feed = await store.watch("w/", { signal: controller.signal });
        await store.put(key, text("v"));
        await store.delete(key);
        const events = await take(feed, 2);
        controller.abort();
        assert.deepEqual(events.map((e) => [e.op, e.key]), [["put", key], ["delete", key]]);
        assert.equal(events[1]!.version, undefined, "a delete without history has no version");
        await store.close();
      });

      it("a lost listening connection ends every feed with transient (changes meanwhile are not seen); watch again works", async () => {
        const store = await own.open({ watch: "true" });
        const { channel } = tableNames("public", own.made.at(-1)!);
        const feeds = [await store.watch("a/"), await store.watch("")];
        const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE query = $1", [`LISTEN "${channel}"`]);
        assert.ok(rows.length >= 1, "a listening connection");
        for (const { pid } of rows) await admin.query("SELECT pg_terminate_backend($1)", [pid]);
        for (const feed of feeds) {
          const err = await assertKind(
            (async () => {
              for await (const _ of feed) void _;
            })(),
            "transient",
          );
          assert.match(err.message, /lost/);
        }
        const controller = new AbortController();
        const feed = await store.watch("a/", { signal: controller.signal });
        await store.put("a/x", text("1"));
        assert.deepEqual((await take(feed, 1)).map((e) => e.key), ["a/x"]);
        controller.abort();
        await store.close();
      });
    });

    it("orders astral, private-use and BMP keys by UTF-8 bytes, as compareKeys does", async () => {
      const store = await own.open();
      const keys = ["a/\u{1F600}", "a/\uE000", "a/\uFFFF", "a/\u{10000}", "a/z", "a/\u00E9", "a/\u{10FFFF}", "a/ ", "a/\u7FFF", "a/%", "a/_"];
      for (const key of keys) await store.put(key, text(key));
      const listed = await store.list("a/");
      assert.deepEqual(listed, [...keys].sort(compareKeys));
      assert.notDeepEqual(listed, [...keys].sort(), "the test needs keys where UTF-16 order differs");
      assert.deepEqual(await store.list("a/\u{10000}"), ["a/\u{10000}"]);
      assert.deepEqual(await store.list("a/\u{10FFFF}"), ["a/\u{10FFFF}"]);
      await store.close();
    });

    it("round-trips metadata with unicode values exactly", async () => {
      const store = await own.open();
      const metadata = { "content-type": "text/plain; charset=utf-8", title: "日本語 😀 ü \u2028 \"quoted\" \\ back", "x.empty": "", n: "0" };
      await store.put("m", text("v"), { metadata });
      assert.deepEqual((await store.stat("m")).metadata, metadata);
      await store.putStream("m2", [patterned(3 * MiB)], { metadata });
      assert.deepEqual((await store.stat("m2")).metadata, metadata);
      await store.close();
    });

    it("keeps versions of chunked values, bounds the history, and frees chunks nothing refers to", async () => {
      const store = await own.open({ history: "3", chunkBytes: "1024" });
      const table = own.made.at(-1)!;
      const values = [1, 2, 3, 4].map((n) => patterned(3000 + n, n));
      for (const v of values) await store.put("k", v);
      const versions = await store.versions("k");
      assert.equal(versions.length, 3);
      assert.deepEqual(versions.map((v) => v.size), [3002, 3003, 3004]);
      assert.deepEqual(await store.get("k", { version: versions[0]!.version }), values[1]);
      await assertKind(store.get("k", { version: "999999999" }), "not_found");
      await assertKind(store.get("k", { version: "not-a-number" }), "not_found");
      const chunkVersions = async () =>
        (await admin.query<{ text: string }>(`SELECT DISTINCT version, version::text AS text FROM "${table}_chunks" ORDER BY 1`)).rows.map((r) => r.text);
      assert.deepEqual(await chunkVersions(), versions.map((v) => v.version));
      await store.delete("k");
      assert.equal((await store.versions("k")).at(-1)!.deleted, true);
      assert.deepEqual(await store.get("k", { version: versions[2]!.version }), values[3]);
      await store.close();

      const plain = await own.open({ versions: "false", chunkBytes: "1024" });
      const plainTable = own.made.at(-1)!;
      await plain.put("k", patterned(5000));
      await plain.put("k", patterned(4000, 1));
      const { rows } = await admin.query<{ n: number }>(`SELECT count(DISTINCT version)::int AS n FROM "${plainTable}_chunks"`);
      assert.equal(rows[0]!.n, 1, "an overwritten chunked value leaves no chunks behind");
      await plain.put("k", text("small"));
      await plain.delete("k");
      const left = await admin.query(`SELECT 1 FROM "${plainTable}_chunks"`);
      assert.equal(left.rowCount, 0);
      await plain.close();
    });

    it("writes each value's bytes once, in its history row; the main table holds each key's version, deleted keys marked", async () => {
      const store = await own.open();
      const table = own.made.at(-1)!;
      const small = patterned(SMALL_VALUE_BYTES, 1);
      const large = patterned(SMALL_VALUE_BYTES + 1, 2);
      const many = [patterned(300_000, 3), patterned(100, 4)];
      await store.put("small", small);
      await store.put("large", large);
      await store.putMany([{ key: "m0", data: many[0]! }, { key: "m1", data: many[1]! }]);
      await store.put("gone", small);
      await store.delete("gone");
      const keys = await admin.query<{ key: string; version: string; deleted: boolean }>(`SELECT key, version::text, deleted FROM "${table}" ORDER BY key`);
      assert.deepEqual(keys.rows.map((r) => [r.key, r.deleted]), [["gone", true], ["large", false], ["m0", false], ["m1", false], ["small", false]]);
      for (const row of keys.rows) assert.equal(row.version, (await store.versions(row.key)).at(-1)!.version, `${row.key}: the row's version is the newest`);
      const stored = await admin.query<{ key: string; bytes: number | null }>(`SELECT key, octet_length(data) AS bytes FROM "${table}_versions" ORDER BY key, version`);
      assert.deepEqual(stored.rows.map((r) => [r.key, r.bytes]), [["gone", SMALL_VALUE_BYTES], ["gone", null], ["large", SMALL_VALUE_BYTES + 1], ["m0", 300_000], ["m1", 100], ["small", SMALL_VALUE_BYTES]]);
      // Every read path finds the bytes where they are.
      assert.deepEqual(await store.get("large"), large);
      assert.deepEqual(await store.getMany(["m0", "large", "small", "m1", "gone"]), [many[0], large, small, many[1], undefined]);
      await assertKind(store.stat("gone"), "not_found");
      const version = (await store.versions("large"))[0]!.version;
      await store.put("large", small);
      assert.deepEqual(await store.get("large", { version }), large);
      assert.deepEqual(await collectBytes(await store.getStream("m0")), Buffer.from(many[0]!));
      await store.close();
    });

    it("a put racing a delete of the same key: the live keys always agree with each key's newest version", async () => {
      const pool = new pg.Pool({ connectionString: url, max: 8 });
      const table = uniqueTable();
      own.made.push(table);
      const store = await PostgresStore.open({ pool, table, chunkBytes: 1024 });
      const keys = ["a", "b", "c"];
      const big = patterned(3000, 9); // chunked: drawn its version before it takes its lock
      for (let round = 0; round < 150; round++) {
        await Promise.all(
          keys.flatMap((key, i) => [
            store.put(key, text(`${round}`)),
            store.delete(key),
            (round + i) % 3 === 0 ? store.putStream(key, [big]) : store.put(key, text(`${round}'`)),
            (round + i) % 4 === 0 ? store.deleteMany([key, "x"]) : store.putMany([{ key, data: text(`${round}"`) }, { key: "x", data: text("x") }]),
          ]),
        );
        const listed = new Set(await store.list(""));
        for (const key of keys) {
          const newest = (await store.versions(key)).at(-1)!;
          assert.equal(listed.has(key), !newest.deleted, `round ${round}: "${key}" listed ${listed.has(key)}, newest version deleted ${newest.deleted}`);
          if (newest.deleted) await assertKind(store.get(key), "not_found");
          else assert.equal((await store.get(key)).byteLength, newest.size);
        }
      }
      await store.close();
      await pool.end();
    });

    it("writers racing on new and deleted keys never fail (8 at once on each of 300 keys)", async () => {
      const pool = new pg.Pool({ connectionString: url, max: 8 });
      const table = uniqueTable();
      own.made.push(table);
      const store = await PostgresStore.open({ pool, table });
      const failures: string[] = [];
      for (let i = 0; i < 300; i++) {
        const key = `race/${i % 100}`;
        // The first 100 keys are new; then each was deleted: its next puts recreate it.
        const outcomes = await Promise.allSettled(Array.from({ length: 8 }, (_, w) => (w === 7 && i >= 100 ? store.delete(key) : store.put(key, text(`${i}.${w}`)))));
        for (const o of outcomes) if (o.status === "rejected") failures.push(String(o.reason));
        if (i % 100 === 99) await store.deleteMany(Array.from({ length: 100 }, (_, k) => `race/${k}`));
      }
      assert.deepEqual(failures.slice(0, 3), []);
      await store.close();
      await pool.end();
    });

    it("a putMany and a deleteMany of 20,000 keys fit the server's lock table", async () => {
      const store = await own.open();
      const entries = Array.from({ length: 20_000 }, (_, i) => ({ key: `many/${i}`, data: text(String(i)) }));
      await store.putMany(entries);
      assert.equal((await store.list("many/")).length, 20_000);
      assert.deepEqual(await store.get("many/19999"), text("19999"));
      await store.deleteMany(entries.map((e) => e.key));
      assert.deepEqual(await store.list("many/"), []);
      await store.close();
    });

    it("a batch in progress holds off the writes of its own keys, and no others", async () => {
      const store = await own.open();
      const table = own.made.at(-1)!;
      const sql = buildStatements(tableNames("public", table), { versions: true, history: 8, smallBytes: SMALL_VALUE_BYTES });
      const keys = Array.from({ length: 2000 }, (_, i) => `batch/${String(i).padStart(4, "0")}`);
      const batch = await admin.connect();
      const settled = (promise: Promise<unknown>, ms: number) => Promise.race([promise.then(() => "resolved"), new Promise((r) => setTimeout(() => r("waiting"), ms))]);
      try {
        await batch.query("BEGIN");
        await batch.query(bind(sql.putMany, [keys, keys.map(() => text("b")), keys.map(() => null)]));
        // 2,000 keys spread over every bucket a batch of the earlier layout locked: other keys are not held off.
        for (let i = 0; i < 20; i++) assert.equal(await settled(store.put(`other/${i}`, text("o")), 5000), "resolved", `other/${i} waited for the batch`);
        const mine = store.put("batch/0007", text("after"));
        assert.equal(await settled(mine, 300), "waiting", "a key of the batch waits for it");
        await batch.query("COMMIT");
        await mine;
      } finally {
        batch.release();
      }
      assert.deepEqual(await store.get("batch/0007"), text("after"));
      assert.deepEqual((await store.versions("batch/0007")).map((v) => v.size), [1, 5]);
      await store.close();
    });

    it("deletes and chunked puts work where the default isolation is REPEATABLE READ", async () => {
      const table = uniqueTable();
      own.made.push(table);
      const strict = new URL(url);
      strict.searchParams.set("options", "-c default_transaction_isolation=repeatable\\ read");
      const pool = new pg.Pool({ connectionString: strict.href, max: 2 });
      const { rows } = await pool.query<{ level: string }>("SELECT current_setting('transaction_isolation') AS level");
      assert.equal(rows[0]!.level, "repeatable read");
      const store = await PostgresStore.open({ pool, table, chunkBytes: 1024 });
      await store.put("k", text("v"));
      await store.putStream("big", [patterned(5000, 3)]);
      await store.delete("k");
      await store.deleteMany(["big", "none"]);
      assert.deepEqual(await store.list(""), []);
      assert.deepEqual((await store.versions("big")).map((v) => v.deleted), [false, true]);
      await store.close();
      await pool.end();
    });

    it("compresses values with lz4 where the server has it", async (t) => {
      const { rows: server } = await admin.query<{ lz4: boolean | null }>("SELECT 'lz4' = ANY(enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'");
      if (server.length === 0) return t.skip("PostgreSQL before 14 has no choice of compression");
      const store = await own.open();
      const table = own.made.at(-1)!;
      const { rows } = await admin.query<{ relname: string; attcompression: string }>(
        `SELECT c.relname, a.attcompression FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          WHERE c.relname = ANY($1::text[]) AND a.attname IN ('data', 'bytes') ORDER BY 1`,
        [[table, `${table}_versions`, `${table}_chunks`]],
      );
      const expected = server[0]?.lz4 === true ? "l" : "";
      assert.deepEqual(rows.map((r) => r.attcompression), [expected, expected]);
      const compressible = new Uint8Array(MiB).fill(7);
      await store.put("k", compressible);
      assert.deepEqual(await store.get("k"), compressible);
      await store.close();
    });

    it("refuses a table made with the other versions setting, saying which to use", async () => {
      const table = uniqueTable();
      own.made.push(table);
      const plain = await openStore(storeUrl(url, { table, versions: "false" }));
      await plain.put("k", text("v"));
      await plain.close();
      const err = await assertKind(openStore(storeUrl(url, { table })), "fatal");
      assert.match(err.message, /no history.*open it with versions=false/);
      const other = uniqueTable();
      own.made.push(other);
      await (await openStore(storeUrl(url, { table: other }))).close();
      const back = await assertKind(openStore(storeUrl(url, { table: other, versions: "false" })), "fatal");
      assert.match(back.message, /keeps versions.*without versions=false/);
    });

    it("a large read stopped early or aborted discards its connection and the pool keeps working", async () => {
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      const table = uniqueTable();
      own.made.push(table);
      const store = await PostgresStore.open({ pool, table, chunkBytes: 64 * 1024 });
      const value = patterned(MiB, 6);
      await store.put("k", value);
      for await (const piece of await store.getStream("k")) {
        assert.ok(piece.byteLength > 0);
        break; // leaves a COPY half read
      }
      const aborted = new AbortController();
      const reading = store.getStream("k", { signal: aborted.signal });
      const iterator = (await reading)[Symbol.asyncIterator]();
      await iterator.next();
      aborted.abort();
      await assert.rejects(async () => {
        while (!(await iterator.next()).done);
      });
      // One connection in the pool: had a half-read COPY gone back to it, these would fail.
      assert.deepEqual(await store.get("k"), value);
      assert.deepEqual(await store.list(), ["k"]);
      await store.close();
      await pool.end();
    });

    it("streams 100 MiB in and out with memory bounded by a few chunks", async (t) => {
      const store = await own.open({ versions: "false" });
      const size = 100 * MiB;
      const piece = 256 * 1024;
      const hashIn = createHash("sha256");
      async function* body() {
        for (let off = 0, n = 0; off < size; off += piece, n++) {
          const chunk = patterned(piece, n);
          hashIn.update(chunk);
          yield chunk;
        }
      }
      globalThis.gc?.();
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
      try {
        await store.putStream("big", body());
        const hashOut = createHash("sha256");
        let bytes = 0;
        for await (const chunk of await store.getStream("big")) {
          hashOut.update(chunk);
          bytes += chunk.byteLength;
        }
        assert.equal(bytes, size);
        assert.equal(hashOut.digest("hex"), hashIn.digest("hex"));
      } finally {
        clearInterval(sampler);
      }
      const growth = (peak - baseline) / MiB;
      t.diagnostic(`RSS growth streaming 100 MiB: ${growth.toFixed(1)} MiB`);
      assert.ok(growth < 48, `RSS grew ${growth.toFixed(1)} MiB`);
      assert.equal((await store.stat("big")).size, size);
      await store.close();
    });

    it("a stream whose source throws inside the transaction is the caller's failure (invalid, not a lost connection) and leaves nothing", async () => {
      const store = await own.open({ chunkBytes: "1024" });
      const table = own.made.at(-1)!;
      async function* failing() {
        yield patterned(5000);
        throw new Error("source broke");
      }
      const err = await assertKind(store.putStream("s", failing()), "invalid");
      assert.match(err.message, /source broke/);
      await assertKind(store.get("s"), "not_found");
      assert.equal((await admin.query(`SELECT 1 FROM "${table}_chunks"`)).rowCount, 0);
      await store.close();
    });

    it("docs/postgres.md gives the schema the store makes; with create=false a missing table is not_found and nothing is created", async () => {
      const doc = readFileSync(new URL("../docs/postgres.md", import.meta.url), "utf8");
      const sql = /For teams that migrate by hand[\s\S]*?```sql\n([\s\S]*?)```/.exec(doc)?.[1]?.trim();
      assert.equal(sql, schemaSql(tableNames("public", "stowage_objects"), { lz4: true }));
      const table = uniqueTable();
      own.made.push(table);
      const objects = async () =>
        (await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE $1", [`${table}%`])).rows[0]!.n +
        (await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_proc WHERE proname LIKE $1", [`${table}%`])).rows[0]!.n;
      const missing = await assertKind(openStore(storeUrl(url, { table, create: "false" })), "not_found");
      assert.match(missing.message, new RegExp(`table public\\.${table}\\b.*does not exist`));
      await assertKind(openStore(storeUrl(url, { table }), { postgres: { create: false } }), "not_found");
      assert.equal(await objects(), 0, "nothing was created");
      const lz4 = await hasLz4(admin);
      const lines = sql!.replaceAll("stowage_objects", table).split("\n");
      await admin.query(lines.filter((line) => lz4 || !line.includes("COMPRESSION lz4")).join("\n"));
      const made = await objects();
      const store = await openStore(storeUrl(url, { table, create: "false" }));
      await store.put("k", patterned(3 * MiB, 2));
      await store.delete("k");
      assert.equal((await store.versions("k")).length, 2);
      await store.close();
      assert.equal(await objects(), made, "the store created nothing of its own");
    });

    it("a table made by the earlier layout (keys only in the table of keys) is refused until the upgrade in docs/postgres.md is applied", async () => {
      const table = uniqueTable();
      own.made.push(table);
      const n = tableNames("public", table);
      // The earlier layout: the live keys alone, history rows appended under advisory locks.
      await admin.query(`CREATE SEQUENCE ${n.sequence};
        CREATE TABLE ${n.main} (key text COLLATE "C" PRIMARY KEY);
        CREATE TABLE ${n.versions} (key text COLLATE "C" NOT NULL, version bigint NOT NULL, size bigint NOT NULL, modified timestamptz NOT NULL DEFAULT now(),
          metadata jsonb, data bytea, chunks integer NOT NULL DEFAULT 0, deleted boolean NOT NULL DEFAULT false, PRIMARY KEY (key, version));
        CREATE TABLE ${n.chunks} (key text COLLATE "C" NOT NULL, version bigint NOT NULL, seq integer NOT NULL, bytes bytea NOT NULL, PRIMARY KEY (key, version, seq));
        INSERT INTO ${n.main} VALUES ('a');
        INSERT INTO ${n.versions} (key, version, size, data) VALUES ('a', nextval(${n.sequenceLiteral}), 2, 'a1'), ('a', nextval(${n.sequenceLiteral}), 2, 'a2'),
          ('b', nextval(${n.sequenceLiteral}), 2, 'b1');
        INSERT INTO ${n.versions} (key, version, size, deleted) VALUES ('b', nextval(${n.sequenceLiteral}), 0, true);`);
      const refused = await assertKind(openStore(storeUrl(url, { table })), "fatal");
      assert.match(refused.message, /earlier stowage.*docs\/postgres\.md/);
      const doc = readFileSync(new URL("../docs/postgres.md", import.meta.url), "utf8");
      const upgrade = /### Tables made by an earlier stowage[\s\S]*?```sql\n([\s\S]*?)```/.exec(doc)?.[1];
      assert.ok(upgrade, "the upgrade is in docs/postgres.md");
      await admin.query(upgrade.replaceAll("stowage_objects", table));
      const store = await openStore(storeUrl(url, { table }));
      assert.deepEqual(await store.list(""), ["a"]);
      assert.deepEqual(await store.get("a"), text("a2"));
      await assertKind(store.get("b"), "not_found");
      await store.put("a", text("a3"));
      await store.put("b", text("b2"));
      assert.deepEqual((await store.versions("a")).map((v) => v.size), [2, 2, 2]);
      assert.deepEqual((await store.versions("b")).map((v) => v.deleted), [false, true, false]);
      assert.deepEqual(await store.list(""), ["a", "b"]);
      assert.equal((await store.stat("a")).etag, (await store.versions("a")).at(-1)!.version);
      await store.close();
    });

    for (const [layout, params] of [
      ["versions on", {}],
      ["versions off", { versions: "false" }],
      ["versions on, chunked values", { chunkBytes: "1024" }],
    ] as const) {
      it(`a write id (${layout}): an attempt with the id of a write that took effect changes nothing, whatever happened since`, async () => {
        const store = await own.open(params);
        const value = (s: string) => (layout.includes("chunked") ? patterned(3000, s.charCodeAt(0)) : text(s));
        const read = async (key: string) => (await store.get(key).catch(() => undefined)) ?? null;
        // put, then another write, then the same put again: the other write stands.
        await store.put("put", value("A"), { writeId: "w-put" });
        await store.put("put", value("B"));
        await store.put("put", value("A"), { writeId: "w-put" });
        assert.deepEqual(await read("put"), value("B"));
        // create, delete, the same create again: it already took effect, so it resolves and changes nothing.
        await store.put("create", value("A"), { ifNoneMatch: "*", writeId: "w-create" });
        await store.delete("create");
        await store.put("create", value("A"), { ifNoneMatch: "*", writeId: "w-create" });
        assert.equal(await read("create"), null);
        // ifMatch: the first attempt's success is the answer, though the etag has moved on.
        const etag = (await store.stat("put")).etag!;
        await store.put("put", value("C"), { ifMatch: etag, writeId: "w-cas" });
        await store.put("put", value("D"));
        await store.put("put", value("C"), { ifMatch: etag, writeId: "w-cas" });
        assert.deepEqual(await read("put"), value("D"));
        // A condition that failed recorded nothing: the same id may still take effect.
        await assertKind(store.put("put", value("E"), { ifNoneMatch: "*", writeId: "w-failed" }), "conflict");
        await store.delete("put");
        await store.put("put", value("E"), { ifNoneMatch: "*", writeId: "w-failed" });
        assert.deepEqual(await read("put"), value("E"));
        // delete, delete ifMatch, deleteMany: a later put stands.
        const deletes: [string, (key: string, etag: string) => Promise<void>][] = [
          ["delete", (key) => store.delete(key, { writeId: "w-delete" })],
          ["deleteIfMatch", (key, tag) => store.delete(key, { ifMatch: tag, writeId: "w-delete-if" })],
          ["deleteMany", (key) => store.deleteMany([key, "absent"], { writeId: "w-delete-many" })],
        ];
        for (const [key, remove] of deletes) {
          await store.put(key, value("A"));
          const tag = (await store.stat(key)).etag!;
          await remove(key, tag);
          await store.put(key, value("B"));
          await remove(key, tag);
          assert.deepEqual(await read(key), value("B"), key);
        }
        // putMany: the batch is one write.
        await store.putMany([{ key: "many/1", data: value("A") }, { key: "many/2", data: value("A") }], { writeId: "w-many" });
        await store.delete("many/1");
        await store.putMany([{ key: "many/1", data: value("A") }, { key: "many/2", data: value("A") }], { writeId: "w-many" });
        assert.equal(await read("many/1"), null);
        if (layout !== "versions off") {
          assert.equal((await store.versions("create")).length, 2, "create: its put and the delete");
          assert.equal((await store.versions("many/2")).length, 1, "putMany: once");
        }
        await store.close();
      });
    }

    it("a write id: attempts of one write at once (a put, a create, a batch) take effect once (the second to record its id rolls back whole)", async () => {
      const store = await own.open();
      for (let round = 0; round < 5; round++) {
        const put = `put/${round}`;
        const create = `create/${round}`;
        const batch = [{ key: `many/${round}/a`, data: text("A") }, { key: `many/${round}/b`, data: text("A") }];
        await Promise.all([
          ...Array.from({ length: 6 }, () => store.put(put, text("A"), { writeId: `p${round}` })),
          ...Array.from({ length: 6 }, () => store.put(create, text("A"), { ifNoneMatch: "*", writeId: `c${round}` })),
          ...Array.from({ length: 4 }, () => store.putMany(batch, { writeId: `m${round}` })),
        ]);
        assert.equal((await store.versions(put)).length, 1, put);
        assert.equal((await store.versions(create)).length, 1, create);
        for (const { key } of batch) assert.equal((await store.versions(key)).length, 1, key);
      }
      await store.close();
    });

    it("a write id: tables made before the table of write ids get it when the store may create; with create=false writes go without it", async () => {
      const table = uniqueTable();
      own.made.push(table);
      await (await openStore(storeUrl(url, { table }))).close();
      await admin.query(`DROP TABLE "${table}_writes"`);
      const without = await openStore(storeUrl(url, { table, create: "false" }));
      await without.put("k", text("A"), { writeId: "w" });
      await without.put("k", text("A"), { writeId: "w" });
      assert.equal((await without.versions("k")).length, 2, "no dedupe without the table");
      await without.close();
      const upgraded = await openStore(storeUrl(url, { table }));
      await upgraded.put("k", text("A"), { writeId: "w2" });
      await upgraded.put("k", text("A"), { writeId: "w2" });
      assert.equal((await upgraded.versions("k")).length, 3, "the table was created: one version more, not two");
      await upgraded.close();
    });

    it("a write id is forgotten after dedupeWindow: swept in the background by the stores that write with ids", async () => {
      await assertKind(openStore(storeUrl(url, { table: uniqueTable(), dedupeWindow: "10ms" })), "invalid");
      const table = uniqueTable();
      own.made.push(table);
      const store = await openStore(storeUrl(url, { table, dedupeWindow: "1s" }));
      await store.put("k", text("A"), { writeId: "old" });
      await new Promise((r) => setTimeout(r, 1600));
      await store.put("k", text("B"), { writeId: "new" });
      await store.close(); // waits for the sweep
      const { rows } = await admin.query<{ write_id: string }>(`SELECT write_id FROM "${table}_writes" ORDER BY write_id`);
      assert.deepEqual(rows.map((r) => r.write_id), ["new"]);
    });

    it("two processes' worth of stores create the same schema at once", async () => {
      const table = uniqueTable();
      own.made.push(table);
      const stores = await Promise.all(Array.from({ length: 4 }, () => openStore(storeUrl(url, { table }))));
      await stores[0]!.put("k", text("v"));
      assert.deepEqual(await stores[3]!.get("k"), text("v"));
      await Promise.all(stores.map((s) => s.close()));
    });

    it("works on a caller's pool and leaves it open on close", async () => {
      const pool = new pg.Pool({ connectionString: url, max: 3 });
      const table = uniqueTable();
      own.made.push(table);
      const store = await PostgresStore.open({ pool, table, versions: false });
      await store.put("k", text("v"));
      await store.close();
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${table}"`);
      assert.equal(rows[0].n, 1);
      await pool.end();
    });

    it("putMany with a repeated key keeps the later value and records both versions", async () => {
      const store = await own.open();
      await store.putMany([
        { key: "d", data: text("first") },
        { key: "e", data: text("other") },
        { key: "d", data: text("second") },
      ]);
      assert.deepEqual(await store.get("d"), text("second"));
      assert.equal((await store.versions("d")).length, 2);
      assert.deepEqual(await store.getMany(["d", "missing", "d"]), [text("second"), undefined, text("second")]);
      await store.close();
    });

    describe("errors", () => {
      it("a database that does not exist is fatal", async () => {
        const u = new URL(url);
        u.pathname = "/stowage_no_such_database";
        const err = await assertKind(openStore(storeUrl(u.href, { table: uniqueTable() })), "fatal");
        assert.equal((err.cause as { code?: string }).code, "3D000");
      });

      it("a closed port is transient", async () => {
        const u = new URL(url);
        u.port = String(await freePort());
        await assertKind(openStore(storeUrl(u.href, { table: uniqueTable() })), "transient");
      });

      it("a table that is not a stowage table is fatal, saying what to do", async () => {
        const table = uniqueTable();
        own.made.push(table);
        await admin.query(`CREATE TABLE "${table}" (key text PRIMARY KEY, value bytea)`);
        const err = await assertKind(openStore(storeUrl(url, { table })), "fatal");
        assert.match(err.message, /not a stowage table/);
        assert.match(err.message, /docs\/postgres\.md/);
      });

      it("bad table names and options are invalid", async () => {
        for (const table of ["1abc", "a-b", 'x"; DROP TABLE y; --', "a".repeat(49), ""]) {
          await assertKind(openStore(storeUrl(url, { table })), "invalid", table);
        }
        await assertKind(openStore(storeUrl(url, { table: "ok", versions: "maybe" })), "invalid");
        await assertKind(openStore(storeUrl(url, { table: "ok", history: "1" })), "invalid");
      });

      it("refuses PostgreSQL's own schemas up front (given, or the connection's own) and creates nothing", async () => {
        const table = uniqueTable();
        for (const schema of ["information_schema", "pg_catalog", "pg_toast", "pg_temp", "pg_temp_3", "pg_toast_temp_1", "PG_CATALOG"]) {
          const err = await assertKind(openStore(storeUrl(url, { table, schema })), "invalid", schema);
          assert.match(err.message, /belongs to PostgreSQL itself/);
        }
        const inCatalog = new URL(storeUrl(url, { table }));
        inCatalog.searchParams.set("options", "-c search_path=pg_catalog");
        await assertKind(openStore(inCatalog.href), "invalid");
        const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE $1", [`${table}%`]);
        assert.equal(rows[0]!.n, 0);
      });

      it("refuses unknown URL parameters, listing the known ones; pg's own parameters reach pg", async () => {
        const err = await assertKind(openStore(storeUrl(url, { table: uniqueTable(), histroy: "3" })), "invalid");
        assert.match(err.message, /unknown URL parameter "histroy".*history/);
        await assertKind(openStore(storeUrl(url, { table: uniqueTable(), binary: "true" })), "invalid");
        await assertKind(openStore(storeUrl(url, { table: uniqueTable(), history: "some" })), "invalid");
        const name = `stowage_${Math.random().toString(36).slice(2, 10)}`;
        const store = await own.open({ sslmode: "disable", application_name: name, history: "all", chunkBytes: "64KiB" });
        await store.put("k", patterned(100 * 1024));
        const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [name]);
        assert.ok(rows[0]!.n >= 1, "the store's connections carry application_name");
        for (let i = 0; i < 10; i++) await store.put("k", text(String(i)));
        assert.equal((await store.versions("k")).length, 11, "history=all keeps every version");
        await store.close();
      });

      it("a dropped table after open is fatal, not a crash", async () => {
        const store = await own.open({ versions: "false" });
        const table = own.made.at(-1)!;
        await admin.query(`DROP TABLE "${table}" CASCADE`);
        await assertKind(store.put("k", text("v")), "fatal");
        await store.close();
      });
    });
  });
}
