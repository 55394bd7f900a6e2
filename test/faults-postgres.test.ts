/**
 * Faults on PostgreSQL: the store talks to the shared server through a TCP proxy the test
 * controls (the server itself is never touched). Every pooled connection is cut (RST) in the
 * middle of a sustained write load, new connections are refused for a moment, then cut again.
 * Every put resolves (and its value is then readable) or rejects with a `transient` error; no
 * acknowledged write is lost; the pool recovers by itself. Chunked values (a transaction of
 * several statements) cut half-way are never torn.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { openStore, type Store } from "../src/index.js";
import { dropStoreTables, findPostgres, storeUrl, uniqueTable } from "./fixtures/postgres.js";
import { startTcpProxy, type TcpProxy } from "./fixtures/tcp-proxy.js";
import { assertOnlyTransient, describeReport, runWriteLoad, valueFor, verifyAcknowledged, waitUntilWorks } from "./fixtures/write-load.js";

const found = await findPostgres();
const direct = "url" in found ? found.url : undefined;
const skip = "skip" in found ? found.skip : false;

describe("faults: PostgreSQL connections cut and refused under write load", { skip, timeout: 240_000 }, () => {
  const tables: string[] = [];
  const cleanup: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
    if (direct) await dropStoreTables(direct, tables);
  });

  async function throughProxy(params: Record<string, string> = {}): Promise<{ store: Store; proxy: TcpProxy }> {
    const target = new URL(direct!);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    cleanup.push(() => proxy.close());
    const table = uniqueTable("stowage_faults");
    tables.push(table);
    const proxied = new URL(direct!);
    proxied.hostname = "127.0.0.1";
    proxied.port = String(proxy.port);
    const store = await openStore(storeUrl(proxied.href, { table, ...params }));
    cleanup.push(() => store.close());
    return { store, proxy };
  }

  /** Cut everything, refuse new connections for `refuseMs`, then cut once more after they are back. */
  function cutAndRefuse(proxy: TcpProxy, refuseMs: number): () => Promise<void> {
    return async () => {
      proxy.cut();
      proxy.refuse(true);
      await new Promise((r) => setTimeout(r, refuseMs));
      proxy.refuse(false);
      await new Promise((r) => setTimeout(r, 200));
      proxy.cut();
    };
  }

  it("small values: transient-only failures, 0 acknowledged writes lost, the pool recovers", async () => {
    const { store, proxy } = await throughProxy();
    const report = await runWriteLoad(store, { count: 3000, concurrency: 16, prefix: "load", fault: { afterAcks: 1000, run: cutAndRefuse(proxy, 1000) } });
    assertOnlyTransient(report, "postgres cut");
    assert.ok(proxy.cuts > 0, "connections were cut");
    await waitUntilWorks("the PostgreSQL pool", () => store.get("load/000000"));
    const verified = await verifyAcknowledged(store, report, "load");
    console.log(`# ${describeReport(`postgres: ${proxy.cuts} connections cut, refused 1 s`, report, verified)}`);
  });

  it("large reads (binary COPY) cut mid-stream: transient or exact, never wrong bytes, the pool recovers", async () => {
    const { store, proxy } = await throughProxy();
    const keys = Array.from({ length: 8 }, (_, i) => `big/${i}`);
    for (const [i, key] of keys.entries()) await store.put(key, valueFor(i, 2 * 1024 * 1024));
    let reads = 0;
    let failed = 0;
    const kinds = new Set<string>();
    const reader = async (worker: number) => {
      for (let n = 0; n < 30; n++) {
        const i = (worker + n) % keys.length;
        try {
          const value = await store.get(keys[i]!);
          assert.ok(Buffer.from(value).equals(Buffer.from(valueFor(i, 2 * 1024 * 1024))), `${keys[i]} read back exactly`);
          reads++;
        } catch (err) {
          failed++;
          kinds.add((err as { kind?: string }).kind ?? String(err));
        }
      }
    };
    const cutting = (async () => {
      for (let c = 0; c < 4; c++) {
        await new Promise((r) => setTimeout(r, 150));
        proxy.cut();
      }
    })();
    await Promise.all([cutting, ...Array.from({ length: 4 }, (_, w) => reader(w))]);
    assert.ok(proxy.cuts > 0, "connections were cut");
    assert.deepEqual([...kinds].filter((k) => k !== "transient"), [], "every failure is transient");
    await waitUntilWorks("the PostgreSQL pool", () => store.get(keys[0]!));
    for (const [i, key] of keys.entries()) assert.ok(Buffer.from(await store.get(key)).equals(Buffer.from(valueFor(i, 2 * 1024 * 1024))));
    console.log(`# postgres large reads: ${proxy.cuts} connections cut, ${reads} exact reads, ${failed} transient failures`);
  });

  it("chunked values (multi-statement transactions) cut half-way are never torn", async () => {
    // 1 KiB chunks: a 48 KiB value is a transaction of ~50 statements, so cuts land inside them.
    const { store, proxy } = await throughProxy({ chunkBytes: "1024" });
    const report = await runWriteLoad(store, {
      count: 240,
      concurrency: 8,
      prefix: "chunked",
      valueBytes: 48 * 1024,
      acksAfterFault: 20,
      fault: { afterAcks: 60, run: cutAndRefuse(proxy, 500) },
    });
    assertOnlyTransient(report, "postgres chunked cut");
    await waitUntilWorks("the PostgreSQL pool", () => store.list("chunked/"));
    const verified = await verifyAcknowledged(store, report, "chunked");
    // A put that failed may have committed or not, but never half: whatever is there is whole.
    const unacknowledged = (await store.list("chunked/")).filter((key) => !report.acknowledged.has(key));
    for (const key of unacknowledged) {
      const value = await store.get(key);
      const index = Number(key.slice("chunked/".length));
      assert.equal(value.byteLength, 48 * 1024, `${key} is whole`);
      assert.ok(Buffer.from(value).equals(Buffer.from(valueFor(index, 48 * 1024))), `${key} holds exactly its own value`);
    }
    console.log(`# ${describeReport(`postgres chunked: ${proxy.cuts} connections cut`, report, verified)}; ${unacknowledged.length} rejected puts had committed whole`);
  });
});
