import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { openStore, type Store } from "../src/index.js";
import { NatsStore } from "../src/backends/nats.js";
import { testStore } from "../src/testing/index.js";
import { assertKind, collectBytes, ODD_KEYS, patterned, text } from "../src/testing/helpers.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";

const url = await sharedNats();
const skip = url === undefined ? "no NATS server" : false;
const buckets = new Set<string>();

/** A fresh bucket on the shared server (removed by `destroyBuckets`). */
function bucketUrl(query = ""): string {
  const bucket = uniqueName("stowage").replace(/[^-\w]/g, "_");
  buckets.add(bucket);
  return `${url}/${bucket}${query}`;
}

/** Deletes the streams of every bucket these tests created. */
async function destroyBuckets(): Promise<void> {
  if (!url) return;
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  for (const bucket of buckets) {
    for (const stream of [`KV_${bucket}`, `OBJ_${bucket}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
  }
  buckets.clear();
  await nc.close();
}

if (url) {
  testStore("nats", { open: () => openStore(bucketUrl()), destroy: destroyBuckets });
  // Small inline threshold and chunks: the large-object path gets the whole suite too.
  testStore("nats with large objects", { open: () => openStore(bucketUrl("?inlineMax=1024&chunkSize=4096")), destroy: destroyBuckets, largeValueBytes: 256 * 1024 });
}

describe("nats backend", { skip }, () => {
  const stores: Store[] = [];
  const open = async (query = "", target = bucketUrl(query)) => {
    const store = (await openStore(target)) as NatsStore;
    stores.push(store);
    return store;
  };
  after(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await destroyBuckets();
  });

  it("refuses a bucket whose entries were written with another key layout, and marks an empty one made elsewhere", async () => {
    const nc = await connect({ servers: url! });
    try {
      const kvm = new Kvm(nc);
      const used = bucketUrl();
      const usedName = used.slice(used.lastIndexOf("/") + 1);
      const kv = await kvm.create(usedName);
      await kv.put("events.sensor", text("an entry from another writer"));
      const err = await assertKind(openStore(used), "fatal");
      assert.match(err.message, /key layout/);
      const empty = bucketUrl();
      await kvm.create(empty.slice(empty.lastIndexOf("/") + 1));
      const store = await open("", empty);
      await store.put("a/b", text("v"));
      assert.deepEqual(await store.list(""), ["a/b"]);
    } finally {
      await nc.close();
    }
  });

  it("keeps versions, and the history after a delete", async () => {
    const store = await open("?history=5");
    for (const v of ["one", "two", "three"]) await store.put("k", text(v));
    await store.delete("k");
    await store.delete("k"); // idempotent: no second marker
    const versions = await store.versions("k");
    assert.deepEqual(versions.map((v) => v.deleted), [false, false, false, true]);
    assert.deepEqual(versions.map((v) => v.size), [3, 3, 5, 0]);
    assert.deepEqual(await store.get("k", { version: versions[1]!.version }), text("two"));
    await assertKind(store.get("k"), "not_found");
    await assertKind(store.get("k", { version: versions[3]!.version }), "not_found", "a delete marker has no value");
    await store.put("k", text("four"));
    assert.equal((await store.versions("k")).length, 5);
    await store.put("k", text("five"));
    const last = await store.versions("k");
    assert.equal(last.length, 5, "history depth bounds the versions");
    assert.deepEqual(await store.get("k", { version: last[0]!.version }), text("two"));
    assert.deepEqual(await store.versions("never-written"), []);
  });

  it("keeps a large value's versions readable while its revision is in the history", async () => {
    const store = await open("?history=3&inlineMax=100&chunkSize=1024");
    const v1 = patterned(5000, 1);
    await store.put("big", v1);
    await store.put("big", text("small now"));
    const [first] = await store.versions("big");
    assert.equal(first!.size, 5000);
    assert.deepEqual(await store.get("big", { version: first!.version }), v1);
    // Still referenced: a sweep keeps it.
    assert.deepEqual(await store.sweep({ grace: 0 }), { deleted: 0, kept: 1 });
    await store.put("big", text("3"));
    await store.put("big", text("4")); // the large revision falls out of the history
    assert.deepEqual(await store.sweep({ grace: 0 }), { deleted: 1, kept: 0 });
  });

  it("sends the change feed of one instance's writes to another's watch", async () => {
    const target = bucketUrl();
    const writer = await open("", target);
    const reader = await open("", target);
    const controller = new AbortController();
    const feed = await reader.watch("room/", { signal: controller.signal });
    await writer.put("room/a", text("1"));
    await writer.put("other/b", text("2"));
    await writer.put("room/a b", text("3"));
    await writer.delete("room/a");
    const seen: string[] = [];
    for await (const event of feed) {
      assert.ok(event.version && /^\d+$/.test(event.version));
      assert.ok(event.time instanceof Date);
      seen.push(`${event.op} ${event.key}`);
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen, ["put room/a", "put room/a b", "delete room/a"]);
    // Partial last segment: filtered in the client.
    const partial = await reader.watch("room/x", { signal: controller.signal });
    await writer.put("room/y", text("no"));
    await writer.put("room/xy", text("yes"));
    for await (const event of partial) {
      assert.equal(event.key, "room/xy");
      break;
    }
    controller.abort();
  });

  it("stores values at every size boundary, put and streamed", async () => {
    const inlineMax = 2048;
    const chunk = 4096;
    const store = await open(`?inlineMax=${inlineMax}&chunkSize=${chunk}`);
    for (const size of [0, 1, inlineMax - 1, inlineMax, inlineMax + 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 7]) {
      const data = patterned(size, size);
      await store.put(`put/${size}`, data);
      assert.deepEqual(Buffer.from(await store.get(`put/${size}`)), Buffer.from(data), `put of ${size} bytes`);
      await store.putStream(`stream/${size}`, slicesOf(data, 1000));
      assert.deepEqual(await collectBytes(await store.getStream(`stream/${size}`)), Buffer.from(data), `stream of ${size} bytes`);
      assert.equal((await store.stat(`stream/${size}`)).size, size);
    }
  });

  it("stores 8 MiB with the default threshold", async () => {
    const store = await open();
    const data = patterned(8 * 1024 * 1024, 8);
    await store.put("eight", data, { metadata: { kind: "big" } });
    assert.ok(Buffer.from(await store.get("eight")).equals(Buffer.from(data)));
    assert.deepEqual((await store.stat("eight")).metadata, { kind: "big" });
  });

  it("streams 100 MiB with memory bounded by chunks", async () => {
    const store = await open();
    const size = 100 * 1024 * 1024;
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
    await store.putStream("hundred", generated(size, 64 * 1024, sample));
    let read = 0;
    for await (const chunk of await store.getStream("hundred")) {
      read += chunk.byteLength;
      sample();
    }
    assert.equal(read, size);
    const growth = (peak - before) / 1024 / 1024;
    assert.ok(growth < 48, `RSS grew by ${growth.toFixed(1)} MiB streaming 100 MiB`);
  });

  it("round-trips and lists every odd key", async () => {
    const store = await open();
    for (const key of ODD_KEYS) await store.put(key, text(key));
    for (const key of ODD_KEYS) assert.deepEqual(await store.get(key), text(key), JSON.stringify(key));
    const sorted = [...new Set(ODD_KEYS)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(await store.list(""), sorted);
    const longest = `${"*".repeat(500)}/${"€".repeat(174)}`;
    await store.put(longest, text("long"));
    assert.deepEqual(await store.get(longest), text("long"));
  });

  it("lets two instances write the same keys concurrently", async () => {
    const target = bucketUrl("?history=64");
    const [a, b] = [await open("", target), await open("", target)];
    const keys = ["c/1", "c/2", "c/3"];
    const writes = keys.flatMap((key) => Array.from({ length: 10 }, (_, i) => [key, i] as const));
    await Promise.all(writes.map(([key, i]) => (i % 2 === 0 ? a : b).put(key, text(`${key}#${i}`))));
    for (const key of keys) {
      const value = Buffer.from(await a.get(key)).toString();
      assert.match(value, new RegExp(`^${key}#\\d$`));
      assert.deepEqual(await b.get(key), text(value), "both instances see the same latest value");
      assert.equal((await a.versions(key)).length, 10);
    }
    assert.deepEqual(await b.list("c/"), keys);
  });

  it("leaves nothing behind when a large put is aborted mid-stream", async () => {
    const store = await open("?inlineMax=1024&chunkSize=4096");
    const controller = new AbortController();
    const source = (async function* () {
      for (let i = 0; i < 100; i++) {
        if (i === 5) controller.abort(new Error("stop"));
        yield patterned(4096, i);
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    await assert.rejects(store.putStream("aborted", source, { signal: controller.signal }), /stop/);
    await new Promise((r) => setTimeout(r, 200)); // the cleanup runs after the rejection
    await assertKind(store.get("aborted"), "not_found");
    assert.deepEqual(await store.sweep({ grace: 0 }), { deleted: 0, kept: 0 }, "no object left");
  });

  it("uses a connection it was given and leaves it open", async () => {
    const nc = await connect({ servers: url });
    const bucket = uniqueName("stowage_conn");
    buckets.add(bucket);
    const { NatsStore } = await import("../src/backends/nats.js");
    const store = await NatsStore.open({ connection: nc, bucket });
    await store.put("x", text("1"));
    await store.close();
    assert.equal(nc.isClosed(), false);
    await nc.close();
  });

  it("classifies a closed port as transient, naming the address without its password", async () => {
    const err = await assertKind(openStore("nats://alice:s3cret@127.0.0.1:1/B"), "transient");
    assert.equal(err.op, "open");
    assert.match(err.message, /cannot reach the NATS server.*127\.0\.0\.1:1/);
    assert.doesNotMatch(err.message, /s3cret/);
    assert.doesNotMatch(String(err.cause), /s3cret/);
  });

  it("with create: false, opens an existing bucket and creates nothing for a missing one (not_found naming it)", async () => {
    const target = bucketUrl();
    const bucket = new URL(target).pathname.slice(1);
    const err = await assertKind(openStore(target, { create: false }), "not_found");
    assert.match(err.message, new RegExp(`bucket ${bucket} does not exist`));
    const nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    const streams = (await jsm.streams.names().next()).filter((name) => name.includes(bucket));
    await nc.close();
    assert.deepEqual(streams, [], "no stream was created");
    await (await open("", target)).put("k", text("v"));
    const readOnly = await openStore(target, { create: false });
    stores.push(readOnly);
    assert.deepEqual(await readOnly.list(""), ["k"]);
  });

  it("refuses a bucket name longer than JetStream's stream names allow, up front", async () => {
    const err = await assertKind(openStore(`${url}/${"b".repeat(246)}`), "invalid");
    assert.match(err.message, /at most 245/);
    await assertKind(NatsStore.open({ bucket: "c".repeat(300), servers: url }), "invalid");
    // The longest allowed name works for large values too (its object store stream is 255 characters).
    const longest = `${uniqueName("L").replace(/[^-\w]/g, "_")}`.padEnd(245, "x");
    buckets.add(longest);
    const store = await open("", `${url}/${longest}?inlineMax=1024&chunkSize=4096`);
    await store.put("big", patterned(10_000, 1));
    assert.deepEqual(await store.get("big"), patterned(10_000, 1));
  });

  it("refuses unknown URL parameters, listing the known ones", async () => {
    const err = await assertKind(openStore(`${url}/B?histroy=3`), "invalid");
    assert.match(err.message, /histroy/);
    assert.match(err.message, /history/);
    await assertKind(openStore(`${url}/B?directReads=maybe`), "invalid");
  });

  it("a retried conditional write whose first attempt took effect resolves, even after a later write", async () => {
    const store = await open("?history=8&inlineMax=1024&chunkSize=4096");
    for (const [key, value] of [["small", text("v1")], ["large", patterned(10_000, 1)]] as const) {
      await store.put(key, text("base"));
      const etag = (await store.stat(key)).etag;
      const writeId = `w-${key}-${Math.random()}`;
      await store.put(key, value, { ifMatch: etag, writeId });
      await store.put(key, value, { ifMatch: etag, writeId }); // a retry: the same write
      await store.put(key, text("later"));
      await store.put(key, value, { ifMatch: etag, writeId }); // a late retry: still the same write
      assert.equal((await store.versions(key)).length, 3, `${key}: base, the write, later`);
      await assertKind(store.put(key, value, { ifMatch: etag, writeId: `${writeId}-other` }), "conflict");
      const deleteId = `d-${key}-${Math.random()}`;
      const current = (await store.stat(key)).etag;
      await store.delete(key, { ifMatch: current, writeId: deleteId });
      await store.put(key, text("again"));
      await store.delete(key, { ifMatch: current, writeId: deleteId }); // the delete's retry
      assert.deepEqual(await store.get(key), text("again"));
    }
    assert.deepEqual(await store.sweep({ grace: 0 }), { deleted: 0, kept: 1 }, "one object, still in the history: the retries uploaded none");
  });

  it("NatsStore.open validates its options", async () => {
    await assertKind(NatsStore.open({}), "invalid");
    await assertKind(NatsStore.open({ bucket: "B", servers: url, history: 0 }), "invalid");
    await assertKind(NatsStore.open({ bucket: "B", servers: url, create: "no" as unknown as boolean }), "invalid");
    await assertKind(NatsStore.open(null as unknown as object), "invalid");
  });

  it("refuses a stream of another kind under the bucket's name as fatal", async () => {
    const bucket = uniqueName("stowage_foreign");
    buckets.add(bucket);
    const nc = await connect({ servers: url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: `KV_${bucket}`, subjects: [`foreign.${bucket}.>`] });
    await nc.close();
    const err = await assertKind(openStore(`${url}/${bucket}`), "fatal");
    assert.match(err.message, /not the KV bucket/);
  });

  it("refuses options that contradict the existing bucket", async () => {
    const target = bucketUrl("?history=4");
    await open("", target);
    await assertKind(openStore(target.replace("history=4", "history=9")), "fatal");
    const adopted = await open("", target.replace("?history=4", ""));
    assert.equal(adopted.history, 4);
  });

  it("refuses bad URLs without echoing secrets", async () => {
    const err = await assertKind(openStore("nats://user:s3cret@127.0.0.1:4222/bad.name"), "invalid");
    assert.doesNotMatch(err.message, /s3cret/);
    await assertKind(openStore(`${url}/B?history=65`), "invalid");
    await assertKind(openStore(`${url}/B?storage=tape`), "invalid");
    await assertKind(openStore(`${url}/`), "invalid");
  });
});

function* slicesOf(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, i + size);
}

async function* generated(size: number, chunk: number, onChunk: () => void): AsyncGenerator<Uint8Array> {
  for (let sent = 0; sent < size; sent += chunk) {
    onChunk();
    yield patterned(Math.min(chunk, size - sent), sent);
  }
}

