/**
 * The write port against the real NATS: plain subscription, and the durable JetStream mode
 * (nothing lost across a stop and start, redelivery with backoff, dead letters, one key per
 * message however often it is delivered).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { StorageComponent, silentLogger, type ComponentConfigInput } from "../src/component/index.js";
import { MemoryStore } from "../src/backends/memory.js";
import { StorageError } from "../src/errors.js";
import { LayerStore } from "../src/layers/index.js";
import { sleep } from "../src/internal/signal.js";
import type { CleanPutOptions } from "../src/store.js";
import type { Store } from "../src/types.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";

const url = await sharedNats();
const text = (s: string) => new TextEncoder().encode(s);

/**
 * Fault injection over a real store: puts of keys containing "poison" always fail (transient),
 * keys containing "flaky" fail their first two attempts. Counts attempts per key.
 */
class FaultyPuts extends LayerStore {
  readonly attempts = new Map<string, number>();
  constructor(inner: Store) {
    super(inner);
  }
  protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
    const n = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, n);
    if (key.includes("poison") || (key.includes("flaky") && n <= 2)) {
      throw new StorageError("transient", "injected failure", { op: "put", key });
    }
    return super._put(key, data, options);
  }
}

describe("storage component: write port", { skip: url === undefined ? "no NATS" : undefined }, () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const streams: string[] = [];
  const components: StorageComponent[] = [];

  before(async () => {
    nc = await connect({ servers: url! });
    jsm = await jetstreamManager(nc);
  });
  after(async () => {
    for (const c of components) await c.stop(2000);
    for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
    await nc.close();
  });

  function component(config: ComponentConfigInput, store: Store): StorageComponent {
    const c = new StorageComponent({ config: { nats: { servers: url! }, ...config }, store, logger: silentLogger });
    components.push(c);
    return c;
  }

  function jetstreamConfig(name: string, write: ComponentConfigInput["write"] = {}): ComponentConfigInput {
    streams.push(`STOWAGE_${name.toUpperCase()}`, `STOWAGE_${name.toUpperCase()}_DEAD`);
    return { name, ports: { inputs: [{ name: "write", type: "jetstream", subject: `storage.${name}.write` }] }, write: { ack_wait: "2s", ...write } };
  }

  it("subscribe mode: stores every message through the archiver and announces it", async () => {
    const name = uniqueName("wsub");
    const store = new MemoryStore();
    const c = component({ name }, store);
    await c.start();
    const events: { type: string; key: string }[] = [];
    const sub = nc.subscribe(c.config.events.subject, { callback: (_e, m) => void events.push(m.json()) });
    await nc.flush();
    const h = headers();
    h.set("Nats-Msg-Id", "order/42");
    h.set("Stowage-Meta-Origin", "test");
    nc.publish(c.config.write.subject, text('{"id":"reading-7","value":1.50}'));
    nc.publish(c.config.write.subject, text('{"value":2}'));
    nc.publish(c.config.write.subject, Uint8Array.from([0, 255, 1, 254]));
    nc.publish(c.config.write.subject, text("payload"), { headers: h });
    await waitUntil(async () => (await store.list()).length === 4);
    const keys = await store.list();
    const hour = /^messages\/\d{4}\/\d{2}\/\d{2}\/\d{2}\//;
    assert.ok(keys.every((k) => hour.test(k)), keys.join(", "));
    const values = new Map(await Promise.all(keys.map(async (k) => [new TextDecoder().decode(await store.get(k)), k] as const)));
    // No identity (no Nats-Msg-Id, subscribe mode): the archiver's key generator, never the JSON id.
    const reading = values.get('{"id":"reading-7","value":1.50}');
    assert.ok(reading !== undefined, "bytes kept exactly");
    assert.ok(!reading.endsWith("/reading-7"), reading);
    assert.equal((await store.stat(reading)).metadata["content-type"], "application/json");
    const headerId = keys.find((k) => k.endsWith("/order%2F42"))!;
    const metadata = (await store.stat(headerId)).metadata;
    assert.equal(metadata["content-type"], "application/octet-stream");
    assert.equal(metadata.origin, "test", "Stowage-Meta-* headers become metadata");
    const bytes = await Promise.all(keys.map((k) => store.get(k)));
    assert.ok(bytes.some((v) => v.byteLength === 4 && v[1] === 255), "binary message stored as is");
    await waitUntil(async () => events.length === 4);
    sub.unsubscribe();
    assert.deepEqual(new Set(events.map((e) => e.key)), new Set(keys));
    assert.ok(events.every((e) => e.type === "stored"));
    await c.stop(2000);
  });

  it("keys a message by its identity, never by a JSON id: 500 readings from 5 sensors are 500 values", async () => {
    const reading = (i: number) => text(JSON.stringify({ id: `sensor-${i % 5}`, n: i, value: i / 10 }));
    // Subscribe mode without a Nats-Msg-Id: no identity, so the archiver's key generator decides.
    const name = uniqueName("wkey");
    const store = new MemoryStore();
    const c = new StorageComponent({
      config: { name, nats: { servers: url! } },
      store,
      logger: silentLogger,
      archiving: { keyGenerator: { generateKey: (m) => `readings/${(m as { n: number }).n}` } },
    });
    components.push(c);
    await c.start();
    for (let i = 0; i < 500; i++) nc.publish(c.config.write.subject, reading(i));
    await waitUntil(async () => (await store.list()).length >= 500, 20_000).catch(() => undefined);
    const keys = await store.list();
    assert.equal(keys.length, 500, "one value per reading");
    assert.deepEqual(new Set(keys), new Set(Array.from({ length: 500 }, (_, i) => `readings/${i}`)), "the configured key generator made every key");
    await c.stop(2000);

    // Jetstream mode: the identity is the stream's sequence.
    const jsName = uniqueName("wkeyjs");
    const jsStore = new MemoryStore();
    const j = component(jetstreamConfig(jsName), jsStore);
    await j.start();
    const js = jetstream(nc);
    await Promise.all(Array.from({ length: 500 }, (_, i) => js.publish(j.config.write.subject, reading(i))));
    await waitUntil(async () => (await jsStore.list()).length >= 500, 20_000).catch(() => undefined);
    const jsKeys = await jsStore.list();
    assert.equal(jsKeys.length, 500, "one value per reading");
    const stream = j.config.jetstream.stream;
    assert.ok(jsKeys.every((k) => new RegExp(`^messages/\\d{4}/\\d{2}/\\d{2}/\\d{2}/${stream}-\\d+$`).test(k)), jsKeys[0]);
    await j.stop(2000);
  });

  it("jetstream mode: loses nothing across a stop and start, and stores each message once", async () => {
    const name = uniqueName("wjs");
    const store = new MemoryStore();
    const config = jetstreamConfig(name);
    const js = jetstream(nc);
    const first = component(config, store);
    await first.start();
    const subject = first.config.write.subject;
    // Half carry a Nats-Msg-Id, half only the stream's sequence as their identity.
    const publish = (i: number) => js.publish(subject, text(JSON.stringify({ n: i })), i % 2 === 0 ? { msgID: `m-${i}` } : {});
    for (let i = 0; i < 20; i++) await publish(i);
    // Stop in the middle of a burst: some are stored, some in flight, some not yet delivered.
    const burst = Array.from({ length: 80 }, (_, i) => publish(20 + i));
    await Promise.all(burst);
    await first.stop(5000);
    const storedWhileUp = (await store.list()).length;
    // Published while no instance runs: JetStream keeps them.
    for (let i = 100; i < 150; i++) await publish(i);
    await sleep(200);
    assert.equal((await store.list()).length, storedWhileUp, "nothing is consumed while stopped");

    const second = component(config, store);
    await second.start();
    await waitUntil(async () => (await store.list()).length >= 150, 20_000);
    await sleep(300);
    const keys = await store.list();
    assert.equal(keys.length, 150, "every message stored, none twice");
    const ids = new Set(keys.map((k) => k.split("/").at(-1)));
    const stream = first.config.jetstream.stream;
    for (let i = 0; i < 150; i++) {
      const id = i % 2 === 0 ? `m-${i}` : `${stream}-${i + 1}`;
      assert.ok(ids.has(id), id);
      const key = keys.find((k) => k.endsWith(`/${id}`))!;
      assert.deepEqual(JSON.parse(new TextDecoder().decode(await store.get(key))), { n: i });
    }
    const info = await jsm.consumers.info(second.config.jetstream.stream, second.config.jetstream.durable);
    await second.stop(5000);
    assert.equal(info.num_pending, 0);
  });

  it("jetstream mode: redelivers failures with backoff and dead-letters a message that keeps failing", async () => {
    const name = uniqueName("wdlq");
    const store = new FaultyPuts(new MemoryStore());
    const config = jetstreamConfig(name, { max_deliver: 3, backoff: ["100ms", "300ms"] });
    config.max_value_size = 1000;
    const c = component(config, store);
    await c.start();
    const dead: Msg[] = [];
    const sub = nc.subscribe(c.config.jetstream.deadLetterSubject, { callback: (_e, m) => void dead.push(m) });
    await nc.flush();
    const js = jetstream(nc);
    const publish = (id: string, body: Uint8Array) => {
      const h = headers();
      h.set("Nats-Msg-Id", id);
      return js.publish(c.config.write.subject, body, { headers: h });
    };
    const t0 = Date.now();
    await publish("flaky-1", text('"f"'));
    await publish("poison-1", text('"p"'));
    await publish("too-big", new Uint8Array(5000));
    await publish("fine-1", text('"ok"'));
    await waitUntil(async () => dead.length === 2 && (await store.inner.list()).length === 2, 15_000);
    sub.unsubscribe();
    const keys = await store.inner.list();
    assert.deepEqual(keys.map((k) => k.split("/").at(-1)).sort(), ["fine-1", "flaky-1"]);
    const flakyKey = keys.find((k) => k.endsWith("flaky-1"))!;
    assert.equal(store.attempts.get(flakyKey), 3, "stored on the third delivery");
    assert.ok(Date.now() - t0 >= 400, "waited the backoff (100 ms, then 300 ms)");

    const poison = dead.find((m) => m.headers?.get("Nats-Msg-Id") === "poison-1")!;
    assert.equal(new TextDecoder().decode(poison.data), '"p"');
    assert.equal(poison.headers?.get("Stowage-Deliveries"), "3");
    assert.equal(poison.headers?.get("Stowage-Error-Kind"), "transient");
    assert.equal(poison.headers?.get("Stowage-Original-Subject"), c.config.write.subject);
    const tooBig = dead.find((m) => m.headers?.get("Nats-Msg-Id") === "too-big")!;
    assert.equal(tooBig.headers?.get("Stowage-Deliveries"), "1", "an input no retry can fix is dead-lettered at once");
    assert.equal(tooBig.headers?.get("Stowage-Error-Kind"), "invalid");
    assert.equal(tooBig.data.byteLength, 5000);
    const kept = await jsm.streams.info(c.config.jetstream.deadLetterStream);
    assert.equal(kept.state.messages, 2, "the dead letters are kept by a stream");
    const poisonAttempts = [...store.attempts].filter(([k]) => k.includes("poison")).map(([, n]) => n);
    assert.deepEqual(poisonAttempts, [3]);
    assert.equal(c.health().errorCount, 5, "two flaky failures and three poison ones (the invalid one counts as a rejection)");
    await c.stop(2000);
  });

  it("jetstream mode: creates its stream with write.replicas and write.storage, and says clearly when the server cannot", async () => {
    const name = uniqueName("wrep");
    const c = component(jetstreamConfig(name, { replicas: 1, storage: "memory" }), new MemoryStore());
    await c.start();
    const info = await jsm.streams.info(c.config.jetstream.stream);
    assert.equal(info.config.num_replicas, 1);
    assert.equal(info.config.storage, "memory");
    assert.deepEqual(info.config.subjects, [c.config.write.subject]);
    await c.stop(2000);

    // One server cannot hold three replicas: start fails naming the stream and the setting.
    const r3 = component(jetstreamConfig(uniqueName("wrep3"), { replicas: 3 }), new MemoryStore());
    await assert.rejects(r3.start(), (err: unknown) => {
      assert.ok(err instanceof StorageError && err.kind === "fatal", String(err));
      assert.match(err.message, new RegExp(`cannot create stream ${r3.config.jetstream.stream} \\(replicas 3, storage default\\): .*replicas`));
      return true;
    });
    assert.equal(r3.state, "stopped");
    await assert.rejects(jsm.streams.info(r3.config.jetstream.stream), "no stream was created");
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(25);
  }
}
