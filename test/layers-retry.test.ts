import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore, StorageError, type GetOptions, type StorageErrorKind } from "../src/index.js";
import { LayerStore, withRetry, type RetryInfo } from "../src/layers/index.js";
import type { CleanPutOptions } from "../src/store.js";
import { assertKind, text } from "../src/testing/helpers.js";

/** A test double in front of a real store: its next `failures` calls throw `kind`. */
class Failing extends LayerStore {
  failures = 0;
  kind: StorageErrorKind = "transient";
  attempts = 0;
  /** getStream: fail after yielding this many chunks (undefined: never). */
  streamFailsAfter: number | undefined;
  #maybeFail(op: string): void {
    this.attempts++;
    if (this.failures > 0) {
      this.failures--;
      throw new StorageError(this.kind, "injected failure", { op });
    }
  }
  protected override async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    this.#maybeFail("get");
    return super._get(key, options);
  }
  protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    this.#maybeFail("put");
    return super._put(key, data, options);
  }
  protected override async _putStream(key: string, source: AsyncIterable<Uint8Array>, options: CleanPutOptions): Promise<void> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of source) chunks.push(chunk); // consume the body, as a store would
    this.#maybeFail("putStream");
    return super._put(key, Buffer.concat(chunks), options);
  }
  protected override async _getStream(key: string, options: GetOptions): Promise<AsyncIterable<Uint8Array>> {
    return this.#bytewise(await super._get(key, options));
  }
  async *#bytewise(value: Uint8Array): AsyncGenerator<Uint8Array> {
    this.#maybeFail("getStream"); // fails on the first read, as lazy streams do
    for (let i = 0; i < value.byteLength; i++) {
      if (this.streamFailsAfter !== undefined && i === this.streamFailsAfter) throw new StorageError("transient", "stream broke", { op: "getStream" });
      yield value.subarray(i, i + 1);
    }
  }
}

describe("retry layer", () => {
  it("retries transient failures until one succeeds", async () => {
    const inner = new Failing(new MemoryStore());
    const retries: RetryInfo[] = [];
    const store = withRetry(inner, { baseDelayMs: 1, onRetry: (info) => retries.push(info) });
    inner.failures = 2;
    await store.put("k", text("v"));
    assert.equal(inner.attempts, 3);
    assert.deepEqual(retries.map((r) => [r.op, r.key, r.attempt]), [["put", "k", 1], ["put", "k", 2]]);
    inner.failures = 3;
    assert.deepEqual(await store.get("k"), text("v"));
  });

  it("never retries other kinds", async () => {
    for (const kind of ["invalid", "not_found", "fatal", "unsupported"] as const) {
      const inner = new Failing(new MemoryStore());
      inner.kind = kind;
      inner.failures = 1;
      await assertKind(withRetry(inner, { baseDelayMs: 1 }).get("k"), kind);
      assert.equal(inner.attempts, 1, kind);
    }
  });

  it("gives up after maxAttempts with the last transient error", async () => {
    const inner = new Failing(new MemoryStore());
    inner.failures = 100;
    const err = await assertKind(withRetry(inner, { maxAttempts: 3, baseDelayMs: 1 }).get("k"), "transient");
    assert.match(err.message, /injected failure/);
    assert.equal(inner.attempts, 3);
  });

  it("backs off exponentially, capped by maxDelayMs, with full jitter in [0, cap)", async () => {
    const delays = async (jitter: boolean) => {
      const inner = new Failing(new MemoryStore());
      inner.failures = 5;
      const seen: number[] = [];
      await withRetry(inner, { maxAttempts: 6, baseDelayMs: 2, maxDelayMs: 8, jitter, onRetry: (i) => seen.push(i.delayMs) }).put("k", text("v"));
      return seen;
    };
    assert.deepEqual(await delays(false), [2, 4, 8, 8, 8]);
    const jittered = await delays(true);
    [2, 4, 8, 8, 8].forEach((cap, i) => assert.ok(jittered[i]! >= 0 && jittered[i]! < cap, `delay ${jittered[i]} for cap ${cap}`));
  });

  it("stops when the next backoff would pass maxElapsedMs", async () => {
    const inner = new Failing(new MemoryStore());
    inner.failures = 100;
    const start = performance.now();
    await assertKind(withRetry(inner, { maxAttempts: 100, baseDelayMs: 100, maxDelayMs: 10_000, maxElapsedMs: 350, jitter: false }).get("k"), "transient");
    const took = performance.now() - start;
    // Backoffs 100 + 200 fit in 350 ms, 400 more would not: three attempts, ~300 ms, and no
    // wait for the backoff it gave up on (that would end past 700 ms; the slack is for a
    // loaded machine's timers).
    assert.equal(inner.attempts, 3);
    assert.ok(took < 650, `took ${took} ms`);
  });

  it("an abort during a backoff rejects at once with the signal's reason", async () => {
    const inner = new Failing(new MemoryStore());
    inner.failures = 100;
    const controller = new AbortController();
    const reason = new Error("user cancelled");
    setTimeout(() => controller.abort(reason), 30);
    const start = performance.now();
    await assert.rejects(withRetry(inner, { baseDelayMs: 5_000, jitter: false }).get("k", { signal: controller.signal }), (err) => err === reason);
    assert.ok(performance.now() - start < 1_000);
    assert.equal(inner.attempts, 1);
  });

  it("runs putStream once: a consumed body is never replayed", async () => {
    const inner = new Failing(new MemoryStore());
    inner.failures = 1;
    let reads = 0;
    const body = (async function* () {
      reads++;
      yield text("once");
    })();
    await assertKind(withRetry(inner, { baseDelayMs: 1 }).putStream("k", body), "transient");
    assert.equal(inner.attempts, 1);
    assert.equal(reads, 1);
  });

  it("retries getStream before its first chunk, never after", async () => {
    const inner = new Failing(new MemoryStore());
    await inner.put("k", text("abcdef"));
    inner.attempts = 0;
    const store = withRetry(inner, { baseDelayMs: 1 });
    inner.failures = 2;
    const chunks: Uint8Array[] = [];
    for await (const c of await store.getStream("k")) chunks.push(c);
    assert.equal(Buffer.concat(chunks).toString(), "abcdef");
    assert.equal(inner.attempts, 3);

    inner.attempts = 0;
    inner.streamFailsAfter = 2;
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of await store.getStream("k")) got.push(Buffer.from(c).toString());
      })(),
      (err: unknown) => err instanceof StorageError && err.kind === "transient" && /stream broke/.test(err.message),
    );
    assert.deepEqual(got, ["a", "b"]);
    assert.equal(inner.attempts, 1);
  });

  it("refuses bad options", () => {
    assert.throws(() => withRetry(new MemoryStore(), { maxAttempts: 0 }), /maxAttempts/);
    assert.throws(() => withRetry(new MemoryStore(), { baseDelayMs: -1 }), /baseDelayMs/);
  });
});

describe("retry: one logical write", () => {
  /** Records the options every put attempt carried, and applies the write before failing. */
  class Ambiguous extends LayerStore {
    seen: CleanPutOptions[] = [];
    lostReplies = 0;
    protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
      this.seen.push(options);
      await super._put(key, data, options);
      if (this.lostReplies > 0) {
        this.lostReplies--;
        throw new StorageError("transient", "reply lost after the write took effect", { op: "put", key });
      }
    }
  }

  it("gives every attempt of one call the same writeId, and each call its own", async () => {
    const inner = new Ambiguous(new MemoryStore());
    const store = withRetry(inner, { baseDelayMs: 1 });
    inner.lostReplies = 2;
    await store.put("k", text("v"));
    assert.equal(inner.seen.length, 3);
    const ids = new Set(inner.seen.map((o) => o.writeId));
    assert.equal(ids.size, 1);
    assert.equal(typeof [...ids][0], "string");
    await store.put("k", text("w"));
    assert.notEqual(inner.seen[3]!.writeId, inner.seen[0]!.writeId);
    await store.put("k", text("x"), { writeId: "caller-chosen" });
    assert.equal(inner.seen[4]!.writeId, "caller-chosen");
  });

  it("a conflict after an attempt without an answer says the write may be its own", async () => {
    const inner = new Ambiguous(new MemoryStore());
    const store = withRetry(inner, { baseDelayMs: 1 });
    inner.lostReplies = 1;
    const err = await assertKind(store.put("k", text("v"), { ifNoneMatch: "*" }), "conflict");
    assert.match(err.message, /earlier attempt .* may have applied this write/);
    assert.deepEqual(await store.get("k"), text("v"));
  });
});

describe("batches without a native putMany", () => {
  it("give each entry a write id of its own, derived from the batch's", async () => {
    const seen: (string | undefined)[] = [];
    // The memory store has no native batches: BaseStore's fallback puts entry by entry.
    class Recording extends MemoryStore {
      protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
        seen.push(options.writeId);
        return super._put(key, data, options);
      }
    }
    const store = new Recording();
    await store.putMany([{ key: "a", data: text("1") }, { key: "b", data: text("2") }], { writeId: "batch" });
    assert.deepEqual(seen.sort(), ["batch.0", "batch.1"]);
  });
});
