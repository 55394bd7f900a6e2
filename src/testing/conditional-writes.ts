import assert from "node:assert/strict";
import { StorageError } from "../errors.js";
import type { Store } from "../types.js";
import { assertInvalid, assertKind, patterned, text } from "./helpers.js";
import type { SuiteContext } from "./runner.js";

/** Etags, `ifMatch` and `ifNoneMatch` on put, putStream, putMany and delete. */
export function conditionalWriteTests(ctx: SuiteContext): void {
  const { describe, it, ns } = ctx;
  let store!: Store;
  ctx.onSetUp((s) => (store = s));
  const etagOf = async (key: string) => (await store.stat(key)).etag;
  const value = async (key: string) => Buffer.from(await store.get(key)).toString();

  describe("conditional writes", () => {
    it("stat gives an etag that changes when the value changes", async (skip) => {
      if (!store.capabilities.stat) return skip("no stat capability");
      const key = `${ns()}etag`;
      await store.put(key, text("one"));
      const first = await etagOf(key);
      assert.equal(typeof first, "string");
      assert.ok(first.length > 0, "empty etag");
      assert.equal(await etagOf(key), first, "the etag changed without a write");
      await store.put(key, text("two"));
      assert.notEqual(await etagOf(key), first);
    });

    it("a condition on a store without conditional writes is unsupported and writes nothing", async (skip) => {
      if (store.capabilities.conditionalWrites) return skip("the store has conditional writes");
      const key = `${ns()}unsupported`;
      await assertKind(store.put(key, text("x"), { ifNoneMatch: "*" }), "unsupported");
      await assertKind(store.putStream(key, [text("x")], { ifMatch: "abc" }), "unsupported");
      await assertKind(store.delete(key, { ifMatch: "abc" }), "unsupported");
      assert.deepEqual(await store.list(key), []);
    });

    it("refuses malformed conditions as invalid", async () => {
      const key = `${ns()}bad-condition`;
      await assertInvalid(store.put(key, text("x"), { ifNoneMatch: "abc" as "*" }), "ifNoneMatch other than *");
      await assertInvalid(store.put(key, text("x"), { ifMatch: "" }), "empty ifMatch");
      await assertInvalid(store.put(key, text("x"), { ifMatch: 42 as unknown as string }), "numeric ifMatch");
      await assertInvalid(store.put(key, text("x"), { ifMatch: "a", ifNoneMatch: "*" }), "both conditions");
      await assertInvalid(store.delete(key, { ifMatch: "" }), "empty ifMatch on delete");
      assert.deepEqual(await store.list(key), []);
    });

    describe("where the store has them", () => {
      const gated = (name: string, body: () => Promise<void>) =>
        it(name, async (skip) => {
          if (!store.capabilities.conditionalWrites) return skip("no conditionalWrites capability");
          await body();
        });

      gated("ifNoneMatch: '*' creates a missing key and refuses an existing one with conflict", async () => {
        const key = `${ns()}create`;
        await store.put(key, text("first"), { ifNoneMatch: "*" });
        const err = await assertKind(store.put(key, text("second"), { ifNoneMatch: "*" }), "conflict");
        assert.equal(err.op, "put");
        assert.equal(err.key, key);
        assert.equal(await value(key), "first");
      });

      gated("ifMatch writes only over the etag it names", async () => {
        const key = `${ns()}match`;
        await store.put(key, text("v1"));
        const v1 = await etagOf(key);
        await store.put(key, text("v2"), { ifMatch: v1 });
        assert.equal(await value(key), "v2");
        await assertKind(store.put(key, text("v3"), { ifMatch: v1 }), "conflict");
        assert.equal(await value(key), "v2");
        await store.put(key, text("v3"), { ifMatch: await etagOf(key) });
        assert.equal(await value(key), "v3");
      });

      gated("ifMatch on a missing key is a conflict and creates nothing", async () => {
        const key = `${ns()}missing`;
        await store.put(`${key}-other`, text("x"));
        const etag = await etagOf(`${key}-other`);
        await assertKind(store.put(key, text("x"), { ifMatch: etag }), "conflict");
        await assertKind(store.get(key), "not_found");
      });

      gated("delete with ifMatch removes only the value it names", async () => {
        const key = `${ns()}delete`;
        await store.put(key, text("a"));
        const a = await etagOf(key);
        await store.put(key, text("b"));
        await assertKind(store.delete(key, { ifMatch: a }), "conflict");
        assert.equal(await value(key), "b");
        await store.delete(key, { ifMatch: await etagOf(key) });
        await assertKind(store.get(key), "not_found");
        await assertKind(store.delete(key, { ifMatch: a }), "conflict");
      });

      gated("a key can be created again with ifNoneMatch after it was deleted", async () => {
        const key = `${ns()}recreate`;
        await store.put(key, text("1"), { ifNoneMatch: "*" });
        await store.delete(key);
        await store.put(key, text("2"), { ifNoneMatch: "*" });
        assert.equal(await value(key), "2");
      });

      gated("putStream takes the same conditions", async () => {
        const key = `${ns()}stream`;
        const body = patterned(300_000, 7);
        await store.putStream(key, [body.subarray(0, 100_000), body.subarray(100_000)], { ifNoneMatch: "*" });
        await assertKind(store.putStream(key, [text("again")], { ifNoneMatch: "*" }), "conflict");
        const etag = await etagOf(key);
        await store.put(key, text("between"));
        await assertKind(store.putStream(key, [text("stale")], { ifMatch: etag }), "conflict");
        assert.equal(await value(key), "between");
        await store.putStream(key, [text("fresh")], { ifMatch: await etagOf(key) });
        assert.equal(await value(key), "fresh");
      });

      gated("putMany checks each entry's condition", async () => {
        const p = ns();
        await store.put(`${p}taken`, text("old"));
        await store.putMany([{ key: `${p}new`, data: text("n"), ifNoneMatch: "*" }]);
        assert.equal(await value(`${p}new`), "n");
        await assertKind(store.putMany([{ key: `${p}taken`, data: text("x"), ifNoneMatch: "*" }]), "conflict");
        assert.equal(await value(`${p}taken`), "old");
      });

      gated("of 50 concurrent ifNoneMatch creators of one key exactly one wins", async () => {
        const key = `${ns()}race-create`;
        const outcomes = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => store.put(key, text(`writer-${i}`), { ifNoneMatch: "*" })));
        const winners = outcomes.flatMap((o, i) => (o.status === "fulfilled" ? [i] : []));
        for (const o of outcomes) {
          if (o.status === "rejected") assert.ok(o.reason instanceof StorageError && o.reason.kind === "conflict", `a loser failed with ${String(o.reason)}`);
        }
        assert.equal(winners.length, 1, `${winners.length} creators won`);
        assert.equal(await value(key), `writer-${winners[0]}`);
      });

      gated("of 20 concurrent ifMatch updaters from one etag exactly one wins", async () => {
        const key = `${ns()}race-update`;
        await store.put(key, text("base"));
        const etag = await etagOf(key);
        const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => store.put(key, text(`update-${i}`), { ifMatch: etag })));
        const winners = outcomes.flatMap((o, i) => (o.status === "fulfilled" ? [i] : []));
        for (const o of outcomes) {
          if (o.status === "rejected") assert.ok(o.reason instanceof StorageError && o.reason.kind === "conflict", `a loser failed with ${String(o.reason)}`);
        }
        assert.equal(winners.length, 1, `${winners.length} updaters won`);
        assert.equal(await value(key), `update-${winners[0]}`);
      });
    });
  });
}
