import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCheckpointLocation } from "../src/move/checkpoint.js";
import { Mirror, MemoryStore, openStore, type Store } from "../src/index.js";
import { patterned } from "../src/testing/helpers.js";
import { freshStore, seed, unavailableBackend, type Backend, type FreshStore } from "./fixtures/move.js";
import { unavailable } from "./fixtures/services.js";
import { startMirror, waitConverged } from "./fixtures/mirror.js";
import { createBucket, deleteBucket, motoAvailable, sharedS3Server, startMotoServer, storeUrl as s3Url, uniqueBucket, type S3ServerHandle } from "./fixtures/s3.js";

const made: FreshStore[] = [];
const opened: Store[] = [];
after(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  for (const s of made) await s.cleanup();
});

/** A fresh store; `postgres-watch` is a PostgreSQL table opened with `?watch=true`. */
async function fresh(backend: Backend | "postgres-watch"): Promise<Store> {
  if (backend === "s3") return freshBucket();
  const s = await freshStore(backend === "postgres-watch" ? "postgres" : backend);
  made.push(s);
  if (backend !== "postgres-watch") return s.store;
  const watched = await openStore(`${s.url}&watch=true`);
  opened.push(watched);
  return watched;
}

// moto keeps keys as S3 does; s3rver maps them to file paths (no `a//b`, no long segments).
let moto: Promise<S3ServerHandle> | undefined;
after(async () => (await moto)?.stop());

/** A bucket of its own on moto (or S3_ENDPOINT). */
async function freshBucket(): Promise<Store> {
  moto ??= process.env.S3_ENDPOINT ? sharedS3Server() : startMotoServer();
  const server = await moto;
  const bucket = uniqueBucket("stowage-mirror");
  await createBucket(bucket, { server });
  const store = await openStore(s3Url(server, bucket));
  made.push({ url: "", store, cleanup: async () => {
    await store.close().catch(() => undefined);
    await deleteBucket(bucket, { server });
  } });
  return store;
}

const enc = (text: string) => new TextEncoder().encode(text);

/** Puts, overwrites (with new metadata) and deletes under `prefix`, and one key outside it. */
async function change(store: Store, prefix: string, round: number): Promise<void> {
  for (let i = 0; i < 20; i++) await store.put(`${prefix}new-${round}/${i}`, patterned(50 + i * 13, round * 100 + i), { metadata: { round: String(round) } });
  await store.put(`${prefix}plain`, enc(`overwritten in round ${round}`), { metadata: { round: String(round), "x-odd": "é" } });
  await store.put(`${prefix}with space`, new Uint8Array(0));
  for (let i = 0; i < 5; i++) await store.delete(`${prefix}new-${round}/${i}`);
  await store.delete(`${prefix}star*`);
  await store.put(`outside/${round}`, enc("never mirrored"));
}

const PAIRS: { from: Backend | "postgres-watch"; to: Backend; mode: "watch" | "poll" }[] = [
  { from: "nats", to: "s3", mode: "watch" },
  { from: "file", to: "postgres", mode: "poll" },
  { from: "postgres-watch", to: "nats", mode: "watch" },
  { from: "postgres", to: "file", mode: "poll" },
];

for (const { from, to, mode } of PAIRS) {
  const noMoto = to === "s3" && !process.env.S3_ENDPOINT && !motoAvailable() ? unavailable("moto", "install moto_server (pip install 'moto[server]') or set S3_ENDPOINT") : undefined;
  const skip = noMoto ?? (await unavailableBackend(from === "postgres-watch" ? "postgres" : from)) ?? (await unavailableBackend(to)) ?? false;
  describe(`mirror ${from} -> ${to}`, { skip }, () => {
    it(`follows the source (${mode}): puts, overwrites and deletes reach the destination with bytes and metadata; a restart resumes from the checkpoint`, async () => {
      const source = await fresh(from);
      const destination = await fresh(to);
      await seed(source, "m/", { big: false });
      const options = { prefix: "m/", destinationPrefix: "copy/", deletes: true, name: "t", interval: 300, safetyMarginMs: 2000 };
      const first = startMirror(source, destination, options);
      await first.following;
      assert.equal(first.mirror.status().mode, mode);
      await change(source, "m/", 1);
      await waitConverged(source, "m/", destination, "copy/");
      const lag = first.mirror.lagSeconds();
      const stopped = await first.stop();
      // Polling sees a key put and deleted between two listings not at all: only the watch sees every delete.
      assert.ok(stopped.deleted >= (mode === "watch" ? 6 : 1), `deletes applied: ${stopped.deleted}`);
      assert.ok(lag < 5, `lag once caught up: ${lag}`);
      assert.deepEqual(await destination.list("outside"), [], "nothing outside the prefix");
      const checkpoint = JSON.parse(new TextDecoder().decode(await destination.get(".stowage/mirror/t"))) as { appliedUntil: number };
      assert.ok(checkpoint.appliedUntil > Date.now() - 60_000, "the checkpoint was written");

      // Changes made while no mirror runs are found by the catch-up copy and the reconcile.
      await change(source, "m/", 2);
      const second = startMirror(source, destination, options);
      await second.following;
      const resumed = second.events.find((e) => e.type === "copied");
      assert.equal(resumed?.type === "copied" && resumed.reason, "resume");
      await change(source, "m/", 3);
      await waitConverged(source, "m/", destination, "copy/").catch((err: Error) => {
        const told = second.events.filter((e) => e.type !== "applied" && e.type !== "checkpoint").map((e) => JSON.stringify(e).slice(0, 300));
        throw new Error(`${err.message.slice(0, 500)}\nmirror events: ${told.join("\n")}`);
      });
      await second.stop();
      assert.ok((await destination.stat(".stowage/mirror/t")).size > 0, "the reconcile kept the checkpoint");
    });
  });
}

describe("mirror (memory)", () => {
  it("with the same prefix on both sides, the reconcile never deletes the checkpoint key; keys outside the prefix are left alone", async () => {
    const source = new MemoryStore();
    const destination = new MemoryStore();
    await destination.put("stray", enc("deleted by the reconcile"));
    await source.put("a", enc("1"));
    const running = startMirror(source, destination, { deletes: true });
    await running.following;
    await source.put("b", enc("2"));
    await source.delete("a");
    await until(async () => (await destination.list("")).join() === ".stowage/mirror/default,b");
    await running.stop();
    assert.deepEqual(await destination.list(""), [".stowage/mirror/default", "b"]);
    assert.equal(new TextDecoder().decode(await destination.get("b")), "2");
  });

  it("too many changes waiting: it forgets them, rescans from the oldest, and converges", async () => {
    const source = new MemoryStore();
    const destination = new MemoryStore();
    const running = startMirror(source, destination, { prefix: "p/", maxPending: 10, concurrency: 1, deletes: true, safetyMarginMs: 0 });
    await running.following;
    for (let i = 0; i < 300; i++) await source.put(`p/${i}`, patterned(100, i));
    for (let i = 0; i < 300; i += 7) await source.delete(`p/${i}`);
    await waitConverged(source, "p/", destination, "p/");
    await running.stop();
    assert.ok(running.events.some((e) => e.type === "rescan" && e.reason === "overflow"), "a rescan for the overflow");
  });

  it("a key the destination can never take is reported and passed over; the rest flows", async () => {
    const source = new MemoryStore();
    const destination = new MemoryStore();
    await source.put("p/", enc("its destination key would be empty"));
    const running = startMirror(source, destination, { prefix: "p/", destinationPrefix: "" });
    await running.following;
    await source.put("p/small", patterned(10));
    await until(async () => (await destination.list("small")).length === 1 && running.mirror.status().failed === 1);
    await running.stop();
    assert.ok(running.events.some((e) => e.type === "failed" && e.key === "p/"));
  });

  it("a checkpoint in a local file: written on stop, read on restart (a resume, not a first copy)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "stowage-mirror-checkpoint-"));
    after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "sub", "mirror.json");
    assert.deepEqual(parseCheckpointLocation(`file:${file}`), { file });
    assert.deepEqual(parseCheckpointLocation("./x.json"), { file: "./x.json" });
    assert.deepEqual(parseCheckpointLocation(".stowage/mirror/x"), { key: ".stowage/mirror/x" });
    const source = new MemoryStore();
    const destination = new MemoryStore();
    await source.put("a", enc("1"));
    const first = startMirror(source, destination, { checkpoint: { file } });
    await first.following;
    await first.stop();
    const saved = JSON.parse(await readFile(file, "utf8")) as { appliedUntil: number };
    assert.ok(saved.appliedUntil > Date.now() - 10_000);
    assert.deepEqual(await destination.list(""), ["a"], "nothing of the mirror's in the destination");
    await source.put("b", enc("2"));
    const second = startMirror(source, destination, { checkpoint: { file } });
    await second.following;
    await second.stop();
    const copied = second.events.find((e) => e.type === "copied");
    assert.equal(copied?.type === "copied" && copied.reason, "resume");
    assert.deepEqual(await destination.list(""), ["a", "b"]);
    await writeFile(file, "not json");
    await assert.rejects(new Mirror(source, destination, { checkpoint: { file } }).run(), /not JSON/);
  });

  it("refuses bad options with invalid", () => {
    const store = new MemoryStore();
    assert.throws(() => startMirror(store, store, { name: "../x" }), /name must be/);
    assert.throws(() => startMirror(store, store, { interval: -1 }), /interval must be/);
  });
});

async function until(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
