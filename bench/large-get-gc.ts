/**
 * Probe: what V8's collector costs a 1 MiB get, before and after the process's first full
 * mark-compact. Gets 1 MiB objects from an s3rver with stowage's s3: store and with OpenDAL, two
 * rounds each; forces one full GC; runs the same rounds again. Prints ops/s, the process's CPU
 * per get (every thread) and the collections by kind (PerformanceObserver "gc").
 *
 *   npm run build && node --expose-gc --import tsx bench/large-get-gc.ts [roundMs]
 *   npm run build && node --expose-gc --initial-old-space-size=256 --import tsx bench/large-get-gc.ts
 *
 * Measured here with V8's defaults: stowage ~205 gets/s, 1.4-1.9 ms CPU per get and ~25
 * scavenges per 2 s round, until the first mark-compact (OpenDAL's reads cause some, as does
 * gc()); from then on ~130 gets/s, 5-7 ms CPU per get and ~35 mark-compacts per round. That
 * collection sizes the old generation's limit to the small live heap (~23 MB), and the
 * ArrayBuffers of Node's socket reads (64 KiB each, 17 per 1 MiB body) count against it until
 * the next mark-compact: raw undici reading and discarding the body measures the same. OpenDAL's
 * bytes arrive in Rust memory (~195 gets/s either way). With --initial-old-space-size=256:
 * stowage ~220 gets/s at 1.2-1.5 ms, scavenges only, before and after.
 */
import { PerformanceObserver } from "node:perf_hooks";
import { openStore } from "./stowage.js";
import { createBucket, deleteBucket, startS3Server, storeUrl } from "../test/fixtures/s3.js";
import { gc, MiB } from "./harness.js";
import { opendalOperator } from "./cases/s3.js";

if (!gc) throw new Error("run with node --expose-gc");
const roundMs = Number(process.argv[2] ?? 2000);
const GC_KINDS: Record<number, string> = { 1: "scavenge", 2: "minor mark-compact", 4: "mark-compact", 8: "incremental marking", 16: "weak callbacks" };
const collections = new Map<string, number>();
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = GC_KINDS[((entry as { detail?: { kind?: number } }).detail)?.kind ?? 0] ?? "other";
    collections.set(kind, (collections.get(kind) ?? 0) + 1);
  }
}).observe({ entryTypes: ["gc"] });

async function round(label: string, get: (key: string) => Promise<unknown>): Promise<void> {
  collections.clear();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < roundMs) await get(`big/${n++ % 5}`);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const gcs = [...collections].map(([kind, count]) => `${count} ${kind}`).join(", ");
  console.log(`${label.padEnd(26)} ${(n / seconds).toFixed(0).padStart(4)} gets/s, ${((cpu.user + cpu.system) / n / 1000).toFixed(2)} ms CPU per get; ${gcs}`);
}

const server = await startS3Server();
const bucket = `large-get-gc-${process.pid}`;
await createBucket(bucket, { server });
const store = await openStore(storeUrl(server, bucket));
try {
  const value = new Uint8Array(MiB).map((_, i) => (i * 31) & 0xff);
  for (let i = 0; i < 5; i++) await store.put(`big/${i}`, value);
  const operator = opendalOperator(server, bucket);
  const competitors: [string, (key: string) => Promise<unknown>][] = [
    ["stowage s3:", (key) => store.get(key)],
    ["OpenDAL s3", (key) => operator.read(key)],
  ];
  for (const [name, get] of competitors) await round(`${name} before`, get);
  for (const [name, get] of competitors) await round(`${name} before`, get);
  gc();
  console.log("-- one full GC (gc()) --");
  for (const [name, get] of competitors) await round(`${name} after`, get);
  for (const [name, get] of competitors) await round(`${name} after`, get);
} finally {
  await store.close();
  await deleteBucket(bucket, { server }).catch(() => undefined);
  await server.stop();
}
