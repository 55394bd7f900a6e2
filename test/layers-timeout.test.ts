import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, StorageError, type GetOptions, type OperationOptions } from "../src/index.js";
import { LayerStore, withRetry, withTimeout } from "../src/layers/index.js";
import { sleep } from "../src/internal/signal.js";
import type { ChangeEvent } from "../src/types.js";
import type { CleanDeleteOptions, CleanPutOptions } from "../src/store.js";
import { assertKind, text } from "../src/testing/helpers.js";

/** A test double: a store that answers `get` after `delayMs` and can stall a stream. */
class Slow extends LayerStore {
  delayMs = 0;
  /** When true, the delay ignores the signal (a store that cannot cancel). */
  deaf = false;
  stallStreamAfterFirst = false;
  signals: (AbortSignal | undefined)[] = [];
  protected override async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    this.signals.push(options.signal);
    await sleep(this.delayMs, this.deaf ? undefined : options.signal);
    return super._get(key, options);
  }
  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    const value = await super._get(key, options);
    return this.#chunks(value, options.signal);
  }
  async *#chunks(value: Uint8Array, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    yield value.subarray(0, 1);
    if (this.stallStreamAfterFirst) await sleep(60_000, signal);
    yield value.subarray(1);
  }
  protected override async _watch(prefix: string, options: OperationOptions): Promise<AsyncIterable<ChangeEvent>> {
    await sleep(this.delayMs, this.deaf ? undefined : options.signal);
    return super._watch(prefix, options);
  }
}

describe("timeout layer", () => {
  it("a call past the deadline rejects with a transient 'timed out' error", async () => {
    const inner = new Slow(new MemoryStore());
    await inner.put("k", text("v"));
    inner.delayMs = 5_000;
    const start = performance.now();
    const err = await assertKind(withTimeout(inner, 50).get("k"), "transient");
    assert.match(err.message, /timed out after 50 ms/);
    assert.equal(err.op, "get");
    assert.equal(err.key, "k");
    assert.ok(performance.now() - start < 1_000);
    assert.equal(inner.signals[0]?.aborted, true, "the store was told to stop");
  });

  it("does not wait for a store that ignores the signal", async () => {
    const inner = new Slow(new MemoryStore());
    inner.delayMs = 3_000;
    inner.deaf = true;
    const start = performance.now();
    await assertKind(withTimeout(inner, 30).get("k"), "transient");
    assert.ok(performance.now() - start < 1_500);
  });

  it("a caller's abort rejects with the caller's reason, not a timeout", async () => {
    const inner = new Slow(new MemoryStore());
    inner.delayMs = 5_000;
    const controller = new AbortController();
    const reason = new Error("caller");
    setTimeout(() => controller.abort(reason), 20);
    await assert.rejects(withTimeout(inner, 2_000).get("k", { signal: controller.signal }), (err) => err === reason);
  });

  it("fast calls pass, values and errors unchanged", async () => {
    const store = withTimeout(new MemoryStore(), 1_000);
    await store.put("k", text("v"));
    assert.deepEqual(await store.get("k"), text("v"));
    await assertKind(store.get("missing"), "not_found");
  });

  it("bounds a stream's idle time, not its total time", async () => {
    const inner = new Slow(new MemoryStore());
    await inner.put("k", text("abc"));
    const store = withTimeout(inner, 80);
    const chunks: string[] = [];
    for await (const c of await store.getStream("k")) {
      chunks.push(Buffer.from(c).toString());
      await sleep(50); // slow consumer: each pause is under the deadline, the total is not
    }
    assert.deepEqual(chunks, ["a", "bc"]);
    inner.stallStreamAfterFirst = true;
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of await store.getStream("k")) seen.push(Buffer.from(c).toString());
      })(),
      (err: unknown) => err instanceof StorageError && err.kind === "transient" && /no data for 80 ms/.test(err.message),
    );
    assert.deepEqual(seen, ["a"]);
  });

  it("a watch outlives the deadline; only establishing it is bounded", async () => {
    const inner = new Slow(new MemoryStore());
    const store = withTimeout(inner, 50);
    const controller = new AbortController();
    const feed = await store.watch("", { signal: controller.signal });
    await sleep(100);
    await store.put("k", text("v"));
    const iterator = feed[Symbol.asyncIterator]();
    assert.equal((await iterator.next()).value?.key, "k");
    controller.abort();
    inner.delayMs = 5_000;
    await assertKind(store.watch(""), "transient");
  });

  it("under retry, each attempt gets the deadline and timeouts are retried", async () => {
    const inner = new Slow(new MemoryStore());
    await inner.put("k", text("v"));
    inner.delayMs = 5_000;
    let attempts = 0;
    const store = withRetry(withTimeout(inner, 30), { maxAttempts: 3, baseDelayMs: 1, onRetry: () => attempts++ });
    await assertKind(store.get("k"), "transient");
    assert.equal(attempts, 2);
    assert.equal(inner.signals.length, 3);
  });

  it("refuses a bad deadline", () => {
    for (const bad of [0, -5, NaN, Infinity]) assert.throws(() => withTimeout(new MemoryStore(), bad), /positive number/);
  });
});

describe("timeout: writes carry their deadline", () => {
  it("puts and deletes get a deadline of now + the timeout (or the caller's, if sooner)", async () => {
    const seen: (number | undefined)[] = [];
    class Recording extends LayerStore {
      protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
        seen.push(options.deadline);
        return super._put(key, data, options);
      }
      protected override async _delete(key: string, options: CleanDeleteOptions): Promise<void> {
        seen.push(options.deadline);
        return super._delete(key, options);
      }
    }
    const store = withTimeout(new Recording(new MemoryStore()), 5_000);
    const before = Date.now();
    await store.put("k", new Uint8Array(1));
    await store.delete("k");
    const soon = Date.now() + 100;
    await store.put("k", new Uint8Array(1), { deadline: soon });
    assert.ok(seen[0]! >= before + 5_000 && seen[0]! <= Date.now() + 5_000, String(seen[0]));
    assert.ok(seen[1]! >= before + 5_000);
    assert.equal(seen[2], soon);
  });
});
