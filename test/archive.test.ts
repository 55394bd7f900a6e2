import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { MemoryStore, StorageError, compareKeys, keyProblem } from "../src/index.js";
import {
  Archiver,
  CompositeKeyGenerator,
  CompositeMetadataExtractor,
  DefaultMetadataExtractor,
  EntityKeyGenerator,
  TimeBucketKeyGenerator,
  jsonCodec,
  normalizeExtractedMetadata,
  type KeyGenerator,
  type OptionalKeyGenerator,
} from "../src/archive/index.js";
import { toSegment } from "../src/archive/segments.js";
import { assertInvalid } from "../src/testing/helpers.js";

const fixed = (iso: string) => () => new Date(iso);
const throwsInvalid = (fn: () => unknown, pattern?: RegExp) =>
  assert.throws(fn, (err: unknown) => err instanceof StorageError && err.kind === "invalid" && err.op === "archive" && (!pattern || pattern.test(err.message)));

describe("TimeBucketKeyGenerator", () => {
  it("generates 100k distinct, valid, time-sorted keys in under a second", () => {
    const keys = new TimeBucketKeyGenerator();
    for (let i = 0; i < 10_000; i++) keys.generateKey(); // warm up the JIT: we measure steady state
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const out: string[] = [];
    for (let i = 0; i < 100_000; i++) out.push(keys.generateKey());
    // CPU time, not wall time: other test files share the machine's cores.
    const cpu = process.cpuUsage(cpuBefore);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const wallMs = performance.now() - started;
    assert.ok(cpuMs < 1000, `took ${cpuMs.toFixed(0)} ms of CPU (${wallMs.toFixed(0)} ms wall)`);
    assert.equal(new Set(out).size, out.length, "all distinct");
    // Generation order is time order: the list is already sorted (as the store lists it).
    for (let i = 1; i < out.length; i++) assert.ok(compareKeys(out[i - 1]!, out[i]!) < 0, `${out[i - 1]} < ${out[i]}`);
    for (const key of out.slice(0, 100)) assert.equal(keyProblem(key), undefined);
  });

  it("buckets by UTC hour, across the day boundary", () => {
    const before = new TimeBucketKeyGenerator({ now: fixed("2024-12-31T23:59:59.999Z") }).generateKey();
    const after = new TimeBucketKeyGenerator({ now: fixed("2025-01-01T00:00:00.000Z") }).generateKey();
    assert.match(before, /^events\/2024\/12\/31\/23\/20241231T235959\.999Z-[0-9a-z]{6}-[0-9a-z]{8}$/);
    assert.match(after, /^events\/2025\/01\/01\/00\/20250101T000000\.000Z-/);
    assert.ok(compareKeys(before, after) < 0);
  });

  it("uses UTC whatever the local time zone says", () => {
    // 2024-06-01T01:30 in UTC+3 is 2024-05-31T22:30Z.
    const key = new TimeBucketKeyGenerator({ prefix: "a/b", now: () => new Date("2024-06-01T01:30:00+03:00") }).generateKey();
    assert.match(key, /^a\/b\/2024\/05\/31\/22\//);
  });

  it("keys from the same millisecond stay distinct and ordered", () => {
    const keys = new TimeBucketKeyGenerator({ now: fixed("2024-10-08T10:30:00.123Z") });
    const out = Array.from({ length: 1000 }, () => keys.generateKey());
    assert.equal(new Set(out).size, 1000);
    assert.deepEqual([...out].sort(compareKeys), out);
  });

  it("keys from two processes in the same millisecond never collide", async () => {
    // Both processes start their sequence at 0 with the same clock: only the per-process tag differs.
    const script = `import { TimeBucketKeyGenerator } from "./src/archive/index.ts";
      const g = new TimeBucketKeyGenerator({ now: () => new Date("2024-10-08T10:30:00.123Z") });
      console.log(JSON.stringify(Array.from({ length: 1000 }, () => g.generateKey())));`;
    const run = () => promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script]);
    const [a, b] = await Promise.all([run(), run()]);
    const keys = [...(JSON.parse(a.stdout) as string[]), ...(JSON.parse(b.stdout) as string[])];
    assert.equal(new Set(keys).size, 2000);
  });

  it("refuses bad prefixes and bad clocks", () => {
    for (const prefix of ["", "/x", "x/", "a//b", "a/../b", ".", "a\nb"]) throwsInvalid(() => new TimeBucketKeyGenerator({ prefix }), /key prefix/);
    throwsInvalid(() => new TimeBucketKeyGenerator({ now: () => new Date(NaN) }).generateKey(), /invalid Date/);
    throwsInvalid(() => new TimeBucketKeyGenerator({ now: () => new Date("+010000-01-01T00:00:00Z") }).generateKey(), /year 10000/);
  });
});

describe("EntityKeyGenerator", () => {
  const now = fixed("2024-10-08T10:30:00.123Z");

  it("keys by type and id from fields or Identifiable methods", () => {
    const keys = new EntityKeyGenerator({ now });
    assert.match(keys.generateKey({ id: "temp-123", type: "sensor" }), /^entities\/sensor\/temp-123\/20241008T103000\.123Z-/);
    assert.match(keys.generateKey({ entityId: 42, entityType: "pump", id: "ignored", type: "ignored" }), /^entities\/pump\/42\//);
    class Reading {
      getID() {
        return "r-1";
      }
      getType() {
        return "reading";
      }
    }
    assert.match(keys.generateKey(new Reading()), /^entities\/reading\/r-1\//);
    const history = [keys.generateKey({ id: "x", type: "t" }), keys.generateKey({ id: "x", type: "t" })];
    assert.notEqual(history[0], history[1]);
  });

  it("escapes hostile ids and types into safe, distinct segments", () => {
    const keys = new EntityKeyGenerator({ now });
    const cases = [
      { id: "..", type: "." },
      { id: "a/../../etc/passwd", type: "x/y" },
      { id: "line\nbreak\u0000nul", type: "t" },
      { id: "100%", type: "t" },
      { id: "lone\ud800", type: "t" },
      { id: "€".repeat(600), type: "t" },
      { id: `${"€".repeat(600)}!`, type: "t" },
    ];
    const made = cases.map((m) => keys.generateKey(m));
    for (const key of made) {
      assert.equal(keyProblem(key), undefined, key);
      assert.equal(key.split("/").length, 4, `exactly prefix/type/id/unique: ${key}`);
    }
    assert.match(made[0]!, /^entities\/%2E\/%2E%2E\//);
    assert.match(made[1]!, /^entities\/x%2Fy\/a%2F..%2F..%2Fetc%2Fpasswd\//);
    assert.match(made[3]!, /^entities\/t\/100%25\//);
    // Long ids are cut but stay distinct through their hash.
    assert.notEqual(made[5]!.split("/")[2], made[6]!.split("/")[2]);
    assert.equal(toSegment("a%2Fb") === toSegment("a/b"), false);
    // Lone surrogates stay distinct from each other and from U+FFFD.
    const odd = ["a\ud800", "a\ud801", "a\ufffd", "a%uD800", "\udc00"].map((t) => toSegment(t));
    assert.equal(new Set(odd).size, odd.length, JSON.stringify(odd));
    for (const segment of odd) assert.equal(keyProblem(segment!), undefined);
  });

  it("falls back for messages without an entity", () => {
    const fallback: KeyGenerator = { generateKey: () => "other/key" };
    const keys = new EntityKeyGenerator({ fallback });
    for (const m of [{ id: "x" }, { type: "t" }, { id: "", type: "t" }, "text", 7, null, [1], { id: {}, type: "t" }]) {
      assert.equal(keys.generateKey(m), "other/key", JSON.stringify(m));
      assert.equal(keys.keyFor(m), undefined);
    }
    assert.match(new EntityKeyGenerator().generateKey({ value: 1 }), /^events\/\d{4}\/\d\d\/\d\d\/\d\d\//);
  });

  it("treats a getter that throws as no entity", () => {
    const hostile = {
      getId() {
        throw new Error("boom");
      },
      getType: () => "t",
    };
    assert.equal(new EntityKeyGenerator({ fallback: { generateKey: () => "f" } }).generateKey(hostile), "f");
  });
});

describe("CompositeKeyGenerator", () => {
  const entity = new EntityKeyGenerator({ prefix: "by-entity" });
  const time = new TimeBucketKeyGenerator({ prefix: "by-time" });

  it("mode first: the first generator that applies", () => {
    const keys = new CompositeKeyGenerator([entity, time]);
    assert.match(keys.generateKey({ id: "1", type: "t" }), /^by-entity\/t\/1\//);
    assert.match(keys.generateKey({ other: true }), /^by-time\//);
  });

  it("mode join: every applying key joined", () => {
    const tenant: OptionalKeyGenerator = {
      keyFor: (m) => (m as { tenant?: string } | null)?.tenant,
      generateKey: () => "unknown",
    };
    const keys = new CompositeKeyGenerator([tenant, time], { mode: "join" });
    assert.match(keys.generateKey({ tenant: "acme" }), /^acme\/by-time\/\d{4}\//);
    assert.match(keys.generateKey({}), /^by-time\//);
    assert.match(new CompositeKeyGenerator([tenant, time], { mode: "join", separator: "/x-" }).generateKey({ tenant: "a" }), /^a\/x-by-time\//);
  });

  it("refuses when nothing applies, and bad construction", () => {
    const never: OptionalKeyGenerator = { keyFor: () => undefined, generateKey: () => "x" };
    throwsInvalid(() => new CompositeKeyGenerator([never]).generateKey({}), /no key generator applies/);
    throwsInvalid(() => new CompositeKeyGenerator([]));
    throwsInvalid(() => new CompositeKeyGenerator([{} as KeyGenerator]));
    throwsInvalid(() => new CompositeKeyGenerator([time], { mode: "all" as "first" }));
  });
});

describe("metadata extraction", () => {
  it("the default extractor gives entity and class", () => {
    class SensorReading {
      id = "temp-1";
      type = "sensor";
    }
    assert.deepEqual(new DefaultMetadataExtractor().extractMetadata(new SensorReading()), {
      "entity-id": "temp-1",
      "entity-type": "sensor",
      "message-type": "SensorReading",
    });
    assert.equal(new DefaultMetadataExtractor().extractMetadata({ a: 1 }), undefined);
    assert.equal(new DefaultMetadataExtractor().extractMetadata("x"), undefined);
  });

  it("normalizes: lower-case names, string[] joined, control characters replaced", () => {
    assert.deepEqual(normalizeExtractedMetadata({ "X-Tags": ["a", "b"], Source: "line1\nline2" }), { "x-tags": "a, b", source: "line1 line2" });
    assert.equal(normalizeExtractedMetadata(undefined), undefined);
    throwsInvalid(() => normalizeExtractedMetadata({ "bad name": "v" }), /metadata name/);
    throwsInvalid(() => normalizeExtractedMetadata({ n: 5 }), /must be a string or string\[\]/);
    throwsInvalid(() => normalizeExtractedMetadata({ a: "x", A: "y" }), /given twice/);
    throwsInvalid(() => normalizeExtractedMetadata({ big: "x".repeat(3000) }), /limit is 2048/);
    throwsInvalid(() => normalizeExtractedMetadata([1]), /must return an object/);
  });

  it("composite: later extractors win, names case-insensitive", () => {
    const composite = new CompositeMetadataExtractor([
      { extractMetadata: () => ({ source: "a", Team: "x" }) },
      { extractMetadata: () => undefined },
      { extractMetadata: () => ({ team: ["y", "z"] }) },
    ]);
    assert.deepEqual(composite.extractMetadata({}), { source: "a", team: ["y", "z"] });
    assert.equal(new CompositeMetadataExtractor([]).extractMetadata({}), undefined);
  });
});

describe("jsonCodec", () => {
  it("passes bytes through and encodes everything else as JSON", () => {
    const bytes = new Uint8Array([0, 255, 1]);
    assert.equal(jsonCodec.encode(bytes), bytes);
    assert.equal(Buffer.from(jsonCodec.encode({ a: [1, "x"], u: undefined })).toString(), '{"a":[1,"x"]}');
    assert.equal(Buffer.from(jsonCodec.encode("hi")).toString(), '"hi"');
    assert.equal(jsonCodec.contentTypeFor?.(Buffer.from("x")), "application/octet-stream");
    assert.equal(jsonCodec.contentTypeFor?.({}), "application/json");
  });

  it("refuses what JSON would lose or cannot hold", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: [string, unknown, RegExp][] = [
      ["undefined", undefined, /must be a value/],
      ["null", null, /must be a value/],
      ["function", () => 1, /a function/],
      ["nested function", { f: () => 1 }, /property "f" is a function/],
      ["symbol", Symbol("s"), /a symbol/],
      ["bigint", { n: 10n }, /bigint/],
      ["NaN", { x: NaN }, /NaN/],
      ["Map", new Map(), /Map/],
      ["cycle", cyclic, /circular/i],
    ];
    for (const [label, message, pattern] of bad) {
      assert.throws(() => jsonCodec.encode(message), (err: unknown) => err instanceof StorageError && err.kind === "invalid" && err.op === "archive" && pattern.test(err.message), label);
    }
  });
});

describe("Archiver", () => {
  it("archives and the value and metadata round-trip", async () => {
    const store = new MemoryStore();
    const archiver = new Archiver(store, { keyGenerator: new EntityKeyGenerator() });
    const key = await archiver.archive({ id: "temp-1", type: "sensor", value: 21.5 });
    assert.match(key, /^entities\/sensor\/temp-1\//);
    assert.deepEqual(JSON.parse(Buffer.from(await store.get(key)).toString()), { id: "temp-1", type: "sensor", value: 21.5 });
    const info = await store.stat(key);
    assert.deepEqual(info.metadata, { "content-type": "application/json", "entity-id": "temp-1", "entity-type": "sensor" });
    assert.deepEqual(await store.list("entities/sensor/temp-1/"), [key]);
  });

  it("stores bytes unchanged as octet-stream, under the default time key", async () => {
    const store = new MemoryStore();
    const bytes = new Uint8Array(256).map((_, i) => i);
    const key = await new Archiver(store).archive(bytes);
    assert.match(key, /^events\/\d{4}\/\d\d\/\d\d\/\d\d\//);
    assert.deepEqual(await store.get(key), bytes);
    assert.equal((await store.stat(key)).metadata["content-type"], "application/octet-stream");
  });

  it("takes an explicit key, and an extractor's content-type wins", async () => {
    const store = new MemoryStore();
    const archiver = new Archiver(store, { metadataExtractor: { extractMetadata: () => ({ "Content-Type": "application/x-custom" }) } });
    assert.equal(await archiver.archive({ a: 1 }, { key: "fixed/k" }), "fixed/k");
    assert.equal((await store.stat("fixed/k")).metadata["content-type"], "application/x-custom");
    await assertInvalid(archiver.archive({ a: 1 }, { key: "../x" }));
  });

  it("refuses bad messages and misbehaving plug-ins with kind invalid, op archive, storing nothing", async () => {
    const store = new MemoryStore();
    const cases: [string, Archiver, unknown][] = [
      ["undefined message", new Archiver(store), undefined],
      ["bigint message", new Archiver(store), { n: 1n }],
      ["throwing generator", new Archiver(store, { keyGenerator: { generateKey: () => { throw new Error("no key"); } } }), {}],
      ["invalid key", new Archiver(store, { keyGenerator: { generateKey: () => "a/../b" } }), {}],
      ["empty key", new Archiver(store, { keyGenerator: { generateKey: () => "" } }), {}],
      ["non-string key", new Archiver(store, { keyGenerator: { generateKey: () => 42 as unknown as string } }), {}],
      ["throwing extractor", new Archiver(store, { metadataExtractor: { extractMetadata: () => { throw new Error("boom"); } } }), {}],
      ["bad metadata", new Archiver(store, { metadataExtractor: { extractMetadata: () => ({ "no spaces": "x" }) } }), {}],
      ["bad codec", new Archiver(store, { codec: { contentType: "x", encode: () => "text" as unknown as Uint8Array } }), {}],
    ];
    for (const [label, archiver, message] of cases) {
      const err = await assertInvalid(archiver.archive(message), label);
      assert.equal(err.op, "archive", label);
      assert.doesNotMatch(err.message, /\n/, label);
    }
    assert.deepEqual(await store.list(), []);
  });

  it("honours an aborted signal", async () => {
    const store = new MemoryStore();
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await assert.rejects(new Archiver(store).archive({ a: 1 }, { signal: controller.signal }), /stop/);
    assert.deepEqual(await store.list(), []);
  });

  it("passes store errors through classified", async () => {
    const store = new MemoryStore();
    await store.close();
    await assert.rejects(new Archiver(store).archive({ a: 1 }), (err: unknown) => err instanceof StorageError && err.kind === "fatal");
    assert.throws(() => new Archiver(null as never), /needs a Store/);
  });
});
