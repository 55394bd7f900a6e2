import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { StorageError, openStore, parseStoreUrl, redactUrl, registeredSchemes } from "../src/index.js";
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
});
