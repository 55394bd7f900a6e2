// Read-after-write on a replicated NATS bucket: on a three-node cluster with replicas 3, a put
// acknowledged to one client is seen by the next read of that client and of a client connected
// to another node, with the default options. Both clients are connected to followers of the
// bucket's stream, the place where a direct get could answer from a replica that has not
// applied the put yet.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { NatsStore } from "../src/backends/nats.js";
import { natsOptionsFromUrl } from "../src/backends/nats/options.js";
import { StorageError } from "../src/errors.js";
import { parseStoreUrl } from "../src/open.js";
import { clusterSkip, startNatsCluster, type NatsCluster } from "./fixtures/nats-cluster.js";
import { uniqueName } from "./fixtures/services.js";

const skip = clusterSkip();

/** Rounds of put-then-read with the default options, bounded by ROUND_BUDGET_MS as well. */
const ROUNDS = 600;
const ROUND_BUDGET_MS = 25_000;
/** Keys the rounds cycle through: every key gets many versions, as a hot key would. */
const KEYS = 4;
/** Every DELETE_EVERY-th round deletes the key instead, and both readers must see it gone. */
const DELETE_EVERY = 10;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Round i's value: says which round wrote it, and its size changes with i (checked by stat). */
function valueOf(i: number): Uint8Array {
  return encoder.encode(`v${i}#`.padEnd(16 + (i % 50), "."));
}

function roundOf(value: Uint8Array): number {
  return Number(/^v(\d+)#/.exec(decoder.decode(value))?.[1] ?? -1);
}

async function notFound(read: Promise<unknown>): Promise<boolean> {
  try {
    await read;
    return false;
  } catch (err) {
    if (err instanceof StorageError && err.kind === "not_found") return true;
    throw err;
  }
}

/** A connection to this node alone: no failover elsewhere, no servers learned from the cluster. */
function connectTo(url: string): Promise<NatsConnection> {
  return connect({ servers: url, noRandomize: true, ignoreClusterUpdates: true, timeout: 5000 });
}

interface Outcome {
  rounds: number;
  /** Reads that returned an older value, or a value after a delete, with the round they were in. */
  stale: string[];
}

/**
 * Puts (or deletes) through `writer`, then at once reads through `writer` and `reader`
 * together: get and stat must show exactly what was just acknowledged.
 */
async function putThenRead(writer: NatsStore, reader: NatsStore, prefix: string, rounds: number, budgetMs: number): Promise<Outcome> {
  const deadline = Date.now() + budgetMs;
  const stale: string[] = [];
  let i = 0;
  for (; i < rounds && Date.now() < deadline; i++) {
    const key = `${prefix}/k${i % KEYS}`;
    if (i % DELETE_EVERY === DELETE_EVERY - 1) {
      await writer.delete(key);
      const gone = await Promise.all([notFound(writer.get(key)), notFound(reader.get(key)), notFound(reader.stat(key))]);
      if (!gone.every(Boolean)) stale.push(`round ${i}: ${key} still readable after its delete (writer get, reader get, reader stat: ${gone.join(", ")})`);
      continue;
    }
    const value = valueOf(i);
    await writer.put(key, value);
    const [own, other, info] = await Promise.all([writer.get(key).catch(() => undefined), reader.get(key).catch(() => undefined), reader.stat(key).catch(() => undefined)]);
    const got = [own, other].map((v) => (v ? roundOf(v) : "not found"));
    if (got.some((r) => r !== i) || info?.size !== value.byteLength) {
      stale.push(`round ${i}: ${key} read as rounds ${got.join(" / ")}, stat size ${info?.size ?? "not found"} (want ${value.byteLength})`);
    }
  }
  return { rounds: i, stale };
}

describe("NATS cluster: read after write (replicas 3)", { skip, timeout: 120_000 }, () => {
  let cluster: NatsCluster;
  const bucket = uniqueName("raw");
  const kvStream = `KV_${bucket}`;
  const connections: NatsConnection[] = [];
  const stores: NatsStore[] = [];
  /** Two followers of the bucket's stream (not its leader when the bucket was created). */
  let followers: string[];

  const open = async (node: string, options: { directReads?: boolean; bucket?: string; replicas?: number } = {}) => {
    const nc = await connectTo(cluster.node(node).url);
    connections.push(nc);
    const store = await NatsStore.open({ bucket, replicas: 3, timeout: 5000, sweepInterval: 0, connection: nc, ...options });
    stores.push(store);
    return store;
  };

  before(async () => {
    cluster = await startNatsCluster(3);
    const creator = await open("n1");
    await creator.put("probe", new Uint8Array([1]));
    const leader = await cluster.streamLeader(kvStream);
    followers = cluster.nodes.map((n) => n.name).filter((name) => name !== leader);
    assert.equal(followers.length, 2, `leader ${leader} is not one of the nodes`);
    for (const name of followers) await cluster.waitForCaughtUp(kvStream, name);
  });

  after(async () => {
    for (const store of stores) await store.close().catch(() => undefined);
    for (const nc of connections) await nc.close().catch(() => undefined);
    await cluster?.destroy();
  });

  it("reads through the stream leader by default on a replicated bucket, direct on a single replica", async () => {
    const replicated = await open(followers[0]!);
    assert.equal(replicated.directReads, false);
    assert.equal((await open(followers[0]!, { directReads: true })).directReads, true);
    const single = await open(followers[0]!, { bucket: uniqueName("raw_r1"), replicas: 1 });
    assert.equal(single.directReads, true);
  });

  it("a put acknowledged through a follower is what the next get and stat return, through that follower and the other", async () => {
    const writer = await open(followers[0]!);
    const reader = await open(followers[1]!);
    const started = performance.now();
    const outcome = await putThenRead(writer, reader, "default", ROUNDS, ROUND_BUDGET_MS);
    const seconds = (performance.now() - started) / 1000;
    console.log(`# default options: ${outcome.rounds} rounds in ${seconds.toFixed(1)} s, ${outcome.stale.length} stale`);
    assert.ok(outcome.rounds >= 100, `only ${outcome.rounds} rounds ran in ${ROUND_BUDGET_MS} ms`);
    assert.deepEqual(outcome.stale.slice(0, 5), [], `${outcome.stale.length} of ${outcome.rounds} rounds read something older than the acknowledged write`);
  });

  it("a store on another follower deletes a key put a moment ago (its check for a live key reads the leader)", async () => {
    const writer = await open(followers[0]!);
    const deleter = await open(followers[1]!);
    for (let i = 0; i < 50; i++) {
      const key = `delete/k${i}`;
      await writer.put(key, valueOf(i));
      await deleter.delete(key);
      assert.ok(await notFound(writer.get(key)), `${key}: the delete right after the put was skipped`);
    }
  });

  it("with directReads: true the same rounds run against the replicas (reported, not asserted: staleness is a race)", async () => {
    const writer = await open(followers[0]!, { directReads: true });
    const reader = await open(followers[1]!, { directReads: true });
    const started = performance.now();
    const outcome = await putThenRead(writer, reader, "direct", ROUNDS, ROUND_BUDGET_MS / 2);
    const seconds = (performance.now() - started) / 1000;
    console.log(`# directReads: ${outcome.rounds} rounds in ${seconds.toFixed(1)} s, ${outcome.stale.length} stale${outcome.stale[0] ? `, e.g. ${outcome.stale[0]}` : ""}`);
    assert.ok(outcome.rounds > 0);
  });
});

describe("NATS directReads option", () => {
  it("is read from the URL as true or false, anything else refused as invalid", () => {
    assert.equal(natsOptionsFromUrl(parseStoreUrl("nats://127.0.0.1:4222/B?directReads=true")).directReads, true);
    assert.equal(natsOptionsFromUrl(parseStoreUrl("nats://127.0.0.1:4222/B?directReads=no")).directReads, false);
    assert.equal(natsOptionsFromUrl(parseStoreUrl("nats://127.0.0.1:4222/B")).directReads, undefined);
    assert.throws(() => natsOptionsFromUrl(parseStoreUrl("nats://127.0.0.1:4222/B?directReads=maybe")), (err: unknown) => err instanceof StorageError && err.kind === "invalid" && /directReads/.test(err.message));
  });
});
