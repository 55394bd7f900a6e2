/**
 * Probe: listing pages on NATS against one full listing, on one bucket of N keys under `k/`
 * (default 200,000) on the server at NATS_URL (default 127.0.0.1:4222).
 *
 *   node --import tsx bench/nats-paging.ts [keys] [rounds]
 *
 * Prints the median of `rounds` (default 3) of: `list("")`; a whole `keys()` pass (pages of
 * 1,000); the first 100-key page and a 100-key page 90% deep into the listing, each on a fresh
 * store (nothing cached: the page reads the prefix) and on a store that has just served a page
 * of the same prefix (the usual case: `keys()`, a console paging on); and `list` of a prefix
 * ending inside a segment that matches 100 keys. The bucket is removed at the end.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { openStore, type Store } from "../src/index.js";

const NATS_URL = (process.env.NATS_URL ?? "nats://127.0.0.1:4222").replace(/\/$/, "");
const N = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const bucket = `bench_paging_${process.pid}`;
const key = (i: number) => `k/${String(i).padStart(7, "0")}`;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fresh = () => openStore(`${NATS_URL}/${bucket}?sweepInterval=0`);

const writer = await fresh();
try {
  const filling = performance.now();
  for (let i = 0; i < N; i += 5000) {
    await writer.putMany(Array.from({ length: Math.min(5000, N - i) }, (_, j) => ({ key: key(i + j), data: new Uint8Array(16) })));
  }
  console.log(`filled ${N} keys in ${((performance.now() - filling) / 1000).toFixed(1)} s`);
  const deepAfter = key(Math.floor(N * 0.9));
  const inSegment = key(Math.floor(N / 2)).slice(0, -2); // 100 keys
  const results: Record<string, number[]> = {};
  const record = (name: string, ms: number) => (results[name] ??= []).push(ms);
  for (let round = 0; round < ROUNDS; round++) {
    const stores: Store[] = [];
    const open = async () => {
      const s = await fresh();
      stores.push(s);
      return s;
    };
    try {
      const a = await open();
      record('list("")', await time(() => a.list("")));
      let count = 0;
      record("keys() pass, pages of 1000", await time(async () => {
        for await (const _ of a.keys("", { limit: 1000 })) count++;
      }));
      if (count !== N) throw new Error(`keys() gave ${count} keys, expected ${N}`);
      record("first page of 100, cold", await time(async () => (await open()).listPage("k/", { limit: 100 })));
      record("deep page of 100, cold", await time(async () => (await open()).listPage("k/", { limit: 100, after: deepAfter })));
      const warm = await open();
      await warm.listPage("k/", { limit: 100 });
      record("next page of 100, warm", await time(() => warm.listPage("k/", { limit: 100, after: key(99) })));
      record("deep page of 100, warm", await time(() => warm.listPage("k/", { limit: 100, after: deepAfter })));
      let matched = 0;
      record(`list("${inSegment}") (100 keys)`, await time(async () => (matched = (await a.list(inSegment)).length)));
      if (matched !== 100) throw new Error(`list("${inSegment}") gave ${matched} keys`);
    } finally {
      for (const s of stores) await s.close();
    }
  }
  const whole = median(results['list("")']!);
  for (const [name, ms] of Object.entries(results)) {
    console.log(`${name.padEnd(36)} ${median(ms).toFixed(1).padStart(9)} ms  ${(median(ms) / whole).toFixed(3)}x list("")`);
  }
  const first = median(results["first page of 100, cold"]!);
  console.log(`deep/first page: cold ${(median(results["deep page of 100, cold"]!) / first).toFixed(2)}x, warm ${(median(results["deep page of 100, warm"]!) / median(results["next page of 100, warm"]!)).toFixed(2)}x`);
} finally {
  await writer.close();
  const nc = await connect({ servers: NATS_URL });
  await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`).catch(() => undefined);
  await nc.close();
}
