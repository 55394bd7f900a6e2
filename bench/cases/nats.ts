/**
 * NATS JetStream (issue #3): stowage's nats: backend against the raw KV client, the raw object
 * store and the seed's approach (one ObjectStore object per key, list everything then filter),
 * all on the same server; then the scaling curves: list time against store size and put/get
 * time against value size, ours against the seed's approach.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { openStore } from "../stowage.js";
import type { Store } from "../../src/types.js";
import { defineSuite, KiB, MiB, type BenchContext, type ChartSpec, type Competitor } from "../harness.js";
import { rawKvAdapter, rawObjAdapter, removeStreams, seedAdapter } from "../nats-clients.js";
import { eachLimit, pattern, standardCases, storeAdapter, type Adapter } from "../standard.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const OURS = "stowage nats:";
const SEED = "seed (ObjectStore per key)";
const RAW_KV = "raw KV";
const RAW_OBJ = "raw @nats-io/obj";

const LIST_CHART: ChartSpec = {
  id: "nats-list-scaling",
  title: "NATS: listing 100 keys as the store grows",
  x: { label: "keys in the store", unit: "count", log: true },
  y: { label: "median time per list", unit: "ms", log: true },
};
const SIZE_CHART: ChartSpec = {
  id: "nats-value-size",
  title: "NATS: put and get time against value size",
  x: { label: "value size", unit: "bytes", log: true },
  y: { label: "median time per operation", unit: "ms", log: true },
};

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Our store on a fresh bucket, or an adapter that skips every case saying why it could not open. */
async function openOurs(bucket: string, opened: Store[]): Promise<Adapter> {
  try {
    const store = await openStore(`${NATS_URL.replace(/\/$/, "")}/${bucket}`);
    opened.push(store);
    return storeAdapter(OURS, store);
  } catch (err) {
    return { name: OURS, skip: `cannot open a nats: store: ${message(err)}`, put: async () => {}, get: async () => new Uint8Array(), list: async () => [], delete: async () => {} };
  }
}

export default defineSuite("nats", async (b) => {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: NATS_URL, timeout: 3000 });
  } catch (err) {
    b.skip("(all NATS cases)", `no NATS server at ${NATS_URL}: ${message(err)} (start nats-server -js or set NATS_URL)`);
    return;
  }
  if (nc.info?.version) b.server("nats-server", nc.info.version);
  const marker = `bench${process.pid}x${Math.random().toString(36).slice(2, 7)}`;
  const opened: Store[] = [];
  try {
    const adapters = [
      await rawKvAdapter(nc, `${marker}_kv`),
      await seedAdapter(nc, `${marker}_seed`),
      await rawObjAdapter(nc, `${marker}_obj`),
      await openOurs(`${marker}_ours`, opened),
    ];
    // The raw object store is the baseline of the large-value cases only; on small values it
    // makes the same calls as the seed's approach.
    const sameAsSeed = "same calls as the seed's approach (an ObjectStore object per key)";
    adapters[2] = { ...(adapters[2] as Adapter), cannot: { "put 1 KiB": sameAsSeed, "get 1 KiB": sameAsSeed, "list 100 of 20k": sameAsSeed, "list 100 of 2k": sameAsSeed, "delete 1 KiB": sameAsSeed, "get 1 KiB, 64 in flight": sameAsSeed, "put 1 KiB, 64 in flight": sameAsSeed } };
    const listLabel = b.options.quick ? "list 100 of 2k" : "list 100 of 20k";
    const streamed = "64 MiB streamed";
    await standardCases(b, adapters, {
      baseline: RAW_KV,
      baselines: { "put 1 MiB": RAW_OBJ, "get 1 MiB": RAW_OBJ, [`put ${streamed}`]: RAW_OBJ, [`get ${streamed}`]: RAW_OBJ },
      list: { total: b.scale(20_000, 2_000), matching: 100, label: listLabel },
      targets: {
        "get 1 KiB": [
          { issue: "#3", kind: "ratio", of: OURS, vs: SEED, atLeast: 5 },
          { issue: "#3", kind: "ratio", of: OURS, vs: RAW_KV, atLeast: 0.9 },
        ],
        [listLabel]: [{ issue: "#3", kind: "ratio", of: OURS, vs: SEED, atLeast: 10 }],
        [`put ${streamed}`]: [
          { issue: "#3", kind: "ratio", of: OURS, vs: RAW_OBJ, atLeast: 0.9 },
          { issue: "#3", kind: "memory", of: OURS, belowBytes: 32 * MiB },
        ],
        [`get ${streamed}`]: [
          { issue: "#3", kind: "ratio", of: OURS, vs: RAW_OBJ, atLeast: 0.9 },
          { issue: "#3", kind: "memory", of: OURS, belowBytes: 32 * MiB },
        ],
      },
    });
    for (const store of opened.splice(0)) await store.close();
    await removeStreams(nc, marker);

    await listScaling(b, nc, `${marker}_ls`, opened);
    for (const store of opened.splice(0)) await store.close();
    await removeStreams(nc, marker);

    await sizeScaling(b, nc, `${marker}_vs`, opened);
  } finally {
    for (const store of opened) await store.close().catch(() => undefined);
    await removeStreams(nc, marker).catch(() => undefined);
    await nc.close();
  }
});

/** List of a 100-key prefix in stores of 1k, 10k and 100k keys: ours and the seed's approach. */
async function listScaling(b: BenchContext, nc: NatsConnection, bucket: string, opened: Store[]): Promise<void> {
  const sizes = b.options.quick ? [1_000, 10_000] : [1_000, 10_000, 100_000];
  const name = (n: number) => `list 100 keys, store of ${n / 1000}k keys`;
  if (!sizes.some((n) => b.wants(name(n)))) return;
  const ours = await openOurs(`${bucket}_ours`, opened);
  const seed = await seedAdapter(nc, `${bucket}_seed`);
  const small = pattern(16);
  const key = (n: number) => `scale/p${String(Math.floor(n / 100)).padStart(4, "0")}/k${String(n % 100).padStart(3, "0")}`;
  const target = "scale/p0000/";
  let filled = 0;
  for (const size of sizes) {
    const fresh = Array.from({ length: size - filled }, (_, i) => key(filled + i));
    filled = size;
    const fill = async (a: Adapter) => (a.fill ? a.fill(fresh, small) : eachLimit(fresh, 64, (k) => a.put(k, small)));
    const competitor = (a: Adapter): Competitor => ({
      name: a.name,
      ...(a.skip ? { skip: a.skip } : {}),
      setup: async () => {
        await fill(a);
        const found = await a.list(target);
        if (found.length !== 100) throw new Error(`listed ${found.length} keys, expected 100`);
      },
      op: () => a.list(target),
    });
    const result = await b.run({
      name: name(size),
      baseline: SEED,
      competitors: [competitor(seed), competitor(ours)],
      rounds: b.scale(3, 2),
      warmupMs: 50,
      roundMs: b.options.roundMs,
      note: "one store grown between sizes; the listed prefix always holds 100 keys",
    });
    for (const c of result?.competitors ?? []) if (c.opsPerSec) b.point(LIST_CHART, c.name, size, 1000 / c.opsPerSec);
  }
}

/** put and get time against value size, 1 KiB … 64 MiB: ours (put/get) and the seed's approach (putBlob/getBlob). */
async function sizeScaling(b: BenchContext, nc: NatsConnection, bucket: string, opened: Store[]): Promise<void> {
  const sizes = b.options.quick ? [KiB, 64 * KiB, MiB, 16 * MiB] : [KiB, 16 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB, 64 * MiB];
  const label = (n: number) => (n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`);
  const names = sizes.flatMap((n) => [`put ${label(n)} (size curve)`, `get ${label(n)} (size curve)`]);
  if (!names.some((n) => b.wants(n))) return;
  const ours = await openOurs(`${bucket}_ours`, opened);
  const seed = await seedAdapter(nc, `${bucket}_seed`);
  for (const size of sizes) {
    const value = pattern(size);
    const big = size >= 4 * MiB;
    const shape = big ? { rounds: b.scale(3, 2), roundMs: 1, warmupMs: 0, maxOpsPerRound: 1 } : { rounds: 3, roundMs: b.options.roundMs, warmupMs: b.options.warmupMs };
    for (const op of ["put", "get"] as const) {
      const competitor = (a: Adapter): Competitor => ({
        name: a.name,
        ...(a.skip ? { skip: a.skip } : {}),
        setup: () => a.put(`size/${size}/k0`, value),
        op: (i) => (op === "put" ? a.put(`size/${size}/k${i % 4}`, value) : a.get(`size/${size}/k0`)),
        teardown: () => eachLimit([0, 1, 2, 3], 4, (n) => a.delete(`size/${size}/k${n}`)),
      });
      const result = await b.run({ name: `${op} ${label(size)} (size curve)`, bytesPerOp: size, baseline: SEED, competitors: [competitor(seed), competitor(ours)], ...shape });
      for (const c of result?.competitors ?? []) if (c.opsPerSec) b.point(SIZE_CHART, `${c.name === OURS ? "stowage" : "seed"} ${op}`, size, 1000 / c.opsPerSec);
    }
  }
}
