import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, copy, transferKey, isStorageError, type CopyProgress, type Store } from "../src/index.js";
import { patterned } from "../src/testing/helpers.js";
import { assertSameContent, digest, moveTestbed, seed, type Backend } from "./fixtures/move.js";

// Every await before the first test is registered (see moveTestbed).
const testbed = await moveTestbed();
const { unavailable } = testbed;
const fresh = async (backend: Backend): Promise<Store> => (await testbed.fresh(backend)).store;

const PAIRS: [Backend, Backend][] = [
  ["nats", "s3"],
  ["file", "postgres"],
  ["postgres", "nats"],
];

for (const [from, to] of PAIRS) {
  const skip = unavailable[from] ?? unavailable[to] ?? false;
  describe(`copy ${from} -> ${to}`, { skip }, () => {
    it("copies every key under the prefix with its bytes and metadata, odd keys, 0 B and 64 MiB included; a rerun copies nothing", async () => {
      const source = await fresh(from);
      const destination = await fresh(to);
      const keys = await seed(source, "src/");
      const seen: CopyProgress[] = [];
      const first = await copy(source, destination, { prefix: "src/", destinationPrefix: "copied/", onProgress: (p) => seen.push(p) });
      assert.deepEqual(first.failures, []);
      assert.equal(first.copied, keys.length);
      assert.equal(first.keys, keys.length);
      assert.equal(first.skipped, 0);
      assert.ok(first.bytes > 64 * 1024 * 1024, `bytes ${first.bytes}`);
      assert.equal(seen.length, keys.length, "one progress report per key");
      assert.equal(await assertSameContent(source, "src/", destination, "copied/"), keys.length);
      assert.deepEqual(await destination.list("outside"), [], "nothing outside the prefix");

      const again = await copy(source, destination, { prefix: "src/", destinationPrefix: "copied/" });
      assert.deepEqual({ copied: again.copied, skipped: again.skipped, failed: again.failed, bytes: again.bytes }, { copied: 0, skipped: keys.length, failed: 0, bytes: 0 });
    });
  });
}

const natsS3 = unavailable.nats ?? unavailable.s3 ?? false;
describe("copy: interrupted, failing, since", () => {
  it("an abort midway rejects promptly; a rerun finishes the job without copying twice", { skip: natsS3 }, async () => {
    const source = await fresh("nats");
    const destination = await fresh("s3");
    const total = 120;
    for (let i = 0; i < total; i += 40) {
      await source.putMany(Array.from({ length: 40 }, (_, j) => ({ key: `run/${String(i + j).padStart(4, "0")}`, data: patterned(512, i + j), metadata: { i: String(i + j) } })));
    }
    const controller = new AbortController();
    let copiedBefore = 0;
    const started = Date.now();
    const stopped = copy(source, destination, {
      prefix: "run/",
      concurrency: 4,
      signal: controller.signal,
      onProgress: (p) => {
        copiedBefore = p.copied;
        if (p.keys === 40) controller.abort(new Error("stop here"));
      },
    });
    await assert.rejects(stopped, /stop here/);
    assert.ok(Date.now() - started < 60_000);
    const landed = (await destination.list("run/")).length;
    assert.ok(landed >= 40 && landed < total, `${landed} keys landed before the abort`);

    const rest = await copy(source, destination, { prefix: "run/" });
    assert.equal(rest.failed, 0);
    assert.equal(rest.copied + rest.skipped, total);
    assert.ok(rest.skipped >= copiedBefore, `skipped ${rest.skipped}, ${copiedBefore} were copied before`);
    assert.ok(rest.copied <= total - copiedBefore);
    await assertSameContent(source, "run/", destination, "run/");
  });

  it("a key that cannot be written counts as failed and the others are copied", async () => {
    const source = new MemoryStore();
    const destination = new MemoryStore();
    await source.put("a/ok", new Uint8Array([1]));
    await source.put(`a/${"x".repeat(1000)}`, new Uint8Array([2])); // too long once the prefix grows
    await source.put("a/also-ok", new Uint8Array([3]));
    const summary = await copy(source, destination, { prefix: "a/", destinationPrefix: `${"long/".repeat(10)}` });
    assert.equal(summary.failed, 1);
    assert.equal(summary.copied, 2);
    assert.equal(summary.failures.length, 1);
    assert.equal(summary.failures[0]!.key, `a/${"x".repeat(1000)}`);
    assert.ok(isStorageError(summary.failures[0]!.error, "invalid"));
  });

  it("a destination that cannot even be listed fails the whole copy", async () => {
    const source = new MemoryStore();
    const destination = new MemoryStore();
    await source.put("k1", new Uint8Array([1]));
    await destination.close();
    await assert.rejects(copy(source, destination), (e) => isStorageError(e, "fatal"));
  });

  it("since: keys modified before it are skipped", async () => {
    const source = new MemoryStore();
    const destination = new MemoryStore();
    await source.put("old", new Uint8Array([1]));
    await new Promise((r) => setTimeout(r, 20));
    const since = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await source.put("new", new Uint8Array([2]));
    const summary = await copy(source, destination, { since });
    assert.deepEqual({ copied: summary.copied, skipped: summary.skipped }, { copied: 1, skipped: 1 });
    assert.deepEqual(await destination.list(), ["new"]);
  });

  it("rejects bad options as invalid", async () => {
    const store = new MemoryStore();
    await assert.rejects(copy(store, new MemoryStore(), { concurrency: 0 }), (e) => isStorageError(e, "invalid"));
    await assert.rejects(copy(store, new MemoryStore(), { since: new Date("nope") }), (e) => isStorageError(e, "invalid"));
    await assert.rejects(copy(store, new MemoryStore(), { prefix: "bad\u0000" }), (e) => isStorageError(e, "invalid"));
    await assert.rejects(copy(store, store, { prefix: "a/", destinationPrefix: "a/b/" }), (e) => isStorageError(e, "invalid"));
  });
});

describe("transferKey", () => {
  it("a source key that is gone is missing, not an error", async () => {
    const result = await transferKey(new MemoryStore(), new MemoryStore(), "gone", "gone");
    assert.deepEqual(result, { outcome: "missing", bytes: 0 });
  });

  it("same size but other bytes, or other metadata, is copied; the same bytes and metadata are skipped", async () => {
    const source = new MemoryStore();
    const destination = new MemoryStore();
    await source.put("k", patterned(1000, 1), { metadata: { a: "1" } });
    await destination.put("k", patterned(1000, 2), { metadata: { a: "1" } });
    assert.equal((await transferKey(source, destination, "k", "k")).outcome, "copied");
    assert.equal(await digest(destination, "k"), await digest(source, "k"));
    assert.equal((await transferKey(source, destination, "k", "k")).outcome, "skipped");
    await destination.put("k", patterned(1000, 1), { metadata: { a: "2" } });
    assert.equal((await transferKey(source, destination, "k", "k")).outcome, "copied");
    assert.deepEqual((await destination.stat("k")).metadata, { a: "1" });
  });

  it("a stale stat (the value rewritten since) does not land the old metadata on the new bytes", async () => {
    const source = new MemoryStore();
    const destination = new MemoryStore();
    await source.put("k", patterned(10, 1), { metadata: { v: "1" } });
    const stale = await source.stat("k");
    await source.put("k", patterned(20, 2), { metadata: { v: "2" } });
    const result = await transferKey(source, destination, "k", "k", { sourceInfo: stale });
    assert.deepEqual(result, { outcome: "copied", bytes: 20 });
    assert.deepEqual((await destination.stat("k")).metadata, { v: "2" });
  });
});
