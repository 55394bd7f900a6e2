import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, openStore } from "../src/index.js";
import { testStore } from "../src/testing/index.js";
import { assertInvalid, text } from "../src/testing/helpers.js";

testStore("memory", { open: async () => new MemoryStore() });
testStore("memory with history", { open: () => openStore("memory:?history=5") });

describe("memory backend", () => {
  it("keeps at most `history` versions", async () => {
    const store = new MemoryStore({ history: 3 });
    for (let i = 0; i < 5; i++) await store.put("k", text(`v${i}`));
    const versions = await store.versions("k");
    assert.equal(versions.length, 3);
    assert.deepEqual(await store.get("k", { version: versions[0]!.version }), text("v2"));
  });

  it("refuses a bad history setting", async () => {
    await assertInvalid(openStore("memory:?history=abc"));
    assert.throws(() => new MemoryStore({ history: 0 }), /history must be a positive integer/);
  });
});
