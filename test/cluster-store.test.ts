// The NATS backend on a real three-node JetStream cluster (replicas 3): a sustained write and
// read load while the node leading the bucket's streams is SIGKILLed and later restarted.
// A plain store and a store behind the retry layer run the same load at once, on the same
// bucket, through the same failovers.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { NatsStore } from "../src/backends/nats.js";
import { StorageError } from "../src/errors.js";
import { compareKeys } from "../src/keys.js";
import { withRetry } from "../src/layers/retry.js";
import type { Store } from "../src/types.js";
import { clusterSkip, startNatsCluster, type NatsCluster } from "./fixtures/nats-cluster.js";
import { uniqueName } from "./fixtures/services.js";
import { setTimeout as sleep } from "node:timers/promises";

const skip = clusterSkip();

/** Values above this go to the bucket's object store, so both of its streams carry load. */
const INLINE_MAX = 4096;
const WRITERS = 4;
const READERS = 2;
/** Keys each writer cycles through: every key gets many versions. */
const KEYS_PER_WRITER = 40;
const HISTORY = 8;
/** Pause between one writer's calls: a handful in flight, a few thousand puts in all. */
const WRITE_PAUSE_MS = 15;
const READ_PAUSE_MS = 10;
/** Every 10th put is a large value (object store + index entry). */
const LARGE_EVERY = 10;
const LARGE_SIZE = 6000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What one writer did to one key: indexes are the writer's call numbers, increasing. */
interface KeyLog {
  lastAttempted: number;
  lastAcked: number;
  acked: number[];
}

/** `<key>#<index>#` padded to `size`: a value says which key and which put wrote it. */
function valueOf(key: string, index: number, size: number): Uint8Array {
  const head = `${key}#${index}#`;
  return encoder.encode(head.padEnd(Math.max(size, head.length), "."));
}

function indexOf(key: string, value: Uint8Array): number {
  const text = decoder.decode(value);
  const match = /^(.*)#(\d+)#\.*$/s.exec(text);
  assert.ok(match, `value of ${key} is not one this test wrote: ${JSON.stringify(text.slice(0, 80))}`);
  assert.equal(match[1], key, `value of ${key} was written for another key`);
  return Number(match[2]);
}

/** One store under load: its calls, what they did, and every failure they saw. */
class Load {
  readonly keys = new Map<string, KeyLog>();
  readonly failures: { op: string; error: unknown }[] = [];
  /** Results that were wrong (not errors): a listing out of order, a value nobody wrote. */
  readonly violations: string[] = [];
  readonly calls = { put: 0, get: 0, list: 0 };
  readonly succeeded = { put: 0, get: 0, list: 0 };
  /** Start and end times (ms) of successful puts, large or not, for recovery times. */
  readonly puts: { started: number; ended: number; large: boolean }[] = [];
  #stopped = false;
  #running: Promise<unknown> | undefined;

  constructor(
    readonly name: string,
    readonly store: Store,
    readonly prefix: string,
  ) {}

  start(): void {
    const workers = [
      ...Array.from({ length: WRITERS }, (_, w) => this.#writer(w)),
      ...Array.from({ length: READERS }, () => this.#reader()),
      this.#lister(),
    ];
    this.#running = Promise.all(workers);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  get ackedKeys(): [string, KeyLog][] {
    return [...this.keys].filter(([, log]) => log.lastAcked >= 0);
  }

  get ackedWrites(): number {
    return this.ackedKeys.reduce((n, [, log]) => n + log.acked.length, 0);
  }

  async #call<T>(op: "put" | "get" | "list", work: () => Promise<T>): Promise<T | undefined> {
    this.calls[op]++;
    try {
      const result = await work();
      this.succeeded[op]++;
      return result;
    } catch (error) {
      this.failures.push({ op, error });
      return undefined;
    }
  }

  async #writer(w: number): Promise<void> {
    for (let i = 0; !this.#stopped; i++) {
      const key = `${this.prefix}/w${w}/k${i % KEYS_PER_WRITER}`;
      const log = this.keys.get(key) ?? { lastAttempted: -1, lastAcked: -1, acked: [] };
      this.keys.set(key, log);
      const large = i % LARGE_EVERY === 0;
      log.lastAttempted = i;
      const started = performance.now();
      const done = await this.#call("put", async () => {
        await this.store.put(key, valueOf(key, i, large ? LARGE_SIZE : 64));
        return true;
      });
      if (done) {
        log.lastAcked = i;
        log.acked.push(i);
        this.puts.push({ started, ended: performance.now(), large });
      }
      await sleep(WRITE_PAUSE_MS);
    }
  }

  async #reader(): Promise<void> {
    while (!this.#stopped) {
      const acked = this.ackedKeys;
      if (acked.length > 0) {
        const [key, log] = acked[Math.floor(Math.random() * acked.length)]!;
        const value = await this.#call("get", () => this.store.get(key));
        // Reads go to the stream leader, but nats-server does not promise read-after-write
        // across a leader change: a read may be older than the last acknowledged put, but it
        // is always a value some put of this key wrote.
        if (value && indexOf(key, value) > log.lastAttempted) this.violations.push(`get ${key}: read a value never written`);
      }
      await sleep(READ_PAUSE_MS);
    }
  }

  async #lister(): Promise<void> {
    while (!this.#stopped) {
      const keys = await this.#call("list", () => this.store.list(`${this.prefix}/`));
      if (keys) {
        for (let i = 1; i < keys.length; i++) {
          if (compareKeys(keys[i - 1]!, keys[i]!) >= 0) this.violations.push(`list: ${keys[i - 1]} before ${keys[i]}`);
        }
        for (const key of keys) if (!this.keys.has(key)) this.violations.push(`list returned ${key}, which no put wrote`);
      }
      await sleep(500);
    }
  }

  /** First put that started after `time` and succeeded (a large one when `large`), ms after `time`. */
  recoveredAfter(time: number, large: boolean): number | undefined {
    const first = this.puts.filter((p) => p.started >= time && (!large || p.large)).sort((a, b) => a.ended - b.ended)[0];
    return first && first.ended - time;
  }
}

interface Phase {
  killed: string;
  streams: string[];
  recoveryMs: number;
}

describe("nats backend on a three-node JetStream cluster (replicas 3)", { skip }, () => {
  let cluster: NatsCluster;
  const bucket = uniqueName("cluster").replace(/[^-\w]/g, "_");
  const kvStream = `KV_${bucket}`;
  const objStream = `OBJ_${bucket}_large`;
  const opened: Store[] = [];
  let plain: Load;
  let retried: Load;
  const phases: Phase[] = [];
  let restarted: string[] = [];

  async function open(servers: string[], connectionTimeout = 2000): Promise<NatsStore> {
    const store = await NatsStore.open({ bucket, servers, replicas: 3, history: HISTORY, inlineMax: INLINE_MAX, timeout: connectionTimeout, sweepInterval: 0 });
    opened.push(store);
    return store;
  }

  /**
   * A store for the checks after the failovers, retrying transient errors for up to `budgetMs`:
   * a node that has just taken over a stream may answer slowly for a while (requests time out
   * meanwhile; see docs/deployment.md). Each retry is printed, so a slow recovery shows in the
   * output rather than as a bare timeout.
   */
  async function patientStore(budgetMs: number): Promise<Store> {
    return withRetry(await open(cluster.servers), {
      maxAttempts: 1000,
      baseDelayMs: 100,
      maxDelayMs: 1000,
      maxElapsedMs: budgetMs,
      onRetry: ({ op, key, attempt, error }) => console.log(`# check retry: ${op} ${key ?? ""} attempt ${attempt}: ${error.message}`),
    });
  }

  /**
   * Kills the node leading `stream` (and whatever else it leads), lets the load run until
   * writes through the killed streams succeed again, restarts it and waits for it to catch up.
   */
  async function failover(stream: string): Promise<void> {
    const killed = await cluster.streamLeader(stream);
    assert.ok(killed, `${stream} has no leader`);
    const led: string[] = [];
    for (const s of [kvStream, objStream]) if ((await cluster.streamLeader(s)) === killed) led.push(s);
    const killedAt = performance.now();
    await cluster.node(killed).kill("SIGKILL");
    const needsLarge = led.includes(objStream);
    const deadline = killedAt + 45_000;
    let recoveryMs: number | undefined;
    while (recoveryMs === undefined && performance.now() < deadline) {
      await sleep(100);
      const times = [plain.recoveredAfter(killedAt, needsLarge), retried.recoveredAfter(killedAt, needsLarge)].filter((t) => t !== undefined);
      if (times.length > 0) recoveryMs = Math.min(...times);
    }
    assert.ok(recoveryMs !== undefined, `no write through ${led.join(", ")} succeeded within 45 s of killing ${killed}`);
    phases.push({ killed, streams: led, recoveryMs });
    // Keep writing on the two survivors for a while, so the restarted node has a gap to fill.
    await sleep(2_000);
    await cluster.node(killed).start();
    restarted.push(killed);
    for (const s of [kvStream, objStream]) await cluster.waitForCaughtUp(s, killed, 60_000);
  }

  before(async () => {
    cluster = await startNatsCluster(3);
    const first = await open(cluster.servers, 5000);
    // Create the object store stream now, so both streams exist before the first failover.
    await first.put("setup/large", valueOf("setup/large", 0, LARGE_SIZE));
    plain = new Load("plain", first, "plain");
    retried = new Load("retry", withRetry(await open(cluster.servers), { maxAttempts: 1000, baseDelayMs: 100, maxDelayMs: 1000, maxElapsedMs: 60_000 }), "retry");
    plain.start();
    retried.start();
    try {
      await sleep(3_000);
      await failover(kvStream);
      await failover(objStream);
      await sleep(2_000);
    } finally {
      await Promise.all([plain.stop(), retried.stop()]);
    }
    restarted = [...new Set(restarted)];
  });

  after(async () => {
    for (const store of opened) await store.close().catch(() => undefined);
    await cluster?.destroy();
  });

  it("killed the node leading each of the bucket's streams, and both came back", () => {
    assert.equal(phases.length, 2);
    assert.ok(phases.some((p) => p.streams.includes(kvStream)), "the index stream's leader was killed");
    assert.ok(phases.some((p) => p.streams.includes(objStream)), "the object store stream's leader was killed");
    assert.ok(plain.failures.length > 0, "the failovers were noticed: some plain calls failed");
  });

  it("every listing and read during the load was right (sorted, unique, only written keys and values)", () => {
    assert.deepEqual([...plain.violations, ...retried.violations], []);
  });

  it("without retries, every call resolved or rejected with a transient StorageError", (t) => {
    const other = plain.failures.filter(({ error }) => !(error instanceof StorageError && error.kind === "transient"));
    assert.deepEqual(other.map(({ op, error }) => `${op}: ${String(error)}`), []);
    assert.ok(plain.succeeded.put > 200, `only ${plain.succeeded.put} puts succeeded`);
    t.diagnostic(`plain store: ${JSON.stringify(plain.calls)} calls, ${JSON.stringify(plain.succeeded)} succeeded, ${plain.failures.length} failed transient`);
  });

  it("through the retry layer, every call succeeded", (t) => {
    assert.deepEqual(retried.failures.map(({ op, error }) => `${op}: ${String(error)}`), []);
    assert.ok(retried.succeeded.put > 200, `only ${retried.succeeded.put} puts succeeded`);
    t.diagnostic(`retry store: ${JSON.stringify(retried.succeeded)} calls, all succeeded`);
  });

  it("lost no acknowledged write: every key reads back its last acknowledged value or a later one", async (t) => {
    const check = await patientStore(30_000);
    let acknowledged = 0;
    let verified = 0;
    const lost: string[] = [];
    for (const load of [plain, retried]) {
      acknowledged += load.ackedWrites;
      for (const [key, log] of load.ackedKeys) {
        const index = indexOf(key, await check.get(key));
        // The key's last acknowledged put, or one attempted after it (whose reply was lost).
        if (index >= log.lastAcked && index <= log.lastAttempted) verified += log.acked.length;
        else lost.push(`${key}: read #${index}, acknowledged #${log.lastAcked}`);
      }
    }
    const recovery = phases.map((p) => `${p.killed} (led ${p.streams.join(" + ")}): ${(p.recoveryMs / 1000).toFixed(1)} s`).join("; ");
    t.diagnostic(`writes acknowledged ${acknowledged}, verified after failover ${verified}, lost ${lost.length}; time to recover: ${recovery}`);
    console.log(`# failover figures: writes acknowledged ${acknowledged}, verified ${verified}, lost ${lost.length}; time to recover (first write after the kill): ${recovery}`);
    assert.deepEqual(lost, []);
    assert.equal(verified, acknowledged);
  });

  it("keeps every key's versions consistent: increasing, readable, holding every acknowledged put still in the history", async () => {
    // A read whose consumer landed on a node that died stalls for 15 s before it fails transient;
    // give the retry room for a fresh consumer.
    const check = await patientStore(120_000);
    for (const load of [plain, retried]) {
      for (const [key, log] of load.ackedKeys) {
        const versions = await check.versions(key);
        assert.ok(versions.length > 0 && versions.length <= HISTORY, `${key}: ${versions.length} versions`);
        const numbers = versions.map((v) => Number(v.version));
        for (let i = 1; i < numbers.length; i++) assert.ok(numbers[i]! > numbers[i - 1]!, `${key}: versions out of order`);
        assert.ok(versions.every((v) => !v.deleted), `${key}: a delete marker nobody wrote`);
        const indexes: number[] = [];
        for (const v of versions) indexes.push(indexOf(key, await check.get(key, { version: v.version })));
        // A put retried after a lost reply may leave a second, identical version: non-decreasing.
        for (let i = 1; i < indexes.length; i++) assert.ok(indexes[i]! >= indexes[i - 1]!, `${key}: versions hold puts out of order: ${indexes.join(",")}`);
        assert.equal(indexes.at(-1), indexOf(key, await check.get(key)), `${key}: the latest version is not what get returns`);
        const retained = log.acked.filter((i) => i >= indexes[0]!);
        for (const i of retained) assert.ok(indexes.includes(i), `${key}: acknowledged put #${i} missing from the versions ${indexes.join(",")}`);
        assert.ok(indexes.every((i) => i <= log.lastAttempted), `${key}: a version no put wrote`);
      }
    }
  });

  it("lists every acknowledged key exactly once, in order, and nothing that was never written", async () => {
    const check = await patientStore(30_000);
    for (const load of [plain, retried]) {
      const listed = await check.list(`${load.prefix}/`);
      assert.deepEqual(listed, [...new Set(listed)].sort(compareKeys));
      const acked = new Set(load.ackedKeys.map(([key]) => key));
      for (const key of acked) assert.ok(listed.includes(key), `${key} is missing from the listing`);
      for (const key of listed) assert.ok(load.keys.has(key), `${key} was never written`);
    }
  });

  it("the restarted nodes caught up: each alone serves every acknowledged value", async () => {
    assert.ok(restarted.length > 0);
    for (const name of restarted) {
      for (const stream of [kvStream, objStream]) await cluster.waitForCaughtUp(stream, name, 30_000);
      // Only this node: no reconnecting elsewhere, no servers learned from the cluster. Direct
      // gets (opted into: by default a replicated bucket reads its leader) prefer the local
      // replica, so this reads the restarted node's copy.
      const nc = await connect({ servers: cluster.node(name).url, noRandomize: true, ignoreClusterUpdates: true, maxReconnectAttempts: 0 });
      try {
        const local = await NatsStore.open({ bucket, connection: nc, timeout: 5000, sweepInterval: 0, directReads: true });
        try {
          for (const load of [plain, retried]) {
            for (const [key, log] of load.ackedKeys) {
              const index = indexOf(key, await local.get(key));
              assert.ok(index >= log.lastAcked && index <= log.lastAttempted, `${name}: ${key} holds #${index}, acknowledged #${log.lastAcked}`);
            }
          }
        } finally {
          await local.close();
        }
      } finally {
        await nc.close();
      }
    }
  });
});
