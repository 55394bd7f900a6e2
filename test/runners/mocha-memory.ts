// Run by test/conformance-runners.test.ts under mocha: the conformance suite must not depend on
// node:test. mocha puts describe/it/before/after (node:test's names) on globalThis.
// With STOWAGE_BROKEN=1 the store loses every other put, and the suite must fail.
import { MemoryStore } from "../../src/index.js";
import type { CleanPutOptions } from "../../src/store.js";
import { testStore, type TestRunner } from "../../src/testing/index.js";

class LosesWrites extends MemoryStore {
  #n = 0;
  protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    if (this.#n++ % 2 === 0) return super._put(key, data, options);
  }
}

const broken = process.env.STOWAGE_BROKEN === "1";
testStore(broken ? "a store that loses writes, under mocha" : "memory under mocha", {
  open: async () => (broken ? new LosesWrites({ history: 3 }) : new MemoryStore({ history: 3 })),
  runner: globalThis as unknown as TestRunner,
});
