import { spawn } from "node:child_process";
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { headers, type NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import { openStore, StorageError } from "../src/index.js";
import type { NatsStore } from "../src/backends/nats.js";
import { ChunkWriter } from "../src/backends/nats/chunk-writer.js";
import { HEADER } from "../src/backends/nats/entry.js";
import { encodeKey } from "../src/backends/nats/key-codec.js";
import { assertKind, collectBytes, patterned } from "../src/testing/helpers.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName, waitFor } from "./fixtures/services.js";
import { setTimeout as sleep } from "node:timers/promises";

const url = await sharedNats();
const skip = url === undefined ? "no NATS server" : false;

/** Large values: the object store layout stowage writes itself, its window, and its cleanup. */
describe("nats large values", { skip }, () => {
  const buckets = new Set<string>();
  const stores: NatsStore[] = [];
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let js: JetStreamClient;

  const open = async (query = "") => {
    const bucket = uniqueName("stowage_large").replace(/[^-\w]/g, "_");
    buckets.add(bucket);
    nc ??= await connect({ servers: url });
    jsm ??= await jetstreamManager(nc);
    js ??= jetstream(nc);
    const store = (await openStore(`${url}/${bucket}${query}`)) as NatsStore;
    stores.push(store);
    return { store, bucket };
  };
  /** The object named by the latest index entry of `key`. */
  const objectName = async (bucket: string, key: string) => {
    const m = await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${encodeKey(key)}` });
    assert.ok(m, `an index entry for ${key}`);
    return m.header.get(HEADER.object);
  };
  const objectMessages = async (bucket: string) => (await jsm.streams.info(`OBJ_${bucket}_large`)).state.messages;

  after(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    if (!nc) return;
    for (const bucket of buckets) {
      for (const stream of [`KV_${bucket}`, `OBJ_${bucket}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
    }
    await nc.close();
  });

  it("writes objects that @nats-io/obj reads, digest and chunk count included", async () => {
    const { store, bucket } = await open("?inlineMax=1024&chunkSize=4096");
    const data = patterned(10 * 4096 + 123, 3);
    await store.putStream("big", slicesOf(data, 1500));
    const name = await objectName(bucket, "big");
    const os = await new Objm(nc).open(`${bucket}_large`);
    const info = await os.info(name);
    assert.ok(info, "the object store lists the object");
    assert.equal(info.size, data.byteLength);
    assert.equal(info.chunks, 11);
    assert.equal(info.options?.max_chunk_size, 4096);
    assert.match(info.digest, /^SHA-256=[-_A-Za-z0-9]{43}=$/, "padded base64url, as the object store writes it");
    // os.get checks the digest itself: a wrong one would reject.
    assert.ok(Buffer.from((await os.getBlob(name)) ?? []).equals(Buffer.from(data)));
    assert.equal((await os.list()).length, 1);
  });

  it("reads an object written by @nats-io/obj with another chunk size, and refuses a wrong digest", async () => {
    const { store, bucket } = await open("?inlineMax=1024&chunkSize=4096");
    await store.put("seed", patterned(2048)); // creates the object store
    const os = await new Objm(nc).open(`${bucket}_large`);
    const data = patterned(300 * 1024 + 5, 9);
    const info = await os.putBlob({ name: "foreign", options: { max_chunk_size: 64 * 1024 } }, data);
    const refer = async (key: string, digest: string) => {
      const h = headers();
      h.set(HEADER.object, info.name);
      h.set(HEADER.nuid, info.nuid);
      h.set(HEADER.size, String(info.size));
      h.set(HEADER.digest, digest);
      await js.publish(`$KV.${bucket}.${encodeKey(key)}`, new Uint8Array(0), { headers: h });
    };
    await refer("foreign", info.digest);
    assert.ok(Buffer.from(await store.get("foreign")).equals(Buffer.from(data)));
    assert.ok((await collectBytes(await store.getStream("foreign"))).equals(Buffer.from(data)));
    await refer("tampered", `SHA-256=${Buffer.alloc(32).toString("base64url")}=`);
    const err = await assertKind(store.get("tampered"), "fatal");
    assert.match(err.message, /corrupt/);
  });

  it("records the first chunk's sequence and reads from it: one chunk, a full chunk, many chunks", async () => {
    const { store, bucket } = await open("?inlineMax=1024&chunkSize=4096");
    const values = { one: patterned(2000, 1), full: patterned(4096, 2), many: patterned(5 * 4096 + 7, 3) };
    for (const [key, data] of Object.entries(values)) await store.put(key, data);
    const seqs: number[] = [];
    for (const [key, data] of Object.entries(values)) {
      const m = await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${encodeKey(key)}` });
      const seq = Number(m!.header.get(HEADER.seq));
      const first = await jsm.streams.getMessage(`OBJ_${bucket}_large`, { seq });
      assert.equal(first!.subject, `$O.${bucket}_large.C.${m!.header.get(HEADER.nuid)}`, `${key}: the sequence is the object's first chunk`);
      seqs.push(seq);
      assert.ok(Buffer.from(await store.get(key)).equals(Buffer.from(data)), `${key} reads back`);
      assert.ok((await collectBytes(await store.getStream(key))).equals(Buffer.from(data)), `${key} streams back`);
    }
    // An entry whose sequence names another object's chunk is refused, never read as that object.
    const m = await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${encodeKey("many")}` });
    const h = headers();
    for (const [name, values] of m!.header) if (name !== HEADER.seq && name !== "Nats-Msg-Id") h.set(name, values[0]!);
    h.set(HEADER.seq, String(seqs[0]));
    await js.publish(`$KV.${bucket}.${encodeKey("wrong")}`, new Uint8Array(0), { headers: h });
    const err = await assertKind(store.get("wrong"), "fatal");
    assert.match(err.message, /missing/);
  });

  it("a read stopped early leaves no consumer behind", async () => {
    const { store, bucket } = await open("?inlineMax=1024&chunkSize=4096");
    await store.put("big", patterned(10 * 4096, 4));
    const consumers = async () => (await jsm.streams.info(`OBJ_${bucket}_large`)).state.consumer_count;
    for (const pieces of [1, 2, 3]) {
      let n = 0;
      for await (const piece of await store.getStream("big")) {
        assert.ok(piece.byteLength > 0);
        if (++n === pieces) break;
      }
      await waitFor(`no consumer after stopping at piece ${pieces}`, async () => (await consumers()) === 0, 5000);
    }
  });

  it("keeps at most the window of chunk publishes in flight", async () => {
    await open(); // connects nc/js
    const stream = uniqueName("stowage_window").replace(/[^-\w]/g, "_");
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    try {
      let inFlight = 0;
      let most = 0;
      // The real client, counting its publishes between send and acknowledgement.
      const counting = {
        publish: (...args: Parameters<JetStreamClient["publish"]>) => {
          most = Math.max(most, ++inFlight);
          return js.publish(...args).finally(() => inFlight--);
        },
      } as unknown as JetStreamClient;
      const writer = new ChunkWriter(counting, { subject: `${stream}.c`, chunkSize: 1024, window: 3 });
      const data = patterned(40 * 1024 + 1, 1);
      for (const part of slicesOf(data, 5000)) await writer.write(part);
      const written = await writer.end();
      assert.equal(most, 3, "the window fills (acks come back on a later turn) and never overflows");
      assert.equal(inFlight, 0, "end() waits for every acknowledgement");
      assert.equal(written.size, data.byteLength);
      assert.equal(written.chunks, 41);
      const stored = await jsm.streams.info(stream);
      assert.equal(stored.state.messages, 41);
      const first = await jsm.streams.getMessage(stream, { seq: 1 });
      const last = await jsm.streams.getMessage(stream, { seq: 41 });
      assert.ok(first && last);
      assert.ok(Buffer.from(first.data).equals(Buffer.from(data.subarray(0, 1024))), "chunks are stored in order");
      assert.deepEqual(Buffer.from(last.data), Buffer.from(data.subarray(40 * 1024)));
    } finally {
      await jsm.streams.delete(stream);
    }
  });

  it("purges every chunk of a put aborted mid-stream", async () => {
    const { store, bucket } = await open("?inlineMax=1024&chunkSize=4096");
    const controller = new AbortController();
    const source = (async function* () {
      for (let i = 0; i < 200; i++) {
        if (i === 40) controller.abort(new Error("stop"));
        yield patterned(4096, i);
      }
    })();
    await assert.rejects(store.putStream("aborted", source, { signal: controller.signal }), /stop/);
    // The cleanup finishes after the rejection: wait for the chunks to go.
    await waitFor("the aborted put's chunks to be purged", async () => (await objectMessages(bucket)) === 0, 5000);
    await assertKind(store.get("aborted"), "not_found");
  });

  it("purges every chunk of a put whose source fails", async () => {
    const { store, bucket } = await open("?inlineMax=1024&chunkSize=4096");
    const source = (async function* () {
      for (let i = 0; i < 30; i++) yield patterned(4096, i);
      throw new Error("source broke");
    })();
    await assert.rejects(store.putStream("broken", source), /source broke/);
    assert.equal(await objectMessages(bucket), 0);
    await assertKind(store.get("broken"), "not_found");
  });

  it("purges the chunks that landed when the server refuses one (stream full)", async () => {
    const { store, bucket } = await open("?inlineMax=1024&chunkSize=4096&maxBytes=262144");
    // The server answers 503 "maximum bytes exceeded" (code 10077); retrying cannot help, so it is fatal.
    await assert.rejects(store.putStream("too-big", slicesOf(patterned(1024 * 1024), 8192)), (err: unknown) => err instanceof StorageError && err.op === "putStream" && err.kind === "fatal" && /full/.test(err.message));
    assert.equal(await objectMessages(bucket), 0, "no chunk left behind");
    await assertKind(store.get("too-big"), "not_found");
    const fits = patterned(64 * 1024, 4);
    await store.put("fits", fits);
    assert.deepEqual(await store.get("fits"), fits, "the store still works once the failed put is cleaned up");
  });

  it("sweep removes the chunks a SIGKILLed writer left without an object record, once they are older than the grace", async () => {
    const { store, bucket } = await open("?inlineMax=1024&chunkSize=4096&sweepInterval=0");
    await store.put("kept", patterned(2048, 1)); // one chunk and its object record
    const src = new URL("../src/index.ts", import.meta.url).pathname;
    const code = `
      import { openStore } from ${JSON.stringify(src)};
      const store = await openStore(${JSON.stringify(`${url}/${bucket}?inlineMax=1024&chunkSize=4096&sweepInterval=0`)});
      await store.putStream("victim", (async function* () {
        for (;;) { yield new Uint8Array(4096); await new Promise((r) => setTimeout(r, 2)); }
      })());`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: "ignore" });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    try {
      // Past 40 orphaned chunks beside the 2 messages of "kept".
      await waitFor("the writer's chunks", async () => (await objectMessages(bucket)) > 42, 30_000);
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const orphaned = (await objectMessages(bucket)) - 2;
    assert.ok(orphaned > 40);
    assert.deepEqual(await store.sweep({ grace: 60_000 }), { deleted: 0, kept: 2 }, "chunks written moments ago are spared");
    assert.deepEqual(await store.sweep({ grace: 0 }), { deleted: 1, kept: 1 }, "the orphaned chunks are found and removed");
    assert.equal(await objectMessages(bucket), 2, "only the referenced object is left");
    assert.deepEqual(await store.get("kept"), patterned(2048, 1));
  });

  it("counts the grace from when a value stopped being referenced, not from when it was written", async () => {
    const { store } = await open("?history=1&inlineMax=1024&chunkSize=4096&sweepInterval=0&sweepGrace=1500");
    await store.put("k", patterned(20_000, 1));
    await sleep(2000); // the object is now older than the grace
    await store.put("k", patterned(100, 2)); // replaced: unreferenced from now on
    assert.deepEqual(await store.sweep(), { deleted: 0, kept: 1 }, "a value replaced a moment ago is kept for readers still streaming it");
    await sleep(1700);
    assert.deepEqual(await store.sweep(), { deleted: 1, kept: 0 }, "and reclaimed once unreferenced for the grace");
  });

  it("a reader streaming a replaced value that is swept fails at once with a clear error", async () => {
    const { store } = await open("?history=1&inlineMax=1024&chunkSize=4096&sweepInterval=0");
    await store.put("k", patterned(2 * 1024 * 1024, 1)); // 512 chunks: far more than the read-ahead
    const iterator = (await store.getStream("k"))[Symbol.asyncIterator]();
    assert.ok(!(await iterator.next()).done);
    await store.put("k", patterned(100, 2));
    assert.deepEqual(await store.sweep({ grace: 0 }), { deleted: 1, kept: 0 });
    const started = Date.now();
    const err = await assertKind((async () => {
      while (!(await iterator.next()).done);
    })(), "transient");
    const waited = Date.now() - started;
    assert.match(err.message, /replaced while it was being read/);
    assert.ok(waited < 3000, `the read failed after ${waited} ms`);
    assert.deepEqual(await store.get("k"), patterned(100, 2), "reading again gives the new value");
  });
});

function* slicesOf(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) yield data.subarray(i, i + size);
}
