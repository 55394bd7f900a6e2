// The layers over the NATS backend: the conformance suite over the full stack, cross-instance
// cache invalidation through the change feed, and retry across a server restart.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { openStore, StorageError, type Store } from "../src/index.js";
import { CachedStore, findLayer } from "../src/layers/index.js";
import { testStore } from "../src/testing/index.js";
import { text } from "../src/testing/helpers.js";
import { sharedNats, startNatsServer } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";
import { setTimeout as sleep } from "node:timers/promises";

const url = await sharedNats();
const skip = url === undefined ? "no NATS server" : false;
const created: { server: string; bucket: string }[] = [];

function bucketUrl(server = url!): string {
  const bucket = uniqueName("stowage-layers").replace(/[^-\w]/g, "_");
  created.push({ server, bucket });
  return `${server}/${bucket}`;
}

/** Deletes the streams of the buckets created on `only` (default: every server). */
async function destroyBuckets(only?: string): Promise<void> {
  for (const server of new Set(created.map((c) => c.server))) {
    if (only !== undefined && server !== only) continue;
    const nc = await connect({ servers: server, maxReconnectAttempts: 0 }).catch(() => undefined);
    if (!nc) continue;
    const jsm = await jetstreamManager(nc);
    for (const { bucket } of created.filter((c) => c.server === server)) {
      for (const stream of [`KV_${bucket}`, `OBJ_${bucket}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
    }
    await nc.close();
  }
  const kept = created.filter((c) => only !== undefined && c.server !== only);
  created.length = 0;
  created.push(...kept);
}

/** The full stack openStore builds, with the cache's feed live. */
async function openStack(target: string, cache: object = {}): Promise<Store> {
  const store = await openStore(target, { timeout: 10_000, retry: true, cache, metrics: { registry: new Registry() } });
  await findLayer(store, CachedStore)?.ready;
  return store;
}

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

if (url) {
  testStore("layers: full stack over nats (openStore)", { open: () => openStack(bucketUrl()), destroy: () => destroyBuckets(), largeValueBytes: 2 * 1024 * 1024 });
}

describe("layers over nats", { skip }, () => {
  const stores: Store[] = [];
  after(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await destroyBuckets(url);
  });

  it("another instance's put and delete invalidate this cache once the feed delivered them", async () => {
    const target = bucketUrl();
    const reader = await openStack(target);
    const writer = await openStack(target);
    // A control without the feed: it keeps serving what it cached, proving the test can see staleness.
    const blind = await openStack(target, { invalidateFromWatch: false });
    stores.push(reader, writer, blind);
    const readerCache = findLayer(reader, CachedStore)!;
    assert.equal(readerCache.cacheStats().active, true);

    await writer.put("cfg", text("old"));
    assert.equal(decode(await blind.get("cfg")), "old");
    // The write's own event may reach the reader's feed after its first read (dropping what
    // that read cached): read until a hit shows the value is cached.
    const cachedBy = Date.now() + 5_000;
    while (readerCache.cacheStats().hits === 0 && Date.now() < cachedBy) {
      assert.equal(decode(await reader.get("cfg")), "old");
      await sleep(5);
    }
    assert.ok(readerCache.cacheStats().hits >= 1, "the reader serves from its cache");

    await writer.put("cfg", text("new"));
    // The feed delivers within milliseconds; the reader drops the entry when it does.
    const deadline = Date.now() + 5_000;
    while (readerCache.cacheStats().size > 0 && Date.now() < deadline) await sleep(5);
    assert.equal(readerCache.cacheStats().size, 0, "the feed invalidated the entry");
    assert.equal(decode(await reader.get("cfg")), "new");
    assert.equal(decode(await reader.get("cfg")), "new");
    assert.equal(decode(await blind.get("cfg")), "old", "without the feed the cache is stale");

    await writer.delete("cfg");
    const until = Date.now() + 5_000;
    while (readerCache.cacheStats().size > 0 && Date.now() < until) await sleep(5);
    await assert.rejects(reader.get("cfg"), (err: unknown) => err instanceof StorageError && err.kind === "not_found");
  });

  it("a reader polling while another instance writes never goes back to an older value", async () => {
    const target = bucketUrl();
    const reader = await openStack(target);
    const writer = await openStack(target);
    stores.push(reader, writer);
    await writer.put("n", text("0"));
    let writing = true;
    const writes = (async () => {
      for (let i = 1; i <= 60; i++) {
        await writer.put("n", text(String(i)));
        await sleep(2);
      }
      writing = false;
    })();
    let last = 0;
    let reads = 0;
    while (writing) {
      const seen = Number(decode(await reader.get("n")));
      assert.ok(seen >= last, `read ${seen} after ${last}`);
      last = seen;
      reads++;
      // A hit settles without I/O: a loop of hits alone would never let the writer's I/O run.
      await new Promise((r) => setImmediate(r));
    }
    await writes;
    const deadline = Date.now() + 5_000;
    while (Number(decode(await reader.get("n"))) !== 60 && Date.now() < deadline) await sleep(5);
    assert.equal(decode(await reader.get("n")), "60");
    assert.ok(reads > 60);
  });

  it("retry across a server stop and restart: each call succeeds or fails transient, no acknowledged write lost", async (t) => {
    let server;
    try {
      server = await startNatsServer();
    } catch (err) {
      t.skip(`cannot start a private nats-server: ${(err as Error).message}`);
      return;
    }
    try {
      const target = bucketUrl(server.url);
      let retries = 0;
      const store = await openStore(target, {
        timeout: 2_000,
        retry: { maxAttempts: 30, baseDelayMs: 50, maxDelayMs: 500, maxElapsedMs: 8_000, onRetry: () => retries++ },
      });
      const acknowledged = new Map<string, string>();
      const failures: unknown[] = [];
      let stopWriting = false;
      const writer = async (w: number) => {
        for (let i = 0; !stopWriting; i++) {
          const key = `w${w}/k${i}`;
          const value = `value ${w}-${i}`;
          try {
            await store.put(key, text(value));
            acknowledged.set(key, value);
            const back = decode(await store.get(key));
            assert.equal(back, value);
          } catch (err) {
            failures.push(err);
          }
        }
      };
      const writers = [0, 1, 2].map(writer);
      await sleep(300);
      await server.stop();
      await sleep(1_000);
      await server.start();
      await sleep(1_500);
      stopWriting = true;
      await Promise.all(writers);

      for (const err of failures) {
        assert.ok(err instanceof StorageError && err.kind === "transient", `unexpected failure: ${String(err)}`);
      }
      assert.ok(acknowledged.size > 20, `only ${acknowledged.size} writes acknowledged`);
      assert.ok(retries > 0, "the outage was seen (and retried)");
      await store.close();

      const check = await openStore(target);
      try {
        for (const [key, value] of acknowledged) assert.equal(decode(await check.get(key)), value, key);
      } finally {
        await check.close();
      }
      t.diagnostic(`${acknowledged.size} writes acknowledged, ${retries} retries, ${failures.length} calls failed transient`);
    } finally {
      await destroyBuckets(server.url);
      await server.destroy();
    }
  });
});
