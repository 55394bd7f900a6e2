/**
 * Probe: range reads of a large value on NATS. Writes one value of `size` MiB (default 256) to
 * a fresh bucket on the server at NATS_URL (default 127.0.0.1:4222), then times `get` of a
 * 64 KiB range at its start, in its middle and at its end, interleaved, `rounds` times
 * (default 50), and prints the medians and the end/start ratio (the target: within 3x).
 *
 *   node --import tsx bench/nats-range.ts [sizeMiB] [rounds]
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { openStore } from "../src/index.js";

const NATS_URL = (process.env.NATS_URL ?? "nats://127.0.0.1:4222").replace(/\/$/, "");
const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? 256) * MiB;
const rounds = Number(process.argv[3] ?? 50);
const bucket = `bench_range_${process.pid}`;
const RANGE = 64 * 1024;

const store = await openStore(`${NATS_URL}/${bucket}?sweepInterval=0`);
try {
  const started = performance.now();
  await store.putStream("big", (async function* () {
    const block = new Uint8Array(MiB).map((_, i) => i % 251);
    for (let sent = 0; sent < size; sent += MiB) yield block;
  })());
  console.log(`wrote ${size / MiB} MiB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const offsets = { start: 0, middle: size / 2, end: size - RANGE };
  const times: Record<string, number[]> = { start: [], middle: [], end: [] };
  for (let round = 0; round < rounds; round++) {
    for (const [name, offset] of Object.entries(offsets)) {
      const t = performance.now();
      const got = await store.get("big", { range: { offset, length: RANGE } });
      times[name]!.push(performance.now() - t);
      if (got.byteLength !== RANGE || got[0] !== offset % MiB % 251) throw new Error(`wrong bytes at ${offset}`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const [name, xs] of Object.entries(times)) console.log(`64 KiB at the ${name.padEnd(6)} median ${median(xs).toFixed(2)} ms`);
  console.log(`end/start: ${(median(times.end!) / median(times.start!)).toFixed(2)}x`);
} finally {
  await store.close();
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  for (const stream of [`KV_${bucket}`, `OBJ_${bucket}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
  await nc.close();
}
