/**
 * Claims through the storage component, against the real NATS server: a consumer and a
 * publisher that use only a plain NATS client (test/fixtures/plain-client.ts imports nothing of
 * stowage) resolve and upload 20 MiB claims with the streamed get and put; flow control
 * (a reader that stops acknowledging holds the component to its window); uploads that stop,
 * abort, arrive out of order, do not match their digest, or whose component is killed, store
 * nothing; `stowage serve --claims-prefix --claims-ttl` expires claims on a schedule.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInbox, connect, headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ClaimCheck, openStore, StorageComponent, silentLogger, type ComponentConfigInput, type FileStore, type Store } from "../src/index.js";
import { claimTime } from "../src/claims/keys.js";
import { assertKind, patterned } from "../src/testing/helpers.js";
import { sharedNats } from "./fixtures/nats.js";
import { streamedGet, streamedPut, type Reference } from "./fixtures/plain-client.js";
import { runStowage } from "./fixtures/serve-process.js";
import { uniqueName, waitFor } from "./fixtures/services.js";

const MiB = 1024 * 1024;
const url = await sharedNats();

describe("claims through the storage component", { skip: url === undefined ? "no NATS server" : false }, () => {
  let nc: NatsConnection;
  /** The plain client's own connection: what another program would have. */
  let plain: NatsConnection;
  const buckets: string[] = [];
  const stores: Store[] = [];
  const components: StorageComponent[] = [];
  const dirs: string[] = [];

  before(async () => {
    nc = await connect({ servers: url! });
    plain = await connect({ servers: url! });
  });
  after(async () => {
    for (const c of components) await c.stop(2000);
    for (const s of stores) await s.close().catch(() => undefined);
    const jsm = await jetstreamManager(nc);
    for (const b of buckets) for (const stream of [`KV_${b}`, `OBJ_${b}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    await plain.close();
    await nc.close();
  });

  /** A component serving a fresh NATS store (history 1, as claims want), and that store. */
  async function serve(config: ComponentConfigInput = {}): Promise<{ component: StorageComponent; store: Store; name: string }> {
    const name = uniqueName("media").replace(/[^-\w]/g, "_");
    buckets.push(name);
    const store = await openStore(`${url}/${name}?history=1`, { nats: { connection: nc } });
    stores.push(store);
    const component = new StorageComponent({ config: { name, nats: { servers: url! }, ...config }, store, nc, logger: silentLogger });
    components.push(component);
    await component.start();
    return { component, store, name };
  }

  it("a plain NATS consumer resolves a 20 MiB claim through the streamed get", async () => {
    const { store, name } = await serve();
    const producer = new ClaimCheck({ store, instance: name, connection: nc });
    const payload = patterned(20 * MiB, 21);
    const subject = `${name}.frames`;
    const sub = plain.subscribe(subject, { max: 1 });
    await plain.flush();
    await producer.publish(nc, subject, payload, { contentType: "video/mp4" });
    let received: Msg | undefined;
    for await (const m of sub) received = m;
    assert.equal(received?.headers?.get("Stowage-Claim"), name);
    const ref = received!.json<Reference>();
    assert.equal(ref.storage_instance, name);
    assert.equal(ref.size, payload.byteLength);
    const data = await streamedGet(plain, ref.storage_instance, ref.key, { expect: ref });
    assert.ok(Buffer.from(data).equals(Buffer.from(payload)), "the same 20 MiB");
  });

  it("a plain NATS publisher checks in 20 MiB through the streamed put; ClaimCheck resolves it", async () => {
    const { store, name } = await serve();
    const payload = patterned(20 * MiB, 22);
    const uploaded = await streamedPut(plain, name, payload, { contentType: "image/tiff" });
    const ref = uploaded.claim!;
    assert.equal(ref.storage_instance, name);
    assert.equal(ref.content_type, "image/tiff");
    assert.equal(ref.size, payload.byteLength);
    assert.ok(claimTime("claims/", ref.key) !== undefined, `a time-ordered claim key: ${ref.key}`);
    // The plain publisher sends the reference as a claim check would.
    const subject = `${name}.scans`;
    const consumer = new ClaimCheck({ store, instance: name });
    const sub = nc.subscribe(subject, { max: 1 });
    await nc.flush();
    const h = headers();
    h.set("Stowage-Claim", ref.storage_instance);
    h.set("Stowage-Claim-Key", ref.key);
    plain.publish(subject, JSON.stringify(ref), { headers: h });
    for await (const m of consumer.consume(sub)) {
      assert.deepEqual(m.claim, ref);
      assert.ok(Buffer.from(m.data).equals(Buffer.from(payload)), "the same 20 MiB");
    }
    assert.deepEqual((await store.stat(ref.key)).metadata, { "content-type": "image/tiff" });
  });

  it("streamed get: a reader that stops acknowledging gets one window and no more, then the stream ends", async () => {
    const { store, name } = await serve({ timeouts: { get: "1s" }, max_in_flight: 1 });
    await store.put("big", patterned(8 * MiB, 3));
    const inbox = createInbox();
    const seen: Msg[] = [];
    const sub = plain.subscribe(inbox, { callback: (_err, m) => void seen.push(m) });
    plain.publish(`storage.${name}.api`, JSON.stringify({ action: "get", key: "big", stream: true, chunk_size: 64 * 1024, window: 4 }), { reply: inbox });
    await waitFor("the error that ends the stream", async () => seen.some((m) => m.headers?.has("Nats-Service-Error-Code")), 10_000);
    sub.unsubscribe();
    const chunks = seen.filter((m) => !m.headers?.has("Nats-Service-Error-Code"));
    assert.deepEqual(chunks.map((m) => m.headers?.get("Stowage-Stream-Seq")), ["1", "2", "3", "4"], "exactly the window");
    const end = seen.at(-1)!;
    assert.equal(end.headers?.get("Stowage-Error-Kind"), "transient");
    assert.equal(end.headers?.get("Stowage-Stream-End"), "true");
    assert.match(end.json<{ error: string }>().error, /acknowledged nothing/);
    // The stream's share of the budget is back (max_in_flight 1): another stream runs whole.
    const data = await streamedGet(plain, name, "big");
    assert.equal(data.byteLength, 8 * MiB);
  });

  it("streamed get of a missing key is not_found; an empty value is an end message alone", async () => {
    const { store, name } = await serve();
    await assert.rejects(streamedGet(plain, name, "missing"), (err: Error & { kind?: string }) => err.kind === "not_found");
    await store.put("empty", new Uint8Array(0));
    assert.equal((await streamedGet(plain, name, "empty")).byteLength, 0);
    // A plain (unstreamed) get of a value over one message says how to get it.
    await store.put("two-mib", patterned(2 * MiB));
    const answer = await plain.request(`storage.${name}.api`, JSON.stringify({ action: "get", key: "two-mib" }), { timeout: 10_000 });
    assert.match(answer.json<{ error: string }>().error, /"stream": true/);
  });

  it("streamed put: an upload that stops midway, aborts, skips a chunk or mismatches its digest stores nothing", async () => {
    const { store, name } = await serve({ timeouts: { put: "1s" } });
    const payload = patterned(3 * MiB, 5);
    const api = `storage.${name}.api`;
    const begin = async (key: string) => (await plain.request(api, JSON.stringify({ action: "put", key, stream: true, chunk_size: 256 * 1024 }), { timeout: 5000 })).json<{ subject: string }>().subject;
    const chunk = (seq: number) => {
      const h = headers();
      h.set("Stowage-Stream-Seq", String(seq));
      return { headers: h, timeout: 5000 };
    };

    // Stops midway: three chunks sent and answered, then silence past timeouts.put.
    const stopped = await streamedPut(plain, name, payload, { key: "stopped", stopAfterChunks: 3 });
    await new Promise((r) => setTimeout(r, 1500));
    await assertKind(store.stat("stopped"), "not_found", "stopped upload");
    await assert.rejects(plain.request(stopped.subject, patterned(10), chunk(4)), "the upload subject is gone");

    // Aborted.
    const aborting = await begin("aborted");
    await plain.request(aborting, payload.subarray(0, 256 * 1024), chunk(1));
    const abort = headers();
    abort.set("Stowage-Stream-Abort", "true");
    assert.equal((await plain.request(aborting, new Uint8Array(0), { headers: abort, timeout: 5000 })).json<{ aborted: boolean }>().aborted, true);
    await new Promise((r) => setTimeout(r, 200));
    await assertKind(store.stat("aborted"), "not_found", "aborted upload");

    // A chunk out of order.
    const skipping = await begin("skipped");
    await plain.request(skipping, payload.subarray(0, 1000), chunk(1));
    const wrong = await plain.request(skipping, payload.subarray(0, 1000), chunk(3));
    assert.equal(wrong.headers?.get("Stowage-Error-Kind"), "invalid");
    await new Promise((r) => setTimeout(r, 200));
    await assertKind(store.stat("skipped"), "not_found", "out-of-order upload");

    // Everything sent, but the end message's digest is another.
    const mismatched = await begin("mismatched");
    await plain.request(mismatched, payload.subarray(0, 1000), chunk(1));
    const end = headers();
    end.set("Stowage-Stream-End", "true");
    end.set("Stowage-Sha256", "0".repeat(64));
    const refused = await plain.request(mismatched, new Uint8Array(0), { headers: end, timeout: 5000 });
    assert.equal(refused.headers?.get("Stowage-Error-Kind"), "invalid");
    await assertKind(store.stat("mismatched"), "not_found", "mismatched upload");

    // And one that completes, for contrast.
    const done = await streamedPut(plain, name, payload, { key: "complete" });
    assert.equal(done.size, payload.byteLength);
    assert.ok(Buffer.from(await store.get("complete")).equals(Buffer.from(payload)));
  });

  it("a component killed during a streamed put leaves nothing", async () => {
    const dir = await mkdtemp(join(tmpdir(), "stowage-claims-kill-"));
    dirs.push(dir);
    const name = uniqueName("killed").replace(/[^-\w]/g, "_");
    const serving = runStowage(["--store", `file:${dir}`, "serve", "--name", name, "--nats", url!]);
    try {
      await serving.started;
      await streamedPut(plain, name, patterned(4 * MiB, 9), { key: "half/written", stopAfterChunks: 6 });
    } finally {
      await serving.stop("SIGKILL");
    }
    const store = (await openStore(`file:${dir}`)) as FileStore;
    try {
      await assertKind(store.stat("half/written"), "not_found", "after the kill");
      assert.deepEqual(await store.list(""), []);
      await store.sweepTempFiles(0);
    } finally {
      await store.close();
    }
    // The store's own format marker (.stowage.json) aside.
    const left = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && e.name !== ".stowage.json");
    assert.deepEqual(left.map((e) => e.name), [], "no file left once temp files are swept");
  });

  it("stowage serve --claims-prefix --claims-ttl deletes expired claims on a schedule", async () => {
    const dir = await mkdtemp(join(tmpdir(), "stowage-claims-serve-"));
    dirs.push(dir);
    const name = uniqueName("expiry").replace(/[^-\w]/g, "_");
    const seed = await openStore(`file:${dir}`);
    const hoursAgo = (h: number) => () => new Date(Date.now() - h * 3_600_000);
    const old = (await new ClaimCheck({ store: seed, instance: name, prefix: "media-claims/", threshold: 0, now: hoursAgo(3) }).checkIn(patterned(100))).claim!.key;
    const young = (await new ClaimCheck({ store: seed, instance: name, prefix: "media-claims/", threshold: 0 }).checkIn(patterned(100))).claim!.key;
    const elsewhere = (await new ClaimCheck({ store: seed, instance: name, prefix: "claims/", threshold: 0, now: hoursAgo(3) }).checkIn(patterned(100))).claim!.key;
    const serving = runStowage(["--store", `file:${dir}`, "serve", "--name", name, "--nats", url!, "--claims-prefix", "media-claims/", "--claims-ttl", "2h", "--claims-expire-interval", "1s"]);
    try {
      await serving.started;
      await waitFor("the expired claim to go", async () => !(await seed.list("")).includes(old), 15_000);
      assert.deepEqual(await seed.list(""), [elsewhere, young].sort(), "the young claim and other prefixes stay");
      assert.match(serving.stderr(), /claims expired/);
    } finally {
      await serving.stop();
      await seed.close();
    }
  });
});
