/**
 * Listing and range-read cost on NATS, counted in messages the server sends the store's
 * connection (the server's own monitoring counts them): a page must cost in proportion to the
 * page, not to the bucket; a prefix that ends inside a segment must not read its whole parent;
 * a range must not read the chunks before it.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { openStore, type Store } from "../src/index.js";
import { patterned, text } from "../src/testing/helpers.js";
import { natsServerBinary, startMonitoredNatsServer } from "./fixtures/nats.js";
import { unavailable } from "./fixtures/services.js";

const skip = natsServerBinary() ? false : unavailable("nats-server", "a nats-server binary to start a private server");
const N = 3000;
const key = (i: number) => `k/${String(i).padStart(5, "0")}`;

describe("nats listing cost", { skip, timeout: 120_000 }, () => {
  let server: Awaited<ReturnType<typeof startMonitoredNatsServer>>;
  let store: Store;
  let writer: Store;
  before(async () => {
    server = await startMonitoredNatsServer();
    store = await openStore(`${server.url}/listing?history=1&name=lister`);
    writer = await openStore(`${server.url}/listing?name=writer`);
    for (let i = 0; i < N; i += 1000) {
      await writer.putMany(Array.from({ length: 1000 }, (_, j) => ({ key: key(i + j), data: text("v") })));
    }
  });
  after(async () => {
    await store?.close();
    await writer?.close();
    await server?.destroy();
  });

  /** Messages the server sent the listing store while `fn` ran. */
  const cost = async (fn: () => Promise<unknown>) => {
    const before = await server.messagesSentTo("lister");
    await fn();
    return (await server.messagesSentTo("lister")) - before;
  };

  it("keys() reads the prefix once, then each page costs one request plus the changes since", async () => {
    const seen: string[] = [];
    const messages = await cost(async () => {
      let page = 0;
      for await (const k of store.keys("k/", { limit: 100 })) {
        seen.push(k);
        if (seen.length === 150 && page++ === 0) {
          // Another client changes the bucket mid-pass: a later key deleted, two added (one
          // before the cursor, one after).
          await writer.delete(key(2500));
          await writer.put("k/00000a", text("behind the cursor"));
          await writer.put("k/02999a", text("ahead"));
        }
      }
    });
    const expected = [...Array.from({ length: N }, (_, i) => key(i)).filter((k) => k !== key(2500)), "k/02999a"].sort();
    assert.deepEqual(seen, expected);
    // One listing (N messages), then about one message per page and the 3 changes.
    assert.ok(messages < N + 3 * (N / 100) + 50, `${messages} messages for ${N} keys in ${N / 100} pages`);
  });

  it("a page deep into the listing costs about as much as the next one", async () => {
    await store.listPage("k/", { limit: 100 });
    const deep = await cost(() => store.listPage("k/", { limit: 100, after: key(2700) }));
    assert.ok(deep < 10, `a warm deep page cost ${deep} messages`);
  });

  it("a range deep into a large value reads only the chunks that hold it", async () => {
    const big = await openStore(`${server.url}/ranges?inlineMax=1024&chunkSize=4096&name=lister`);
    try {
      const size = 4 * 1024 * 1024; // 1,024 chunks
      const value = patterned(size, 5);
      await big.put("big", value);
      for (const offset of [0, size / 2 + 100, size - 65_536]) {
        let got: Uint8Array = new Uint8Array();
        const messages = await cost(async () => (got = await big.get("big", { range: { offset, length: 65_536 } })));
        assert.deepEqual(Buffer.from(got), Buffer.from(value.subarray(offset, offset + 65_536)));
        assert.ok(messages < 40, `a 64 KiB range at ${offset} cost ${messages} messages`);
      }
    } finally {
      await big.close();
    }
  });

  it("finds the chunk of an offset when other puts' chunks are interleaved with it", async () => {
    const big = await openStore(`${server.url}/interleaved?inlineMax=1024&chunkSize=4096&name=lister`);
    try {
      const values = [patterned(300_000, 1), patterned(300_000, 2), patterned(300_000, 3)];
      const slowly = (data: Uint8Array) =>
        (async function* () {
          for (let i = 0; i < data.byteLength; i += 4096) {
            yield data.subarray(i, i + 4096);
            await new Promise((r) => setTimeout(r, 1));
          }
        })();
      await Promise.all(values.map((v, i) => big.putStream(`v${i}`, slowly(v))));
      for (const [i, v] of values.entries()) {
        for (const offset of [0, 4095, 4096, 150_001, 299_999]) {
          const got = await big.get(`v${i}`, { range: { offset, length: 10_000 } });
          assert.deepEqual(Buffer.from(got), Buffer.from(v.subarray(offset, offset + 10_000)), `v${i} at ${offset}`);
        }
        const streamed: Buffer[] = [];
        for await (const piece of await big.getStream(`v${i}`, { range: { offset: 100_000 } })) streamed.push(Buffer.from(piece));
        assert.deepEqual(Buffer.concat(streamed), Buffer.from(v.subarray(100_000)));
      }
    } finally {
      await big.close();
    }
  });

  it("a prefix ending inside a segment reads only its own keys", async () => {
    let listed: string[] = [];
    const messages = await cost(async () => (listed = await store.list("k/010")));
    assert.equal(listed.length, 100);
    assert.ok(messages < 150, `list("k/010") cost ${messages} messages for 100 keys in a folder of ${N}`);
  });

  it("pages stay complete and prompt when the server miscounts what is pending", async () => {
    // nats-server 2.9 miscounts the pending messages of a consumer that starts inside a range
    // where per-subject history limits removed messages: too few ended a snapshot's refresh with
    // keys missing, too many left it waiting until the stall guard failed it. Readers snapshot
    // the prefix at different points, then refresh across overwrites and deletes.
    const url = `${server.url}/miscount?history=2`;
    const write = await openStore(url);
    const readers: Store[] = [];
    try {
      for (let i = 0; i < 30; i++) await write.put(`m/seed-${i}`, text(`seed ${i}`));
      for (let round = 1; round <= 3; round++) {
        for (let i = 0; i < 20; i++) {
          await write.put(`m/new-${round}/${i}`, text(`${round}.${i}`));
          if (round === 1 && i % 2 === 0) {
            const reader = await openStore(url);
            readers.push(reader);
            for await (const _ of reader.keys("m/")) void _;
          }
        }
        await write.put("m/plain", text(`round ${round}`));
        for (let i = 0; i < 5; i++) await write.delete(`m/new-${round}/${i}`);
      }
      const expected = await write.list("m/");
      assert.equal(expected.length, 30 + 3 * 15 + 1);
      for (const [i, reader] of readers.entries()) {
        const started = Date.now();
        const seen: string[] = [];
        for await (const k of reader.keys("m/", { limit: 20 })) seen.push(k);
        assert.deepEqual(seen, expected, `reader ${i}`);
        assert.ok(Date.now() - started < 3000, `reader ${i} took ${Date.now() - started} ms`);
      }
    } finally {
      for (const reader of readers) await reader.close();
      await write.close();
    }
  });
});
