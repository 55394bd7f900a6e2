/**
 * The storage component's api port against the real NATS: every action in the seed's JSON
 * shapes, events, binary values (base64 and raw mode), bad requests of every kind, timeouts,
 * payload limits, load shared by two instances, micro-service discovery, lifecycle.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { Svcm } from "@nats-io/services";
import { jetstreamManager } from "@nats-io/jetstream";
import { StorageComponent, silentLogger, type ComponentConfigInput, type StorageComponentOptions } from "../src/component/index.js";
import { MemoryStore } from "../src/backends/memory.js";
import { LayerStore } from "../src/layers/index.js";
import { StorageError } from "../src/errors.js";
import { sleep } from "../src/internal/signal.js";
import type { CleanPutOptions } from "../src/store.js";
import type { GetOptions, Store } from "../src/types.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";

const url = await sharedNats();
const encoder = new TextEncoder();

/** A fault-injection layer over a real store: reads take `ms` longer (honouring the signal). */
class SlowReads extends LayerStore {
  constructor(inner: Store, readonly ms: number) {
    super(inner);
  }
  protected override async _get(key: string, options: GetOptions): Promise<Uint8Array> {
    await sleep(this.ms, options.signal);
    return super._get(key, options);
  }
}

/**
 * A store whose puts hang, whatever their signal says, until `open()`: a backend stuck on a
 * connection that does not answer. Counts the puts that have not finished.
 */
class HangingPuts extends LayerStore {
  pending = 0;
  readonly #gate: Promise<void>;
  readonly open: () => void;
  constructor(inner: Store) {
    super(inner);
    let open!: () => void;
    this.#gate = new Promise((resolve) => (open = resolve));
    this.open = open;
  }
  protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    this.pending++;
    try {
      await this.#gate;
      return await super._put(key, data, options);
    } finally {
      this.pending--;
    }
  }
}

describe("storage component: api port", { skip: url === undefined ? "no NATS" : undefined }, () => {
  let nc: NatsConnection;
  const started: StorageComponent[] = [];

  before(async () => {
    nc = await connect({ servers: url! });
  });
  after(async () => {
    for (const c of started) await c.stop(2000);
    await nc.close();
  });

  async function start(config: ComponentConfigInput = {}, options: Omit<StorageComponentOptions, "config"> = {}): Promise<StorageComponent> {
    const component = new StorageComponent({
      config: { name: uniqueName("api"), store: "memory:?history=5", nats: { servers: url! }, ...config },
      logger: silentLogger,
      ...options,
    });
    await component.start();
    started.push(component);
    return component;
  }

  async function call(subject: string, body: string | Uint8Array, h?: Record<string, string>): Promise<{ json: Record<string, unknown>; msg: Msg }> {
    const msg = await nc.request(subject, body, { timeout: 5000, headers: h ? toHeaders(h) : undefined });
    let json: Record<string, unknown> = {};
    try {
      json = msg.json();
    } catch {
      // A raw-mode value, not JSON.
    }
    return { json, msg };
  }

  const api = (c: StorageComponent) => c.config.api.subject;

  it("answers get, store and list in the seed's shapes, plus put, delete, stat, versions", async () => {
    const c = await start();
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "put", key: "events/sensors/temp-1", data: { sensor: "temp-1", value: 22.5 } }))).json, {
      success: true,
      key: "events/sensors/temp-1",
    });
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "get", key: "events/sensors/temp-1" }))).json, {
      success: true,
      key: "events/sensors/temp-1",
      encoding: "json",
      data: { sensor: "temp-1", value: 22.5 },
    });
    const stored = (await call(api(c), JSON.stringify({ action: "store", data: { sensor: "temp-2", value: 19 } }))).json;
    assert.equal(stored.success, true);
    assert.match(stored.key as string, /^messages\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/\S+$/);
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "get", key: stored.key }))).json.data, { sensor: "temp-2", value: 19 });
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "list", prefix: "events/" }))).json, { success: true, keys: ["events/sensors/temp-1"] });
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "list" }))).json, { success: true, keys: ["events/sensors/temp-1", stored.key] });

    await call(api(c), JSON.stringify({ action: "put", key: "events/sensors/temp-1", data: [1, 2], metadata: { Unit: "celsius" } }));
    const stat = (await call(api(c), JSON.stringify({ action: "stat", key: "events/sensors/temp-1" }))).json;
    assert.equal(stat.success, true);
    const info = stat.info as { size: number; metadata: Record<string, string>; modified: string; version: string };
    assert.equal(info.size, 5);
    assert.deepEqual(info.metadata, { unit: "celsius" });
    assert.ok(!Number.isNaN(Date.parse(info.modified)));
    const versions = (await call(api(c), JSON.stringify({ action: "versions", key: "events/sensors/temp-1" }))).json;
    assert.equal((versions.versions as unknown[]).length, 2);
    const old = (versions.versions as { version: string }[])[0]!.version;
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "get", key: "events/sensors/temp-1", version: old }))).json.data, { sensor: "temp-1", value: 22.5 });

    assert.deepEqual((await call(api(c), JSON.stringify({ action: "delete", key: "events/sensors/temp-1" }))).json, { success: true, key: "events/sensors/temp-1" });
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "delete", key: "events/sensors/temp-1" }))).json, { success: true, key: "events/sensors/temp-1" });
    const missing = (await call(api(c), JSON.stringify({ action: "get", key: "events/sensors/temp-1" }))).json;
    assert.equal(missing.success, false);
    assert.equal(missing.kind, "not_found");
  });

  it("takes if_match / if_none_match on put and delete (Stowage-If-Match / -If-None-Match in raw mode), answering a failed condition conflict; stat gives the etag", async () => {
    const c = await start();
    const events: { type: string; key: string }[] = [];
    const sub = nc.subscribe(c.config.events.subject, { callback: (_err, m) => void events.push(m.json()) });
    await nc.flush();
    const req = (body: object) => call(api(c), JSON.stringify(body));
    const conflict = (r: { json: Record<string, unknown>; msg: Msg }, what: string) => {
      assert.equal(r.json.success, false, what);
      assert.equal(r.json.kind, "conflict", `${what}: ${String(r.json.error)}`);
      assert.equal(r.msg.headers?.get("Nats-Service-Error-Code"), "409", what);
      assert.equal(r.msg.headers?.get("Stowage-Error-Kind"), "conflict", what);
    };
    const etag = async (key: string) => ((await req({ action: "stat", key })).json.info as { etag: string }).etag;

    // JSON mode.
    assert.deepEqual((await req({ action: "put", key: "c/a", data: 1, if_none_match: "*" })).json, { success: true, key: "c/a" });
    conflict(await req({ action: "put", key: "c/a", data: 2, if_none_match: "*" }), "create over an existing key");
    const first = await etag("c/a");
    assert.equal(typeof first, "string");
    assert.equal(first, (await c.store!.stat("c/a")).etag);
    assert.deepEqual((await req({ action: "put", key: "c/a", data: 3, if_match: first })).json, { success: true, key: "c/a" });
    conflict(await req({ action: "put", key: "c/a", data: 4, if_match: first }), "put with a stale etag");
    assert.equal(new TextDecoder().decode(await c.store!.get("c/a")), "3", "a failed condition changes nothing");
    conflict(await req({ action: "delete", key: "c/a", if_match: first }), "delete with a stale etag");
    assert.deepEqual((await req({ action: "delete", key: "c/a", if_match: await etag("c/a") })).json, { success: true, key: "c/a" });
    conflict(await req({ action: "delete", key: "c/a", if_match: first }), "delete of a missing key with if_match");
    assert.equal((await req({ action: "put", key: "c/b", data: 1, if_match: 5 })).json.kind, "invalid");
    assert.equal((await req({ action: "put", key: "c/b", data: 1, if_none_match: "etag" })).json.kind, "invalid");
    assert.equal((await req({ action: "get", key: "c/b", if_match: "x" })).json.kind, "invalid");

    // Raw mode.
    const raw = (action: string, key: string, h: Record<string, string> = {}) => call(api(c), encoder.encode("r"), { "Stowage-Action": action, "Stowage-Key": key, ...h });
    assert.deepEqual((await raw("put", "c/r", { "Stowage-If-None-Match": "*" })).json, { success: true, key: "c/r" });
    conflict(await raw("put", "c/r", { "Stowage-If-None-Match": "*" }), "raw create over an existing key");
    const rawEtag = await etag("c/r");
    conflict(await raw("put", "c/r", { "Stowage-If-Match": `${rawEtag}x` }), "raw put with a wrong etag");
    assert.deepEqual((await raw("put", "c/r", { "Stowage-If-Match": rawEtag })).json, { success: true, key: "c/r" });
    conflict(await raw("delete", "c/r", { "Stowage-If-Match": rawEtag }), "raw delete with a stale etag");
    assert.deepEqual((await raw("delete", "c/r", { "Stowage-If-Match": await etag("c/r") })).json, { success: true, key: "c/r" });

    // A store without conditional writes says so (every built-in backend has them: a memory
    // store that declares none stands in for a third-party one).
    class WithoutConditions extends MemoryStore {
      override readonly capabilities = Object.freeze({ ...new MemoryStore().capabilities, conditionalWrites: false });
    }
    const plain = await start({}, { store: new WithoutConditions() });
    assert.equal(plain.store!.capabilities.conditionalWrites, false);
    assert.equal((await call(api(plain), JSON.stringify({ action: "put", key: "p", data: 1, if_none_match: "*" }))).json.kind, "unsupported");

    await nc.flush();
    await sleep(100);
    sub.unsubscribe();
    // Only the writes that happened are announced.
    assert.deepEqual(events.map((e) => `${e.type} ${e.key}`), ["stored c/a", "stored c/a", "deleted c/a", "stored c/r", "stored c/r", "deleted c/r"]);
    await plain.stop(2000);
  });

  it("pages a listing with limit and after", async () => {
    const c = await start();
    for (const k of ["p/a", "p/b", "p/c"]) await call(api(c), JSON.stringify({ action: "put", key: k, data: 1 }));
    const first = (await call(api(c), JSON.stringify({ action: "list", prefix: "p/", limit: 2 }))).json;
    assert.deepEqual(first, { success: true, keys: ["p/a", "p/b"], next: "p/b" });
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "list", prefix: "p/", limit: 2, after: first.next }))).json, { success: true, keys: ["p/c"] });
  });

  it("answers each action on its own endpoint subject too", async () => {
    const c = await start();
    assert.equal((await call(`${api(c)}.put`, JSON.stringify({ key: "x", data: "hello" }))).json.success, true);
    assert.deepEqual((await call(`${api(c)}.get`, JSON.stringify({ key: "x" }))).json, { success: true, key: "x", encoding: "json", data: "hello" });
    assert.deepEqual((await call(`${api(c)}.list`, "{}")).json, { success: true, keys: ["x"] });
    const wrong = (await call(`${api(c)}.get`, JSON.stringify({ action: "delete", key: "x" }))).json;
    assert.equal(wrong.kind, "invalid");
  });

  it("stores JSON data byte for byte: spacing, 1.0 and big integers survive", async () => {
    const c = await start();
    const span = '{ "x" : 1.0, "big": 12345678901234567890, "s": "\\u00e9\\n" }';
    await call(api(c), `{"action":"put","key":"exact","data": ${span} }`);
    const reply = await call(api(c), JSON.stringify({ action: "get", key: "exact" }));
    assert.equal(reply.msg.string(), `{"success":true,"key":"exact","encoding":"json","data":${span}}`);
    assert.equal(new TextDecoder().decode(await c.store!.get("exact")), span);
    // A duplicate member: the last one wins, as JSON.parse decides.
    await call(api(c), '{"action":"put","key":"dup","data":1,"data":[2]}');
    assert.equal(new TextDecoder().decode(await c.store!.get("dup")), "[2]");
  });

  it("publishes stored, retrieved and deleted events", async () => {
    const c = await start();
    const events: Record<string, unknown>[] = [];
    const sub = nc.subscribe(c.config.events.subject, { callback: (_err, m) => void events.push(m.json()) });
    await nc.flush();
    await call(api(c), JSON.stringify({ action: "put", key: "e/1", data: 1, metadata: { source: "test" } }));
    await call(api(c), JSON.stringify({ action: "get", key: "e/1" }));
    const stored = (await call(api(c), JSON.stringify({ action: "store", data: { n: 2 } }))).json.key as string;
    await call(api(c), JSON.stringify({ action: "delete", key: "e/1" }));
    await call(api(c), JSON.stringify({ action: "get", key: "e/1" })); // not found: no event
    // Keys that do not exist (any more): the delete succeeds, and nothing was deleted to announce.
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "delete", key: "e/1" }))).json, { success: true, key: "e/1" });
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "delete", key: "e/never" }))).json, { success: true, key: "e/never" });
    await call(api(c), encoder.encode(""), { "Stowage-Action": "delete", "Stowage-Key": "e/never-raw" });
    await nc.flush();
    await waitUntil(() => events.length >= 4);
    await sleep(100);
    sub.unsubscribe();
    assert.deepEqual(events.map((e) => [e.type, e.key]), [["stored", "e/1"], ["retrieved", "e/1"], ["stored", stored], ["deleted", "e/1"]]);
    assert.deepEqual(events[0]!.metadata, { source: "test" });
    for (const e of events) {
      assert.equal(e.source, c.config.name);
      assert.ok(Math.abs(Date.parse(e.timestamp as string) - Date.now()) < 60_000);
    }
  });

  it("answers errors in the Go package's shape: error is the message, kind and op beside it", async () => {
    const c = await start();
    const { json, msg } = await call(api(c), JSON.stringify({ action: "get", key: "no/such" }));
    assert.deepEqual(Object.keys(json), ["success", "key", "error", "kind", "op"]);
    assert.equal(json.success, false);
    assert.equal(json.key, "no/such");
    assert.equal(typeof json.error, "string");
    assert.match(json.error as string, /^get "no\/such": /);
    assert.equal(json.kind, "not_found");
    assert.equal(json.op, "get");
    assert.equal(msg.headers?.get("Stowage-Error-Kind"), "not_found");
    assert.equal(msg.headers?.get("Nats-Service-Error-Code"), "404");
    assert.equal(msg.headers?.get("Nats-Service-Error"), json.error);
    // Without a key to echo (a request that is not JSON), no key field.
    assert.deepEqual(Object.keys((await call(api(c), "{")).json), ["success", "error", "kind", "op"]);
  });

  it("answers every request with one reply that fits max_payload, however long the key it echoes", async () => {
    const c = await start();
    const maxPayload = nc.info!.max_payload;
    const replies: Msg[] = [];
    // A raw-mode key header of 400 KB (percent-encoding it again would triple it).
    const long = "k".repeat(400_000);
    const raw = await call(api(c), new Uint8Array(0), { "Stowage-Action": "get", "Stowage-Key": long });
    replies.push(raw.msg);
    assert.equal(raw.msg.headers?.get("Stowage-Error-Kind"), "invalid");
    assert.equal(raw.json.kind, "invalid");
    assert.ok((raw.json.key as string).startsWith("kkk") && (raw.json.key as string).endsWith("…"), "the echoed key is cut short, and says so");
    // A JSON request whose key is as long as max_payload allows.
    const overhead = '{"action":"get","key":""}'.length;
    const jsonKey = "j".repeat(maxPayload - overhead - 64);
    const json = await call(api(c), `{"action":"get","key":"${jsonKey}"}`);
    replies.push(json.msg);
    assert.equal(json.json.kind, "invalid");
    // Non-ASCII: the cut never splits a character.
    const emoji = await call(api(c), JSON.stringify({ action: "put", key: "😀".repeat(200_000), data: 1 }));
    replies.push(emoji.msg);
    assert.ok((emoji.json.key as string).isWellFormed());
    for (const reply of replies) {
      const headerBytes = [...(reply.headers ?? [])].reduce((n, [name, values]) => n + name.length + values.join("").length + 4, 0);
      assert.ok(reply.data.byteLength + headerBytes < maxPayload, `a reply of ${reply.data.byteLength} + ${headerBytes} header bytes fits ${maxPayload}`);
    }
  });

  it("treats raw-mode Stowage-Meta-__proto__ and -constructor as JSON mode treats them", async () => {
    const c = await start();
    for (const name of ["__proto__", "constructor", "toString"]) {
      const json = (await call(api(c), `{"action":"put","key":"meta/json-${name}","data":1,"metadata":{"${name}":"v"}}`)).json;
      const raw = (await call(api(c), encoder.encode("1"), { "Stowage-Action": "put", "Stowage-Key": `meta/raw-${name}`, [`Stowage-Meta-${name}`]: "v" })).json;
      assert.equal(raw.success, json.success, `${name}: raw ${JSON.stringify(raw)} / JSON ${JSON.stringify(json)}`);
      assert.equal(raw.kind, json.kind, name);
      if (json.success === true) {
        assert.deepEqual((await c.store!.stat(`meta/raw-${name}`)).metadata, (await c.store!.stat(`meta/json-${name}`)).metadata, name);
      }
    }
  });

  it("counts a request against max_in_flight until the store has finished it, not until its deadline; busy past it", async () => {
    const store = new HangingPuts(new MemoryStore());
    // A deadline far above a round trip, so "at once" and "at the deadline" differ on a loaded machine too.
    const c = await start({ max_in_flight: 4, timeouts: { default: "1s" } }, { store });
    const put = (key: string, bytes = 16) => call(api(c), new Uint8Array(bytes), { "Stowage-Action": "put", "Stowage-Key": key });
    const first = await Promise.all([put("h/1"), put("h/2"), put("h/3"), put("h/4")]);
    for (const r of first) assert.match(r.msg.headers?.get("Nats-Service-Error") ?? "", /timed out after 1000 ms/);
    assert.equal(store.pending, 4, "the store is still working on all four");
    // Answered "timed out", but still the store's work: a fifth is refused at once, and the store never sees it.
    const t0 = performance.now();
    const busy = await put("h/5");
    assert.ok(performance.now() - t0 < 500, "answered at once, not at the deadline");
    assert.equal(busy.msg.headers?.get("Stowage-Error-Kind"), "transient");
    assert.match(busy.msg.headers?.get("Nats-Service-Error") ?? "", /busy: 4 requests and messages in flight \(max_in_flight 4\)/);
    assert.equal(store.pending, 4);
    store.open();
    await waitUntil(() => store.pending === 0);
    await sleep(50);
    assert.deepEqual((await put("h/6")).json, { success: true, key: "h/6" });
    assert.deepEqual(await c.store!.list("h/"), ["h/1", "h/2", "h/3", "h/4", "h/6"]);
  });

  it("counts a request's bytes against max_in_flight_bytes until the store has finished it", async () => {
    // One 700 KiB put hangs; a second does not fit beside it.
    const bytes = new HangingPuts(new MemoryStore());
    const b = await start({ max_in_flight: 100, max_in_flight_bytes: "1MiB", timeouts: { default: "100ms" } }, { store: bytes });
    const big = (key: string) => call(api(b), new Uint8Array(700 * 1024), { "Stowage-Action": "put", "Stowage-Key": key });
    assert.match((await big("b/1")).msg.headers?.get("Nats-Service-Error") ?? "", /timed out/);
    assert.match((await big("b/2")).msg.headers?.get("Nats-Service-Error") ?? "", /busy: \d+ bytes in flight \(max_in_flight_bytes 1048576\)/);
    assert.equal(bytes.pending, 1);
    bytes.open();
  });

  it("logs no MaxListenersExceededWarning under a burst of requests", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    try {
      const c = await start({ max_in_flight: 1000 }, { store: new SlowReads(new MemoryStore(), 50) });
      await c.store!.put("burst", encoder.encode("1"));
      for (let round = 0; round < 3; round++) {
        const replies = await Promise.all(Array.from({ length: 300 }, () => call(api(c), '{"action":"get","key":"burst"}')));
        assert.ok(replies.every((r) => r.json.success === true));
      }
      await sleep(50);
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(warnings.filter((w) => w.includes("MaxListeners")), []);
  });

  it("round-trips every byte value through base64 and through raw mode", async () => {
    const c = await start();
    const all = Uint8Array.from({ length: 256 * 4 }, (_, i) => i % 256);
    const b64 = Buffer.from(all).toString("base64");
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "put", key: "bin/b64", data_base64: b64 }))).json, { success: true, key: "bin/b64" });
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "get", key: "bin/b64" }))).json, { success: true, key: "bin/b64", encoding: "base64", data_base64: b64 });
    assert.deepEqual(await c.store!.get("bin/b64"), all);

    const key = " raw/ü 😀 100%/x ";
    const put = await call(api(c), all, { "Stowage-Action": "put", "Stowage-Key": encodeURIComponent(key), "Stowage-Meta-Kind": encodeURIComponent("bytes é") });
    assert.deepEqual(put.json, { success: true, key });
    assert.equal(put.msg.headers?.get("Stowage-Key"), encodeURIComponent(key));
    const got = await call(`${api(c)}.get`, new Uint8Array(0), { "Stowage-Action": "get", "Stowage-Key": encodeURIComponent(key) });
    assert.deepEqual(new Uint8Array(got.msg.data), all);
    assert.equal(got.msg.headers?.get("Stowage-Size"), String(all.byteLength));
    assert.deepEqual((await c.store!.stat(key)).metadata, { kind: "bytes é" });
    // Raw bytes that happen to be JSON come back as JSON in JSON mode, unless base64 is asked for.
    await call(api(c), encoder.encode('{"a":1}'), { "Stowage-Action": "put", "Stowage-Key": "raw/json" });
    assert.deepEqual((await call(api(c), JSON.stringify({ action: "get", key: "raw/json" }))).json.data, { a: 1 });
    assert.equal((await call(api(c), JSON.stringify({ action: "get", key: "raw/json", encoding: "base64" }))).json.data_base64, Buffer.from('{"a":1}').toString("base64"));
    // A BOM makes it not JSON: base64, so the BOM is not lost.
    await c.store!.put("bom", Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]));
    assert.equal((await call(api(c), JSON.stringify({ action: "get", key: "bom" }))).json.encoding, "base64");
    // Raw-mode store: the archiver keys it.
    const stored = await call(api(c), all, { "Stowage-Action": "store" });
    assert.deepEqual(await c.store!.get(stored.json.key as string), all);
  });

  it("answers bad requests of every kind with success: false and a classified error", async () => {
    const c = await start({ max_value_size: "64KiB" });
    const deep = `{"action":"put","key":"d","data":${"[".repeat(5000)}${"]".repeat(5000)}}`;
    const cases: [string, string | Uint8Array, string, Record<string, string>?][] = [
      ["malformed JSON", '{"action":', "invalid"],
      ["empty body", "", "invalid"],
      ["non-UTF-8", Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]), "invalid"],
      ["an array", "[1,2]", "invalid"],
      ["null", "null", "invalid"],
      ["a string", '"get"', "invalid"],
      ["missing action", '{"key":"a"}', "invalid"],
      ["unknown action", '{"action":"drop_table","key":"a"}', "invalid"],
      ["action not a string", '{"action":5}', "invalid"],
      ["missing key", '{"action":"get"}', "invalid"],
      ["key not a string", '{"action":"get","key":5}', "invalid"],
      ["key null", '{"action":"delete","key":null}', "invalid"],
      ["empty key", '{"action":"get","key":""}', "invalid"],
      ["leading slash", '{"action":"put","key":"/abs","data":1}', "invalid"],
      ["dot segment", '{"action":"put","key":"a/../b","data":1}', "invalid"],
      ["NUL in key", '{"action":"put","key":"a\\u0000b","data":1}', "invalid"],
      ["lone surrogate key", '{"action":"put","key":"a\\ud800","data":1}', "invalid"],
      ["key too long", JSON.stringify({ action: "get", key: "k".repeat(2000) }), "invalid"],
      ["put without data", '{"action":"put","key":"a"}', "invalid"],
      ["store without data", '{"action":"store"}', "invalid"],
      ["data and data_base64", '{"action":"put","key":"a","data":1,"data_base64":"AA=="}', "invalid"],
      ["bad base64", '{"action":"put","key":"a","data_base64":"***"}', "invalid"],
      ["unpadded base64", '{"action":"put","key":"a","data_base64":"AAA"}', "invalid"],
      ["data_base64 not a string", '{"action":"put","key":"a","data_base64":12}', "invalid"],
      ["metadata not an object", '{"action":"put","key":"a","data":1,"metadata":"x"}', "invalid"],
      ["metadata bad name", '{"action":"put","key":"a","data":1,"metadata":{"a b":"x"}}', "invalid"],
      ["metadata value not a string", '{"action":"put","key":"a","data":1,"metadata":{"a":1}}', "invalid"],
      ["prefix not a string", '{"action":"list","prefix":["a"]}', "invalid"],
      ["limit not an integer", '{"action":"list","limit":"ten"}', "invalid"],
      ["limit out of range", '{"action":"list","limit":0}', "invalid"],
      ["encoding unknown", '{"action":"get","key":"a","encoding":"hex"}', "invalid"],
      ["deep nesting", deep, "invalid"],
      ["value over max_value_size", JSON.stringify({ action: "put", key: "big", data_base64: Buffer.alloc(100_000).toString("base64") }), "invalid"],
      ["missing key (not found)", '{"action":"get","key":"never/written"}', "not_found"],
      ["version that does not exist", '{"action":"get","key":"never","version":"999"}', "not_found"],
      ["raw: unknown action", "", "invalid", { "Stowage-Action": "explode" }],
      ["raw: bad percent-encoding", "", "invalid", { "Stowage-Action": "get", "Stowage-Key": "%E0%A4%A" }],
      ["raw: missing key", "", "invalid", { "Stowage-Action": "delete" }],
      ["raw: bad limit", "", "invalid", { "Stowage-Action": "list", "Stowage-Limit": "-1" }],
    ];
    for (const [what, body, kind, h] of cases) {
      const { json, msg } = await call(api(c), body, h);
      assert.equal(json.success, false, what);
      assert.equal(json.kind, kind, `${what}: ${String(json.error)}`);
      assert.ok(typeof json.error === "string" && json.error.length > 0, what);
      assert.equal(msg.headers?.get("Nats-Service-Error-Code"), { invalid: "400", not_found: "404" }[kind], what);
      assert.equal(msg.headers?.get("Stowage-Error-Kind"), kind, what);
    }
    const tooBig = (await call(api(c), cases.find(([w]) => w === "value over max_value_size")![1])).json.error as string;
    assert.match(tooBig, /100000 bytes, over this component's max_value_size of 64 KiB/);
    const unsupported = await start({ store: "memory:" });
    await call(api(unsupported), '{"action":"put","key":"a","data":1}');
    assert.equal((await call(api(unsupported), '{"action":"versions","key":"a"}')).json.kind, "unsupported");
    assert.equal((await call(api(unsupported), '{"action":"versions","key":"a"}')).msg.headers?.get("Nats-Service-Error-Code"), "501");
  });

  it("stays healthy after thousands of bad requests", async () => {
    const c = await start();
    const bad = ['{"action":', "", "[]", '{"action":"nope"}', '{"action":"get"}', '{"action":"get","key":"/x"}', '{"action":"put","key":"a","data_base64":"%"}'];
    const total = 3000;
    for (let sent = 0; sent < total; sent += 300) {
      const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => nc.request(api(c), bad[(sent + i) % bad.length], { timeout: 10_000 })));
      for (const r of replies) assert.equal((r.json() as { success: boolean }).success, false);
    }
    assert.deepEqual((await call(api(c), '{"action":"put","key":"still/alive","data":true}')).json, { success: true, key: "still/alive" });
    assert.equal((await call(api(c), '{"action":"get","key":"still/alive"}')).json.data, true);
    const health = c.health();
    assert.equal(health.healthy, true);
    assert.equal(health.errorCount, 0, "client mistakes are not component errors");
    assert.ok(health.rejectedCount >= total);
    assert.ok(c.flowMetrics().errorRate > 0.9);
  });

  it("answers a request over its deadline with a transient error, and keeps going", async () => {
    const c = await start({ timeouts: { get: "50ms" } }, { store: new SlowReads(new MemoryStore(), 1000) });
    await call(api(c), '{"action":"put","key":"slow","data":1}');
    const t0 = Date.now();
    const { json, msg } = await call(api(c), '{"action":"get","key":"slow"}');
    assert.ok(Date.now() - t0 < 900, "answered at the deadline, not when the read finished");
    assert.equal(json.success, false);
    assert.equal(json.kind, "transient");
    assert.match(json.error as string, /timed out after 50 ms/);
    assert.equal(msg.headers?.get("Nats-Service-Error-Code"), "503");
    assert.equal(c.health().errorCount, 1);
    assert.equal(c.health().lastError?.kind, "transient");
  });

  it("refuses a value too large for one NATS message with a clear error; raw mode carries more", async () => {
    const store = new MemoryStore();
    const c = await start({}, { store });
    const maxPayload = nc.info!.max_payload;
    const big = Uint8Array.from({ length: Math.floor(maxPayload * 0.9) }, (_, i) => (i * 7) % 251);
    await store.put("big", big);
    const { json } = await call(api(c), '{"action":"get","key":"big"}');
    assert.equal(json.success, false);
    assert.equal(json.kind, "invalid");
    assert.match(json.error as string, /max_payload/);
    const raw = await call(api(c), "", { "Stowage-Action": "get", "Stowage-Key": "big" });
    assert.deepEqual(new Uint8Array(raw.msg.data), big);
    await store.put("huge", new Uint8Array(maxPayload + 10));
    const rawHuge = await call(api(c), "", { "Stowage-Action": "get", "Stowage-Key": "huge" });
    assert.equal(rawHuge.msg.headers?.get("Stowage-Error-Kind"), "invalid");
    assert.match(rawHuge.msg.headers?.get("Nats-Service-Error") ?? "", /NATS cannot carry it in one message/);
  });

  it("shares the api subject between two instances: each request is handled exactly once", async () => {
    const name = uniqueName("shared");
    const store = new MemoryStore({ history: 10 });
    const a = await start({ name }, { store });
    const own = await connect({ servers: url! });
    const b = await start({ name }, { store, nc: own });
    const events: string[] = [];
    const sub = nc.subscribe(a.config.events.subject, { callback: (_err, m) => void events.push((m.json() as { key: string }).key) });
    await nc.flush();
    const n = 400;
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => call(api(a), JSON.stringify({ action: "put", key: `k/${i}`, data: i }))));
    assert.ok(replies.every((r) => r.json.success === true));
    for (let i = 0; i < n; i++) assert.equal((await store.versions(`k/${i}`)).length, 1, `k/${i} stored once`);
    await waitUntil(() => events.length >= n);
    await sleep(100);
    sub.unsubscribe();
    assert.equal(events.length, n);
    assert.equal(new Set(events).size, n);
    const handledA = a.flowMetrics().totalMessages;
    const handledB = b.flowMetrics().totalMessages;
    assert.equal(handledA + handledB, n);
    assert.ok(handledA > 0 && handledB > 0, `both instances took work (${handledA} / ${handledB})`);
    await b.stop(2000);
    assert.equal(own.isClosed(), false, "a connection passed in stays open");
    await own.close();
  });

  it("is found by $SRV.PING, $SRV.INFO and $SRV.STATS, and describes itself", async () => {
    const c = await start();
    const name = c.config.name;
    const client = new Svcm(nc).client();
    const pings = [];
    for await (const p of await client.ping(name)) pings.push(p);
    assert.equal(pings.length, 1);
    assert.equal(pings[0]!.name, name);
    const infos = [];
    for await (const i of await client.info(name)) infos.push(i);
    const subjects = infos[0]!.endpoints.map((e) => e.subject).sort();
    assert.deepEqual(subjects, [api(c), ...["get", "store", "list", "put", "delete", "stat", "versions", "describe"].map((a) => `${api(c)}.${a}`)].sort());
    assert.ok(infos[0]!.endpoints.every((e) => e.queue_group === "stowage"));
    await call(api(c), '{"action":"put","key":"s","data":1}');
    await call(`${api(c)}.get`, '{"key":"s"}');
    const stats = [];
    for await (const s of await client.stats(name)) stats.push(s);
    const endpoints = stats[0]!.endpoints!;
    assert.equal(endpoints.find((e) => e.name === "api")!.num_requests, 1);
    assert.equal(endpoints.find((e) => e.name === "get")!.num_requests, 1);
    const data = endpoints[0]!.data as { health: { healthy: boolean }; flow: { totalMessages: number; messagesPerSecond: number } };
    assert.equal(data.health.healthy, true);
    assert.equal(data.flow.totalMessages, 2);
    assert.ok(data.flow.messagesPerSecond > 0);
    // The raw control subjects answer too.
    const ping = (await nc.request(`$SRV.PING.${name}`, "", { timeout: 2000 })).json() as { name: string; type: string };
    assert.equal(ping.type, "io.nats.micro.v1.ping_response");
    const described = (await call(`${api(c)}.describe`, "")).json as { meta: { name: string; type: string }; ports: { inputs: { name: string }[]; outputs: { name: string }[] }; config_schema: { type: string }; health: { healthy: boolean } };
    assert.deepEqual(described.meta.name, name);
    assert.deepEqual(described.ports.inputs.map((p) => p.name), ["api", "write"]);
    assert.deepEqual(described.ports.outputs.map((p) => p.name), ["events"]);
    assert.equal(described.config_schema.type, "object");
    assert.equal(described.health.healthy, true);
  });

  it("starts idempotently, drains requests in flight on stop, then stops answering", async () => {
    const c = new StorageComponent({ config: { name: uniqueName("life"), nats: { servers: url! } }, store: new SlowReads(new MemoryStore(), 300), logger: silentLogger });
    await Promise.all([c.start(), c.start()]);
    await c.start();
    await c.store!.put("k", encoder.encode('"v"'));
    const inFlight = Array.from({ length: 20 }, () => call(api(c), '{"action":"get","key":"k"}'));
    await sleep(100);
    await Promise.all([c.stop(5000), c.stop(5000)]);
    for (const r of await Promise.all(inFlight)) assert.deepEqual(r.json, { success: true, key: "k", encoding: "json", data: "v" });
    assert.equal(c.state, "stopped");
    await assert.rejects(nc.request(api(c), '{"action":"get","key":"k"}', { timeout: 1000 }));
    await c.stop(1000);
  });

  it("opens a nats:// store through its own connection: a store server down at start-up is no obstacle", async () => {
    const jsm = await jetstreamManager(nc);
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (msg: string) => void warnings.push(msg) };
    const buckets = [uniqueName("SHARED").replace(/[^\w-]/g, "_"), uniqueName("HOSTLESS").replace(/[^\w-]/g, "_")];
    try {
      // A cluster instance whose store URL names the node that is down: nats.servers lists it
      // and a live one, and the store follows the component's connection to the live one.
      const down = new StorageComponent({
        config: { name: uniqueName("shr"), store: `nats://127.0.0.1:1/${buckets[0]}?sweepInterval=0`, nats: { servers: ["nats://127.0.0.1:1", url!] } },
        logger,
      });
      // No server in the URL at all: the component's (here also the backend's default server,
      // so this checks the form works; the case above checks which connection is used).
      const hostless = new StorageComponent({ config: { name: uniqueName("shr"), store: `nats:///${buckets[1]}?sweepInterval=0`, nats: { servers: url! } }, logger });
      for (const c of [down, hostless]) {
        await c.start();
        assert.deepEqual((await call(api(c), '{"action":"put","key":"a/b","data":{"v":1}}')).json, { success: true, key: "a/b" });
        assert.deepEqual((await call(api(c), '{"action":"get","key":"a/b"}')).json, { success: true, key: "a/b", encoding: "json", data: { v: 1 } });
        assert.equal(c.health().healthy, true);
        await c.stop(2000);
        assert.equal(c.state, "stopped");
      }
      assert.deepEqual(warnings, [], "the store closed cleanly before the connection it used");
      for (const bucket of buckets) assert.equal((await jsm.streams.info(`KV_${bucket}`)).state.messages, 1, "the value went to the real server");

      // A URL naming a server outside nats.servers is a different NATS system: the URL wins,
      // and the failure says why the component's servers were not used.
      const elsewhere = new StorageComponent({ config: { name: uniqueName("shr"), store: "nats://127.0.0.1:1/ELSEWHERE", nats: { servers: url! } }, logger });
      await assert.rejects(elsewhere.start(), (err: unknown) => {
        assert.ok(err instanceof StorageError && err.kind === "transient", String(err));
        assert.match(err.message, /store nats:\/\/127\.0\.0\.1:1\/ELSEWHERE: open: cannot reach the NATS server .*connects on its own rather than through nats\.servers/);
        return true;
      });
      assert.equal(elsewhere.state, "stopped");
    } finally {
      for (const bucket of buckets) await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
    }
  });

  it("serves Prometheus metrics over HTTP", async () => {
    const c = await start({ metrics_port: 0 });
    await call(api(c), '{"action":"put","key":"m","data":1}');
    await call(api(c), '{"action":"get","key":"nope"}');
    const response = await fetch(c.metricsUrl!);
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.match(text, new RegExp(`stowage_component_messages_total\\{component="${c.config.name}",operation="put",outcome="ok"\\} 1`));
    assert.match(text, new RegExp(`stowage_component_messages_total\\{component="${c.config.name}",operation="get",outcome="not_found"\\} 1`));
    assert.match(text, /stowage_component_message_duration_seconds_bucket/);
    assert.equal((await fetch(c.metricsUrl!.replace("/metrics", "/other"))).status, 404);
  });
});

function toHeaders(h: Record<string, string>) {
  const out = headers();
  for (const [k, v] of Object.entries(h)) out.set(k, v);
  return out;
}

async function waitUntil(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(20);
  }
}
