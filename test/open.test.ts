import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { CachedStore, MemoryStore, StorageError, isStorageError, openStore, parseStoreUrl, redactUrl, registeredSchemes, withCache, withPrefix } from "../src/index.js";
import { assertInvalid } from "../src/testing/helpers.js";

describe("openStore", () => {
  it("refuses malformed URLs and unknown schemes with a message that names the problem", async () => {
    const cases: [unknown, RegExp][] = [
      ["", /non-empty/],
      ["   ", /non-empty/],
      [undefined, /non-empty/],
      ["no-scheme-here", /has no scheme/],
      ["./relative/path", /has no scheme/],
      ["ftp://host/x", /unknown store scheme "ftp:".*known schemes: .*memory:/],
      ["nats://[::1/bucket", /malformed|unknown/],
    ];
    for (const [url, message] of cases) {
      const err = await assertInvalid(openStore(url as string), String(url));
      assert.match(err.message, message);
      assert.equal(err.op, "open");
    }
  });

  it("never puts a password or token from the URL in an error", async () => {
    const err = await openStore("ftp://alice:s3cr3t-pw@host/x?token=tok-123").catch((e: unknown) => e);
    assert.ok(err instanceof StorageError);
    assert.doesNotMatch(err.message, /s3cr3t-pw|tok-123/);
    assert.match(err.message, /\*\*\*/);
  });

  it("redacts passwords and secret parameters", () => {
    assert.equal(redactUrl("nats://u:p@h:4222/B"), "nats://u:***@h:4222/B");
    assert.equal(redactUrl("s3://b?endpoint=x&secretAccessKey=abc"), "s3://b?endpoint=x&secretAccessKey=***");
    assert.doesNotMatch(redactUrl("not a url //user:pw@host"), /pw/);
  });

  it("knows memory: and parses URLs", async () => {
    assert.ok(registeredSchemes().includes("memory"));
    const store = await openStore("memory:");
    await store.close();
    const target = parseStoreUrl("NATS://h:1/B");
    assert.equal(target.scheme, "nats");
  });

  it("never shows a password that holds '/' or '@', in the message, the cause or an inspection", async () => {
    for (const url of ["postgres://alice:S3cr3t/PW@127.0.0.1:5432/test", "nats://alice:Pa55/word@127.0.0.1:4222/B"]) {
      const err = await openStore(url).catch((e: unknown) => e);
      assert.ok(isStorageError(err, "invalid"), `${url}: ${String(err)}`);
      const shown = inspect(err, { depth: 10 });
      assert.doesNotMatch(shown, /S3cr3t|Pa55|se@cr|cr\/et/, `${url} leaked: ${shown}`);
      assert.doesNotMatch(redactUrl(url), /S3cr3t|Pa55|se@cr/);
    }
  });

  it("refuses a malformed percent-escape with an invalid StorageError, not a URIError", async () => {
    const err = await openStore("nats://%E0%A4%A@127.0.0.1:1/B").catch((e: unknown) => e);
    assert.ok(isStorageError(err, "invalid"), String(err));
    assert.match((err as StorageError).message, /percent-escape/);
  });

  it("refuses unknown URL parameters, naming the known ones", async () => {
    const err = await assertInvalid(openStore("memory:?histroy=3"));
    assert.match(err.message, /unknown URL parameter "histroy"; known parameters: history/);
    await assertInvalid(openStore("memory:?history=three"));
    await assertInvalid(openStore("memory:?history=2&history=3"));
    const store = await openStore("memory:?history=3");
    assert.equal(store.capabilities.versions, true);
    await store.close();
  });

  it("types the store by the outermost layer asked for", async () => {
    const cached = await openStore("memory:", { cache: { maxEntries: 10 } });
    assert.ok(cached instanceof CachedStore);
    await cached.ready; // these two lines type-check only when the type is CachedStore
    assert.equal(cached.cacheStats().hits, 0);
    await cached.close();
  });
});

describe("StorageError", () => {
  it("is recognised across copies of the package by its brand", () => {
    const foreign = Object.assign(Object.create(Object.getPrototypeOf(new StorageError("fatal", "x", { op: "get" })) as object), { kind: "not_found" });
    assert.ok(isStorageError(foreign, "not_found"));
    assert.ok(!isStorageError(new Error("plain")));
    assert.ok(!isStorageError({ kind: "invalid" }));
    assert.ok(!isStorageError(null));
  });
});

describe("values a store returns own their memory", () => {
  it("a cache hit's buffer holds only that value, even across tenants sharing one process", async () => {
    const backing = new MemoryStore();
    const tenantA = withCache(withPrefix(backing, "a/"), { invalidateFromWatch: false });
    const tenantB = withCache(withPrefix(backing, "b/"), { invalidateFromWatch: false });
    await tenantA.put("secret", new TextEncoder().encode("tenant A's secret"));
    await tenantB.put("public", new TextEncoder().encode("hello"));
    await tenantA.get("secret");
    await tenantB.get("public");
    const hit = await tenantB.get("public"); // served from the cache
    assert.ok(tenantB.cacheStats().hits >= 1);
    assert.equal(hit.byteOffset, 0);
    assert.equal(hit.buffer.byteLength, hit.byteLength, "the buffer holds more than the value");
    assert.doesNotMatch(Buffer.from(hit.buffer).toString("latin1"), /secret/);
    await tenantA.close();
    await tenantB.close();
  });
});
