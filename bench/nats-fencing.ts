/**
 * Probe: what fencing costs a 1 KiB put on NATS. The same 1 KiB put to a fresh bucket on the
 * server at NATS_URL (default 127.0.0.1:4222):
 *   - "no write id": a plain put (no Nats-Msg-Id: what a put without the retry layer sends);
 *   - "write id": the put with a write id, sent as Nats-Msg-Id (what every attempt under the
 *     retry layer sends; the server then remembers the id for the bucket's duplicate window);
 *   - "before", when BEFORE_SRC names another checkout's src/index.ts (e.g. /work/main/src/index.ts):
 *     that build's plain put, for a ratio to the code before these changes in the same run.
 * Interleaved rounds of `roundMs` (default 1000), `rounds` of them (default 5), with 1 and 32
 * puts in flight; prints the median ops/s and the ratios to "no write id".
 *
 *   BEFORE_SRC=/work/main/src/index.ts node --import tsx bench/nats-fencing.ts [rounds] [roundMs]
 */
import { randomUUID } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { openStore } from "../src/index.js";
import type { Store } from "../src/types.js";

const NATS_URL = (process.env.NATS_URL ?? "nats://127.0.0.1:4222").replace(/\/$/, "");
const rounds = Number(process.argv[2] ?? 5);
const roundMs = Number(process.argv[3] ?? 1000);
const value = new Uint8Array(1024).fill(1);
const buckets: string[] = [];
const fresh = async (open: (url: string) => Promise<Store>) => {
  const bucket = `bench_fence_${process.pid}_${buckets.length}`;
  buckets.push(bucket);
  return open(`${NATS_URL}/${bucket}?history=1&sweepInterval=0`);
};

const competitors: { name: string; store: Store; put: (store: Store, i: number) => Promise<void> }[] = [];
competitors.push({ name: "no write id", store: await fresh((u) => openStore(u)), put: (s, i) => s.put(`k/${i % 1000}`, value) });
competitors.push({ name: "write id (Nats-Msg-Id)", store: await fresh((u) => openStore(u)), put: (s, i) => s.put(`k/${i % 1000}`, value, { writeId: randomUUID() }) });
if (process.env.BEFORE_SRC) {
  const before = (await import(process.env.BEFORE_SRC)) as { openStore: (url: string) => Promise<Store> };
  competitors.push({ name: "before (BEFORE_SRC)", store: await fresh((u) => before.openStore(u)), put: (s, i) => s.put(`k/${i % 1000}`, value) });
}

async function round(c: (typeof competitors)[number], inFlight: number): Promise<number> {
  let done = 0;
  const until = performance.now() + roundMs;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < until) await c.put(c.store, done++);
  }));
  return (done / roundMs) * 1000;
}

try {
  for (const inFlight of [1, 32]) {
    const rates = new Map<string, number[]>(competitors.map((c) => [c.name, []]));
    for (const c of competitors) await round(c, inFlight); // warm-up
    for (let r = 0; r < rounds; r++) {
      const order = [...competitors.slice(r % competitors.length), ...competitors.slice(0, r % competitors.length)];
      for (const c of order) rates.get(c.name)!.push(await round(c, inFlight));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const base = median(rates.get("no write id")!);
    console.log(`put 1 KiB, ${inFlight} in flight:`);
    for (const [name, xs] of rates) console.log(`  ${name.padEnd(24)} ${median(xs).toFixed(0).padStart(7)}/s  ${(median(xs) / base).toFixed(2)}x`);
  }
} finally {
  for (const c of competitors) await c.store.close();
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  for (const bucket of buckets) await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
  await nc.close();
}
