/**
 * The S3 backend against real S3-protocol servers on loopback.
 *
 * - The conformance suite runs against moto's S3 server (`moto_server`), which keeps keys as
 *   S3 does: s3rver maps keys to file paths, so it cannot store `a//b`, fails on a key segment
 *   over 255 bytes and lists in directory-walk order, not S3's byte order. A versioned bucket
 *   on moto runs the suite's version tests.
 * - s3rver (started with --openssl-legacy-provider in a child process) runs what is about the
 *   protocol and our client settings: byte-exact bodies, paginated listing with continuation
 *   tokens, 100 MiB streamed with bounded memory, error classification.
 * With S3_ENDPOINT set (a real MinIO or S3), everything runs against it instead.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { openStore } from "../src/open.js";
import { S3Store } from "../src/backends/s3.js";
import { resolveS3Config } from "../src/backends/s3/config.js";
import { StorageError } from "../src/errors.js";
import { compareKeys } from "../src/keys.js";
import { testStore } from "../src/testing/conformance.js";
import { assertKind, patterned, text } from "../src/testing/helpers.js";
import type { Store } from "../src/types.js";
import {
  adminClient,
  clientConfig,
  createBucket,
  deleteBucket,
  motoAvailable,
  sharedS3Server,
  startMotoServer,
  storeUrl,
  uniqueBucket,
  type S3ServerHandle,
} from "./fixtures/s3.js";
import { freePort, isCI, unavailable } from "./fixtures/services.js";

const MiB = 1024 * 1024;

/** moto where it is installed (or S3_ENDPOINT), started once for this file. */
let motoServer: Promise<S3ServerHandle | undefined> | undefined;
function faithfulServer(): Promise<S3ServerHandle | undefined> {
  motoServer ??= (async () => {
    if (process.env.S3_ENDPOINT) return sharedS3Server();
    if (!motoAvailable()) {
      unavailable("moto_server", "the S3 conformance suite runs against moto's S3 server (pip install 'moto[server]'), or set S3_ENDPOINT");
      return undefined;
    }
    return startMotoServer();
  })();
  return motoServer;
}
const motoSkip = !process.env.S3_ENDPOINT && !motoAvailable() && !isCI ? "moto_server is not installed" : undefined;

/** Opens fresh stores in buckets of their own on a server; `destroy` removes the buckets. */
function bucketFactory(server: () => Promise<S3ServerHandle | undefined>, options: { prefix?: string; versioning?: boolean } = {}) {
  const buckets: { name: string; server: S3ServerHandle }[] = [];
  return {
    async open(): Promise<Store> {
      const s = await server();
      if (!s) throw new Error("no S3 server");
      const name = uniqueBucket();
      await createBucket(name, { server: s, versioning: options.versioning });
      buckets.push({ name, server: s });
      // moto loses a race when many requests overwrite one key at once (HTTP 500 "I/O operation
      // on closed file"); more SDK attempts ride over it, as they would over any transient 500.
      const s3 = s.kind === "moto" ? { clientConfig: { maxAttempts: 10 } } : {};
      return openStore(storeUrl(s, name, options.prefix), { s3 });
    },
    async destroy(): Promise<void> {
      for (const { name, server: s } of buckets.splice(0)) await deleteBucket(name, { server: s });
    },
  };
}

if (!motoSkip) {
  testStore("s3", { ...bucketFactory(faithfulServer) });
  testStore("s3 (versioned bucket)", { ...bucketFactory(faithfulServer, { versioning: true }) });
  testStore("s3 (under a prefix)", { ...bucketFactory(faithfulServer, { prefix: "tenant/a" }) });
}


/** A store in a fresh bucket on the s3rver fixture (or S3_ENDPOINT). */
async function s3rverStore(options: { prefix?: string; s3?: Record<string, unknown>; bucket?: string } = {}) {
  const server = await sharedS3Server();
  const bucket = options.bucket ?? uniqueBucket();
  if (!options.bucket) await createBucket(bucket, { server });
  const store = (await openStore(storeUrl(server, bucket, options.prefix), { s3: options.s3 })) as S3Store;
  return { server, bucket, store };
}

/** Runs `work` while sampling RSS every 10 ms; returns the peak growth over the start, in bytes. */
async function peakRssGrowth(work: () => Promise<void>): Promise<number> {
  globalThis.gc?.();
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage.rss()) - start;
}

/**
 * `total` bytes of patterned data in chunks of `chunk` bytes, each a fresh buffer. Collects
 * garbage every 8 MiB (when node runs with --expose-gc, as the test script does), so RSS
 * measures what the store holds, not when V8 gets round to the chunks already sent.
 */
async function* generated(total: number, chunk: number, seed = 1): AsyncGenerator<Uint8Array> {
  for (let sent = 0, i = 0; sent < total; i++) {
    const size = Math.min(chunk, total - sent);
    yield patterned(size, seed + i);
    sent += size;
    if (sent % (8 * MiB) < size) globalThis.gc?.();
  }
}

describe("s3 on s3rver: protocol and client settings", () => {
  const buckets: string[] = [];
  let server: S3ServerHandle;
  let store: S3Store;
  before(async () => {
    const opened = await s3rverStore();
    server = opened.server;
    store = opened.store;
    buckets.push(opened.bucket);
  });
  after(async () => {
    await store.close();
    for (const b of buckets) await deleteBucket(b, { server });
  });

  it("writes bytes exactly: buffers and streams of several sizes, single and multipart", async () => {
    const small = (await s3rverStore({ bucket: store.bucket, s3: { partSize: 5 * MiB } })).store;
    try {
      for (const size of [1, 1000, 100_000, 5 * MiB, 5 * MiB + 3, 11 * MiB + 7]) {
        // The same bytes as the stream below, in one buffer.
        const parts: Uint8Array[] = [];
        for await (const chunk of generated(size, 65_521, size)) parts.push(chunk);
        const data = Buffer.concat(parts);
        await small.put(`exact/buffer-${size}`, data);
        await small.putStream(`exact/stream-${size}`, generated(size, 65_521, size));
        for (const key of [`exact/buffer-${size}`, `exact/stream-${size}`]) {
          const got = await small.get(key);
          assert.equal(got.byteLength, size, `${key}: size`);
          assert.ok(Buffer.from(got).equals(Buffer.from(data)), `${key}: bytes differ`);
          assert.equal((await small.stat(key)).size, size);
          const head = await adminClient(server).send(new HeadObjectCommand({ Bucket: store.bucket, Key: key }));
          assert.equal(head.ContentLength, size, `${key}: the server stored ${head.ContentLength} bytes`);
        }
      }
    } finally {
      await small.close();
    }
  });

  it("(why the default) the SDK's own checksum mode stores aws-chunked framing on s3rver", { skip: process.env.S3_ENDPOINT ? "s3rver only" : undefined }, async () => {
    const { Readable } = await import("node:stream");
    const client = new S3Client({ ...clientConfig(server), requestChecksumCalculation: "WHEN_SUPPORTED", responseChecksumValidation: "WHEN_SUPPORTED" });
    try {
      const body = Readable.from(generated(100_000, 10_000));
      await client.send(new PutObjectCommand({ Bucket: store.bucket, Key: "framing", Body: body, ContentLength: 100_000 }));
      const head = await client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: "framing" }));
      assert.notEqual(head.ContentLength, 100_000, "s3rver now understands aws-chunked: the default could be revisited");
      await store.putStream("framing", generated(100_000, 10_000));
      assert.equal((await store.stat("framing")).size, 100_000);
    } finally {
      client.destroy();
    }
  });

  it("paginates ListObjectsV2 over more than 1000 keys (continuation tokens) and small limits (StartAfter)", async () => {
    const keys = Array.from({ length: 2100 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
    await store.putMany(keys.map((key) => ({ key, data: text(key) })));
    assert.deepEqual(await store.list("many/"), keys);
    assert.deepEqual(await store.list("many/0"), keys.filter((k) => k.startsWith("many/0")));

    const big = await store.listPage("many/", { limit: 2500 });
    assert.deepEqual(big.keys, keys, "a page above S3's 1000 is served by several requests");
    assert.equal(big.next, undefined);

    const pages: string[][] = [];
    let after: string | undefined;
    do {
      const page = await store.listPage("many/01", { limit: 7, after });
      pages.push(page.keys);
      after = page.next;
    } while (after !== undefined);
    assert.deepEqual(pages.flat(), keys.filter((k) => k.startsWith("many/01")));
    assert.ok(pages.slice(0, -1).every((p) => p.length === 7));

    const iterated: string[] = [];
    for await (const key of store.keys("many/", { limit: 1000 })) iterated.push(key);
    assert.deepEqual(iterated, keys);
    assert.deepEqual((await store.listPage("many/", { limit: 3, after: "many/02097" })).keys, ["many/02098", "many/02099"]);

    await store.deleteMany(keys);
    assert.deepEqual(await store.list("many/"), []);
  });

  it("streams 100 MiB in and out with bounded memory", async (t) => {
    const size = 100 * MiB;
    const key = "big/100MiB";
    const sent = createHash("sha256");
    async function* body() {
      for await (const chunk of generated(size, MiB, 7)) {
        sent.update(chunk);
        yield chunk;
      }
    }
    // Warm up first (SDK code, sockets, one upload's part pool), so the measurement below is the
    // upload's own growth: holding the object would add ~100 MiB, a bounded upload ~nothing.
    await store.putStream(`${key}-warm-up`, generated(3 * 8 * MiB + 1, MiB));
    for await (const chunk of await store.getStream(`${key}-warm-up`)) assert.ok(chunk.byteLength > 0);
    await store.delete(`${key}-warm-up`);
    const putGrowth = await peakRssGrowth(() => store.putStream(key, body()));
    assert.equal((await store.stat(key)).size, size);
    const received = createHash("sha256");
    let bytes = 0;
    const getGrowth = await peakRssGrowth(async () => {
      for await (const chunk of await store.getStream(key)) {
        received.update(chunk);
        bytes += chunk.byteLength;
        if (bytes % (8 * MiB) < chunk.byteLength) globalThis.gc?.();
      }
    });
    assert.equal(bytes, size);
    assert.equal(received.digest("hex"), sent.digest("hex"));
    t.diagnostic(`RSS growth: putStream ${(putGrowth / MiB).toFixed(1)} MiB, getStream ${(getGrowth / MiB).toFixed(1)} MiB`);
    assert.ok(putGrowth < 64 * MiB, `putStream grew RSS by ${(putGrowth / MiB).toFixed(1)} MiB`);
    assert.ok(getGrowth < 64 * MiB, `getStream grew RSS by ${(getGrowth / MiB).toFixed(1)} MiB`);
    await store.delete(key);
  });

  it("keeps any metadata exactly: unicode, edge spaces, look-alike encoded words; headers stay ASCII", async () => {
    const metadata = {
      plain: "sensor-1",
      unicode: "héllo 😀 — ключ 键",
      spaces: "  leading and trailing  ",
      empty: "",
      lookalike: "=?UTF-8?B?aGk=?=",
      "x.dots_and-dashes": "tab-less\u00a0nbsp",
    };
    await store.put("meta/k", text("v"), { metadata: { ...metadata, "MiXeD-Case": "Value" } });
    assert.deepEqual((await store.stat("meta/k")).metadata, { ...metadata, "mixed-case": "Value" });
    const head = await adminClient(server).send(new HeadObjectCommand({ Bucket: store.bucket, Key: "meta/k" }));
    for (const value of Object.values(head.Metadata ?? {})) assert.match(value, /^[\x20-\x7e]*$/);
    assert.equal(head.Metadata?.plain, "sensor-1", "printable ASCII goes as it is");
    assert.equal(head.Metadata?.unicode, `=?UTF-8?B?${Buffer.from(metadata.unicode).toString("base64")}?=`, "RFC 2047, as AWS returns it");
    // 1800 bytes of Chinese (valid: under 2 KiB) are 2400 once base64-encoded: more than S3 keeps.
    await assertKind(store.put("meta/big", text("v"), { metadata: { big: "键".repeat(600) } }), "invalid");
    await assertKind(store.stat("meta/big"), "not_found");
  });

  it("classifies errors: missing key not_found, missing bucket not_found at open and fatal after, bad credentials fatal at open, closed port transient", async () => {
    for (const op of [() => store.get("nope"), () => store.stat("nope"), () => store.getStream("nope")]) await assertKind(op(), "not_found");

    const missing = uniqueBucket("missing");
    const atOpen = await assertKind(openStore(storeUrl(server, missing)), "not_found");
    assert.match(atOpen.message, /does not exist/);
    // A bucket deleted under an open store: fatal, never read as a missing key.
    const doomed = uniqueBucket("doomed");
    await createBucket(doomed, { server });
    const orphan = await openStore(storeUrl(server, doomed));
    await deleteBucket(doomed, { server });
    for (const op of [() => orphan.get("k"), () => orphan.put("k", text("v")), () => orphan.getMany(["k"]), () => orphan.list("")]) {
      assert.match((await assertKind(op(), "fatal")).message, /does not exist/);
    }
    await orphan.close();

    if (server.kind === "s3rver") {
      const wrongUrl = storeUrl({ ...server, accessKeyId: "WRONG", secretAccessKey: "nope" }, store.bucket, "");
      const refused = await assertKind(openStore(wrongUrl), "fatal");
      assert.match(refused.message, /InvalidAccessKeyId.*credentials/);
      assert.doesNotMatch(refused.message, /nope/);
    }

    const port = await freePort();
    const closedUrl = storeUrl({ ...server, endpoint: `http://127.0.0.1:${port}` }, "any-bucket");
    await assertKind(openStore(closedUrl, { s3: { clientConfig: { maxAttempts: 1 } } }), "transient");
  });

  it("a prefix is a namespace: keys and listings are relative to it, and prefix + key must fit 1024 bytes", async () => {
    const tenant = (await s3rverStore({ bucket: store.bucket, prefix: "tenant-a" })).store;
    try {
      assert.equal(tenant.prefix, "tenant-a/");
      await tenant.put("x/1", text("one"));
      await tenant.putMany([{ key: "x/2", data: text("two") }]);
      await store.put("tenant-ab/x", text("outside"));
      assert.deepEqual(await tenant.list(""), ["x/1", "x/2"]);
      assert.deepEqual(await tenant.listPage("x/", { limit: 1 }), { keys: ["x/1"], next: "x/1" });
      assert.deepEqual(await store.list("tenant-a"), ["tenant-a/x/1", "tenant-a/x/2", "tenant-ab/x"]);
      assert.deepEqual(await tenant.get("x/1"), text("one"));
      assert.deepEqual(await tenant.getMany(["x/2", "x/3"]), [text("two"), undefined]);
      const longest = "k".repeat(1024 - "tenant-a/".length);
      await assertKind(tenant.put(`${longest}k`, text("v")), "invalid");
      await tenant.deleteMany(["x/1", "x/2"]);
      assert.deepEqual(await tenant.list(""), []);
      assert.deepEqual(await store.list("tenant-a"), ["tenant-ab/x"]);
    } finally {
      await tenant.close();
    }
  });

  it("leaves a caller's S3Client open on close, and destroys its own", async () => {
    const client = new S3Client(clientConfig(server));
    try {
      const own = await S3Store.open({ client, bucket: store.bucket });
      await own.put("owned/k", text("v"));
      await own.close();
      await assertKind(own.get("owned/k"), "fatal");
      const buckets = await client.send(new ListBucketsCommand({}));
      assert.ok(buckets.Buckets?.some((b) => b.Name === store.bucket), "the caller's client still works");
    } finally {
      client.destroy();
    }
  });

  it("caches the SDK's middleware chain in clients it makes (a caller's clientConfig wins), and still honours signals", async () => {
    assert.equal(resolveS3Config({ bucket: "b" }).clientConfig.cacheMiddleware, true);
    assert.equal(resolveS3Config({ bucket: "b", clientConfig: { cacheMiddleware: false } }).clientConfig.cacheMiddleware, false);
    // Sends with and without a signal alternate on one cached chain.
    await store.put("cached/k", text("v"));
    for (let i = 0; i < 3; i++) {
      assert.equal(new TextDecoder().decode(await store.get("cached/k")), "v");
      const reason = new Error(`stop ${i}`);
      const controller = new AbortController();
      const pending = store.get("cached/k", { signal: controller.signal });
      controller.abort(reason);
      await assert.rejects(pending, (err) => err === reason);
    }
    await store.delete("cached/k");
  });

  it("refuses bad URLs and options with invalid, without leaking secrets", async () => {
    const base = storeUrl(server, store.bucket);
    for (const url of [
      `${base}&colour=red`,
      `${base}&partSize=1024`,
      `${base}&forcePathStyle=maybe`,
      `${base}&versioning=sometimes`,
      `${base}&conditionalWrites=perhaps`,
      "s3:///prefix",
      `${base}&endpoint=ftp://x`,
      `${base}&directRequests=true`,
    ]) {
      const err = await assertKind(openStore(url), "invalid", url);
      assert.doesNotMatch(err.message, new RegExp(server.secretAccessKey === "S3RVER" ? "S3RVER@" : server.secretAccessKey));
    }
  });
});

describe("s3 on s3rver: ranges and conditions", () => {
  let server: S3ServerHandle;
  let store: S3Store;
  let bucket: string;
  before(async () => {
    ({ server, store, bucket } = await s3rverStore());
  });
  after(async () => {
    await store.close();
    await deleteBucket(bucket, { server });
  });

  it("reads ranges with the Range header, cut to what was asked even where the server sends more", async () => {
    const value = patterned(100_000, 3);
    await store.put("r", value);
    for (const [offset, length] of [[0, 1], [0, 0], [5, 10], [99_999, 1], [99_999, 50], [100_000, undefined], [100_000, 0], [0, undefined], [42, undefined]] as const) {
      const range = { offset, length };
      const want = Buffer.from(value.subarray(offset, length === undefined ? undefined : offset + length));
      assert.ok(Buffer.from(await store.get("r", { range })).equals(want), `get ${JSON.stringify(range)}`);
      const chunks: Uint8Array[] = [];
      for await (const chunk of await store.getStream("r", { range })) chunks.push(chunk);
      assert.ok(Buffer.concat(chunks).equals(want), `getStream ${JSON.stringify(range)}`);
    }
    // s3rver's own answer to bytes=0-0 is the whole object: the store cuts it.
    const raw = await adminClient(server).send(new GetObjectCommand({ Bucket: bucket, Key: "r", Range: "bytes=0-0" }));
    assert.equal((await raw.Body!.transformToByteArray()).byteLength, 100_000, "s3rver fixed its bytes=0-0: the cut is no longer needed here");
    const past = await assertKind(store.get("r", { range: { offset: 100_001 } }), "invalid");
    assert.match(past.message, /past the end/);
    await assertKind(store.getStream("r", { range: { offset: 200_000, length: 1 } }), "invalid");
    await assertKind(store.get("r", { range: { offset: 100_001, length: 0 } }), "invalid");
    await assertKind(store.get("missing", { range: { offset: 0, length: 1 } }), "not_found");
  });

  it("s3rver ignores If-Match and If-None-Match: the probe finds out, and a condition is unsupported, never a silent overwrite", async () => {
    assert.equal(store.capabilities.conditionalWrites, false);
    await store.put("c", text("v1"));
    const { etag } = await store.stat("c");
    assert.match(etag, /^"[0-9a-f]{32}"$/, "the server's ETag");
    await assertKind(store.put("c", text("v2"), { ifNoneMatch: "*" }), "unsupported");
    await assertKind(store.put("c", text("v2"), { ifMatch: etag }), "unsupported");
    await assertKind(store.delete("c", { ifMatch: etag }), "unsupported");
    assert.deepEqual(await store.get("c"), text("v1"));
    // The open's probe left nothing behind.
    assert.deepEqual(await adminList(server, bucket, ".stowage-probe"), []);
    // The probe's answer, from a raw client: s3rver writes over a condition that does not hold.
    await adminClient(server).send(new PutObjectCommand({ Bucket: bucket, Key: "c", Body: text("raw"), IfNoneMatch: "*" }));
    assert.deepEqual(await store.get("c"), text("raw"));
  });
});

async function adminList(server: S3ServerHandle, bucket: string, prefix: string): Promise<string[]> {
  const out = await adminClient(server).send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

describe("s3 on moto: conditions, archived objects, versioning detection and multipart cleanup", { skip: motoSkip }, () => {
  let server: S3ServerHandle;
  const buckets: string[] = [];
  before(async () => {
    server = (await faithfulServer())!;
  });
  after(async () => {
    for (const b of buckets) await deleteBucket(b, { server });
  });
  async function bucket(versioning = false): Promise<string> {
    const name = uniqueBucket();
    await createBucket(name, { server, versioning });
    buckets.push(name);
    return name;
  }
  async function inProgressUploads(name: string): Promise<number> {
    const out = await adminClient(server).send(new ListMultipartUploadsCommand({ Bucket: name }));
    return out.Uploads?.length ?? 0;
  }

  it("moto honours the conditions on PutObject and DeleteObject, If-None-Match (not If-Match) on CompleteMultipartUpload", async () => {
    const name = await bucket(true);
    const store = await openStore(storeUrl(server, name), { s3: { partSize: 5 * MiB } });
    assert.equal(store.capabilities.conditionalWrites, true);
    const big = () => generated(11 * MiB, MiB, 5);
    await store.putStream("k", big(), { ifNoneMatch: "*" });
    const err = await assertKind(store.putStream("k", big(), { ifNoneMatch: "*" }), "conflict");
    assert.match(err.message, /PreconditionFailed/);
    const { etag } = await store.stat("k");
    // moto would complete the upload whatever If-Match says: refused, and nothing was uploaded.
    await assertKind(store.putStream("k", big(), { ifMatch: etag }), "unsupported");
    assert.equal(await inProgressUploads(name), 0);
    // A put of the same size is one PutObject, whose If-Match moto honours.
    const value = patterned(11 * MiB, 6);
    await store.put("k", value, { ifMatch: etag });
    await assertKind(store.put("k", value, { ifMatch: etag }), "conflict");
    const probes = await adminClient(server).send(new ListObjectVersionsCommand({ Bucket: name, Prefix: ".stowage-probe" }));
    assert.deepEqual([...(probes.Versions ?? []), ...(probes.DeleteMarkers ?? [])], [], "the probes left nothing behind, not even versions");
    await store.close();
  });

  it("an archived object (GLACIER) is fatal with advice to restore it first", async () => {
    const name = await bucket();
    await adminClient(server).send(new PutObjectCommand({ Bucket: name, Key: "cold", Body: text("frozen"), StorageClass: "GLACIER" }));
    const store = await openStore(storeUrl(server, name));
    const err = await assertKind(store.get("cold"), "fatal");
    assert.match(err.message, /InvalidObjectState.*restore it first/);
    await store.close();
  });

  it("declares versions exactly when the bucket has versioning enabled (or the URL says so)", async () => {
    const versioned = await bucket(true);
    const plain = await bucket(false);
    const a = await openStore(storeUrl(server, versioned));
    const b = await openStore(storeUrl(server, plain));
    const c = await openStore(`${storeUrl(server, versioned)}&versioning=false`);
    assert.equal(a.capabilities.versions, true);
    assert.equal(b.capabilities.versions, false);
    assert.equal(c.capabilities.versions, false);
    await a.put("k", text("1"));
    await a.put("k", text("2"));
    await a.delete("k");
    const history = await a.versions("k");
    assert.deepEqual(history.map((v) => v.deleted), [false, false, true]);
    assert.deepEqual(await a.get("k", { version: history[0]!.version }), text("1"));
    assert.equal((await a.stat("k").catch((err: StorageError) => err.kind)), "not_found");
    await a.put("k", text("3"));
    assert.equal((await a.stat("k")).version, (await a.versions("k")).at(-1)!.version);
    for (const s of [a, b, c]) await s.close();
  });

  it("a source that fails midway aborts the multipart upload: no object, no parts left", async () => {
    const name = await bucket();
    const store = await openStore(storeUrl(server, name), { s3: { partSize: 5 * MiB } });
    const broken = new Error("source broke at 12 MiB");
    async function* body() {
      yield* generated(12 * MiB, MiB);
      throw broken;
    }
    const err = await store.putStream("broken", body()).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof StorageError, String(err));
    assert.equal(err.cause, broken, "the source's error is kept as the cause");
    await assertKind(store.stat("broken"), "not_found");
    assert.deepEqual(await store.list(""), []);
    assert.equal(await inProgressUploads(name), 0, "a multipart upload was left in progress");
    await store.close();
  });

  it("an abort mid-upload rejects with the reason and the upload is aborted on the server", async () => {
    const name = await bucket();
    const store = await openStore(storeUrl(server, name), { s3: { partSize: 5 * MiB } });
    const controller = new AbortController();
    const reason = new Error("stop");
    async function* body() {
      yield* generated(11 * MiB, MiB);
      controller.abort(reason);
      yield* generated(11 * MiB, MiB, 99);
    }
    await assert.rejects(store.putStream("aborted", body(), { signal: controller.signal }), (e) => e === reason);
    const deadline = Date.now() + 10_000;
    while ((await inProgressUploads(name)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await inProgressUploads(name), 0, "the aborted upload's parts were left behind");
    await assertKind(store.stat("aborted"), "not_found");
    await store.close();
  });

  it("lists keys in UTF-8 byte order (= compareKeys), url-encoded on the wire", async () => {
    const name = await bucket();
    const store = await openStore(storeUrl(server, name));
    const keys = ["a+b", "a b", "a%2Bb", "a%b", "a", "a/", "a//b", "\uffff", "\u{1F600}", "\ue000", "é", "Z", "+"];
    for (const key of keys) await store.put(key, text(key));
    assert.deepEqual(await store.list(""), [...keys].sort(compareKeys));
    const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual(await store.list(""), byBytes);
    await store.deleteMany(keys);
    assert.deepEqual(await store.list(""), []);
    await store.close();
  });
});

after(async () => {
  const moto = await motoServer;
  if (moto && moto.kind === "moto") await moto.stop();
  if (!process.env.S3_ENDPOINT) await (await sharedS3Server()).stop();
});
