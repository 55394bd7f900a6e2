/**
 * ClaimCheck on a memory store: pass-through, the reference and its headers, verification,
 * refusals, consume, and expiry (exactly the expired claims, at a cost bounded by them). The
 * same behaviour over real NATS and the NATS, file and PostgreSQL stores is in
 * claims-nats.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { headers, type MsgHdrs } from "@nats-io/nats-core";
import { ClaimCheck, CLAIM_HEADER, CLAIM_KEY_HEADER, FileStore, MemoryStore, type CheckedIn, type ClaimMessage, type ClaimReference, type Store } from "../src/index.js";
import { claimKey, claimTime } from "../src/claims/keys.js";
import { assertKind, collectBytes, patterned, text } from "../src/testing/helpers.js";
import { waitFor } from "./fixtures/services.js";

const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A message as a subscriber would see it: what `checkIn` returned. */
const asMessage = (out: CheckedIn): ClaimMessage => ({ data: out.data, headers: out.headers });

/** A message carrying `ref` (possibly altered) with the headers a claim check writes. */
function forged(ref: ClaimReference, body = text(JSON.stringify(ref))): ClaimMessage {
  const h = headers();
  h.set(CLAIM_HEADER, ref.storage_instance);
  h.set(CLAIM_KEY_HEADER, ref.key);
  return { data: body, headers: h };
}

function setup(options: { threshold?: number; ttl?: string | number; clock?: { now: number } } = {}) {
  const store = new MemoryStore();
  const clock = options.clock;
  const claims = new ClaimCheck({ store, instance: "media", prefix: "claims/", threshold: options.threshold ?? 100, ttl: options.ttl ?? "7d", ...(clock && { now: () => new Date(clock.now) }) });
  return { store, claims };
}

describe("ClaimCheck", () => {
  it("returns a payload at or under the threshold unchanged, headers and all", async () => {
    const { store, claims } = setup();
    const h = headers();
    h.set("X-Trace", "abc");
    for (const size of [0, 1, 99, 100]) {
      const payload = patterned(size, size);
      const out = await claims.checkIn(payload, { headers: h });
      assert.equal(out.data, payload, `${size} B: the same bytes object`);
      assert.equal(out.headers, h);
      assert.equal(out.claim, undefined);
      assert.equal(await claims.checkOut(asMessage(out)), payload);
    }
    assert.equal((await claims.checkIn(text("x"))).headers, undefined);
    assert.deepEqual(await store.list(""), [], "nothing stored");
  });

  it("stores a payload over the threshold and sends its reference with claim headers", async () => {
    const { store, claims } = setup();
    const payload = patterned(101, 7);
    const h = headers();
    h.append("X-Trace", "one");
    h.append("X-Trace", "two");
    h.set("Content-Encoding", "identity");
    const out = await claims.checkIn(payload, { headers: h, contentType: "image/png" });
    const ref = JSON.parse(new TextDecoder().decode(out.data)) as ClaimReference;
    assert.deepEqual(Object.keys(ref), ["storage_instance", "key", "content_type", "size", "sha256"]);
    assert.equal(ref.storage_instance, "media");
    assert.equal(ref.content_type, "image/png");
    assert.equal(ref.size, 101);
    assert.equal(ref.sha256, createHash("sha256").update(payload).digest("hex"));
    assert.deepEqual(out.claim, ref);
    assert.match(ref.key, /^claims\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/\d{8}T\d{6}\.\d{3}Z-[0-9a-z]{6}-[0-9a-z]{8}$/);
    assert.equal(out.headers?.get(CLAIM_HEADER), "media");
    assert.equal(out.headers?.get(CLAIM_KEY_HEADER), ref.key);
    assert.deepEqual(out.headers?.values("X-Trace"), ["one", "two"], "the caller's headers are kept");
    assert.equal(out.headers?.get("Content-Encoding"), "identity");
    assert.equal(h.has(CLAIM_HEADER), false, "the caller's headers are not changed");
    assert.deepEqual(await store.list(""), [ref.key]);
    assert.deepEqual((await store.stat(ref.key)).metadata, { "content-type": "image/png" });
    assert.deepEqual(await claims.checkOut(asMessage(out)), payload);
    assert.deepEqual(await collectBytes(await claims.checkOutStream(asMessage(out))), Buffer.from(payload));
    assert.equal(JSON.parse(new TextDecoder().decode((await claims.checkIn(patterned(200))).data)).content_type, "application/octet-stream");
  });

  it("reads a ByteSource in chunks: a short one passes through, a long one is claimed", async () => {
    const { claims } = setup();
    const short = [patterned(40, 1), patterned(60, 2)];
    const passed = await claims.checkIn(short);
    assert.equal(passed.claim, undefined);
    assert.deepEqual(passed.data, new Uint8Array(Buffer.concat(short)));
    const long = [patterned(60, 3), patterned(60, 4), patterned(500, 5)];
    async function* source() {
      yield* long;
    }
    const claimed = await claims.checkIn(source(), { contentType: "video/mp4" });
    assert.equal(claimed.claim?.size, 620);
    assert.equal(claimed.claim?.sha256, createHash("sha256").update(Buffer.concat(long)).digest("hex"));
    assert.deepEqual(await claims.checkOut(asMessage(claimed)), new Uint8Array(Buffer.concat(long)));
    assert.equal((await claims.checkIn([])).data.byteLength, 0, "an empty source is an empty payload");
  });

  it("stores nothing when the source fails midway", async () => {
    const { store, claims } = setup();
    async function* failing() {
      yield patterned(150);
      yield patterned(150);
      throw new Error("camera unplugged");
    }
    await assertKind(claims.checkIn(failing()), "invalid", "failing source");
    assert.deepEqual(await store.list(""), []);
  });

  it("a checkOutStream body released unread releases the store's body (no file left open)", async (t) => {
    if (!existsSync("/proc/self/fd")) return t.skip("counts descriptors in /proc/self/fd (Linux)");
    const root = await mkdtemp(join(tmpdir(), "stowage-claims-release-"));
    const store = await FileStore.open({ root });
    try {
      const claims = new ClaimCheck({ store, instance: "media", threshold: 100 });
      const message = asMessage(await claims.checkIn(patterned(300_000, 2)));
      const open = () => readdirSync("/proc/self/fd").length;
      const before = open();
      for (let i = 0; i < 30; i++) await (await claims.checkOutStream(message))[Symbol.asyncIterator]().return?.();
      await waitFor("the descriptors closed", async () => open() - before < 3, 2000);
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it("passes a message without a claim through checkOut, checkOutStream and consume", async () => {
    const { claims } = setup();
    const plain = { data: text("hello"), headers: headers() };
    assert.equal(await claims.checkOut(plain), plain.data);
    assert.equal(await claims.checkOut({ data: plain.data }), plain.data);
    assert.deepEqual(await collectBytes(await claims.checkOutStream(plain)), Buffer.from("hello"));
    const seen = [];
    for await (const m of claims.consume([plain][Symbol.iterator]() as unknown as AsyncIterable<typeof plain>)) seen.push(m);
    assert.equal(seen[0], plain, "the very same message");
  });

  it("refuses a claim whose digest or size does not match, naming the key", async () => {
    const { store, claims } = setup();
    const payload = patterned(1000, 9);
    const out = await claims.checkIn(payload);
    const ref = out.claim!;
    const cases: [string, ClaimReference][] = [
      ["wrong digest", { ...ref, sha256: createHash("sha256").update("other").digest("hex") }],
      ["size too small", { ...ref, size: ref.size - 1 }],
      ["size too large", { ...ref, size: ref.size + 1 }],
    ];
    for (const [label, bad] of cases) {
      const err = await assertKind(claims.checkOut(forged(bad)), "fatal", label);
      assert.ok(err.message.includes(ref.key), `${label}: the message names the key: ${err.message}`);
      assert.equal(err.key, ref.key);
      await assertKind(collectBytes(await claims.checkOutStream(forged(bad))), "fatal", `${label} (stream)`);
    }
    // The stored bytes changed under an intact reference.
    const altered = Uint8Array.from(payload);
    altered[500]! ^= 1;
    await store.put(ref.key, altered);
    await assertKind(claims.checkOut(asMessage(out)), "fatal", "altered value");
    await assertKind(collectBytes(await claims.checkOutStream(asMessage(out))), "fatal", "altered value (stream)");
  });

  it("stops reading a stream as soon as it exceeds the reference's size", async () => {
    const store = new MemoryStore();
    const claims = new ClaimCheck({ store, instance: "media", threshold: 0 });
    const ref = (await claims.checkIn(patterned(10))).claim!;
    await store.put(ref.key, patterned(100));
    const received: number[] = [];
    const stream = await claims.checkOutStream(forged(ref));
    await assertKind((async () => {
      for await (const chunk of stream) received.push(chunk.byteLength);
    })(), "fatal");
    assert.deepEqual(received, [], "no byte past the promised size reaches the consumer");
  });

  it("says a missing claim may have expired", async () => {
    const { store, claims } = setup({ ttl: "36h" });
    const out = await claims.checkIn(patterned(500));
    await store.delete(out.claim!.key);
    const err = await assertKind(claims.checkOut(asMessage(out)), "not_found");
    assert.match(err.message, /may have expired/);
    assert.match(err.message, /36h/);
    assert.equal(err.key, out.claim!.key);
    await assertKind(claims.checkOutStream(asMessage(out)), "not_found", "stream");
  });

  it("refuses claims it must not resolve: another instance, outside its prefix, damaged", async () => {
    const { store, claims } = setup();
    const ref = (await claims.checkIn(patterned(500))).claim!;
    await store.put("secrets/key", text("s3cr3t"));
    const outside = { ...ref, key: "secrets/key", size: 6, sha256: createHash("sha256").update("s3cr3t").digest("hex") };
    await assertKind(claims.checkOut(forged(outside)), "invalid", "outside the prefix");
    await assertKind(claims.checkOut(forged({ ...ref, storage_instance: "other" })), "invalid", "another instance");
    const mismatched = forged(ref);
    mismatched.headers!.set(CLAIM_KEY_HEADER, "claims/other");
    await assertKind(claims.checkOut(mismatched), "invalid", "header key differs from the body's");
    const wrongHeader = forged(ref);
    wrongHeader.headers!.set(CLAIM_HEADER, "other");
    await assertKind(claims.checkOut(wrongHeader), "invalid", "header instance differs from the body's");
    for (const body of ["not json", "[]", "{}", JSON.stringify({ ...ref, size: -1 }), JSON.stringify({ ...ref, sha256: "ABC" }), JSON.stringify({ ...ref, key: "/abs" })]) {
      await assertKind(claims.checkOut(forged(ref, text(body))), "invalid", body);
    }
  });

  it("validates its options and inputs", async () => {
    const store = new MemoryStore();
    const make = (extra: object) => () => new ClaimCheck({ store, instance: "media", ...extra });
    for (const bad of [{ instance: "" }, { instance: "a.b" }, { prefix: "claims" }, { prefix: "/claims/" }, { prefix: "a/../" }, { ttl: "soon" }, { ttl: -1 }, { threshold: "big" }, { threshold: -5 }]) {
      assert.throws(make(bad), (err: unknown) => err instanceof Error && (err as { kind?: string }).kind === "invalid", JSON.stringify(bad));
    }
    const claims = new ClaimCheck({ store, instance: "media", ttl: "12h", threshold: "1KiB" });
    assert.equal(claims.ttl, 12 * HOUR);
    assert.equal(claims.threshold(), 1024);
    assert.equal(claims.prefix, "claims/");
    assert.equal(new ClaimCheck({ store, instance: "media" }).threshold(), 512 * 1024, "512 KiB without a connection");
    assert.equal(new ClaimCheck({ store, instance: "media", connection: { info: { max_payload: 8 * 1024 * 1024 } as never } }).threshold(), 8 * 1024 * 1024 - 16 * 1024);
    await assertKind(claims.checkIn("text" as unknown as Uint8Array), "invalid", "a string payload");
    await assertKind(claims.checkIn(patterned(2000), { contentType: "a\nb" }), "invalid", "content type with a newline");
    await assertKind(claims.checkIn([patterned(2000), "x" as unknown as Uint8Array]), "invalid", "a string chunk");
  });

  it("consume yields messages with their bodies resolved and the original's methods", async () => {
    const { store, claims } = setup();
    class FakeJsMsg implements ClaimMessage {
      acked = 0;
      constructor(readonly data: Uint8Array, readonly headers: MsgHdrs | undefined, readonly subject: string) {}
      ack() {
        this.acked++;
      }
      string() {
        return new TextDecoder().decode(this.data);
      }
    }
    const doc = text(JSON.stringify({ frame: 1, pixels: "x".repeat(500) }));
    const claimed = await claims.checkIn(doc, { contentType: "application/json" });
    const small = await claims.checkIn(text("small"));
    const gone = await claims.checkIn(patterned(300));
    await store.delete(gone.claim!.key);
    const messages = [new FakeJsMsg(claimed.data, claimed.headers, "a"), new FakeJsMsg(small.data, small.headers, "b"), new FakeJsMsg(gone.data, gone.headers, "c")];
    async function* source() {
      yield* messages;
    }
    const failed: string[] = [];
    const out = [];
    for await (const m of claims.consume(source(), { onError: (err, msg) => void failed.push(`${err.kind}:${(msg as FakeJsMsg).subject}`) })) {
      out.push(m);
      m.ack();
    }
    assert.equal(out.length, 2);
    assert.deepEqual(out[0]!.data, doc);
    assert.equal(out[0]!.subject, "a");
    assert.deepEqual(out[0]!.claim, claimed.claim);
    assert.equal(out[0]!.string(), new TextDecoder().decode(doc), "string() decodes the resolved body");
    assert.equal(out[1], messages[1], "an unclaimed message is yielded as it is");
    assert.deepEqual(failed, ["not_found:c"]);
    assert.equal(messages[1]!.acked, 1);
    // Without onError, the failure ends the iteration.
    await assertKind((async () => {
      for await (const m of claims.consume(source())) void m;
    })(), "not_found");
  });
});

describe("claim keys", () => {
  it("sort by time and parse back; anything else is not a claim", () => {
    const a = claimKey("claims/", new Date(T0 + 5));
    const b = claimKey("claims/", new Date(T0 + 5));
    const c = claimKey("claims/", new Date(T0 + HOUR + 1));
    assert.ok(a < b && b < c);
    assert.equal(claimTime("claims/", a), T0 + 5);
    assert.equal(claimTime("claims/", c), T0 + HOUR + 1);
    assert.ok(c.startsWith("claims/2024/01/01/01/20240101T010000.001Z-"));
    for (const key of ["claims/README", "claims/2024/01/01/00/x", "claims/2024/01/01/01/20240101T000000.000Z-000000-abcdefgh", "claims/2024/02/30/00/20240230T000000.000Z-000000-abcdefgh", "other/2024/01/01/00/20240101T000000.000Z-000000-abcdefgh"]) {
      assert.equal(claimTime("claims/", key), undefined, key);
    }
  });
});

/** A store that counts its listing calls and the keys they returned. */
function counting(store: Store) {
  const counts = { lists: 0, keys: 0, deletes: 0 };
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "listPage") {
        return async (...args: Parameters<Store["listPage"]>) => {
          const page = await target.listPage(...args);
          counts.lists++;
          counts.keys += page.keys.length;
          return page;
        };
      }
      if (prop === "deleteMany") {
        return (keys: string[], options?: object) => {
          counts.deletes += keys.length;
          return target.deleteMany(keys, options);
        };
      }
      if (prop === "list" || prop === "keys") throw new Error(`expire must page with listPage, not ${String(prop)}`);
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: proxy, counts };
}

describe("ClaimCheck.expire", () => {
  it("deletes exactly the claims older than ttl, and never a younger one", async () => {
    const clock = { now: T0 };
    const { store, claims } = setup({ threshold: 0, ttl: "1h", clock });
    const made: { key: string; at: number }[] = [];
    for (let i = 0; i < 12; i++) {
      clock.now = T0 + i * 20 * MINUTE;
      made.push({ key: (await claims.checkIn(patterned(10, i))).claim!.key, at: clock.now });
    }
    await store.put("claims/README", text("not a claim"));
    await store.put("claims/2024/01/01/00/notes", text("not a claim either"));
    await store.put("elsewhere/2024/01/01/00/x", text("outside the prefix"));
    const others = ["claims/2024/01/01/00/notes", "claims/README", "elsewhere/2024/01/01/00/x"];
    const remaining = async () => (await store.list("")).filter((k) => !others.includes(k));

    // Cutoff T0+70m: the claims made at 0, 20, 40 and 60 minutes are older than the ttl.
    clock.now = T0 + 2 * HOUR + 10 * MINUTE;
    assert.deepEqual(await claims.expire(), { deleted: 4 });
    assert.deepEqual(await remaining(), made.slice(4).map((m) => m.key));
    // The cursor run: cutoff T0+3h. A claim exactly ttl old goes, one a millisecond younger stays.
    clock.now = T0 + 4 * HOUR;
    assert.deepEqual(await claims.expire(), { deleted: 6 });
    assert.deepEqual(await remaining(), made.slice(10).map((m) => m.key));
    clock.now = made[10]!.at + HOUR - 1;
    assert.deepEqual(await claims.expire(), { deleted: 0 }, "1 ms short of the ttl");
    clock.now = made[10]!.at + HOUR;
    assert.deepEqual(await claims.expire(), { deleted: 1 });
    assert.deepEqual(await remaining(), [made[11]!.key]);
    for (const key of others) assert.ok(await store.stat(key), `${key} is left alone`);
  });

  it("costs what expired, not what the store holds", async () => {
    const clock = { now: T0 };
    const base = new MemoryStore();
    const { store, counts } = counting(base);
    const claims = new ClaimCheck({ store, instance: "media", threshold: 0, ttl: "1h", now: () => new Date(clock.now) });
    for (let i = 0; i < 5; i++) {
      clock.now = T0 + i * MINUTE;
      await claims.checkIn(patterned(10, i));
    }
    for (let i = 0; i < 600; i++) {
      clock.now = T0 + 3 * HOUR + i * 10_000;
      await claims.checkIn(patterned(10, i));
    }
    clock.now = T0 + 2 * HOUR + 30 * MINUTE;
    assert.deepEqual(await claims.expire(), { deleted: 5 });
    // The first run asks for the oldest claim (one page of 100) and then reads two hour folders.
    assert.ok(counts.keys <= 5 + 100, `listed ${counts.keys} keys`);
    assert.equal(counts.deletes, 5);
    counts.keys = counts.lists = 0;
    clock.now = T0 + 2 * HOUR + 50 * MINUTE;
    assert.deepEqual(await claims.expire(), { deleted: 0 });
    assert.equal(counts.keys, 0, "a later run lists only the hours since the last one, empty here");
    assert.ok(counts.lists <= 3, `${counts.lists} listings`);
    assert.equal((await base.list("claims/")).length, 600);
  });

  it("jumps over a long gap instead of stepping through every empty hour", async () => {
    const clock = { now: T0 };
    const inner = new MemoryStore();
    const { store, counts } = counting(inner);
    const claims = new ClaimCheck({ store, instance: "media", threshold: 0, ttl: "1h", now: () => new Date(clock.now) });
    await claims.checkIn(patterned(10, 1));
    clock.now = T0 + 400 * 24 * HOUR;
    const late = (await claims.checkIn(patterned(10, 2))).claim!.key;
    clock.now = T0 + 400 * 24 * HOUR + 30 * MINUTE;
    assert.deepEqual(await claims.expire(), { deleted: 1 });
    assert.deepEqual(await inner.list(""), [late]);
    assert.ok(counts.lists < 60, `${counts.lists} listings for a 400-day gap`);
    clock.now += 2 * HOUR;
    assert.deepEqual(await claims.expire(), { deleted: 1 });
    assert.deepEqual(await inner.list(""), []);
  });

  it("runs one expiry at a time", async () => {
    const clock = { now: T0 };
    const { store, claims } = setup({ threshold: 0, ttl: "1m", clock });
    for (let i = 0; i < 50; i++) await claims.checkIn(patterned(10, i));
    clock.now = T0 + HOUR;
    const results = await Promise.all([claims.expire(), claims.expire(), claims.expire()]);
    assert.deepEqual(results.map((r) => r.deleted), [50, 0, 0]);
    assert.deepEqual(await store.list(""), []);
  });
});
