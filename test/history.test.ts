/**
 * History tests (issue: writes under delay, timeout and retry). Clients run random puts, gets,
 * deletes and conditional writes on a few keys while the network delays, holds, releases and
 * cuts their bytes (a TCP proxy of the test's own) and the server restarts (a server the test
 * owns: PostgreSQL crashes and recovers, NATS stops and starts);
 * every key's history must be linearizable:
 * - memory, file and PostgreSQL: a write that rejected may have taken effect only before its
 *   call settled, never later;
 * - NATS: a write that rejected without an answer may take effect at any time after it was
 *   invoked (JetStream has no server-side deadline), yet every history must still be explained.
 *
 * `HISTORY_MS` sets how long each run lasts (default 12 s; `npm run soak` runs longer).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryStore, openStore, type OpenStoreOptions, type Store } from "../src/index.js";
import { describeViolation, runHistory, type HistoryOptions, type HistoryResult } from "./fixtures/history.js";
import { startNatsServer, natsServerBinary, type NatsServerHandle } from "./fixtures/nats.js";
import { dropStoreTables, findPostgres, storeUrl, uniqueTable } from "./fixtures/postgres.js";
import { privatePostgresProblem, startPrivatePostgres, type PrivatePostgres } from "./fixtures/postgres-private.js";
import { unavailable, uniqueName } from "./fixtures/services.js";
import { startTcpProxy, type TcpProxy } from "./fixtures/tcp-proxy.js";

const DURATION_MS = Number(process.env.HISTORY_MS ?? 12_000);
const CLIENTS = 5;
const KEYS = 3;

function keys(): string[] {
  const base = uniqueName("h");
  return Array.from({ length: KEYS }, (_, i) => `${base}/k${i}`);
}

function report(name: string, result: HistoryResult): void {
  const kinds = Object.entries(result.errors)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  console.log(`# history ${name}: ${result.ops.length} operations, ${result.indeterminate} indeterminate writes; errors: ${kinds || "none"}`);
}

function assertLinearizable(result: HistoryResult): void {
  assert.deepEqual(result.exhausted, [], "the checker ran out of budget on these keys");
  assert.equal(result.violations.length, 0, result.violations.map(describeViolation).join("\n\n"));
  assert.ok(result.ops.length > 100, `only ${result.ops.length} operations were recorded`);
}

/**
 * Misbehaves until `signal` aborts: random latency, bytes held past the clients' timeout and
 * then delivered, and now and then every connection cut.
 */
async function chaos(proxy: TcpProxy, signal: AbortSignal, options: { holdMs: number; restart?: () => Promise<void> }): Promise<void> {
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // One server restart, well inside the run, while the rest goes on.
  const restarting = options.restart && pause(DURATION_MS * 0.4).then(() => (signal.aborted ? undefined : options.restart!()));
  while (!signal.aborted) {
    const roll = Math.random();
    if (roll < 0.35) {
      proxy.delay("both", Math.floor(Math.random() * options.holdMs));
      await pause(300 + Math.random() * 500);
      proxy.delay("both", 0);
    } else if (roll < 0.7) {
      const direction = Math.random() < 0.5 ? "up" : "down";
      proxy.hold(direction);
      await pause(options.holdMs + Math.random() * options.holdMs);
      proxy.release(direction);
    } else if (roll < 0.8) {
      proxy.cut();
    }
    await pause(100 + Math.random() * 400);
  }
  await restarting;
  proxy.release();
  proxy.delay("both", 0);
}

async function withChaos(run: () => Promise<HistoryResult>, proxy: TcpProxy, options: { holdMs: number; restart?: () => Promise<void> }): Promise<HistoryResult> {
  const stop = new AbortController();
  const misbehaving = chaos(proxy, stop.signal, options);
  try {
    return await run();
  } finally {
    stop.abort();
    await misbehaving;
  }
}

describe("history: memory", () => {
  it("one store shared by every client is linearizable, conditional writes included", async () => {
    const store = new MemoryStore();
    const result = await runHistory({ clients: Array(CLIENTS).fill(store) as Store[], keys: keys(), durationMs: 2_000, maxOpsPerClient: 400, conditional: true, rejectedWrites: "bounded" });
    report("memory", result);
    assertLinearizable(result);
  });
});

describe("history: file", () => {
  const dir = mkdtempSync(join(tmpdir(), "stowage-history-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("clients with stores of their own on one directory, aborted at random, are linearizable", async () => {
    // Each client its own FileStore, as separate processes would be; a short timeout aborts
    // writes at every stage, and a write that rejected must not land afterwards.
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => openStore(`file:${dir}`, { timeout: 3 })));
    const probe = clients[0]!;
    try {
      const result = await runHistory({ clients, keys: keys(), durationMs: Math.min(DURATION_MS, 6_000), conditional: probe.capabilities.conditionalWrites, rejectedWrites: "bounded" });
      report("file", result);
      assertLinearizable(result);
    } finally {
      for (const c of clients) await c.close();
    }
  });

});

describe("history: postgres", async () => {
  // A server of the test's own, so it can be restarted; the shared one (no restart) otherwise.
  const problem = privatePostgresProblem();
  const shared = problem === undefined ? undefined : await findPostgres();
  const skip = shared && "skip" in shared ? shared.skip : false;
  if (problem !== undefined && !skip) console.warn(`# history: postgres runs on the shared server without a restart: ${problem}`);
  let server: PrivatePostgres | undefined;
  let url: string;
  let proxy: TcpProxy;
  const tables: string[] = [];
  before(async () => {
    if (skip) return;
    server = problem === undefined ? await startPrivatePostgres() : undefined;
    url = server?.url ?? (shared as { url: string }).url;
    const u = new URL(url);
    proxy = await startTcpProxy(u.hostname, Number(u.port || 5432));
  });
  after(async () => {
    await proxy?.close();
    if (server) await server.destroy();
    else if (shared && "url" in shared) await dropStoreTables(shared.url, tables);
  });

  const run = async (layers: OpenStoreOptions): Promise<HistoryResult> => {
    const table = uniqueTable("stowage_hist");
    tables.push(table);
    // Create the table directly, then let the clients in through the proxy.
    await (await openStore(storeUrl(url, { table }))).close();
    const viaProxy = new URL(storeUrl(url, { table }));
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => openStore(viaProxy.href, { postgres: { poolConfig: { max: 2 } }, ...layers } as OpenStoreOptions)));
    const restart = server && (async () => {
      await server!.stop("immediate");
      await server!.start();
    });
    try {
      const options: HistoryOptions = { clients, keys: keys(), durationMs: DURATION_MS, conditional: clients[0]!.capabilities.conditionalWrites, rejectedWrites: "bounded" };
      return await withChaos(() => runHistory(options), proxy, { holdMs: 400, restart });
    } finally {
      for (const c of clients) await c.close().catch(() => undefined);
    }
  };

  it("with a 300 ms timeout, delays, cuts and a crash-restart: every history is linearizable (no late write)", { skip, timeout: 120_000 }, async () => {
    const result = await run({ timeout: 300 });
    report("postgres", result);
    assertLinearizable(result);
  });

  it("the same with retries: every history is linearizable", { skip, timeout: 120_000 }, async () => {
    const result = await run({ timeout: 300, retry: { maxAttempts: 3, baseDelayMs: 20 } });
    report("postgres + retry", result);
    assertLinearizable(result);
  });
});

describe("history: nats", async () => {
  const skip = natsServerBinary() ? false : unavailable("nats-server", "a nats-server binary to start a private server (apt-get install nats-server)");
  let server: NatsServerHandle;
  let proxy: TcpProxy;
  before(async () => {
    if (skip) return;
    server = await startNatsServer();
    proxy = await startTcpProxy("127.0.0.1", server.port);
  });
  after(async () => {
    await proxy?.close();
    await server?.destroy();
  });

  it("with delays, cuts and a server restart: every history is explained once rejected writes are indeterminate", { skip, timeout: 180_000 }, async () => {
    const bucket = uniqueName("HIST").replace(/[^A-Za-z0-9_-]/g, "_");
    await (await openStore(`${server.url}/${bucket}`)).close();
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => openStore(`nats://127.0.0.1:${proxy.port}/${bucket}`, { timeout: 300, retry: { maxAttempts: 3, baseDelayMs: 20 } })));
    try {
      const options: HistoryOptions = { clients, keys: keys(), durationMs: DURATION_MS, conditional: clients[0]!.capabilities.conditionalWrites, rejectedWrites: "unbounded" };
      const restart = async () => {
        await server.stop();
        await server.start();
      };
      const result = await withChaos(() => runHistory(options), proxy, { holdMs: 400, restart });
      report("nats", result);
      assertLinearizable(result);
    } finally {
      for (const c of clients) await c.close().catch(() => undefined);
    }
  });
});
