// Three `stowage serve` processes on a three-node JetStream cluster, each connected to a
// different node, sharing the api queue group and the durable write consumer, over one NATS
// store with replicas 3. Under a request load and a stream of JetStream-published messages,
// one instance and the node leading the bucket are SIGKILLed: requests keep being answered
// (each attempt once), and the write port stores every message exactly once.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import { Svcm } from "@nats-io/services";
import { NatsStore } from "../src/backends/nats.js";
import { ERROR_CODES } from "../src/component/codec.js";
import type { ComponentConfigInput } from "../src/component/index.js";
import { mapLimit } from "../src/internal/concurrency.js";
import { withRetry } from "../src/layers/retry.js";
import type { Store } from "../src/types.js";
import { clusterSkip, startNatsCluster, type NatsCluster } from "./fixtures/nats-cluster.js";
import { uniqueName, waitFor } from "./fixtures/services.js";
import { setTimeout as sleep } from "node:timers/promises";

const skip = clusterSkip();

const CLIENTS = 6;
const KEYS_PER_CLIENT = 30;
/** How long one attempt waits for its answer (the component's own deadline is 4 s). */
const ATTEMPT_TIMEOUT_MS = 6_000;
/** How long a request is retried (on timeouts and transient answers) before the client gives up. */
const REQUEST_BUDGET_MS = 45_000;
/** Concurrent publishers to the write subject. */
const PUBLISHERS = 2;
const KINDS = new Set(Object.keys(ERROR_CODES));

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A `stowage serve` process. */
interface Instance {
  node: string;
  child: ChildProcess;
  log: string[];
  exited: Promise<number | null>;
}

function spawnInstance(configFile: string, node: string): Promise<Instance> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli/main.ts"), "serve", "--config", configFile], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
  const log: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const instance: Instance = { node, child, log, exited };
  return new Promise((resolve, reject) => {
    let buffered = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        log.push(line);
        if (line.includes('"msg":"started"')) resolve(instance);
      }
    });
    void exited.then((code) => reject(new Error(`stowage serve exited with ${code} before starting:\n${log.join("\n")}`)));
  });
}

/** What the client did to one key: indexes are its call numbers, increasing. */
interface KeyLog {
  lastAttempted: number;
  lastAcked: number;
}

/** The api client: JSON requests, each attempt on its own reply subject so answers can be counted. */
class ApiClient {
  readonly keys = new Map<string, KeyLog>();
  /** Answers per attempt (reply subject): more than one would mean a request handled twice. */
  readonly answers = new Map<string, number>();
  readonly outcomes = { success: 0, classifiedError: new Map<string, number>(), gaveUp: [] as string[], retriedAttempts: 0 };
  readonly violations: string[] = [];
  readonly #pending = new Map<string, (body: Record<string, unknown>) => void>();
  readonly #inbox = createInbox();
  #stopped = false;
  #running: Promise<unknown> | undefined;

  constructor(
    readonly nc: NatsConnection,
    readonly subject: string,
  ) {
    nc.subscribe(`${this.#inbox}.>`, {
      callback: (_err, msg) => {
        this.answers.set(msg.subject, (this.answers.get(msg.subject) ?? 0) + 1);
        const body = msg.json<Record<string, unknown>>();
        this.#pending.get(msg.subject)?.(body);
        this.#pending.delete(msg.subject);
      },
    });
  }

  start(): void {
    this.#running = Promise.all(Array.from({ length: CLIENTS }, (_, c) => this.#worker(c)));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  /** One attempt: the answer, or undefined after ATTEMPT_TIMEOUT_MS. */
  async #attempt(request: object): Promise<Record<string, unknown> | undefined> {
    const reply = `${this.#inbox}.${this.answers.size}.${Math.random().toString(36).slice(2)}`;
    const answered = new Promise<Record<string, unknown>>((resolve) => this.#pending.set(reply, resolve));
    this.answers.set(reply, 0);
    try {
      this.nc.publish(this.subject, JSON.stringify(request), { reply });
    } catch {
      return undefined; // the client's connection is closed or reconnecting: like a timeout
    }
    const timeout = sleep(ATTEMPT_TIMEOUT_MS).then(() => undefined);
    const body = await Promise.race([answered, timeout]);
    this.#pending.delete(reply);
    return body;
  }

  /** Sends until answered with a success or a non-transient error, within REQUEST_BUDGET_MS. */
  async #request(request: { action: string; key: string }): Promise<Record<string, unknown> | undefined> {
    const deadline = Date.now() + REQUEST_BUDGET_MS;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) this.outcomes.retriedAttempts++;
      const body = await this.#attempt(request);
      const kind = typeof body?.kind === "string" ? body.kind : undefined;
      if (body !== undefined && (body.success === true || kind !== "transient")) {
        if (body.success === true) this.outcomes.success++;
        else if (kind && KINDS.has(kind) && typeof body.error === "string") this.outcomes.classifiedError.set(kind, (this.outcomes.classifiedError.get(kind) ?? 0) + 1);
        else this.violations.push(`${request.action} ${request.key}: an answer that is neither a success nor a classified error: ${JSON.stringify(body)}`);
        return body;
      }
      if (Date.now() > deadline) {
        this.outcomes.gaveUp.push(`${request.action} ${request.key}`);
        return undefined;
      }
      await sleep(200);
    }
  }

  async #worker(c: number): Promise<void> {
    for (let i = 0; !this.#stopped; i++) {
      const key = `api/c${c}/k${i % KEYS_PER_CLIENT}`;
      const log = this.keys.get(key);
      if (log && log.lastAcked >= 0 && i % 2 === 1) {
        const body = await this.#request({ action: "get", key });
        if (body?.success === true) {
          const text = decoder.decode(Buffer.from(String(body.data_base64), "base64"));
          const index = Number(/^(.*)#(\d+)$/.exec(text)?.[2] ?? NaN);
          if (!text.startsWith(`${key}#`) || !(index <= log.lastAttempted)) this.violations.push(`get ${key}: ${JSON.stringify(text)} was never written`);
        }
      } else {
        const entry = log ?? { lastAttempted: -1, lastAcked: -1 };
        this.keys.set(key, entry);
        entry.lastAttempted = i;
        const data_base64 = Buffer.from(`${key}#${i}`).toString("base64");
        const body = await this.#request({ action: "put", key, data_base64 } as { action: string; key: string });
        if (body?.success === true) entry.lastAcked = i;
      }
      await sleep(10);
    }
  }
}

/** Publishes messages with ids to the write subject, each until JetStream acknowledged it. */
class WriteClient {
  readonly acked = new Set<string>();
  publishRetries = 0;
  #stopped = false;
  #running: Promise<unknown> | undefined;

  constructor(
    readonly js: JetStreamClient,
    readonly subject: string,
  ) {}

  start(): void {
    this.#running = Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => this.#publisher(p)));
  }

  async #publisher(p: number): Promise<void> {
    for (let n = 0; !this.#stopped; n++) {
      const id = `m-${p}-${n}`;
      const data = encoder.encode(JSON.stringify({ id, n }));
      // The msgID makes a re-sent publish a duplicate the stream drops, not a second message.
      for (;;) {
        try {
          await this.js.publish(this.subject, data, { msgID: id, timeout: 3000 });
          this.acked.add(id);
          break;
        } catch {
          this.publishRetries++;
          await sleep(200);
        }
      }
      await sleep(5);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }
}

describe("stowage serve: three instances on a three-node cluster", { skip }, () => {
  let cluster: NatsCluster;
  let dir: string;
  let nc: NatsConnection;
  const name = uniqueName("scale").replace(/[^A-Za-z0-9_-]/g, "_");
  const bucket = `B_${name}`;
  const stream = `W_${name}`;
  const durable = `D_${name}`;
  const writeSubject = `storage.${name}.write`;
  const deadLetterSubject = `storage.${name}.write.dead`;
  const instances: Instance[] = [];
  const stores: NatsStore[] = [];
  const deadLetters: string[] = [];
  let api: ApiClient;
  let writes: WriteClient;
  let killedInstance: Instance;
  let killedNode: string;
  let recoveryMs: number | undefined;
  const killedRoles: string[] = [];
  /** Requests each instance (micro-service id) had handled just before the node died, and at the end. */
  let handledBefore: Map<string, number>;
  let handledAfter: Map<string, number>;

  /** The node leading the most of: the bucket's index stream, the write stream, the write consumer (ties: the bucket's). */
  async function busiestLeader(): Promise<string> {
    const jsm = await jetstreamManager(nc);
    const kv = (await cluster.streamLeader(`KV_${bucket}`))!;
    const led = [kv, await cluster.streamLeader(stream), (await jsm.consumers.info(stream, durable)).cluster?.leader];
    const count = (node: string) => led.filter((l) => l === node).length;
    return cluster.nodes.map((n) => n.name).reduce((best, node) => (count(node) > count(best) ? node : best), kv);
  }

  /** Requests handled so far by each running instance, as its micro-service STATS say. */
  async function handledByInstance(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for await (const stats of await new Svcm(nc).client().stats(name)) {
      counts.set(stats.id, (stats.endpoints ?? []).reduce((n, e) => n + e.num_requests, 0));
    }
    return counts;
  }

  before(async () => {
    cluster = await startNatsCluster(3);
    dir = mkdtempSync(join(tmpdir(), "stowage-scale-"));
    nc = await connect({ servers: cluster.servers, maxReconnectAttempts: -1 });
    // The bucket and the write stream with 3 replicas before any instance starts: instances
    // adopt what exists (a component creates its write stream with the server's default, R1).
    stores.push(await NatsStore.open({ bucket, servers: cluster.servers, replicas: 3, sweepInterval: 0 }));
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [writeSubject], num_replicas: 3, duplicate_window: 120_000_000_000 });
    // With create_stream false the instances also need the stream that keeps dead letters.
    await jsm.streams.add({ name: `${stream}_DEAD`, subjects: [deadLetterSubject], num_replicas: 3 });
    nc.subscribe(deadLetterSubject, {
      callback: (_err, msg) => {
        deadLetters.push(msg.headers?.get("Stowage-Error") ?? "?");
      },
    });

    for (const node of cluster.nodes) {
      const config: ComponentConfigInput = {
        name,
        store: `${node.url}/${bucket}?timeout=3000&sweepInterval=0`,
        nats: { servers: node.url },
        queue_group: `g_${name}`,
        ports: { inputs: [{ name: "api", subject: `storage.${name}.api` }, { name: "write", type: "jetstream", subject: writeSubject }] },
        timeouts: { default: "4s" },
        write: { stream, durable, create_stream: false, ack_wait: "5s", backoff: ["500ms", "2s", "5s"], max_deliver: 20, dead_letter_subject: deadLetterSubject },
      };
      const file = join(dir, `${node.name}.json`);
      writeFileSync(file, JSON.stringify(config));
      instances.push(await spawnInstance(file, node.name));
    }

    api = new ApiClient(nc, `storage.${name}.api`);
    writes = new WriteClient(jetstream(nc), writeSubject);
    api.start();
    writes.start();
    try {
      await sleep(3_000);
      killedNode = await busiestLeader();
      const jsm = await jetstreamManager(nc);
      if ((await cluster.streamLeader(`KV_${bucket}`)) === killedNode) killedRoles.push("bucket leader");
      if ((await cluster.streamLeader(stream)) === killedNode) killedRoles.push("write stream leader");
      if ((await jsm.consumers.info(stream, durable)).cluster?.leader === killedNode) killedRoles.push("write consumer leader");
      // An instance on another node dies (its messages in flight go back after ack_wait), then
      // the node leading the most of the bucket, the write stream and the durable consumer (the
      // instance on it loses its connection and reconnects).
      killedInstance = instances.find((i) => i.node !== killedNode)!;
      killedInstance.child.kill("SIGKILL");
      await killedInstance.exited;
      await sleep(1_000);
      handledBefore = await handledByInstance();
      const successesBefore = api.outcomes.success;
      const killedAt = performance.now();
      await cluster.node(killedNode).kill("SIGKILL");
      await waitFor("a request answered after the node died", async () => api.outcomes.success > successesBefore + CLIENTS, 45_000);
      recoveryMs = performance.now() - killedAt;
      await sleep(3_000);
      await cluster.node(killedNode).start();
      await cluster.waitForCaughtUp(`KV_${bucket}`, killedNode, 60_000);
      await sleep(3_000);
      handledAfter = await handledByInstance();
    } finally {
      await Promise.all([api.stop(), writes.stop()]);
    }
  });

  after(async () => {
    for (const instance of instances) {
      if (instance.child.exitCode === null && instance.child.signalCode === null) instance.child.kill("SIGKILL");
      await instance.exited;
    }
    for (const store of stores) await store.close().catch(() => undefined);
    await nc?.close();
    await cluster?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("kept answering requests: each attempt answered at most once, each request with a success or a classified error", (t) => {
    const twice = [...api.answers].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], "an attempt was answered more than once");
    assert.deepEqual(api.violations, []);
    assert.deepEqual(api.outcomes.gaveUp, [], "requests never answered within the retry budget");
    assert.ok(api.outcomes.success > 100, `only ${api.outcomes.success} requests succeeded`);
    const errors = Object.fromEntries(api.outcomes.classifiedError);
    t.diagnostic(`requests: ${api.outcomes.success} succeeded, classified errors ${JSON.stringify(errors)}, ${api.outcomes.retriedAttempts} retried attempts; first answer ${((recoveryMs ?? NaN) / 1000).toFixed(1)} s after killing ${killedNode} (${killedRoles.join(", ")}); instance on ${killedInstance.node} killed`);
  });

  it("both surviving instances answered requests after the failover, the one whose node died included", () => {
    assert.equal(handledBefore.size, 2, "two instances were running before the node died");
    assert.deepEqual([...handledAfter.keys()].sort(), [...handledBefore.keys()].sort(), "the same two instances run at the end");
    for (const [id, before] of handledBefore) {
      assert.ok(handledAfter.get(id)! - before > 20, `instance ${id} handled ${handledAfter.get(id)! - before} requests after the node died`);
    }
  });

  it("every acknowledged put reads back its value or a later one", async () => {
    const check = withRetry(stores[0]! as Store, { maxElapsedMs: 30_000 });
    let verified = 0;
    for (const [key, log] of api.keys) {
      if (log.lastAcked < 0) continue;
      const text = decoder.decode(await check.get(key));
      const index = Number(text.slice(text.lastIndexOf("#") + 1));
      assert.ok(text.startsWith(`${key}#`) && index >= log.lastAcked && index <= log.lastAttempted, `${key}: holds ${JSON.stringify(text)}, acknowledged #${log.lastAcked}`);
      verified++;
    }
    assert.ok(verified > 0);
  });

  it("the durable write port stored every acknowledged message exactly once under its id, dead-lettering none", async (t) => {
    const jsm = await jetstreamManager(nc);
    await waitFor(
      "the write consumer to finish",
      async () => {
        const info = await jsm.consumers.info(stream, durable);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      90_000,
    );
    assert.deepEqual(deadLetters, []);
    const check = withRetry(stores[0]! as Store, { maxElapsedMs: 30_000 });
    const keys = await check.list("messages/");
    const byId = new Map<string, string[]>();
    for (const key of keys) {
      const id = key.slice(key.lastIndexOf("/") + 1);
      byId.set(id, [...(byId.get(id) ?? []), key]);
    }
    const twice = [...byId].filter(([, k]) => k.length > 1);
    assert.deepEqual(twice, [], "a message stored under two keys");
    const missing = [...writes.acked].filter((id) => !byId.has(id));
    assert.deepEqual(missing, [], "acknowledged messages never stored");
    const unknown = [...byId.keys()].filter((id) => !writes.acked.has(id));
    assert.deepEqual(unknown, [], "stored messages nobody published");
    let redelivered = 0;
    await mapLimit([...byId], 16, async ([id, [key]]) => {
      const stored = JSON.parse(decoder.decode(await check.get(key!))) as { id: string };
      assert.equal(stored.id, id);
      // A message redelivered after its ack was lost is stored again under the same key: a
      // second, identical version, never a second key.
      const versions = await check.versions(key!);
      if (versions.length > 1) redelivered++;
    });
    const info = await jsm.streams.info(stream);
    t.diagnostic(`write port: ${writes.acked.size} messages published and acknowledged (${writes.publishRetries} publish retries), ${info.state.messages} in the stream, ${byId.size} stored, ${redelivered} stored twice under their key by a redelivery, 0 dead letters`);
  });

  it("the surviving instances stop cleanly on SIGTERM", async () => {
    for (const instance of instances.filter((i) => i !== killedInstance)) {
      instance.child.kill("SIGTERM");
      assert.equal(await instance.exited, 0, instance.log.slice(-5).join("\n"));
    }
  });
});
