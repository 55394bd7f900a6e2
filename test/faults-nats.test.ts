/**
 * Faults on NATS: a private nats-server (never the shared one) restarted in the middle of a
 * sustained write load. Every put resolves (and its value is then readable) or rejects with a
 * `transient` error; no acknowledged write is lost; the store and a component on the same
 * server reconnect by themselves.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { openStore, type Store } from "../src/index.js";
import { StorageComponent, silentLogger } from "../src/component/index.js";
import { natsServerBinary, startNatsServer, type NatsServerHandle } from "./fixtures/nats.js";
import { unavailable, uniqueName } from "./fixtures/services.js";
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
