/**
 * Direct object requests (src/backends/s3/direct.ts) against s3rver: which requests skip the
 * SDK's middleware, that they store and return the same bytes and metadata, and that every
 * failure is re-sent through the SDK and classified as before. A recording request handler
 * tells the two paths apart: the SDK puts an `amz-sdk-invocation-id` header on every request,
 * direct requests do not.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { GetObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Readable } from "node:stream";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { HttpHandlerOptions } from "@smithy/types";
import { openStore } from "../src/open.js";
import type { S3Store } from "../src/backends/s3.js";
import { escapeKey } from "../src/backends/s3/direct.js";
import { assertKind, patterned, text } from "../src/testing/helpers.js";
import { adminClient, createBucket, deleteBucket, sharedS3Server, storeUrl, uniqueBucket, type S3ServerHandle } from "./fixtures/s3.js";
import { requestLines, startVerifyingProxy } from "./fixtures/sigv4-proxy.js";

type HttpRequest = Parameters<NodeHttpHandler["handle"]>[0];

interface Seen {
  method: string;
  path: string;
  viaSdk: boolean;
}

type Handled = Awaited<ReturnType<NodeHttpHandler["handle"]>>;

/**
 * The SDK's Node handler, recording each request, failing the ones `fail` picks, spoiling the
 * authorization of the ones `spoil` picks and cutting short the response bodies `cut` picks (the
 * first 10 bytes, then the stream closes).
 */
class RecordingHandler extends NodeHttpHandler {
  readonly seen: Seen[] = [];
  fail: ((request: HttpRequest, viaSdk: boolean) => Error | undefined) | undefined;
  cut: ((request: HttpRequest, viaSdk: boolean) => boolean) | undefined;
  spoil: ((request: HttpRequest, viaSdk: boolean) => boolean) | undefined;

  override async handle(request: HttpRequest, options?: HttpHandlerOptions): Promise<Handled> {
    const viaSdk = request.headers["amz-sdk-invocation-id"] !== undefined;
    this.seen.push({ method: request.method, path: request.path, viaSdk });
    const failure = this.fail?.(request, viaSdk);
    if (failure) throw failure;
    // A key id s3rver does not know (it checks that, not the signature) and a wrong signature.
    if (this.spoil?.(request, viaSdk)) {
      request.headers.authorization = (request.headers.authorization ?? "").replace(/Credential=[^/]+/, "Credential=SPOILT").replace(/Signature=\w+/, `Signature=${"0".repeat(64)}`);
    }
    const handled = await super.handle(request, options);
    if (!this.cut?.(request, viaSdk)) return handled;
    const full = handled.response.body as Readable;
    const short = new Readable({ read() {} });
    full.once("data", (chunk: Buffer) => {
      full.destroy();
      short.push(chunk.subarray(0, 10));
      setImmediate(() => short.destroy());
    });
    handled.response.body = short;
    return handled;
  }

  /** What was sent since the last call. */
  take(): Seen[] {
    return this.seen.splice(0);
  }
}

const KEYS = ["plain", "with space/and ü", "odd !'()*+%&=?#;,@$[]~", "dots/.x/..y/z.", "emoji/🦆"];

describe("s3 direct object requests (s3rver)", () => {
  let server: S3ServerHandle;
  const buckets: string[] = [];
  const open = async (s3: Record<string, unknown> = {}, prefix = "") => {
    const handler = new RecordingHandler();
    const bucket = uniqueBucket("direct");
    await createBucket(bucket, { server });
    buckets.push(bucket);
    const store = (await openStore(storeUrl(server, bucket, prefix), { s3: { ...s3, clientConfig: { requestHandler: handler } } })) as S3Store;
    return { store, handler, bucket };
  };

  before(async () => {
    server = await sharedS3Server();
  });
  after(async () => {
    for (const bucket of buckets) await deleteBucket(bucket, { server }).catch(() => undefined);
    await server.stop(); // a no-op for S3_ENDPOINT
  });

  it("escapes keys in URL paths exactly as the SDK does", async () => {
    const client = new S3Client({ region: "us-east-1", endpoint: "http://127.0.0.1:9", forcePathStyle: true, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
    const stop = new Error("captured");
    let path = "";
    client.middlewareStack.add(
      (_next, _context) => async (args) => {
        path = (args.request as HttpRequest).path;
        throw stop;
      },
      { step: "build", name: "capturePath" },
    );
    try {
      for (const key of [...KEYS, "a//b", "/lead", "trail/", "tab\tnewline\n", "\u{10ffff}", "percent%2F"]) {
        await assert.rejects(client.send(new GetObjectCommand({ Bucket: "bucket", Key: key })), (err) => err === stop);
        assert.equal(path, `/bucket/${escapeKey(key)}`, JSON.stringify(key));
      }
    } finally {
      client.destroy();
    }
  });

  it("after the first object request, puts, gets and deletes skip the SDK, byte-exact, with metadata", async () => {
    const { store, handler } = await open();
    try {
      assert.deepEqual(requestLines(handler.take()), ["GET sdk"], "open asks the bucket's versioning through the SDK");
      await store.put("first", text("learns the endpoint"));
      assert.deepEqual(requestLines(handler.take()), ["PUT sdk"]);

      const values = [new Uint8Array(0), patterned(1024, 1), patterned(1024 * 1024 + 7, 2)];
      for (const [i, key] of KEYS.entries()) {
        const data = values[i % values.length] as Uint8Array;
        await store.put(key, data, { metadata: { note: `héllo ${i}`, plain: "x" } });
        assert.deepEqual(await store.get(key), data, key);
        assert.deepEqual((await store.stat(key)).metadata, { note: `héllo ${i}`, plain: "x" }, key);
      }
      assert.deepEqual(requestLines(handler.take()), KEYS.flatMap(() => ["PUT direct", "GET direct", "HEAD sdk"]));
      assert.deepEqual((await store.list("")).sort(), ["first", ...KEYS].sort());

      await assertKind(store.get("missing"), "not_found");
      assert.deepEqual(await store.getMany(["plain", "missing"]), [values[0], undefined]);
      for (const key of KEYS) await store.delete(key);
      await store.delete("never-there");
      handler.take();
      for (const key of KEYS) await assertKind(store.get(key), "not_found");
      assert.deepEqual(requestLines(handler.take()), KEYS.map(() => "GET direct"), "a missing key is answered without the SDK");
      assert.deepEqual(await store.list(""), ["first"]);
    } finally {
      await store.close();
    }
  });

  it("signs every direct request as it goes on the wire (a proxy recomputes each signature)", async () => {
    const proxy = await startVerifyingProxy(server);
    const handler = new RecordingHandler();
    const bucket = uniqueBucket("signed");
    await createBucket(bucket, { server });
    buckets.push(bucket);
    const store = await openStore(storeUrl({ ...server, endpoint: proxy.endpoint }, bucket, "pre fix/ü"), { s3: { clientConfig: { requestHandler: handler } } });
    try {
      const keys = ["plain", "sp ace/ü", "odd !'()*+%&=?#;,@$[]~", "emoji/🦆", "nbsp\u00a0and~tilde"];
      for (const key of keys) {
        await store.put(key, text(key), { metadata: { note: "héllo wörld", plain: "a  b" } });
        assert.deepEqual(await store.get(key), text(key));
      }
      await store.putMany(Array.from({ length: 1003 }, (_, i) => ({ key: `many/${String(i).padStart(4, "0")}`, data: text(String(i)) })));
      assert.equal((await store.list("many/")).length, 1003, "two pages: the second one asks with a continuation token");
      assert.deepEqual(await store.listPage("many/", { limit: 2, after: "many/0500" }), { keys: ["many/0501", "many/0502"], next: "many/0502" });
      assert.deepEqual(await store.list("odd"), ["odd !'()*+%&=?#;,@$[]~"]);
      await assertKind(store.get("missing/é"), "not_found");
      for (const key of keys) await store.delete(key);
      assert.deepEqual(proxy.refused, []);
      const sent = handler.take();
      assert.ok(sent.filter((s) => !s.viaSdk).length > 1000, "the requests above went direct");
      assert.ok(proxy.verified >= sent.length);

      // The proxy does refuse a request whose signature is wrong (and the SDK then serves it).
      handler.spoil = (_request, viaSdk) => !viaSdk;
      assert.deepEqual(await store.get("many/0001"), text("1"));
      assert.deepEqual(requestLines(handler.take()), ["GET direct", "GET sdk"]);
      assert.equal(proxy.refused.length, 1);
    } finally {
      handler.spoil = undefined;
      await store.close();
      await proxy.stop();
    }
  });

  it("lists pages directly: the same keys as through the SDK, across pages, XML-special characters included", async () => {
    const { store, handler } = await open({ versioning: false });
    const viaSdk = (await openStore(storeUrl(server, store.bucket), { s3: { versioning: false, directRequests: false } })) as S3Store;
    try {
      const keys = ["a&b", "a<b>", `q"uote'`, "sp ace", "ü/ñ", "emoji/🦆", "plus+", "pct%41", ...Array.from({ length: 1203 }, (_, i) => `many/${String(i).padStart(5, "0")}`)];
      await store.putMany(keys.map((key) => ({ key, data: text(key) })));
      handler.take();
      const listed = await store.list("");
      assert.deepEqual(listed, await viaSdk.list(""));
      assert.deepEqual([...listed].sort(), [...keys].sort());
      assert.deepEqual(requestLines(handler.take()), ["GET direct", "GET direct"], "two pages, both direct");
      const page = await store.listPage("many/", { limit: 500, after: "many/00100" });
      assert.deepEqual(page, await viaSdk.listPage("many/", { limit: 500, after: "many/00100" }));
      assert.equal(page.keys[0], "many/00101");
      assert.deepEqual(await store.list("a"), ["a&b", "a<b>"]);
      assert.ok(handler.take().every((s) => !s.viaSdk));

      handler.fail = (_request, sdk) => (sdk ? undefined : Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }));
      assert.deepEqual(await store.list("a"), ["a&b", "a<b>"]);
      assert.deepEqual(requestLines(handler.take()), ["GET direct", "GET sdk"]);
    } finally {
      handler.fail = undefined;
      await viaSdk.close();
      await store.close();
    }
  });

  it("under a prefix, direct requests address prefix + key", async () => {
    const { store, handler, bucket } = await open({}, "tenant/a");
    const admin = adminClient(server); // cached per server: not destroyed here
    try {
      await store.put("k0", text("zero"));
      await store.put("sub/k1", text("one"));
      assert.deepEqual(requestLines(handler.take()).slice(-2), ["PUT sdk", "PUT direct"]);
      const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: "tenant/a/sub/k1" }));
      assert.equal(head.ContentLength, 3);
      assert.equal(head.ContentType, "application/octet-stream", "as the SDK sends it");
      assert.deepEqual(await store.get("sub/k1"), text("one"));
    } finally {
      await store.close();
    }
  });

  it("re-sends through the SDK what fails directly: a dropped connection, a body cut short, then a missing bucket (fatal)", async () => {
    const { store, handler, bucket } = await open({ versioning: false });
    try {
      await store.put("k", text("v"));
      handler.fail = (_request, viaSdk) => (viaSdk ? undefined : Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }));
      await store.put("k2", text("v2"));
      assert.deepEqual(await store.get("k2"), text("v2"));
      await store.delete("k2");
      assert.deepEqual(requestLines(handler.take()).slice(1), ["PUT direct", "PUT sdk", "GET direct", "GET sdk", "DELETE direct", "DELETE sdk"]);

      handler.fail = undefined;
      await store.put("big", patterned(300_000, 5));
      handler.cut = (request, viaSdk) => !viaSdk && request.method === "GET";
      assert.deepEqual(await store.get("big"), patterned(300_000, 5), "a body cut short is fetched again");
      assert.deepEqual(await store.list(""), ["big", "k"]);
      assert.deepEqual(requestLines(handler.take()).slice(1), ["GET direct", "GET sdk", "GET direct", "GET sdk"]);
      handler.cut = undefined;
      await deleteBucket(bucket, { server });
      const err = await assertKind(store.get("k"), "fatal");
      assert.match(err.message, /does not exist/);
      assert.deepEqual(requestLines(handler.take()), ["GET direct", "GET sdk"], "404 NoSuchBucket is not a missing key: the SDK classifies it");
      await assertKind(store.put("k", text("again")), "fatal");
    } finally {
      await store.close();
    }
  });

  it("keeps to the SDK after three refusals in a row that the SDK then served (failures do not count)", async () => {
    const { store, handler } = await open({ versioning: false });
    try {
      await store.put("k", text("v"));
      handler.take();
      // The server refuses a spoilt authorization (403); the SDK's own request passes.
      handler.spoil = (_request, viaSdk) => !viaSdk;
      await store.get("k");
      await store.get("k");
      handler.spoil = undefined;
      await store.get("k");
      assert.deepEqual(requestLines(handler.take()), ["GET direct", "GET sdk", "GET direct", "GET sdk", "GET direct"], "a success resets the count");
      handler.spoil = (_request, viaSdk) => !viaSdk;
      for (let i = 0; i < 3; i++) assert.deepEqual(await store.get("k"), text("v"));
      await store.put("k2", text("v2"));
      assert.deepEqual(await store.list(""), ["k", "k2"]);
      assert.deepEqual(requestLines(handler.take()), ["GET direct", "GET sdk", "GET direct", "GET sdk", "GET direct", "GET sdk", "PUT sdk", "GET sdk"]);
    } finally {
      handler.spoil = undefined;
      await store.close();
    }
  });

  it("an abort during a direct request rejects with the reason and sends nothing more", async () => {
    const { store, handler } = await open();
    try {
      await store.put("k", patterned(256 * 1024, 3));
      handler.take();
      for (const op of [(signal: AbortSignal) => store.get("k", { signal }), (signal: AbortSignal) => store.put("k2", patterned(256 * 1024, 4), { signal })]) {
        const controller = new AbortController();
        const reason = new Error("enough");
        const pending = op(controller.signal);
        controller.abort(reason);
        await assert.rejects(pending, (err) => err === reason);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(handler.take().every((s) => !s.viaSdk), "no SDK re-send after an abort");
      assert.deepEqual(await store.get("k"), patterned(256 * 1024, 3));
    } finally {
      await store.close();
    }
  });

  it("signs the body's SHA-256 over HTTP, UNSIGNED-PAYLOAD over HTTPS (where TLS protects it) and to a loopback address", async () => {
    // A handler that answers every request itself: 200 with an empty body, no network.
    class Answering extends RecordingHandler {
      readonly payloadHashes: string[] = [];
      override async handle(request: HttpRequest) {
        this.seen.push({ method: request.method, path: request.path, viaSdk: request.headers["amz-sdk-invocation-id"] !== undefined });
        this.payloadHashes.push(request.headers["x-amz-content-sha256"] ?? "");
        return { response: { statusCode: 200, reason: "OK", headers: { etag: '"e"' }, body: Readable.from([]) } } as unknown as Awaited<ReturnType<NodeHttpHandler["handle"]>>;
      }
    }
    const data = text("payload");
    const sha = "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5";
    const endpoints = [
      ["http://s3.test:9000", sha],
      ["http://10.1.2.3:9000", sha],
      ["https://s3.test", "UNSIGNED-PAYLOAD"],
      ["http://127.0.0.1:9", "UNSIGNED-PAYLOAD"],
      ["http://localhost:9", "UNSIGNED-PAYLOAD"],
      ["http://[::1]:9", "UNSIGNED-PAYLOAD"],
    ] as const;
    for (const [endpoint, expected] of endpoints) {
      const handler = new Answering();
      const url = `s3://bucket?${new URLSearchParams({ endpoint, region: "us-east-1", forcePathStyle: "true", versioning: "false" })}`;
      const store = await openStore(url, { s3: { credentials: { accessKeyId: "a", secretAccessKey: "b" }, clientConfig: { requestHandler: handler } } });
      try {
        await store.put("k", data);
        await store.put("k", data);
        assert.deepEqual(requestLines(handler.take()), ["PUT sdk", "PUT direct"]);
        assert.equal(handler.payloadHashes[1], expected, endpoint);
        assert.equal(handler.payloadHashes[0], sha, "the SDK signs the body either way");
      } finally {
        await store.close();
      }
    }
  });

  it("every request goes through the SDK with directRequests=false or the SDK's own checksums", async () => {
    for (const s3 of [{ directRequests: false }, { checksums: "WHEN_SUPPORTED" }]) {
      const { store, handler } = await open(s3);
      try {
        for (let i = 0; i < 3; i++) {
          await store.put(`k${i}`, text(`v${i}`));
          assert.deepEqual(await store.get(`k${i}`), text(`v${i}`));
          await store.delete(`k${i}`);
        }
        assert.ok(handler.take().every((s) => s.viaSdk), JSON.stringify(s3));
      } finally {
        await store.close();
      }
    }
    await assertKind(openStore(`${storeUrl(server, uniqueBucket())}&directRequests=perhaps`), "invalid");
  });
});
