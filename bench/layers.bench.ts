/**
 * Layers (issue #5): cache hit against miss on NATS in the same run, and the cost of the
 * metrics layer per operation (on a fast store, where it shows, and on NATS, where it should
 * not). `npm run bench -- layers`.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { Registry } from "prom-client";
import { MemoryStore, openStore, withCache, withMetrics, type CachedStore } from "./stowage.js";
import type { Store } from "../src/types.js";
import { defineSuite, KiB } from "./harness.js";
import { removeStreams } from "./nats-clients.js";
import { pattern } from "./standard.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const KEYS = 100;
const key = (i: number) => `bench/layers/k${i % KEYS}`;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function fill(store: Store, size: number): Promise<void> {
  for (let i = 0; i < KEYS; i++) await store.put(key(i), pattern(size, i));
}

/** Reads every key once through `cache` so every later read of them is a hit. */
async function warm(cache: CachedStore): Promise<void> {
  await cache.ready;
  for (let i = 0; i < KEYS; i++) await cache.get(key(i));
}

export default defineSuite("layers", async (b) => {
  /** The metrics layer's cost over `store` (filled): the same 1 KiB gets without it and with it. */
  const metricsCost = (name: string, label: string, store: Store, note: string) => {
    const measured = withMetrics(store, { registry: new Registry() });
    return b.run({
      name,
      bytesPerOp: KiB,
      baseline: label,
      competitors: [
        { name: label, op: (i) => store.get(key(i)) },
        { name: `${label} + metrics`, op: (i) => measured.get(key(i)) },
      ],
      note,
    });
  };

  // Metrics cost on a fast store: the layer's own overhead is visible here.
  if (b.wants("metrics cost: memory get 1 KiB")) {
    const plain = new MemoryStore();
    await fill(plain, KiB);
    await metricsCost("metrics cost: memory get 1 KiB", "memory", plain,
      "The p50 difference is the metrics layer's cost per operation: two clock reads and one histogram observation (counts are kept in fields and handed to prom-client at scrape time).");
  }
  if (b.wants("metrics cost: cache hit 1 KiB")) {
    const cached = withCache(new MemoryStore(), { invalidateFromWatch: false });
    await fill(cached, KiB);
    await metricsCost("metrics cost: cache hit 1 KiB", "cache hit", cached, "The cheapest operation there is, so the metrics layer's relative cost is at its largest.");
  }

  const natsCases = ["cache get 1 KiB on NATS", "metrics cost: NATS get 1 KiB"];
  if (!natsCases.some((name) => b.wants(name))) return;
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: NATS_URL, timeout: 3000 });
  } catch (err) {
    for (const name of natsCases) b.skip(name, `no NATS server at ${NATS_URL}: ${message(err)} (start nats-server -js or set NATS_URL)`);
    return;
  }
  if (nc.info?.version) b.server("nats-server", nc.info.version);
  const marker = `bench${process.pid}layers${Math.random().toString(36).slice(2, 7)}`;
  const opened: Store[] = [];
  const open = async (): Promise<Store> => {
    const store = await openStore(`${NATS_URL.replace(/\/$/, "")}/${marker}`);
    opened.push(store);
    return store;
  };
  try {
    const nats = await open();
    await fill(nats, KiB);

    if (b.wants("cache get 1 KiB on NATS")) {
      // Two caches on their own connections to the same bucket: one holds every key (hits),
      // one is too small for the 100 keys read in turn (every read a miss, through the cache).
      const hits = withCache(await open(), { maxEntries: 1000 });
      const misses = withCache(await open(), { strategy: "lru", maxEntries: 10 });
      await b.run({
        name: "cache get 1 KiB on NATS",
        bytesPerOp: KiB,
        baseline: "miss",
        competitors: [
          { name: "miss", op: (i) => misses.get(key(i)), setup: async () => void (await misses.ready) },
          { name: "nats get (no cache)", op: (i) => nats.get(key(i)) },
          { name: "hit", op: (i) => hits.get(key(i)), setup: () => warm(hits) },
        ],
        targets: [
          { issue: "#5", kind: "ratio", of: "hit", vs: "miss", atLeast: 100 },
          { issue: "#5", kind: "latency", of: "hit", stat: "p50", atMostMs: 0.002 },
        ],
        note: "Caches follow the bucket's change feed (invalidateFromWatch, the default on NATS). A hit returns a fresh copy of the value.",
      });
    }

    if (b.wants("metrics cost: NATS get 1 KiB")) {
      await metricsCost("metrics cost: NATS get 1 KiB", "nats", nats, "Against a network round trip the metrics layer is noise.");
    }
  } finally {
    for (const store of opened) await store.close().catch(() => undefined);
    await removeStreams(nc, marker).catch(() => undefined);
    await nc.close();
  }
});
