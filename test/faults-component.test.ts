/**
 * Faults on the storage component (a private nats-server, never the shared one):
 * - the component stopped and started (in process), and `stowage serve` SIGKILLed and run
 *   again, while messages flow to the durable JetStream write port: every message published
 *   (acknowledged by the stream) ends up stored exactly once, under the key its id gives, with
 *   its exact bytes; 0 lost, 0 stored twice under different keys;
 * - a slow store (a delaying wrapper over a real memory store, one that honours the deadline's
 *   signal and one that ignores it): requests are answered with a `transient` "timed out" error
 *   near the configured deadline, and the component stays healthy and fast for other requests.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { openStore, type Store } from "../src/index.js";
import { MemoryStore } from "../src/backends/memory.js";
import { LayerStore } from "../src/layers/index.js";
import { sleep } from "../src/internal/signal.js";
import { StorageComponent, silentLogger, type ComponentConfigInput } from "../src/component/index.js";
import type { CleanPutOptions } from "../src/store.js";
import type { GetOptions } from "../src/types.js";
import { natsServerBinary, startNatsServer, type NatsServerHandle } from "./fixtures/nats.js";
import { dropStoreTables, findPostgres, storeUrl, uniqueTable } from "./fixtures/postgres.js";
import { runStowage } from "./fixtures/serve-process.js";
import { startTcpProxy } from "./fixtures/tcp-proxy.js";
import { unavailable, uniqueName, waitFor } from "./fixtures/services.js";

const skip = natsServerBinary() ? false : unavailable("nats-server", "a nats-server binary to start private servers");
const postgres = await findPostgres();
const encoder = new TextEncoder();

/**
 * Message `i`: even ones carry their id in the Nats-Msg-Id header; odd ones only in the payload
 * (a JSON `id` the write port must not key by: their identity is the stream's sequence).
 */
function message(i: number): { id: string; body: Uint8Array; header: boolean } {
  const id = `m-${String(i).padStart(6, "0")}`;
  return { id, body: encoder.encode(JSON.stringify({ id, n: i, pad: "x".repeat(i % 50) })), header: i % 2 === 0 };
}

/** Publishes `count` messages through JetStream (each acknowledged by the stream), calling `at(i)` before message i. */
async function publishAll(nc: NatsConnection, subject: string, count: number, at: (i: number) => Promise<void>): Promise<number> {
  const js = jetstream(nc);
  let acked = 0;
  for (let i = 0; i < count; i += 50) {
    await at(i);
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, async (_, j) => {
        const m = message(i + j);
        await js.publish(subject, m.body, m.header ? { msgID: m.id } : {});
        acked++;
      }),
    );
  }
  return acked;
}

/**
 * Asserts the store holds each of `count` messages exactly once, with its bytes, under
 * `<prefix>/…/<Nats-Msg-Id>` (even ones) or `<prefix>/…/<stream>-<sequence>` (odd ones).
 */
async function assertEachStoredOnce(store: Store, prefix: string, count: number, stream: string): Promise<void> {
  await waitFor(`${count} messages stored`, async () => (await store.list(`${prefix}/`)).length >= count, 90_000).catch(() => undefined);
  const keys = await store.list(`${prefix}/`);
  const seen = new Map<string, string[]>();
  for (const key of keys) {
    const body = await store.get(key);
    const { id } = JSON.parse(new TextDecoder().decode(body)) as { id: string };
    seen.set(id, [...(seen.get(id) ?? []), key]);
    const m = message(Number(id.slice(2)));
    assert.deepEqual(Buffer.from(body), Buffer.from(m.body), `${key} holds its message's bytes`);
    const last = key.slice(key.lastIndexOf("/") + 1);
    assert.ok(m.header ? last === id : new RegExp(`^${stream}-\\d+$`).test(last), `${key}: keyed by the message's identity`);
  }
  const twice = [...seen].filter(([, k]) => k.length > 1).map(([id, k]) => `${id}: ${k.join(", ")}`);
  assert.deepEqual(twice.slice(0, 5), [], "messages stored twice under different keys");
  const missing = Array.from({ length: count }, (_, i) => message(i).id).filter((id) => !seen.has(id));
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} messages lost`);
  assert.equal(keys.length, count, "exactly one key per message");
}

describe("faults: the storage component", { skip, timeout: 300_000 }, () => {
  let server: NatsServerHandle;
  let nc: NatsConnection;
  const cleanup: (() => Promise<unknown>)[] = [];
  before(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
    await nc?.close();
    await server?.destroy();
  });

  function jetstreamConfig(name: string): ComponentConfigInput {
    return {
      name,
      nats: { servers: server.url },
      ports: { inputs: [{ name: "write", type: "jetstream", subject: `storage.${name}.write` }] },
      // A delivery that died with the component comes back after 2 s, not the default 30.
      write: { ack_wait: "2s", backoff: ["200ms"] },
    };
  }

  it("stopped and started while messages flow to the JetStream write port: 0 lost, none stored twice", async () => {
    const name = uniqueName("faults").replace(/[^\w-]/g, "_");
    const store = new MemoryStore();
    cleanup.push(() => store.close());
    const config = jetstreamConfig(name);
    let component = new StorageComponent({ config, store, logger: silentLogger });
    await component.start();
    const count = 1500;
    let restarts = 0;
    const acked = await publishAll(nc, `storage.${name}.write`, count, async (i) => {
      if (i === 500 || i === 1000) {
        // Stop with messages in flight (a short drain), publish on while it is down, start a new instance.
        await component.stop(200);
        await sleep(300);
        component = new StorageComponent({ config, store, logger: silentLogger });
        await component.start();
        restarts++;
      }
    });
    cleanup.push(() => component.stop(2000));
    assert.equal(acked, count);
    await assertEachStoredOnce(store, "messages", count, component.config.jetstream.stream);
    assert.equal(component.health().healthy, true);
    console.log(`# component restarted ${restarts} times while ${count} messages flowed: ${count} stored once each, 0 lost, 0 duplicated`);
  });

  it("`stowage serve` SIGKILLed mid-flow and run again: 0 lost, none stored twice", async () => {
    const name = uniqueName("faults").replace(/[^\w-]/g, "_");
    const dir = await mkdtemp(join(tmpdir(), "stowage-faults-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const configFile = join(dir, "config.json");
    await writeFile(configFile, JSON.stringify({ ...jetstreamConfig(name), store: `file:${join(dir, "data")}` }));
    const serve = () => runStowage(["serve", "-c", configFile]);
    let running = serve();
    cleanup.push(() => running.stop("SIGKILL"));
    await running.started;
    const count = 1200;
    let kills = 0;
    const acked = await publishAll(nc, `storage.${name}.write`, count, async (i) => {
      if (i === 400 || i === 800) {
        await running.stop("SIGKILL");
        kills++;
        running = serve();
        await running.started;
      }
    });
    assert.equal(acked, count);
    const store = await openStore(`file:${join(dir, "data")}`);
    cleanup.push(() => store.close());
    await assertEachStoredOnce(store, "messages", count, `STOWAGE_${name.toUpperCase()}`);
    assert.equal(await running.stop("SIGTERM"), 0, `stowage serve exits 0 on SIGTERM; stderr: ${running.stderr().slice(-500)}`);
    console.log(`# stowage serve SIGKILLed ${kills} times while ${count} messages flowed: ${count} stored once each, 0 lost, 0 duplicated`);
  });

  it("PostgreSQL refusing connections: the write port pauses, dead-letters nothing, and stores every message once it is back", { skip: "skip" in postgres ? postgres.skip : false }, async () => {
    const direct = (postgres as { url: string }).url;
    const target = new URL(direct);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const table = uniqueTable("stowage_outage");
    cleanup.push(() => dropStoreTables(direct, [table]));
    cleanup.push(() => proxy.close());
    const viaProxy = new URL(storeUrl(direct, { table }));
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    const name = uniqueName("outage").replace(/[^\w-]/g, "_");
    const config = jetstreamConfig(name);
    // Two failures of a message dead-letter it, 100 ms apart: an outage counted against the
    // messages would use that up at once.
    config.write = { ...config.write, max_deliver: 2, backoff: ["100ms", "200ms"] };
    const component = new StorageComponent({ config: { ...config, store: viaProxy.href, timeouts: { default: "2s" } }, logger: silentLogger });
    await component.start();
    cleanup.push(() => component.stop(2000));
    const dead: string[] = [];
    const sub = nc.subscribe(component.config.jetstream.deadLetterSubject, { callback: (_e, m) => void dead.push(m.headers?.get("Nats-Msg-Id") ?? "?") });
    await nc.flush();

    proxy.refuse(true);
    proxy.cut();
    const js = jetstream(nc);
    for (let i = 0; i < 20; i++) await js.publish(component.config.write.subject, encoder.encode(JSON.stringify({ reading: i })), { msgID: `outage-${i}` });
    // Ten times what two counted failures take: every message has been tried by now.
    await sleep(3000);
    const store = await openStore(storeUrl(direct, { table }));
    cleanup.push(() => store.close());
    assert.equal((await store.list()).length, 0, "nothing stored while PostgreSQL refused connections");
    assert.deepEqual(dead, [], "no message dead-lettered during the outage");

    proxy.refuse(false);
    await waitFor("20 messages stored after the outage", async () => (await store.list()).length >= 20, 30_000);
    await sleep(300);
    const keys = await store.list();
    assert.deepEqual(keys.map((k) => k.slice(k.lastIndexOf("/") + 1)).sort(), Array.from({ length: 20 }, (_, i) => `outage-${i}`).sort());
    for (const key of keys) {
      const i = Number(key.slice(key.lastIndexOf("-") + 1));
      assert.deepEqual(JSON.parse(new TextDecoder().decode(await store.get(key))), { reading: i });
    }
    sub.unsubscribe();
    assert.deepEqual(dead, [], "no message dead-lettered");
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(component.config.jetstream.deadLetterStream)).state.messages, 0);
    console.log(`# PostgreSQL refused connections for 3 s while 20 messages arrived: 20 stored after it came back, 0 dead-lettered`);
  });

  /** A real memory store whose puts and gets take `ms` longer; `honour`: the delay ends when the signal aborts. */
  class SlowStore extends LayerStore {
    constructor(inner: Store, readonly ms: number, readonly honour: boolean) {
      super(inner);
    }
    protected override async _get(key: string, options: GetOptions): Promise<Uint8Array> {
      await sleep(this.ms, this.honour ? options.signal : undefined);
      return super._get(key, options);
    }
    protected override async _put(key: string, data: Uint8Array, options: CleanPutOptions): Promise<void> {
      await sleep(this.ms, this.honour ? options.signal : undefined);
      return super._put(key, data, options);
    }
  }

  for (const honour of [true, false]) {
    it(`a slow store (${honour ? "honours" : "ignores"} the signal): requests time out with a transient error, the component stays healthy`, async () => {
      const inner = new MemoryStore();
      await inner.put("fast", encoder.encode('"ok"'));
      const slow = new SlowStore(inner, 3000, honour);
      // Only keys under slow/ are slow: the same component must keep answering the rest at once.
      const store = new (class extends LayerStore {
        protected override _get(key: string, options: GetOptions) {
          return key.startsWith("slow/") ? slow.get(key, options) : inner.get(key, options);
        }
        protected override _put(key: string, data: Uint8Array, options: CleanPutOptions) {
          return key.startsWith("slow/") ? slow.put(key, data, options) : inner.put(key, data, options);
        }
      })(inner);
      const component = new StorageComponent({
        config: { name: uniqueName("slow").replace(/[^\w-]/g, "_"), nats: { servers: server.url }, timeouts: { default: "300ms" } },
        store,
        logger: silentLogger,
      });
      await component.start();
      cleanup.push(() => component.stop(5000));
      const subject = component.config.api.subject;
      const call = async (body: object) => {
        const started = performance.now();
        const msg = await nc.request(subject, JSON.stringify(body), { timeout: 10_000 });
        return { answer: msg.json<{ success: boolean; error?: string; kind?: string }>(), ms: performance.now() - started, code: msg.headers?.get("Nats-Service-Error-Code") };
      };
      const slowCalls = await Promise.all(
        Array.from({ length: 20 }, (_, i) => call(i % 2 ? { action: "get", key: `slow/${i}` } : { action: "put", key: `slow/${i}`, data: i })),
      );
      for (const { answer, ms, code } of slowCalls) {
        assert.equal(answer.success, false);
        assert.equal(answer.kind, "transient", JSON.stringify(answer));
        assert.match(answer.error!, /timed out after 300 ms/);
        assert.equal(code, "503");
        assert.ok(ms < 2500, `answered in ${Math.round(ms)} ms, near the 300 ms deadline, not after the store's 3 s`);
      }
      const fast = await call({ action: "get", key: "fast" });
      assert.equal(fast.answer.success, true);
      const health = component.health();
      assert.equal(health.healthy, true);
      assert.equal(health.errorCount, 20);
      assert.equal(health.lastError?.kind, "transient");
      const p = Math.max(...slowCalls.map((c) => c.ms));
      console.log(`# slow store (${honour ? "honours" : "ignores"} the signal): 20 requests answered transient in at most ${Math.round(p)} ms (deadline 300 ms); healthy after`);
    });
  }
});
