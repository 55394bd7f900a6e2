/**
 * Probe: a range read of the file store reads at its position. Times `get` and `getStream` of
 * 64 KiB at the start and at the end of a 256 MiB value (and a whole `get` for scale), median
 * of `rounds`, interleaved:
 *
 *   node --import tsx bench/file-range.ts [rounds=15] [MiB=256]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileStore } from "../src/backends/file.js";
import type { Store } from "../src/types.js";

const ROUNDS = Number(process.argv[2] ?? 15);
const SIZE = Number(process.argv[3] ?? 256) * 1024 * 1024;
const RANGE = 64 * 1024;
const root = mkdtempSync(join(tmpdir(), "stowage-range-bench-"));

async function* body(): AsyncGenerator<Uint8Array> {
  const chunk = new Uint8Array(1024 * 1024);
  for (let at = 0; at < SIZE; at += chunk.byteLength) yield chunk.fill(at / chunk.byteLength);
}

async function drain(stream: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += chunk.byteLength;
  return n;
}

try {
  const store: Store = await FileStore.open({ root, fsync: false });
  await store.putStream("big", body());
  const cases: [string, () => Promise<number>][] = [
    ["get 64 KiB at the start", async () => (await store.get("big", { range: { offset: 0, length: RANGE } })).byteLength],
    ["get 64 KiB at the end", async () => (await store.get("big", { range: { offset: SIZE - RANGE, length: RANGE } })).byteLength],
    ["getStream 64 KiB at the start", async () => drain(await store.getStream("big", { range: { offset: 0, length: RANGE } }))],
    ["getStream 64 KiB at the end", async () => drain(await store.getStream("big", { range: { offset: SIZE - RANGE } }))],
    ["get of the whole value", async () => (await store.get("big")).byteLength],
  ];
  const samples = cases.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, [name, run]] of cases.entries()) {
      const t0 = performance.now();
      const bytes = await run();
      samples[i]!.push(performance.now() - t0);
      if (bytes !== (name.includes("whole") ? SIZE : RANGE)) throw new Error(`${name}: ${bytes} bytes`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ms = samples.map(median);
  for (const [i, [name]] of cases.entries()) console.log(`${name.padEnd(32)} ${ms[i]!.toFixed(3).padStart(9)} ms`);
  console.log(`end / start: get ${(ms[1]! / ms[0]!).toFixed(2)}x, getStream ${(ms[3]! / ms[2]!).toFixed(2)}x`);
  await store.close();
} finally {
  rmSync(root, { recursive: true, force: true });
}
