/**
 * Capacity on a three-node JetStream cluster on this machine (issue #9): writes/s and reads/s
 * of the nats: backend with one replica (R1) against three (R3), many operations in flight,
 * and R3 spread over three buckets (three stream leaders) against one bucket.
 *
 * `npm run bench -- cluster` (add `--quick` for a smoke run). Starts its own cluster
 * (test/fixtures/nats-cluster.ts: three nats-server processes on free loopback ports) and
 * removes it; never touches a server on 4222. All three nodes and the client share this
 * machine's cores, so the R3 cost shown is an upper bound of what separate machines would pay
 * in CPU, and a lower bound of what they pay in network round trips.
 */
import { NatsStore } from "./stowage.js";
import type { Store } from "../src/types.js";
import { startNatsCluster, type NatsCluster } from "../test/fixtures/nats-cluster.js";
import { natsServerBinary } from "../test/fixtures/nats.js";
import { defineSuite, KiB, type Competitor } from "./harness.js";

const VALUE_BYTES = KiB;
/** Keys a get case reads from (written once before the case). */
const READ_KEYS = 1000;
/** Operations in flight: enough to find the server's capacity, not the client's latency. */
const IN_FLIGHT = 32;
/** Longer rounds than the suite default: a cluster's throughput wobbles with elections, fsyncs and the other processes on the machine. */
const ROUNDS = { rounds: 5, roundMs: 1500, warmupMs: 500 };

const R1 = "R1 (1 bucket)";
const R3 = "R3 (1 bucket)";
const R3_SPREAD = "R3 (3 buckets)";

/** Keys spread over several stores by a stable hash of the key (what the docs recommend). */
class Spread {
  constructor(readonly stores: Store[]) {}
  of(key: string): Store {
    let h = 0;
    for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
    return this.stores[h % this.stores.length]!;
  }
}

export default defineSuite("cluster", async (b) => {
  if (!natsServerBinary()) {
    b.skip("(all cluster cases)", "no nats-server binary to start a three-node cluster (apt-get install nats-server, or NATS_SERVER_BIN)");
    return;
  }
  const cases = ["put 1 KiB, 32 in flight", "get 1 KiB, 32 in flight"];
  if (!cases.some((c) => b.wants(c))) return;
  let cluster: NatsCluster | undefined;
  const opened: NatsStore[] = [];
  try {
    cluster = await startNatsCluster(3);
    const servers = cluster.servers;
    const open = async (bucket: string, replicas: number) => {
      const store = await NatsStore.open({ bucket, servers, replicas, history: 1, sweepInterval: 0 });
      opened.push(store);
      return store;
    };
    const tag = `${process.pid}`;
    const r1 = await open(`bench_r1_${tag}`, 1);
    const r3 = await open(`bench_r3_${tag}`, 3);
    const spread = new Spread(await Promise.all([0, 1, 2].map((i) => open(`bench_r3s${i}_${tag}`, 3))));
    const leaders = await Promise.all([0, 1, 2].map((i) => cluster!.streamLeader(`KV_bench_r3s${i}_${tag}`)));
    const value = new Uint8Array(VALUE_BYTES).fill(7);
    const competitors = (op: (store: Store, key: string) => Promise<unknown>, keyOf: (i: number) => string): Competitor[] => [
      { name: R1, op: (i) => op(r1, keyOf(i)) },
      { name: R3, op: (i) => op(r3, keyOf(i)) },
      { name: R3_SPREAD, op: (i) => { const key = keyOf(i); return op(spread.of(key), key); } },
    ];

    await b.run({
      name: "put 1 KiB, 32 in flight",
      bytesPerOp: VALUE_BYTES,
      concurrency: IN_FLIGHT,
      ...(b.options.quick ? {} : ROUNDS),
      baseline: R1,
      competitors: competitors((store, key) => store.put(key, value), (i) => `w/${i % 5000}`),
      note: `writes/s: each put is acknowledged once stored (R3: by a quorum of 2 of 3 nodes); the 3 buckets' leaders: ${leaders.join(", ")}`,
    });

    const readKey = (i: number) => `r/${i % READ_KEYS}`;
    await b.run({
      name: "get 1 KiB, 32 in flight",
      bytesPerOp: VALUE_BYTES,
      concurrency: IN_FLIGHT,
      ...(b.options.quick ? {} : ROUNDS),
      baseline: R1,
      competitors: competitors((store, key) => store.get(key), readKey).map((c) => ({
        ...c,
        setup: async () => {
          const stores = c.name === R1 ? [r1] : c.name === R3 ? [r3] : spread.stores;
          for (let i = 0; i < READ_KEYS; i += 50) {
            await Promise.all(Array.from({ length: 50 }, (_, j) => readKey(i + j)).map((key) => (stores.length === 1 ? stores[0]! : spread.of(key)).put(key, value)));
          }
        },
      })),
      note: "reads/s: direct gets, answered by any replica holding the stream (R3: three servers can answer)",
    });
  } finally {
    for (const store of opened) await store.close().catch(() => undefined);
    await cluster?.destroy();
  }
});
