/** The component's configuration (validation, defaults, JSON Schema) and its flow meter. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { configJsonSchema, resolveConfig } from "../src/component/config.js";
import { FlowMeter } from "../src/component/telemetry.js";
import { sharesComponentConnection } from "../src/component/component.js";
import { memberSpan } from "../src/component/codec.js";
import { StorageError } from "../src/errors.js";

function refusal(input: unknown): string {
  try {
    resolveConfig(input);
  } catch (err) {
    assert.ok(err instanceof StorageError && err.kind === "invalid", String(err));
    return err.message;
  }
  assert.fail("configuration accepted");
}

describe("component configuration", () => {
  it("defaults like the seed: name objectstore, storage.<name>.api|write|events", () => {
    const c = resolveConfig({});
    assert.equal(c.name, "objectstore");
    assert.deepEqual([c.api.subject, c.write.subject, c.events.subject], ["storage.objectstore.api", "storage.objectstore.write", "storage.objectstore.events"]);
    assert.equal(c.write.type, "subscribe");
    assert.equal(c.queueGroup, "stowage");
    assert.equal(c.timeoutsMs.get, 5000);
    assert.deepEqual(c.dataCache, { enabled: false, strategy: "hybrid", maxEntries: 1000, maxBytes: 64 * 1024 * 1024, ttlMs: 3_600_000 });
    const named = resolveConfig({ name: "archive" });
    assert.equal(named.api.subject, "storage.archive.api");
    assert.equal(named.jetstream.stream, "STOWAGE_ARCHIVE");
    assert.equal(named.jetstream.deadLetterSubject, "storage.archive.write.dead");
    assert.equal(named.jetstream.deadLetterStream, "STOWAGE_ARCHIVE_DEAD");
    assert.equal(c.maxInFlight, 256);
    assert.equal(c.maxInFlightBytes, 64 * 1024 * 1024);
  });

  it("takes ports, units and per-action timeouts", () => {
    const c = resolveConfig({
      ports: { inputs: [{ name: "write", type: "jetstream", subject: "in.w" }, { name: "api", subject: "in.api" }], outputs: [{ name: "events", subject: "out.ev" }] },
      data_cache: { enabled: true, max_bytes: "1MiB", ttl: "90s" },
      timeouts: { default: 2000, list: "1m" },
      max_value_size: "512KiB",
      write: { backoff: ["250ms", "2s"] },
    });
    assert.deepEqual([c.api.subject, c.write.subject, c.write.type, c.events.subject], ["in.api", "in.w", "jetstream", "out.ev"]);
    assert.equal(c.dataCache.maxBytes, 1024 * 1024);
    assert.equal(c.dataCache.ttlMs, 90_000);
    assert.equal(c.timeoutsMs.get, 2000);
    assert.equal(c.timeoutsMs.list, 60_000);
    assert.equal(c.maxValueBytes, 512 * 1024);
    assert.deepEqual(c.jetstream.backoffMs, [250, 2000]);
    assert.equal(resolveConfig({ max_in_flight_bytes: "8MiB" }).maxInFlightBytes, 8 * 1024 * 1024);
    assert.equal(resolveConfig({ write: { dead_letter_stream: "DLQ" } }).jetstream.deadLetterStream, "DLQ");
  });

  it("takes the write stream's replicas and storage (server defaults when not given)", () => {
    const c = resolveConfig({ write: { replicas: 3, storage: "memory" } });
    assert.equal(c.jetstream.replicas, 3);
    assert.equal(c.jetstream.storage, "memory");
    const d = resolveConfig({});
    assert.equal(d.jetstream.replicas, undefined);
    assert.equal(d.jetstream.storage, undefined);
    for (const replicas of [0, 6, 1.5, "3"]) assert.match(refusal({ write: { replicas } }), /write\.replicas/, String(replicas));
    assert.match(refusal({ write: { storage: "disk" } }), /write\.storage/);
  });

  it("refuses bad configurations, naming every bad field and never echoing values", () => {
    assert.match(refusal({ name: "a.b" }), /name: must be 1-64 characters/);
    assert.match(refusal({ ports: { inputs: [{ name: "api", subject: "a.>" }] } }), /ports\.inputs\[0\]\.subject/);
    assert.match(refusal({ ports: { inputs: [{ name: "write", type: "kafka", subject: "w" }] } }), /ports\.inputs\[0\]\.type/);
    assert.match(refusal({ ports: { inputs: [{ name: "other", subject: "w" }] } }), /ports\.inputs\[0\]\.name/);
    assert.match(refusal({ timeouts: { get: "soon" } }), /timeouts\.get/);
    assert.match(refusal({ data_cache: { max_size: -1 } }), /data_cache\.max_size/);
    assert.match(refusal({ write: { max_deliver: 0 } }), /write\.max_deliver/);
    assert.match(refusal({ metrics_port: 70000 }), /metrics_port/);
    assert.match(refusal({ max_in_flight_bytes: "lots" }), /max_in_flight_bytes/);
    assert.match(refusal({ write: { stream: "S", dead_letter_stream: "S" } }), /write\.dead_letter_stream: must differ/);
    assert.match(refusal({ extra: true }), /Unrecognized key: "extra"/);
    assert.match(refusal({ ports: { inputs: [{ name: "write", subject: "storage.objectstore.api.get" }] } }), /clashes with ports api/);
    assert.match(refusal({ nats: { pass: "hunter2-secret" } }), /nats\.pass: needs nats\.user/);
    const secret = refusal({ nats: { token: 12345678 } });
    assert.ok(!secret.includes("12345678"), secret);
    const both = refusal({ name: "", max_in_flight: 0 });
    assert.match(both, /name/);
    assert.match(both, /max_in_flight/);
  });

  it("shares the component's NATS connection with a nats:// store that adds no server or identity of its own", () => {
    const shares = (store: string, nats: Record<string, unknown> = { servers: ["nats://n1:4222", "n2"] }) => sharesComponentConnection(resolveConfig({ store, nats }));
    assert.equal(shares("nats:///B"), true, "no server: the component's");
    assert.equal(shares("nats://n1:4222/B?history=4&replicas=3"), true, "a listed server; bucket options are the store's");
    assert.equal(shares("nats://N2/B"), true, "host compared case-insensitively, port 4222 by default");
    assert.equal(shares("nats://n3:4222/B"), false, "another server: the URL wins");
    assert.equal(shares("nats://n1:4223/B"), false, "another port");
    assert.equal(shares("nats://user:pw@n1:4222/B"), false, "its own credentials");
    assert.equal(shares("nats://tok@n1:4222/B"), false);
    assert.equal(shares("nats://n1:4222/B?creds=/x.creds"), false);
    assert.equal(shares("tls://n1:4222/B"), false, "tls:// over a plain connection would be a downgrade");
    assert.equal(shares("tls://n1:4222/B", { servers: "n1", tls: {} }), true);
    assert.equal(shares("file:./data"), false);
    assert.equal(shares("memory:"), false);
  });

  it("has a JSON Schema for the file", () => {
    const schema = configJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }> };
    assert.ok(schema.properties.nats?.properties?.creds_file);
    assert.ok(schema.properties.write?.properties?.dead_letter_subject);
    assert.ok(schema.properties.timeouts?.properties?.versions);
  });
});

describe("flow meter", () => {
  it("reports real rates over a sliding window", () => {
    let now = 1_000_000;
    const meter = new FlowMeter(10, () => now);
    for (let s = 0; s < 5; s++) {
      for (let i = 0; i < 100; i++) meter.record(1000, i % 10 === 0);
      now += 1000;
    }
    let flow = meter.snapshot();
    assert.equal(flow.messagesPerSecond, 100);
    assert.equal(flow.bytesPerSecond, 100_000);
    assert.equal(flow.errorsPerSecond, 10);
    assert.equal(flow.errorRate, 0.1);
    assert.equal(flow.totalMessages, 500);
    now += 20_000; // idle longer than the window
    flow = meter.snapshot();
    assert.equal(flow.messagesPerSecond, 0);
    assert.equal(flow.errorRate, 0);
    assert.equal(flow.totalMessages, 500);
  });
});

describe("JSON member spans", () => {
  it("finds the exact source of a top-level member, the last of duplicates, through strings and nesting", () => {
    const text = '{"a":{"data":1},"s":"}\\"data\\":","data" : [1, {"x":"]"}] ,"data":\n 2.50 }';
    const span = memberSpan(text, "data")!;
    assert.equal(text.slice(span[0], span[1]), "2.50");
    const first = '{"data" : [1, {"x":"]"}] }';
    const s2 = memberSpan(first, "data")!;
    assert.equal(first.slice(s2[0], s2[1]), '[1, {"x":"]"}]');
    const escaped = '{"d\\u0061ta":"v"}';
    const s3 = memberSpan(escaped, "data")!;
    assert.equal(escaped.slice(s3[0], s3[1]), '"v"');
    assert.equal(memberSpan('{"other":1}', "data"), undefined);
  });
});
