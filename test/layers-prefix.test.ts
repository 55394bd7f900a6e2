import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, StorageError } from "../src/index.js";
import { withPrefix } from "../src/layers/index.js";
import { assertInvalid, assertKind, text } from "../src/testing/helpers.js";
import { testStore } from "../src/testing/index.js";

describe("prefix layer", () => {
  it("stores under the prefix and gives keys back relative to it", async () => {
    const inner = new MemoryStore();
    const tenant = withPrefix(inner, "tenants/a/");
    await tenant.put("config", text("1"));
    await tenant.put("logs/x", text("2"));
    await inner.put("tenants/b/config", text("other"));
    await inner.put("tenants/ab", text("sibling"));
    assert.deepEqual(await inner.list("tenants/a/"), ["tenants/a/config", "tenants/a/logs/x"]);
    assert.deepEqual(await tenant.list(""), ["config", "logs/x"]);
    assert.deepEqual(await tenant.list("lo"), ["logs/x"]);
    assert.deepEqual(await tenant.get("config"), text("1"));
    assert.equal((await tenant.stat("logs/x")).key, "logs/x");
    const all: string[] = [];
    for await (const k of tenant.keys("", { limit: 1 })) all.push(k);
    assert.deepEqual(all, ["config", "logs/x"]);
    const page = await tenant.listPage("", { limit: 1 });
    assert.deepEqual(page, { keys: ["config"], next: "config" });
    assert.deepEqual(await tenant.listPage("", { limit: 1, after: page.next }), { keys: ["logs/x"] });
    assert.deepEqual((await tenant.getMany(["config", "nope"])).map((v) => v && Buffer.from(v).toString()), ["1", undefined]);
    await tenant.deleteMany(["config"]);
    assert.deepEqual(await inner.list(""), ["tenants/a/logs/x", "tenants/ab", "tenants/b/config"]);
  });

  it("reports errors with the caller's key", async () => {
    const tenant = withPrefix(new MemoryStore(), "t/");
    const err = await assertKind(tenant.get("missing"), "not_found");
    assert.equal(err.key, "missing");
    assert.match(err.message, /^get "missing": /);
  });

  it("counts the prefix toward the key limit, and says so", async () => {
    const tenant = withPrefix(new MemoryStore(), "tenant/");
    const fits = "x".repeat(1024 - "tenant/".length);
    await tenant.put(fits, text("v"));
    const err = await assertInvalid(tenant.put(fits + "y", text("v")));
    assert.match(err.message, /prefix/);
    assert.equal(err.key, fits + "y");
  });

  it("refuses invalid prefixes", () => {
    for (const bad of ["", "/abs", "a/../b", "a/./", "nul\u0000"]) {
      assert.throws(() => withPrefix(new MemoryStore(), bad), (e: unknown) => e instanceof StorageError && e.kind === "invalid", JSON.stringify(bad));
    }
  });

  it("reports watch events relative to the prefix, and only its own", async () => {
    const inner = new MemoryStore();
    const tenant = withPrefix(inner, "a/");
    const controller = new AbortController();
    const feed = await tenant.watch("", { signal: controller.signal });
    await inner.put("b/x", text("not ours"));
    await tenant.put("k", text("v"));
    await tenant.delete("k");
    const events: string[] = [];
    for await (const e of feed) {
      events.push(`${e.op} ${e.key}`);
      if (events.length === 2) break;
    }
    assert.deepEqual(events, ["put k", "delete k"]);
  });

  it("keeps versions and streams under the prefix", async () => {
    const tenant = withPrefix(new MemoryStore({ history: 3 }), "v/");
    await tenant.put("k", text("one"));
    await tenant.putStream("k", [text("tw"), text("o")]);
    const versions = await tenant.versions("k");
    assert.equal(versions.length, 2);
    assert.deepEqual(await tenant.get("k", { version: versions[0]!.version }), text("one"));
    const chunks: Uint8Array[] = [];
    for await (const c of await tenant.getStream("k")) chunks.push(c);
    assert.equal(Buffer.concat(chunks).toString(), "two");
  });
});

testStore("prefix layer over memory", { open: async () => withPrefix(new MemoryStore(), "tenants/a/") });
