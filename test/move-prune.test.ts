import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { MemoryStore, prune, isStorageError, type Store } from "../src/index.js";
import { moveTestbed, type Backend } from "./fixtures/move.js";

// Every await before the first test is registered (see moveTestbed).
const BACKENDS: Backend[] = ["file", "nats", "postgres", "s3"];
const testbed = await moveTestbed();
const skips = new Map<Backend, string | false>(BACKENDS.map((backend) => [backend, testbed.unavailable[backend] ?? false]));
const fresh = async (backend: Backend): Promise<Store> => (await testbed.fresh(backend)).store;

/**
 * Old keys, then (after a gap the clocks of every backend can resolve) a cutoff, then new keys;
 * old and new interleaved in key order so a prune that stops early or slips shows it.
 */
async function oldAndNew(store: Store, prefix: string): Promise<{ cutoff: Date; old: string[]; young: string[] }> {
  const old = Array.from({ length: 12 }, (_, i) => `${prefix}${String(i * 2).padStart(3, "0")}`);
  const young = Array.from({ length: 12 }, (_, i) => `${prefix}${String(i * 2 + 1).padStart(3, "0")}`);
  for (const key of old) await store.put(key, new Uint8Array([1]));
  await store.put(`other/${old[0]}`, new Uint8Array([1])); // old, but outside the prefix
  await sleep(1100); // S3 and file times may be whole seconds
  const cutoff = new Date();
  await sleep(1100);
  for (const key of young) await store.put(key, new Uint8Array([2]));
  return { cutoff, old, young };
}

for (const backend of BACKENDS) {
  describe(`prune on ${backend}`, { skip: skips.get(backend) }, () => {
    it("deletes exactly the keys older than the cutoff; a dry run deletes nothing and lists them", async () => {
      const store = await fresh(backend);
      const { cutoff, old, young } = await oldAndNew(store, "p/");
      const listed: string[] = [];
      const dry = await prune(store, { prefix: "p/", olderThan: cutoff, dryRun: true, onKey: (key) => listed.push(key) });
      assert.deepEqual({ examined: dry.examined, deleted: dry.deleted }, { examined: 24, deleted: 12 });
      assert.deepEqual(dry.keys, old);
      assert.deepEqual(listed, old);
      assert.equal((await store.list("p/")).length, 24, "the dry run deleted nothing");

      const real = await prune(store, { prefix: "p/", olderThan: cutoff });
      assert.deepEqual(real.keys, old);
      assert.deepEqual(await store.list("p/"), young);
      assert.equal((await store.list("other/")).length, 1, "nothing outside the prefix");
    });
  });
}

describe("prune", () => {
  for (const backend of ["memory", ...BACKENDS] as const) {
    const skip = backend === "memory" ? false : skips.get(backend);
    it(`a key rewritten after its stat is not deleted (conditional delete) on ${backend}`, { skip }, async (t) => {
      const store = backend === "memory" ? new MemoryStore() : await fresh(backend);
      if (!store.capabilities.conditionalWrites) return t.skip("no conditional writes: the window cannot be closed there (documented)");
      await store.put("k/a", new Uint8Array([1]));
      await store.put("k/b", new Uint8Array([1]));
      await sleep(1100);
      const cutoff = new Date();
      // The rewrite lands between prune's stat of k/b and its delete: the stat said old.
      const racing = new Proxy(store, {
        get(target, name) {
          if (name === "delete") {
            return async (key: string, options: object) => {
              if (key === "k/b") await target.put("k/b", new Uint8Array([2]));
              return target.delete(key, options);
            };
          }
          const value: unknown = Reflect.get(target, name, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const summary = await prune(racing, { prefix: "k/", olderThan: cutoff });
      assert.deepEqual(summary.keys, ["k/a"]);
      assert.deepEqual(await store.list("k/"), ["k/b"]);
      assert.deepEqual([...(await store.get("k/b"))], [2]);
    });
  }

  it("with time-ordered keys it stops at the first younger key", async () => {
    const store = new MemoryStore();
    await store.put("t/1", new Uint8Array(1));
    await sleep(10);
    const cutoff = new Date();
    await sleep(10);
    await store.put("t/2", new Uint8Array(1));
    await store.put("t/0-written-late", new Uint8Array(1)); // out of time order: a scan would see it
    const summary = await prune(store, { prefix: "t/", olderThan: cutoff, timeOrderedKeys: true });
    assert.equal(summary.deleted, 0, "t/0-written-late is young: the walk stopped there");
    assert.equal(summary.examined, 1);
    const ordered = await prune(store, { prefix: "t/", olderThan: cutoff, timeOrderedKeys: false });
    assert.deepEqual(ordered.keys, ["t/1"]);
  });

  it("pages through more keys than one listing page", async () => {
    const store = new MemoryStore();
    await store.putMany(Array.from({ length: 1203 }, (_, i) => ({ key: `many/${String(i).padStart(5, "0")}`, data: new Uint8Array(1) })));
    await sleep(5);
    const summary = await prune(store, { prefix: "many/", olderThan: new Date() });
    assert.equal(summary.deleted, 1203);
    assert.equal(summary.keys.length, 1000, "the list is capped");
    assert.deepEqual(await store.list("many/"), []);
  });

  it("rejects a missing or invalid cutoff as invalid", async () => {
    const store = new MemoryStore();
    await assert.rejects(prune(store, {} as never), (e) => isStorageError(e, "invalid"));
    await assert.rejects(prune(store, { olderThan: new Date(Number.NaN) }), (e) => isStorageError(e, "invalid"));
  });
});
