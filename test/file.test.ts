import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, open, readFile, readdir, realpath, rm, stat, symlink, truncate, utimes, writeFile } from "node:fs/promises";
import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import fc from "fast-check";
import { Registry } from "prom-client";
import { FileStore, compareKeys, keyProblem, openStore, withMetrics, withRetry } from "../src/index.js";
import { testStore } from "../src/testing/index.js";
import { assertInvalid, assertKind, collectBytes, patterned, text } from "../src/testing/helpers.js";
import { classifyFsError } from "../src/backends/file/errors.js";
import { segmentNames } from "../src/backends/file/names.js";
import { waitFor } from "./fixtures/services.js";

const base = await mkdtemp(join(tmpdir(), "stowage-file-test-"));
let dirs = 0;
/** A fresh directory path (not created) inside this run's base directory. */
const freshDir = () => join(base, `store-${++dirs}`);

testStore("file", { open: () => FileStore.open({ root: freshDir() }) });
// Portable names and no fsync: the other code paths, same contract.
testStore("file (portable names, no fsync)", {
  open: () => openStore(`file:${freshDir()}?names=portable&fsync=false`),
  destroy: () => rm(base, { recursive: true, force: true }),
});

/** Every path below `dir`, relative to it, sorted (files and directories, links not followed). */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

/** Every path below `dir` except the layout file. */
async function storeFiles(dir: string): Promise<string[]> {
  return (await tree(dir)).filter((p) => p !== ".stowage.json");
}

describe("file backend", () => {
  describe("URLs and options", () => {
    it("opens file:./relative, file:/abs and file:///abs (percent-decoded) and creates the directory", async () => {
      const abs = freshDir();
      const rel = relative(process.cwd(), `${abs}-rel`);
      for (const [url, dir] of [
        [`file:${rel}`, `${abs}-rel`],
        [`file:${abs}-plain`, `${abs}-plain`],
        [`file://${abs}-url%20space`, `${abs}-url space`],
        [`file://localhost${abs}-localhost`, `${abs}-localhost`],
      ] as const) {
        const store = await openStore(url);
        await store.put("k", text(url));
        await store.close();
        assert.ok((await stat(join(dir, "k.v"))).isFile(), `${url} did not write into ${dir}`);
      }
    });

    it("refuses malformed file: URLs and options with invalid", async () => {
      await assertInvalid(openStore("file:"), "empty");
      await assertInvalid(openStore("file://example.com/data"), "remote host");
      await assertInvalid(openStore(`file:${freshDir()}?fsync=maybe`), "bad fsync");
      await assertInvalid(openStore(`file:${freshDir()}?names=fancy`), "bad names");
      await assertInvalid(openStore(`file:${freshDir()}?color=blue`), "unknown option");
      assert.match((await assertInvalid(FileStore.open({ root: "" }))).message, /root directory/);
      assert.match((await assertInvalid(FileStore.open({ root: freshDir(), chunkBytes: 0 }))).message, /chunkBytes/);
      const dir = freshDir();
      await (await FileStore.open({ root: dir, names: "readable" })).close();
      await assertInvalid(FileStore.open({ root: dir, names: "portable" }), "names differ from the layout file");
    });

    it("refuses a directory whose layout file it does not understand", async () => {
      const dir = freshDir();
      await mkdir(dir);
      await writeFile(join(dir, ".stowage.json"), '{"format":"something-else"}');
      await assertKind(FileStore.open({ root: dir }), "fatal");
    });

    it("refuses, promptly and as fatal, a root that is a file or where no directory can be made", async () => {
      const file = join(freshDir(), "not-a-dir");
      await mkdir(join(file, ".."), { recursive: true });
      await writeFile(file, "x");
      const err = await assertKind(FileStore.open({ root: file }), "fatal");
      assert.match(err.message, /exists and is not a directory/);
      await assertKind(FileStore.open({ root: join(file, "below") }), "fatal");
      // /proc refuses mkdir with ENOENT under an existing parent; recursive mkdir loops forever there.
      const started = Date.now();
      await assertKind(FileStore.open({ root: "/proc/stowage-cannot-exist" }), "fatal");
      assert.ok(Date.now() - started < 5000);
    });
  });

  describe("create: false", () => {
    it("creates nothing and rejects not_found naming the directory when it is missing", async () => {
      const parent = freshDir();
      await mkdir(parent);
      const missing = join(parent, "missing", "store");
      for (const open of [() => FileStore.open({ root: missing, create: false }), () => openStore(`file:${missing}`, { create: false })]) {
        const err = await assertKind(open(), "not_found");
        assert.ok(err.message.includes(missing), `the message does not name ${missing}: ${err.message}`);
      }
      const rel = relative(process.cwd(), join(parent, "rel"));
      await assertKind(openStore(`file:./${rel}`, { create: false }), "not_found");
      assert.deepEqual(await readdir(parent), [], "something was created");
      await writeFile(join(parent, "a-file"), "x");
      await assertKind(FileStore.open({ root: join(parent, "a-file", "store"), create: false }), "fatal");
    });

    it("opens an existing store without writing, and refuses a directory that holds no store", async () => {
      const dir = freshDir();
      const created = await FileStore.open({ root: dir });
      await created.put("k", text("v"));
      await created.close();
      const before = await tree(dir);
      const store = await FileStore.open({ root: dir, create: false });
      assert.deepEqual(await store.list(), ["k"]);
      await store.close();
      assert.deepEqual(await tree(dir), before);
      const empty = freshDir();
      await mkdir(empty);
      const err = await assertKind(FileStore.open({ root: empty, create: false }), "not_found");
      assert.match(err.message, /\.stowage\.json/);
      assert.deepEqual(await readdir(empty), [], "the layout file was written");
    });
  });

  describe("URL parameters", () => {
    it("reads ?fsync= as a boolean in any spelling and ?names= as a name mode, in both URL forms", async () => {
      for (const [query, names] of [["fsync=no&names=portable", "portable"], ["fsync=ON&names=readable", "readable"], ["fsync=0", undefined]] as const) {
        const dir = freshDir();
        for (const url of [`file:${dir}?${query}`, `file://${dir}?${query}`]) {
          const store = await openStore(url);
          await store.put("K", text("v"));
          await store.close();
        }
        const layout = JSON.parse(await readFile(join(dir, ".stowage.json"), "utf8")) as { names: string };
        if (names) assert.equal(layout.names, names);
      }
      const err = await assertInvalid(openStore(`file:${freshDir()}?fsyn=false`));
      assert.match(err.message, /unknown URL parameter "fsyn"; known parameters: fsync, names/);
      await assertInvalid(openStore(`file:${freshDir()}?fsync=true&fsync=false`), "given twice");
    });
  });

  describe("range reads", () => {
    it("reads a range at its position: the end of a 5 GiB value (sparse) without reading the rest", async () => {
      const dir = freshDir();
      const store = await FileStore.open({ root: dir, names: "readable" });
      await store.put("huge", text("placeholder"));
      const size = 5 * 1024 ** 3;
      const header = Buffer.from(await readFile(join(dir, "huge.v"))).subarray(0, 38); // fixed part + "{}"
      header.writeBigUInt64BE(BigInt(size), 12);
      const path = join(dir, "huge.v");
      await writeFile(path, header);
      await truncate(path, header.length + size);
      const tail = Buffer.from("the last bytes");
      const handle = await open(path, "r+");
      await handle.write(tail, 0, tail.length, header.length + size - tail.length);
      await handle.close();
      assert.equal((await store.stat("huge")).size, size);
      const got = await store.get("huge", { range: { offset: size - tail.length, length: 100 } });
      assert.equal(Buffer.from(got).toString(), "the last bytes");
      assert.equal(got.buffer.byteLength, tail.length, "the range's bytes do not own their buffer");
      const streamed = await collectBytes(await store.getStream("huge", { range: { offset: size - tail.length - 2 } }));
      assert.equal(streamed.toString("latin1"), "\u0000\u0000the last bytes");
      assert.equal((await store.get("huge", { range: { offset: 1000, length: 3 } })).byteLength, 3);
      await assertInvalid(store.get("huge", { range: { offset: size + 1 } }));
      await store.close();
    });
  });

  describe("keys on disk", () => {
    it("lays keys out as docs/file.md says, header included", async () => {
      const dir = freshDir();
      const store = await FileStore.open({ root: dir, names: "readable" });
      const long = "L".repeat(300);
      const keys = ["events/sensors/temp-1", "a", "a/b", "a//b", "a/", "x:y*z?", "CON", "100%", long, "é/😀"];
      for (const key of keys) await store.put(key, text(`value of ${key}`), { metadata: { "content-type": "text/plain" } });
      assert.deepEqual(await storeFiles(dir), [
        "%43ON.v",
        "100%25.v",
        `${"L".repeat(240)}.p`,
        `${"L".repeat(240)}.p/${"L".repeat(60)}.v`,
        "a.d",
        "a.d/.d",
        "a.d/.d/b.v",
        "a.d/.v",
        "a.d/b.v",
        "a.v",
        "events.d",
        "events.d/sensors.d",
        "events.d/sensors.d/temp-1.v",
        "x%3Ay%2Az%3F.v",
        "é.d",
        "é.d/😀.v",
      ].sort());
      const raw = await readFile(join(dir, "a.d", "b.v"));
      assert.equal(raw.subarray(0, 8).toString("latin1"), "STOWAGE\u0002");
      const metadataBytes = raw.readUInt32BE(8);
      assert.equal(Number(raw.readBigUInt64BE(12)), text("value of a/b").byteLength);
      assert.equal(raw.toString("base64url", 20, 36), (await store.stat("a/b")).etag, "the etag is the 16 bytes at offset 20");
      assert.deepEqual(JSON.parse(raw.toString("utf8", 36, 36 + metadataBytes)), { "content-type": "text/plain" });
      assert.equal(raw.toString("utf8", 36 + metadataBytes), "value of a/b");
      assert.deepEqual(await store.list(), [...keys].sort(compareKeys));
      await store.close();
    });

    it("keeps case-distinct and normalisation-distinct keys apart with portable names", async () => {
      const dir = freshDir();
      const store = await FileStore.open({ root: dir, names: "portable" });
      const keys = ["A", "a", "Straße/É", "straße/é", "straße/e\u0301"];
      for (const key of keys) await store.put(key, text(key));
      // Distinct even if the filesystem folded case: no two names are equal once lower-cased.
      const names = await storeFiles(dir);
      assert.equal(new Set(names.map((n) => n.toLowerCase())).size, names.length);
      assert.ok(names.every((n) => /^[\x20-\x7e]+$/.test(n)), `non-ASCII name on disk: ${names.join(", ")}`);
      for (const key of keys) assert.deepEqual(await store.get(key), text(key));
      assert.deepEqual(await store.list(), [...keys].sort(compareKeys));
      await store.close();
    });

    it("orders keys by their bytes across values, directories and split segments", async () => {
      const store = await FileStore.open({ root: freshDir() });
      const p = "p".repeat(239);
      // Around a 240-byte piece boundary: the cut depends on the next character's size.
      const keys = ["a", "a.b", "a/b", "a/", "a!", "a0", "a/ ", `${p}*x`, `${p}b`, `${p}bx`, `${p}éx`, `${p}/x`, `${p}`, `${p}!`, `${p}b/c`];
      for (const key of keys) await store.put(key, text(key));
      assert.deepEqual(await store.list(), [...keys].sort(compareKeys));
      assert.deepEqual(await store.list(p), keys.filter((k) => k.startsWith(p)).sort(compareKeys));
      assert.deepEqual(await store.list(`${p}b`), [`${p}b`, `${p}b/c`, `${p}bx`]);
      const paged: string[] = [];
      for await (const key of store.keys("", { limit: 2 })) paged.push(key);
      assert.deepEqual(paged, [...keys].sort(compareKeys));
      await store.close();
    });

    it("never lists temp files, the layout file, foreign or non-canonical names", async () => {
      const dir = freshDir();
      const store = await FileStore.open({ root: dir });
      await store.put("d/k", text("v"));
      await writeFile(join(dir, ".stowage-0123456789abcdef.tmp"), "partial");
      await writeFile(join(dir, "d.d", ".stowage-0123456789abcdef.tmp"), "partial");
      await writeFile(join(dir, "README.txt"), "not a key");
      await writeFile(join(dir, "%2a.v"), "lower-case hex: not how stowage spells *");
      await writeFile(join(dir, "%41.v"), "escaped A that needs no escape");
      await writeFile(join(dir, "..v"), "would be the invalid key '.'");
      await mkdir(join(dir, "value-as-dir.v"));
      assert.deepEqual(await store.list(), ["d/k"]);
      await store.close();
    });

    it("round-trips random keys over a nasty alphabet and refuses invalid ones, writing nothing (fast-check)", async () => {
      const alphabet = ["/", ".", "%", "_", "*", ">", "\\", ":", " ", "é", "😀", "~", "a", "A"];
      const keyArb = fc.array(fc.constantFrom(...alphabet), { minLength: 1, maxLength: 24 }).map((parts) => parts.join(""));
      for (const names of ["readable", "portable"] as const) {
        const dir = freshDir();
        const store = await FileStore.open({ root: dir, names, fsync: false });
        let valid = 0;
        let invalid = 0;
        await fc.assert(
          fc.asyncProperty(fc.uniqueArray(keyArb, { minLength: 1, maxLength: 8 }), async (keys) => {
            const before = await tree(dir);
            const good = keys.filter((k) => keyProblem(k) === undefined);
            for (const key of keys.filter((k) => keyProblem(k) !== undefined)) {
              invalid++;
              await assertInvalid(store.put(key, text(key)), `put ${JSON.stringify(key)}`);
              assert.deepEqual(await tree(dir), before, `refused key ${JSON.stringify(key)} wrote something`);
            }
            for (const key of good) await store.put(key, text(key));
            valid += good.length;
            for (const key of good) assert.deepEqual(await store.get(key), text(key));
            assert.deepEqual(await store.list(), [...good].sort(compareKeys));
            for (const key of good) assert.deepEqual(await store.list(key), good.filter((k) => k.startsWith(key)).sort(compareKeys));
            for (const key of good) await store.delete(key);
            assert.deepEqual(await store.list(), []);
            assert.deepEqual(await storeFiles(dir), [], "delete left files or directories behind");
          }),
          { numRuns: 150 },
        );
        assert.ok(valid > 100 && invalid > 10, `too few cases: ${valid} valid, ${invalid} invalid`);
        await store.close();
      }
    });
  });

  describe("containment", () => {
    let outside: string;
    let parentBefore: string[];
    before(async () => {
      outside = join(base, "outside");
      await mkdir(outside, { recursive: true });
      await writeFile(join(outside, "secret.v"), "do not touch");
      parentBefore = await tree(outside);
    });
    after(async () => {
      assert.deepEqual(await tree(outside), parentBefore, "something outside the root changed");
      assert.equal(await readFile(join(outside, "secret.v"), "utf8"), "do not touch");
    });

    it("traversal attempts are refused or stay inside the root", async () => {
      const parent = join(base, "traversal");
      const dir = join(parent, "root");
      const store = await FileStore.open({ root: dir });
      const siblingsBefore = await readdir(parent);
      for (const key of ["../x", "a/../../x", "..", "/etc/passwd", "./x", "a/./b", "a/.."]) {
        await assertInvalid(store.put(key, text("escape")), key);
      }
      const odd = ["%2e%2e/x", "%2E%2E%2Fx", "..%2f..%2fx", "..\\..\\x", "a\\..\\..\\b", "C:\\Windows\\x", "\\\\server\\share", "~/x", "...", "..../x", "a/.../b"];
      for (const key of odd) await store.put(key, text(key));
      assert.deepEqual(await readdir(parent), siblingsBefore, "a file appeared beside the root");
      const real = await realpath(dir);
      for (const path of await tree(dir)) assert.ok((await realpath(join(dir, path))).startsWith(`${real}/`), path);
      assert.deepEqual(await store.list(), [...odd].sort(compareKeys));
      for (const key of odd) assert.deepEqual(await store.get(key), text(key));
      await store.close();
    });

    it("does not follow a directory symlink planted in the root", async () => {
      const dir = freshDir();
      const store = await FileStore.open({ root: dir });
      await symlink(outside, join(dir, "evil.d"));
      await assertKind(store.put("evil/x", text("escape")), "fatal", "put through a linked directory");
      await assertKind(store.put("evil/deeper/x", text("escape")), "fatal", "put below a linked directory");
      await assertKind(store.get("evil/secret"), "fatal", "get through a linked directory");
      await assertKind(store.list("evil/"), "fatal", "list through a linked directory");
      await assertKind(store.delete("evil/secret"), "fatal", "delete through a linked directory");
      assert.deepEqual(await store.list(), [], "a link was listed");
      await store.close();
    });

    it("does not read through a value symlink, and a put replaces the link, not its target", async () => {
      const dir = freshDir();
      const store = await FileStore.open({ root: dir });
      await symlink(join(outside, "secret.v"), join(dir, "leak.v"));
      await assertKind(store.get("leak"), "fatal", "get of a linked value");
      await assertKind(store.stat("leak"), "fatal", "stat of a linked value");
      assert.deepEqual(await store.list(), []);
      await store.put("leak", text("mine"));
      assert.deepEqual(await store.get("leak"), text("mine"));
      await store.close();
    });
  });

  describe("atomic writes and temp files", () => {
    it("sweeps stale temp files on open and on request, keeping fresh ones", async () => {
      const dir = freshDir();
      await (await FileStore.open({ root: dir })).close();
      await mkdir(join(dir, "a.d"));
      const stale = [join(dir, ".stowage-aaaaaaaaaaaaaaaa.tmp"), join(dir, "a.d", ".stowage-bbbbbbbbbbbbbbbb.tmp")];
      const fresh = join(dir, ".stowage-cccccccccccccccc.tmp");
      const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
      for (const path of [...stale, fresh]) await writeFile(path, "partial");
      for (const path of stale) await utimes(path, old, old);
      const store = await FileStore.open({ root: dir });
      assert.equal(await store.initialSweep, 2);
      assert.deepEqual(await tree(dir), [".stowage-cccccccccccccccc.tmp", ".stowage.json", "a.d"]);
      assert.equal(await store.sweepTempFiles(0), 1);
      assert.deepEqual(await tree(dir), [".stowage.json", "a.d"]);
      await store.close();
    });

    it("50 parallel overwrites from two instances leave one complete value and no temp files", async () => {
      const dir = freshDir();
      const [one, two] = [await FileStore.open({ root: dir }), await FileStore.open({ root: dir })];
      const values = Array.from({ length: 50 }, (_, i) => patterned(1000 + i * 4099, i));
      await Promise.all(values.map((v, i) => (i % 2 ? one : two).put("shared/key", v, { metadata: { n: String(i) } })));
      const got = await one.get("shared/key");
      const { metadata } = await two.stat("shared/key");
      const expected = values[Number(metadata.n)]!;
      assert.deepEqual(got, expected, "value and metadata come from different puts, or the value is mixed");
      assert.deepEqual(await storeFiles(dir), ["shared.d", "shared.d/key.v"]);
      await one.close();
      await two.close();
    });

    it("puts racing deletes that prune the same directory are never lost", async () => {
      const store = await FileStore.open({ root: freshDir(), fsync: false });
      for (let round = 0; round < 100; round++) {
        await store.put("race/deep/old", text("x"));
        await Promise.all([store.delete("race/deep/old"), store.put(`race/deep/new${round}`, text("y"))]);
        assert.deepEqual(await store.list("race/"), [`race/deep/new${round}`]);
        await store.delete(`race/deep/new${round}`);
      }
      await store.close();
    });

    it("an aborted streamed put removes its temp file and keeps the old value", async () => {
      const dir = freshDir();
      const store = await FileStore.open({ root: dir });
      await store.put("k", text("old"));
      const controller = new AbortController();
      async function* stalls() {
        yield patterned(100_000);
        await new Promise(() => undefined); // a source that never continues
      }
      setTimeout(() => controller.abort(new Error("give up")), 50);
      await assert.rejects(store.putStream("k", stalls(), { signal: controller.signal }), /give up/);
      const deadline = Date.now() + 2000;
      while ((await tree(dir)).some((p) => p.endsWith(".tmp")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(await tree(dir), [".stowage.json", "k.v"]);
      assert.deepEqual(await store.get("k"), text("old"));
      await store.close();
    });

    it("getStream yields chunks of at most chunkBytes", async () => {
      const store = await FileStore.open({ root: freshDir(), chunkBytes: 4096 });
      const value = patterned(100_000, 7);
      await store.put("big", value);
      let largest = 0;
      const chunks: Uint8Array[] = [];
      for await (const chunk of await store.getStream("big")) {
        largest = Math.max(largest, chunk.byteLength);
        chunks.push(chunk);
      }
      assert.ok(largest <= 4096, `chunk of ${largest} bytes`);
      assert.ok(Buffer.concat(chunks).equals(value));
      assert.ok((await collectBytes(await store.getStream("big"))).equals(value));
      await store.close();
    });

    it("getStream reads the value as it was when opened, and stops at abort", async () => {
      const store = await FileStore.open({ root: freshDir(), chunkBytes: 1024 });
      const old = patterned(50_000, 1);
      await store.put("k", old);
      const stream = await store.getStream("k");
      await store.put("k", patterned(70_000, 2));
      assert.ok((await collectBytes(stream)).equals(old), "an open stream saw the new value");
      const controller = new AbortController();
      const reason = new Error("enough");
      let chunks = 0;
      await assert.rejects(
        (async () => {
          for await (const _chunk of await store.getStream("k", { signal: controller.signal })) {
            if (++chunks === 2) controller.abort(reason);
          }
        })(),
        (err) => err === reason,
      );
      assert.equal(chunks, 2);
      await store.close();
    });

    it("a body released unread closes its file at once, directly or under layers", async (t) => {
      if (!existsSync("/proc/self/fd")) return t.skip("counts descriptors in /proc/self/fd (Linux)");
      const store = await FileStore.open({ root: freshDir() });
      await store.put("k", patterned(200_000, 3));
      const layered = withRetry(withMetrics(store, { registry: new Registry() }));
      const open = () => readdirSync("/proc/self/fd").length;
      const before = open();
      for (const reader of [store, layered]) {
        for (let i = 0; i < 30; i++) await (await reader.getStream("k"))[Symbol.asyncIterator]().return?.();
      }
      await waitFor("the descriptors closed", async () => open() - before < 3, 2000);
      await store.close();
    });

    it("reports a truncated value file as fatal instead of returning a short value", async () => {
      const dir = freshDir();
      const store = await FileStore.open({ root: dir });
      await store.put("k", patterned(1000));
      await truncate(join(dir, "k.v"), 500);
      const err = await assertKind(store.get("k"), "fatal");
      assert.match(err.message, /corrupt/);
      await assertKind(store.stat("k"), "fatal");
      await assertKind(store.getStream("k"), "fatal");
      await store.close();
    });
  });

  it("classifies filesystem errors by code (root bypasses permissions, so codes are given here)", () => {
    const cases: [string, string][] = [
      ["EACCES", "fatal"],
      ["EPERM", "fatal"],
      ["EROFS", "fatal"],
      ["ENOSPC", "transient"],
      ["EMFILE", "transient"],
      ["EBUSY", "transient"],
      ["EAGAIN", "transient"],
      ["ELOOP", "fatal"],
      ["ENAMETOOLONG", "invalid"],
    ];
    for (const [code, kind] of cases) {
      const err = Object.assign(new Error("any text"), { code });
      const classified = classifyFsError(err, "put", "k", "/data");
      assert.equal(classified?.kind, kind, code);
      assert.equal(classified?.cause, err);
    }
    assert.equal(classifyFsError(Object.assign(new Error("x"), { code: "ENOENT" }), "get", "k", "/data")?.kind, "not_found");
    assert.equal(classifyFsError(new Error("ENOENT: looks like a code but is only text"), "get", "k", "/data"), undefined);
  });

  it("spells a segment as documented: escapes, device names, pieces", () => {
    assert.deepEqual(segmentNames("a b~é", "value", "readable"), ["a b~é.v"]);
    assert.deepEqual(segmentNames("a b~é", "value", "portable"), ["a b~%C3%A9.v"]);
    assert.deepEqual(segmentNames("Aux.txt", "dir", "readable"), ["%41ux.txt.d"]);
    assert.deepEqual(segmentNames("", "dir", "readable"), [".d"]);
    assert.deepEqual(segmentNames("*".repeat(100), "value", "readable"), ["%2A".repeat(80) + ".p", "%2A".repeat(20) + ".v"]);
  });
});
