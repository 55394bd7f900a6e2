import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, StorageError, type GetOptions, type OperationOptions } from "../src/index.js";
import { CachedStore, LayerStore, withCache } from "../src/layers/index.js";
import { Channel } from "../src/internal/channel.js";
import type { CleanPutOptions } from "../src/store.js";
import type { ChangeEvent } from "../src/types.js";
import { assertKind, text } from "../src/testing/helpers.js";
import { setTimeout as sleep } from "node:timers/promises";

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/** A test double in front of a real store: holds chosen calls until released. */
class Gated extends LayerStore {
  getGate: Promise<void> | undefined;
  putGate: Promise<void> | undefined;
  gets = 0;
  protected override async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    this.gets++;
    const value = await super._get(key, options); // read now...
    await this.getGate; // ...answer later
    return value;
  }
  protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const gate = this.putGate;
    await super._put(key, data, options); // applied now...
    await gate; // ...acknowledged later
  }
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe("cache layer", () => {
  describe("bounds", () => {
    it("lru keeps at most maxEntries, evicting the least recently used", async () => {
      const cache = withCache(new MemoryStore(), { strategy: "lru", maxEntries: 3, invalidateFromWatch: false });
      for (const k of ["a", "b", "c"]) await cache.put(k, text(k));
      await cache.get("a"); // a is now the most recently used
      await cache.put("d", text("d")); // evicts b
      const stats = cache.cacheStats();
      assert.equal(stats.size, 3);
      assert.equal(stats.evictions, 1);
      const before = cache.cacheStats().misses;
      await cache.get("a");
      await cache.get("c");
      await cache.get("d");
      assert.equal(cache.cacheStats().misses, before, "a, c, d are cached");
      await cache.get("b");
      assert.equal(cache.cacheStats().misses, before + 1, "b was evicted");
    });

    it("keeps the bytes held within maxBytes and never caches values over maxEntryBytes", async () => {
      const cache = withCache(new MemoryStore(), { strategy: "lru", maxEntries: 1000, maxBytes: 100, maxEntryBytes: 60, invalidateFromWatch: false });
      for (let i = 0; i < 10; i++) {
        await cache.put(`k${i}`, new Uint8Array(40).fill(i));
        assert.ok(cache.cacheStats().bytes <= 100, `bytes ${cache.cacheStats().bytes} over the limit`);
      }
      assert.equal(cache.cacheStats().size, 2);
      assert.ok(cache.cacheStats().evictions >= 8);
      await cache.put("big", new Uint8Array(61));
      const misses = cache.cacheStats().misses;
      await cache.get("big");
      await cache.get("big");
      assert.equal(cache.cacheStats().misses, misses + 2, "a value over maxEntryBytes is never served from the cache");
      assert.equal((await cache.get("big")).byteLength, 61);
    });

    it("ttl entries expire after ttlMs", async () => {
      const inner = new MemoryStore();
      const cache = withCache(inner, { strategy: "ttl", ttlMs: 60, invalidateFromWatch: false });
      await inner.put("k", text("v"));
      await cache.get("k");
      await cache.get("k");
      assert.deepEqual({ hits: cache.cacheStats().hits, misses: cache.cacheStats().misses }, { hits: 1, misses: 1 });
      await sleep(120);
      await cache.get("k");
      const stats = cache.cacheStats();
      assert.equal(stats.misses, 2, "the expired entry is not served");
      assert.ok(stats.expirations >= 1);
    });

    it("hybrid bounds entries and expires them", async () => {
      const cache = withCache(new MemoryStore(), { maxEntries: 2, ttlMs: 60, invalidateFromWatch: false });
      for (const k of ["a", "b", "c"]) await cache.put(k, text(k));
      assert.equal(cache.cacheStats().size, 2);
      await sleep(120);
      assert.equal(cache.cacheStats().size, 0);
    });

    it("refuses bad options with kind invalid", () => {
      const inner = new MemoryStore();
      for (const bad of [{ maxEntries: 0 }, { maxBytes: -1 }, { ttlMs: 1.5 }, { strategy: "fifo" as never }]) {
        assert.throws(() => withCache(inner, bad), (err: unknown) => err instanceof StorageError && err.kind === "invalid");
      }
    });
  });

  describe("values", () => {
    for (const invalidateFromWatch of [false, true]) {
      it(`is not affected by callers mutating buffers (feed: ${invalidateFromWatch})`, async () => {
        const cache = withCache(new MemoryStore(), { invalidateFromWatch });
        await cache.ready;
        const data = text("original");
        await cache.put("k", data);
        data.fill(0);
        const first = await cache.get("k");
        assert.equal(decode(first), "original");
        first.fill(0);
        assert.equal(decode(await cache.get("k")), "original");
        assert.equal(decode(await cache.get("k")), "original");
        assert.ok(cache.cacheStats().hits >= 1);
      });
    }

    it("serves small copies as plain Uint8Arrays over their own bytes", async () => {
      const cache = withCache(new MemoryStore(), { invalidateFromWatch: false });
      await cache.put("a", text("aaaa"));
      await cache.put("b", text("bbbb"));
      const a = await cache.get("a");
      const b = await cache.get("b");
      assert.equal(Object.getPrototypeOf(a), Uint8Array.prototype);
      a.fill(0x7a);
      assert.equal(decode(b), "bbbb");
      assert.equal(decode(await cache.get("a")), "aaaa");
    });

    it("never caches not_found or failed reads", async () => {
      const inner = new MemoryStore();
      const cache = withCache(inner, { invalidateFromWatch: false });
      await assertKind(cache.get("k"), "not_found");
      await inner.put("k", text("now here")); // behind the cache's back: no feed
      assert.equal(decode(await cache.get("k")), "now here");
    });

    it("delete invalidates", async () => {
      const cache = withCache(new MemoryStore(), { invalidateFromWatch: false });
      await cache.put("k", text("v"));
      await cache.get("k");
      await cache.delete("k");
      await assertKind(cache.get("k"), "not_found");
      assert.equal(cache.cacheStats().size, 0);
    });

    it("reads of a version bypass the cache", async () => {
      const cache = withCache(new MemoryStore({ history: 3 }), { invalidateFromWatch: false });
      await cache.put("k", text("one"));
      await cache.put("k", text("two"));
      const [first] = await cache.versions("k");
      assert.equal(decode(await cache.get("k", { version: first!.version })), "one");
      assert.equal(decode(await cache.get("k")), "two");
    });

    it("getMany serves hits and reads only the misses", async () => {
      const inner = new Gated(new MemoryStore());
      const cache = withCache(inner, { invalidateFromWatch: false });
      await cache.putMany([
        { key: "a", data: text("A") },
        { key: "b", data: text("B") },
      ]);
      await inner.put("c", text("C"));
      cache.clear();
      await cache.get("a");
      const values = await cache.getMany(["a", "b", "c", "missing"]);
      assert.deepEqual(values.map((v) => v && decode(v)), ["A", "B", "C", undefined]);
      assert.deepEqual(
        (await cache.getMany(["a", "b", "c"])).map((v) => v && decode(v)),
        ["A", "B", "C"],
      );
      const stats = cache.cacheStats();
      assert.equal(stats.hits, 1 + 3, "a, then a b c");
      assert.equal(stats.misses, 1 + 3, "a, then b c missing");
    });

    it("putStream invalidates and getStream reads through", async () => {
      const cache = withCache(new MemoryStore(), { invalidateFromWatch: false });
      await cache.put("k", text("old"));
      await cache.get("k");
      await cache.putStream("k", [text("ne"), text("w")]);
      assert.equal(decode(await cache.get("k")), "new");
      const chunks: Uint8Array[] = [];
      for await (const c of await cache.getStream("k")) chunks.push(c);
      assert.equal(decode(Buffer.concat(chunks)), "new");
    });
  });

  describe("races", () => {
    for (const invalidateFromWatch of [false, true]) {
      it(`a slow get racing a put never leaves the older value cached (feed: ${invalidateFromWatch})`, async () => {
        const inner = new Gated(new MemoryStore());
        const cache = withCache(inner, { invalidateFromWatch });
        await cache.ready;
        await inner.put("k", text("old"));
        const held = gate();
        inner.getGate = held.promise;
        const slowGet = cache.get("k"); // reads "old", answers after the put
        await sleep(5);
        inner.getGate = undefined;
        await cache.put("k", text("new"));
        held.open();
        assert.equal(decode(await slowGet), "old"); // a serial order: get, then put
        assert.equal(decode(await cache.get("k")), "new");
        assert.equal(decode(await cache.get("k")), "new");
      });

      it(`overlapping puts acknowledged out of order leave the last applied value (feed: ${invalidateFromWatch})`, async () => {
        const inner = new Gated(new MemoryStore());
        const cache = withCache(inner, { invalidateFromWatch });
        await cache.ready;
        const held = gate();
        inner.putGate = held.promise;
        const first = cache.put("k", text("first")); // applied first, acknowledged last
        inner.putGate = undefined;
        await cache.put("k", text("second"));
        held.open();
        await first;
        assert.equal(decode(await inner.get("k")), "second");
        assert.equal(decode(await cache.get("k")), "second");
        assert.equal(decode(await cache.get("k")), "second");
      });
    }

    it("concurrent gets and puts of one key end consistent with the store", async () => {
      const inner = new MemoryStore();
      const cache = withCache(inner, { invalidateFromWatch: false });
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < 200; i++) {
        ops.push(i % 3 === 0 ? cache.put("k", text(`v${i}`)) : cache.get("k").catch(() => undefined));
      }
      await Promise.all(ops);
      assert.deepEqual(await cache.get("k"), await inner.get("k"));
    });
  });

  describe("change feed", () => {
    it("another writer's put and delete invalidate once delivered", async () => {
      const inner = new MemoryStore();
      const cache = withCache(inner);
      await cache.ready;
      assert.equal(cache.cacheStats().active, true);
      await inner.put("k", text("one"));
      assert.equal(decode(await cache.get("k")), "one");
      assert.equal(decode(await cache.get("k")), "one");
      await inner.put("k", text("two")); // not through the cache
      assert.equal(decode(await cache.get("k")), "two");
      await inner.delete("k");
      await assertKind(cache.get("k"), "not_found");
    });

    it("a broken feed empties the cache, reads go to the store, and it resubscribes", async () => {
      const inner = new BreakableFeed(new MemoryStore());
      const cache = withCache(inner);
      await cache.ready;
      await cache.put("k", text("v"));
      await cache.get("k");
      await cache.get("k");
      assert.equal(cache.cacheStats().size, 1);
      inner.breakFeeds();
      await sleep(0);
      assert.equal(cache.cacheStats().active, false);
      assert.equal(cache.cacheStats().size, 0);
      const misses = cache.cacheStats().misses;
      await cache.get("k");
      assert.equal(cache.cacheStats().size, 0, "nothing is cached while the feed is down");
      assert.equal(cache.cacheStats().misses, misses + 1);
      const deadline = Date.now() + 5_000;
      while (!cache.cacheStats().active && Date.now() < deadline) await sleep(20);
      assert.equal(cache.cacheStats().active, true, "resubscribed");
      assert.equal(inner.subscriptions, 2);
      await cache.get("k");
      await cache.get("k");
      assert.equal(cache.cacheStats().size, 1);
      await cache.close();
    });

    it("refuses invalidateFromWatch on a store without a feed", () => {
      const noFeed = new (class extends LayerStore {
        override readonly capabilities = { ...new MemoryStore().capabilities, watch: false };
      })(new MemoryStore());
      assert.throws(() => withCache(noFeed, { invalidateFromWatch: true }), /change feed/);
      assert.equal(withCache(noFeed).cacheStats().active, true, "defaults to no feed");
    });

    it("close ends the feed subscription and empties the cache", async () => {
      const inner = new BreakableFeed(new MemoryStore());
      const cache = withCache(inner);
      await cache.ready;
      await cache.close();
      assert.equal(cache.cacheStats().active, false);
      await assertKind(cache.get("k"), "fatal");
      assert.ok(cache instanceof CachedStore);
    });
  });
});

/** A test double: a store whose change feeds the test can break (as a lost connection would). */
class BreakableFeed extends LayerStore {
  readonly #feeds = new Set<Channel<ChangeEvent>>();
  subscriptions = 0;
  protected override async _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    const feed = await super._watch(prefix, options);
    this.subscriptions++;
    const channel = new Channel<ChangeEvent>({ signal: options.signal });
    this.#feeds.add(channel);
    void (async () => {
      for await (const event of feed) {
        if (channel.ended) break;
        channel.push(event);
      }
    })();
    return channel;
  }
  breakFeeds(): void {
    for (const feed of this.#feeds) feed.end(new StorageError("transient", "connection lost", { op: "watch" }));
    this.#feeds.clear();
  }
}
