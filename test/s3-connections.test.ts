/**
 * Direct requests over the store's own connection pool (src/backends/s3/transport.ts), the path
 * a store takes when the caller gives the client no request handler. The store talks to s3rver
 * through the signature-checking proxy, which records each request as it arrived (SDK or
 * direct) and injects the faults: a connection dropped without an answer, a body cut short.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { openStore } from "../src/open.js";
import type { Store } from "../src/types.js";
import { assertKind, patterned, text } from "../src/testing/helpers.js";
import { createBucket, deleteBucket, sharedS3Server, storeUrl, uniqueBucket, type S3ServerHandle } from "./fixtures/s3.js";
import { requestLines, startVerifyingProxy, type SeenRequest, type VerifyingProxy } from "./fixtures/sigv4-proxy.js";

/** The requests since the last call, as "METHOD sdk|direct" lines. */
function paths(seen: SeenRequest[]): string[] {
  return requestLines(seen.splice(0));
}

const KEYS = ["plain", "with space/and ü", "odd !'()*+%&=?#;,@$[]~", "emoji/🦆"];

describe("s3 direct requests over the store's own connections (s3rver behind a verifying proxy)", () => {
  let server: S3ServerHandle;
  let proxy: VerifyingProxy;
  const buckets: string[] = [];
  const open = async (prefix = ""): Promise<Store> => {
    const bucket = uniqueBucket("pool");
    await createBucket(bucket, { server });
    buckets.push(bucket);
    return openStore(storeUrl({ ...server, endpoint: proxy.endpoint }, bucket, prefix), { s3: { versioning: false } });
  };

  before(async () => {
    server = await sharedS3Server();
    proxy = await startVerifyingProxy(server);
  });
  after(async () => {
    await proxy.stop();
    for (const bucket of buckets) await deleteBucket(bucket, { server }).catch(() => undefined);
    await server.stop(); // a no-op for S3_ENDPOINT
  });

  it("puts, gets, lists and deletes directly, byte-exact, signed as sent, and close() lets every connection go", async () => {
    const store = await open("pre fix/ü");
    try {
      await store.put("first", text("learns the endpoint"));
      assert.deepEqual(paths(proxy.seen), ["PUT sdk"]);
      const values = [new Uint8Array(0), patterned(1024, 1), patterned(1024 * 1024 + 7, 2), patterned(9 * 1024 * 1024, 3)];
      for (const [i, key] of KEYS.entries()) {
        await store.put(key, values[i] as Uint8Array, { metadata: { note: `héllo ${i}` } });
        assert.deepEqual(await store.get(key), values[i], key);
        assert.deepEqual((await store.stat(key)).metadata, { note: `héllo ${i}` }, key);
      }
      const direct = ["PUT direct", "GET direct", "HEAD sdk"];
      // The 9 MiB value is above partSize (8 MiB): a multipart upload (two parts) through the SDK.
      const multipart = ["POST sdk", "PUT sdk", "PUT sdk", "POST sdk", "GET direct", "HEAD sdk"];
      assert.deepEqual(paths(proxy.seen), [...direct, ...direct, ...direct, ...multipart]);
      assert.deepEqual((await store.list("")).sort(), ["first", ...KEYS].sort());
      await assertKind(store.get("missing/é"), "not_found");
      for (const key of KEYS) await store.delete(key);
      assert.deepEqual(paths(proxy.seen), ["GET direct", "GET direct", ...KEYS.map(() => "DELETE direct")]);
      assert.deepEqual(await store.list(""), ["first"]);
      assert.deepEqual(proxy.refused, []);
    } finally {
      await store.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await proxy.connections(), 0, "close() closed the pool's connections and the client's");
  });

  it("re-sends through the SDK a request whose connection dropped or whose body was cut short", async () => {
    const store = await open();
    try {
      await store.put("k", text("v"));
      await store.put("big", patterned(300_000, 5));
      paths(proxy.seen);
      proxy.fault = (request) => (request.viaSdk ? undefined : "drop");
      await store.put("k2", text("v2"));
      assert.deepEqual(await store.get("k2"), text("v2"));
      assert.deepEqual((await store.list("")).sort(), ["big", "k", "k2"]);
      await store.delete("k2");
      assert.deepEqual(paths(proxy.seen), ["PUT direct", "PUT sdk", "GET direct", "GET sdk", "GET direct", "GET sdk", "DELETE direct", "DELETE sdk"]);

      proxy.fault = (request) => (request.viaSdk || request.method !== "GET" ? undefined : "cut");
      assert.deepEqual(await store.get("big"), patterned(300_000, 5), "a body cut short is fetched again");
      assert.deepEqual(await store.list(""), ["big", "k"]);
      assert.deepEqual(paths(proxy.seen), ["GET direct", "GET sdk", "GET direct", "GET sdk"]);

      proxy.fault = undefined;
      assert.deepEqual(await store.get("big"), patterned(300_000, 5));
      assert.deepEqual(paths(proxy.seen), ["GET direct"], "the pool serves again after the faults");
    } finally {
      proxy.fault = undefined;
      await store.close();
    }
  });

  it("an abort rejects with its reason and nothing is re-sent", async () => {
    const store = await open();
    try {
      await store.put("k", patterned(256 * 1024, 3));
      paths(proxy.seen);
      for (const op of [(signal: AbortSignal) => store.get("k", { signal }), (signal: AbortSignal) => store.put("k2", patterned(256 * 1024, 4), { signal })]) {
        const controller = new AbortController();
        const reason = new Error("enough");
        const pending = op(controller.signal);
        setImmediate(() => controller.abort(reason));
        await assert.rejects(pending, (err) => err === reason);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(proxy.seen.every((s) => !s.viaSdk), "no SDK re-send after an abort");
      assert.deepEqual(await store.get("k"), patterned(256 * 1024, 3));
    } finally {
      await store.close();
    }
  });
});
