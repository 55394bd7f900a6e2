/**
 * Faults on NATS: a private nats-server (never the shared one) restarted in the middle of a
 * sustained write load. Every put resolves (and its value is then readable) or rejects with a
 * `transient` error; no acknowledged write is lost; the store and a component on the same
 * server reconnect by themselves. Then writes whose bytes a proxy holds or delays past their
 * deadline: what a timed-out put may still do (land late: indeterminate), what it must never
 * do (add versions on retry, leave its key pointing at a missing object).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { openStore, type Store } from "../src/index.js";
import type { NatsStore } from "../src/backends/nats.js";
import { HEADER } from "../src/backends/nats/entry.js";
import { encodeKey } from "../src/backends/nats/key-codec.js";
import { assertKind, patterned, text } from "../src/testing/helpers.js";
import { StorageComponent, silentLogger } from "../src/component/index.js";
import { natsServerBinary, startNatsServer, type NatsServerHandle } from "./fixtures/nats.js";
import { unavailable, uniqueName, waitFor } from "./fixtures/services.js";
import { startTcpProxy, type TcpProxy } from "./fixtures/tcp-proxy.js";
import { assertOnlyTransient, describeReport, runWriteLoad, verifyAcknowledged, waitUntilWorks } from "./fixtures/write-load.js";

const skip = natsServerBinary() ? false : unavailable("nats-server", "a nats-server binary to start private servers");

describe("faults: NATS server restarted under write load", { skip, timeout: 240_000 }, () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  });

  async function privateServer(): Promise<NatsServerHandle> {
    const server = await startNatsServer();
    cleanup.push(() => server.destroy());
    return server;
  }

  async function openOn(server: NatsServerHandle): Promise<Store> {
    const bucket = uniqueName("faults").replace(/[^-\w]/g, "_");
    // timeout: a JetStream publish unanswered for 3 s fails as transient (the default 5 s only slows the test).
    const store = await openStore(`${server.url}/${bucket}?timeout=3000`);
    cleanup.push(() => store.close());
    return store;
  }

  for (const hard of [false, true]) {
    it(`${hard ? "SIGKILL" : "SIGTERM"} restart: transient-only failures, 0 acknowledged writes lost, reconnects by itself`, async () => {
      const server = await privateServer();
      const store = await openOn(server);
      const report = await runWriteLoad(store, {
        count: 3000,
        concurrency: 32,
        prefix: "load",
        fault: {
          afterAcks: 1000,
          run: async () => {
            await server.stop(hard);
            await new Promise((r) => setTimeout(r, 500));
            await server.start();
          },
        },
      });
      assertOnlyTransient(report, "nats restart");
      await waitUntilWorks("the NATS store", () => store.get("load/000000"));
      const verified = await verifyAcknowledged(store, report, "load");
      assert.ok(verified >= 1000);
      console.log(`# ${describeReport(`nats ${hard ? "SIGKILL" : "SIGTERM"} restart`, report, verified)}`);
    });
  }

  it("a component on the restarted server keeps answering after the restart, without being restarted", async () => {
    const server = await privateServer();
    const component = new StorageComponent({
      config: { name: uniqueName("faults"), store: "memory:", nats: { servers: server.url } },
      logger: silentLogger,
    });
    await component.start();
    cleanup.push(() => component.stop(2000));
    const subject = component.config.api.subject;
    const client: NatsConnection = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    cleanup.push(() => client.close());
    const call = async (body: object) => (await client.request(subject, JSON.stringify(body), { timeout: 2000 })).json<{ success: boolean; data?: unknown }>();

    assert.equal((await call({ action: "put", key: "before", data: 1 })).success, true);
    await server.stop();
    await new Promise((r) => setTimeout(r, 300));
    await server.start();
    const recoveredMs = await waitUntilWorks("the component after the restart", async () => {
      const answer = await call({ action: "put", key: "after", data: 2 });
      if (!answer.success) throw new Error(JSON.stringify(answer));
    });
    // The memory store survived in the process: the earlier value is still served.
    assert.deepEqual(await call({ action: "get", key: "before" }), { success: true, key: "before", encoding: "json", data: 1 });
    assert.equal(component.state, "running");
    assert.equal(component.health().healthy, true, JSON.stringify(component.health()));
    console.log(`# component answered again ${recoveredMs} ms after the server came back`);
  });
});

describe("faults: NATS writes whose bytes are held or delayed past their deadline", { skip, timeout: 240_000 }, () => {
  let server: NatsServerHandle;
  let proxy: TcpProxy;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const stores: Store[] = [];
  before(async () => {
    server = await startNatsServer();
    proxy = await startTcpProxy("127.0.0.1", server.port);
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
  });
  after(async () => {
    proxy?.release();
    for (const s of stores) await s.close().catch(() => undefined);
    await nc?.close();
    await proxy?.close();
    await server?.destroy();
  });

  /** A store on a fresh bucket straight to the server, and one on the same bucket through the proxy. */
  async function pair(query = "", options: Parameters<typeof openStore>[1] = {}): Promise<{ direct: Store; proxied: Store; bucket: string }> {
    const bucket = uniqueName("held").replace(/[^-\w]/g, "_");
    const direct = await openStore(`${server.url}/${bucket}${query}`);
    const proxied = await openStore(`nats://127.0.0.1:${proxy.port}/${bucket}${query}`, options);
    stores.push(direct, proxied);
    return { direct, proxied, bucket };
  }
  const read = async (store: Store, key: string) => Buffer.from(await store.get(key)).toString();

  /** Runs a test body, releasing whatever the proxy holds however it ends. */
  const releasing = (body: () => Promise<void>) => async () => {
    try {
      await body();
    } finally {
      proxy.release();
      proxy.delay("both", 0);
    }
  };

  it("a put that timed out may still land after another client's acknowledged put (indeterminate); ifMatch fences it", releasing(async () => {
    const { direct, proxied } = await pair("", { timeout: 300 });
    await direct.put("k", text("base"));
    proxy.hold("up");
    await assertKind(proxied.put("k", text("late")), "transient");
    await direct.put("k", text("acknowledged"));
    proxy.release("up");
    // Nothing on the server checks a client's deadline: the held publish is stored when it arrives.
    await waitFor("the timed-out put to land", async () => (await read(direct, "k")) === "late", 5000);

    await direct.put("k", text("base 2"));
    const etag = (await direct.stat("k")).etag;
    proxy.hold("up");
    await assertKind(proxied.put("k", text("late 2"), { ifMatch: etag }), "transient");
    await direct.put("k", text("acknowledged 2"));
    proxy.release("up");
    // The held publish expects the revision it named, which is gone: the server refuses it.
    await proxied.put("sync", text("after the held bytes")); // same connection: processed after them
    assert.equal(await read(direct, "k"), "acknowledged 2");
  }));

  it("retries never add a version for an attempt that took effect (the write id is the message id)", releasing(async () => {
    const { direct, proxied } = await pair("?history=16", { timeout: 300, retry: { maxAttempts: 4, baseDelayMs: 10, maxDelayMs: 50 } });
    await direct.put("k", text("v0"));
    proxy.delay("down", 400); // every reply comes after its attempt's deadline
    try {
      await assertKind(proxied.put("k", text("v1")), "transient");
      await assertKind(proxied.put("big", patterned(3_000_000, 1)), "transient");
    } finally {
      proxy.delay("down", 0);
    }
    await proxied.put("sync", text("x"));
    assert.deepEqual((await direct.versions("k")).map((v) => v.size), [2, 2], "one version for the four attempts");
    assert.equal(await read(direct, "k"), "v1");
  }));

  /** The object stream's message count, and the object the latest index entry of `key` names. */
  const objectMessages = async (bucket: string) => (await jsm.streams.info(`OBJ_${bucket}_large`)).state.messages;
  const indexedNuid = async (bucket: string, key: string) => {
    const m = await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${encodeKey(key)}` }).catch(() => null);
    return m?.header?.get(HEADER.nuid) || undefined;
  };

  /**
   * A large put through the proxy whose chunks and object record are acknowledged, then whose
   * index entry is stored but its acknowledgement held. Resolves once the entry is on the server.
   */
  async function largePutWithHeldAck(proxied: Store, bucket: string, value: Uint8Array, options: { ifMatch?: string; beforeEntry?: () => Promise<void> } = {}): Promise<{ put: Promise<void> }> {
    const base = await objectMessages(bucket);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const chunks = Math.ceil(value.byteLength / 4096);
    const put = proxied.putStream("k", (async function* () {
      for (let i = 0; i < value.byteLength; i += 4096) yield value.subarray(i, i + 4096);
      await gate;
    })(), options.ifMatch ? { ifMatch: options.ifMatch } : {});
    put.catch(() => undefined);
    await waitFor("the chunks to be stored", async () => (await objectMessages(bucket)) === base + chunks);
    await sleep(300); // their acknowledgements reach the client
    await options.beforeEntry?.();
    proxy.hold("down");
    open();
    await waitFor("the object record to be stored", async () => (await objectMessages(bucket)) === base + chunks + 1);
    await sleep(300); // its acknowledgement reaches the proxy
    // Let that acknowledgement through, and hold the next one: the index entry's.
    proxy.release("down");
    proxy.hold("down");
    return { put };
  }


  it("a large put whose index acknowledgement never comes leaves its key readable (never pointing at a missing object)", releasing(async () => {
    const { direct, proxied, bucket } = await pair("?inlineMax=1024&chunkSize=4096&timeout=1500&sweepInterval=0");
    await direct.put("seed", patterned(5000, 1)); // the object store exists
    const value = patterned(4 * 4096, 2);
    const { put } = await largePutWithHeldAck(proxied, bucket, value);
    await waitFor("the index entry to be stored", async () => (await indexedNuid(bucket, "k")) !== undefined);
    // Both the entry's acknowledgement and the store's question about it are held: it cannot know.
    await assertKind(put, "transient");
    proxy.release("down");
    assert.deepEqual(await direct.get("k"), value, "the entry that was stored points at its object");
    assert.deepEqual(await (direct as NatsStore).sweep({ grace: 0 }), { deleted: 0, kept: 2 });
  }));

  it("a large put whose index acknowledgement is lost asks the server, and resolves when the entry was stored", releasing(async () => {
    const { direct, proxied, bucket } = await pair("?inlineMax=1024&chunkSize=4096&timeout=1500&sweepInterval=0");
    await direct.put("seed", patterned(5000, 1));
    const value = patterned(4 * 4096, 3);
    const { put } = await largePutWithHeldAck(proxied, bucket, value);
    await waitFor("the index entry to be stored", async () => (await indexedNuid(bucket, "k")) !== undefined);
    await sleep(1500 + 500); // the entry's publish has timed out; the question is on its way
    proxy.release("down");
    await put;
    assert.deepEqual(await direct.get("k"), value);
  }));

  it("a large conditional put refused while its reply was held removes its object, once the server says so", releasing(async () => {
    const { direct, proxied, bucket } = await pair("?inlineMax=1024&chunkSize=4096&timeout=1500&sweepInterval=0");
    await direct.put("seed", patterned(5000, 1));
    await direct.put("k", text("base"));
    const etag = (await direct.stat("k")).etag;
    const base = await objectMessages(bucket);
    // Another client writes between the upload and the index entry: the entry's expectation fails.
    const { put } = await largePutWithHeldAck(proxied, bucket, patterned(4 * 4096, 4), { ifMatch: etag, beforeEntry: () => direct.put("k", text("written meanwhile")) });
    await sleep(1500 + 500); // the refusal is held, the entry's publish timed out, the question is on its way
    proxy.release("down");
    await assertKind(put, "transient");
    await waitFor("the unreferenced object to be removed", async () => (await objectMessages(bucket)) === base);
    assert.equal(await read(direct, "k"), "written meanwhile");
  }));
});
