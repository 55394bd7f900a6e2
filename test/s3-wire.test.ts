/**
 * What the S3 store sends on the wire, seen by a proxy in front of s3rver that checks every
 * request's SigV4 signature and records it (test/fixtures/sigv4-proxy.ts): virtual-hosted
 * addressing and session-token credentials (what instance-role users run), server-side
 * encryption headers, how many requests a throttled write costs, and the errors a server in
 * a given state answers with.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { openStore, withRetry, type Store } from "../src/index.js";
import { S3Store } from "../src/backends/s3.js";
import { assertKind, patterned, text } from "../src/testing/helpers.js";
import { HeadBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { adminClient, clientConfig, createBucket, deleteBucket, sharedS3Server, storeUrl, uniqueBucket, virtualHostEndpoint, type S3ServerHandle } from "./fixtures/s3.js";
import { startVerifyingProxy, type SeenRequest, type VerifyingProxy } from "./fixtures/sigv4-proxy.js";

const MiB = 1024 * 1024;
const external = process.env.S3_ENDPOINT ? "s3rver only (S3_ENDPOINT is set)" : undefined;

describe("s3 on the wire (s3rver behind a verifying proxy)", { skip: external }, () => {
  let server: S3ServerHandle;
  let proxy: VerifyingProxy;
  const buckets: string[] = [];
  const stores: Store[] = [];

  async function bucket(): Promise<string> {
    const name = uniqueBucket("wire");
    await createBucket(name, { server });
    buckets.push(name);
    return name;
  }
  /** A store on a fresh bucket through the proxy; `query` adds URL parameters. */
  async function open(query = "", s3: Record<string, unknown> = {}): Promise<{ store: Store; bucket: string }> {
    const name = await bucket();
    const store = await openStore(`${storeUrl({ ...server, endpoint: proxy.endpoint }, name)}${query}`, { s3 });
    stores.push(store);
    return { store, bucket: name };
  }
  /** The requests since the last call. */
  const take = (): SeenRequest[] => proxy.seen.splice(0);

  before(async () => {
    server = await sharedS3Server();
    proxy = await startVerifyingProxy(server);
  });
  after(async () => {
    for (const store of stores) await store.close();
    await proxy.stop();
    for (const name of buckets) await deleteBucket(name, { server }).catch(() => undefined);
  });

  it("virtual-hosted addressing with session-token credentials: every request goes to BUCKET.s3.localhost, carries the token, signed", async () => {
    const name = await bucket();
    const { endpoint, requestHandler } = virtualHostEndpoint(proxy.endpoint);
    const sessionToken = "FwoGZXIvYXdzEXAMPLE/session+token==";
    const store = await S3Store.open({
      bucket: name,
      prefix: "vhost",
      endpoint,
      region: server.region,
      forcePathStyle: false,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, sessionToken },
      clientConfig: { requestHandler },
    });
    stores.push(store);
    take();
    const keys = ["plain", "sp ace/ü", "odd !'()*+%&=?#;,@$[]~"];
    for (const [i, key] of keys.entries()) {
      await store.put(key, patterned(1000 + i, i), { metadata: { note: "héllo" } });
      assert.deepEqual(await store.get(key), patterned(1000 + i, i));
      assert.deepEqual((await store.stat(key)).metadata, { note: "héllo" });
    }
    await store.putStream("big", (async function* () {
      yield patterned(6 * MiB, 7);
      yield patterned(6 * MiB, 8);
    })());
    assert.equal((await store.stat("big")).size, 12 * MiB);
    assert.deepEqual(await store.list(""), ["big", ...keys].sort());
    await store.deleteMany(["big", ...keys]);
    assert.deepEqual(await store.list(""), []);

    const seen = take();
    assert.ok(seen.length > 15, `${seen.length} requests`);
    const port = new URL(proxy.endpoint).port;
    for (const request of seen) {
      const where = `${request.method} ${request.url}`;
      assert.equal(request.headers.host, `${name}.s3.localhost:${port}`, where);
      assert.ok(!request.url.startsWith(`/${name}`), `${where}: the bucket is in the host, not the path`);
      assert.equal(request.headers["x-amz-security-token"], sessionToken, where);
      assert.ok(request.signedHeaders.includes("x-amz-security-token") && request.signedHeaders.includes("host"), `${where}: token and host signed`);
    }
    assert.deepEqual(proxy.refused, [], "every signature matched");
    // The same objects, seen path-style by another client: s3rver put them in the right bucket.
    const pathStyle = await openStore(storeUrl(server, name, "vhost"));
    stores.push(pathStyle);
    await store.put("check", text("v"));
    assert.deepEqual(await pathStyle.get("check"), text("v"));
  });

  it("sends server-side encryption on PutObject and CreateMultipartUpload (not on UploadPart)", async () => {
    const cases = [
      { query: "&sse=AES256", s3: {}, algorithm: "AES256", keyId: undefined },
      { query: "&sse=aws:kms&sseKmsKeyId=arn:aws:kms:us-east-1:111122223333:key/k1", s3: {}, algorithm: "aws:kms", keyId: "arn:aws:kms:us-east-1:111122223333:key/k1" },
      { query: "", s3: { sse: { kmsKeyId: "alias/events" } }, algorithm: "aws:kms", keyId: "alias/events" },
      { query: "", s3: { sse: "aws:kms" }, algorithm: "aws:kms", keyId: undefined },
      { query: "", s3: {}, algorithm: undefined, keyId: undefined },
    ];
    for (const { query, s3, algorithm, keyId } of cases) {
      const { store } = await open(`${query}&partSize=${5 * MiB}`, s3);
      take();
      await store.put("small", text("v"));
      await store.put("large", patterned(11 * MiB, 1));
      await store.putMany([{ key: "many", data: text("m") }]);
      const writes = take().filter((r) => r.method === "PUT" || r.method === "POST");
      const label = `${query}${JSON.stringify(s3)}`;
      const creates = writes.filter((r) => r.method === "PUT" && !r.url.includes("partNumber=") || (r.method === "POST" && r.url.includes("uploads")));
      const parts = writes.filter((r) => r.url.includes("partNumber="));
      assert.equal(creates.length, 3, `${label}: two PutObject and one CreateMultipartUpload`);
      assert.equal(parts.length, 3, label);
      for (const request of creates) {
        assert.equal(request.headers["x-amz-server-side-encryption"], algorithm, `${label} ${request.method} ${request.url}`);
        assert.equal(request.headers["x-amz-server-side-encryption-aws-kms-key-id"], keyId, label);
      }
      for (const request of parts) assert.equal(request.headers["x-amz-server-side-encryption"], undefined, "UploadPart takes no SSE headers");
    }
    for (const bad of ["&sse=DES", "&sseKmsKeyId=k", "&sse=AES256&sseKmsKeyId=k"]) {
      await assertKind(openStore(`${storeUrl(server, "any-bucket")}${bad}`), "invalid", bad);
    }
    await assertKind(S3Store.open({ bucket: "any-bucket", sse: { kmsKeyId: "" } }), "invalid");
  });

  it("a throttled write is one request per attempt of the caller's retry policy; other 5xx are retried by the SDK", async () => {
    const { store } = await open();
    await store.put("k", text("v0"));
    take();
    proxy.fault = (request) => (request.method === "PUT" ? { status: 503, code: "SlowDown" } : undefined);
    try {
      const err = await assertKind(store.put("k", text("v1")), "transient");
      assert.match(err.message, /throttling/);
      assert.equal(take().length, 1, "bare store: the SDK does not retry SlowDown");
      const retried = withRetry(store, { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 });
      await assertKind(retried.put("k", text("v1")), "transient");
      assert.equal(take().length, 3, "under withRetry({ maxAttempts: 3 }): three requests, not 3 × the SDK's");
      proxy.fault = (request) => (request.method === "PUT" ? { status: 429, code: "TooManyRequests" } : undefined);
      await assertKind(store.put("k", text("v1")), "transient");
      assert.equal(take().length, 1, "429 is throttling too");

      let failures = 1;
      proxy.fault = (request) => (request.method === "PUT" && failures-- > 0 ? { status: 503, code: "ServiceUnavailable" } : undefined);
      await store.put("k", text("v2"));
      assert.equal(take().length, 2, "a 503 ServiceUnavailable is retried once by the SDK, and the put resolves");
      proxy.fault = () => ({ status: 500, code: "InternalError" });
      await assertKind(store.get("k"), "transient");
      assert.equal(take().length, 3, "a persistent 500: the SDK's three attempts");
    } finally {
      proxy.fault = undefined;
    }
    assert.deepEqual(await store.get("k"), text("v2"));
  });

  it("open asks the server about conditions with writes that cannot take effect; create: false writes nothing at all", async () => {
    const name = await bucket();
    const url = storeUrl({ ...server, endpoint: proxy.endpoint }, name);
    take();
    const probing = await openStore(url);
    stores.push(probing);
    const probe = take().filter((r) => r.method === "PUT" || r.method === "DELETE");
    assert.deepEqual(probe.map((r) => [r.method, r.headers["if-match"] !== undefined]).sort(), [["PUT", true], ["DELETE", true], ["DELETE", false]].sort(), "a conditional PUT and DELETE; s3rver ignored the PUT's condition, so its object is deleted");
    assert.equal(probing.capabilities.conditionalWrites, false);
    const readOnly = await openStore(url, { create: false });
    stores.push(readOnly);
    assert.deepEqual(take().map((r) => r.method), ["GET"], "create: false: GetBucketVersioning only");
    assert.equal(readOnly.capabilities.conditionalWrites, false);
    const told = await openStore(`${url}&conditionalWrites=true&versioning=false`, { create: false });
    stores.push(told);
    assert.deepEqual(take().map((r) => r.method), ["HEAD"], "both given: HeadBucket only");
    assert.equal(told.capabilities.conditionalWrites, true);
  });

  it("classifies the errors a server in a given state answers with", async () => {
    const { store, bucket: name } = await open();
    await store.put("k", text("v"));
    const answer = (status: number, code: string, method?: string) => {
      proxy.fault = (request) => (method === undefined || request.method === method ? { status, code } : undefined);
    };
    try {
      answer(403, "AccessDenied", "PUT");
      assert.match((await assertKind(store.put("k", text("v")), "fatal")).message, /PutObject was denied on bucket ".*s3:PutObject/);
      answer(403, "AccessDenied", "GET");
      assert.match((await assertKind(store.list(""), "fatal")).message, /ListObjectsV2 was denied.*s3:ListBucket/);
      assert.match((await assertKind(store.get("k"), "fatal")).message, /GetObject was denied.*s3:GetObject/);
      answer(403, "AccessDenied", "HEAD");
      assert.match((await assertKind(store.stat("k"), "fatal")).message, /HeadObject was denied/);
      answer(403, "AccessDenied", "DELETE");
      assert.match((await assertKind(store.delete("k"), "fatal")).message, /DeleteObject was denied/);
      answer(403, "InvalidObjectState", "GET");
      assert.match((await assertKind(store.get("k"), "fatal")).message, /archived.*restore it first/);
      answer(503, "SlowDown", "GET");
      await assertKind(store.get("k"), "transient");
    } finally {
      proxy.fault = undefined;
    }
    assert.deepEqual(await store.get("k"), text("v"));
    assert.ok(name);
  });
});

describe("s3 errors from s3rver itself", { skip: external }, () => {
  let server: S3ServerHandle;
  before(async () => {
    server = await sharedS3Server();
  });

  it("a clock 1 h off: RequestTimeTooSkewed says so; the client learns the server's clock from it, so the next request passes", async () => {
    const name = uniqueBucket("skew");
    await createBucket(name, { server });
    // One attempt per request, so the SDK cannot sign again within the same call.
    const client = new S3Client({ ...clientConfig(server), systemClockOffset: 3_600_000, maxAttempts: 1 });
    try {
      const err = await assertKind(S3Store.open({ client, bucket: name }), "transient");
      assert.match(err.message, /RequestTimeTooSkewed.*clock.*synchronise/);
      const store = await S3Store.open({ client, bucket: name });
      await store.put("k", text("v"));
      assert.deepEqual(await store.get("k"), text("v"));
      await store.close();
    } finally {
      client.destroy();
      await deleteBucket(name, { server });
    }
  });

  it("a missing bucket is not_found at open, whatever the options, and is not created", async () => {
    const missing = uniqueBucket("missing");
    const err = await assertKind(openStore(storeUrl(server, missing)), "not_found");
    assert.match(err.message, /bucket ".*" does not exist/);
    for (const query of ["&versioning=false&conditionalWrites=false", "&versioning=false", "&conditionalWrites=false"]) {
      await assertKind(openStore(`${storeUrl(server, missing)}${query}`), "not_found", query);
    }
    await assert.rejects(adminClient(server).send(new HeadBucketCommand({ Bucket: missing })), (e: Error) => e.name === "NotFound");
  });
});

// The shared s3rver is this file's (a child process): stop it, or the test process never exits.
after(async () => {
  if (!process.env.S3_ENDPOINT) await (await sharedS3Server()).stop();
});
