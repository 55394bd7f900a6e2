/**
 * Probe: what a conditional put costs on the file store, against an unconditional one, for a
 * 1 KiB value, with fsync on and off. With `BASELINE_SRC` naming another checkout's root (its
 * `src/backends/file.ts` is loaded), that store's unconditional put runs in the same rounds,
 * so a change to the put path can be measured against the code before it:
 *
 *   node --import tsx bench/file-put.ts [rounds=9] [puts=300]
 *   git archive <commit> src | tar -x -C /tmp/before && BASELINE_SRC=/tmp/before node --import tsx bench/file-put.ts
 *
 * Each round runs every variant once (in a rotating order), `puts` puts each, over 100 keys;
 * prints the median of the rounds' mean microseconds per put (wall clock, and CPU of the whole
 * process: its own thread and the file system threads, which a busy machine disturbs less),
 * each with its ratio to this checkout's unconditional put of the same fsync setting. Only the
 * put call is timed (an ifMatch put's etag is read with stat before the clock starts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { FileStore } from "../src/backends/file.js";
import type { PutOptions, Store } from "../src/types.js";

const ROUNDS = Number(process.argv[2] ?? 9);
const PUTS = Number(process.argv[3] ?? 300);
const value = new Uint8Array(1024).fill(7);
const root = mkdtempSync(join(tmpdir(), "stowage-put-bench-"));

type Opener = (options: { root: string; fsync: boolean }) => Promise<Store>;
const openers: [string, Opener][] = [["", (o) => FileStore.open(o)]];
if (process.env.BASELINE_SRC) {
  const module = (await import(pathToFileURL(resolve(process.env.BASELINE_SRC, "src/backends/file.ts")).href)) as { FileStore: { open: Opener } };
  openers.push(["baseline ", (o) => module.FileStore.open(o)]);
}

interface Variant {
  name: string;
  fsync: boolean;
  store: Store;
  /** Puts `n` values; returns the microseconds spent inside put calls. */
  run: (n: number, round: number) => Promise<Spent>;
}

interface Spent {
  wall: number;
  cpu: number;
}

/** Adds the wall and CPU microseconds of `put` to `spent`. */
async function timed(spent: Spent, put: () => Promise<void>): Promise<void> {
  const cpu = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await put();
  spent.wall += Number(process.hrtime.bigint() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  spent.cpu += used.user + used.system;
}

const variants: Variant[] = [];
let dirs = 0;
for (const fsync of [true, false]) {
  for (const [label, open] of openers) {
    const store = await open({ root: join(root, String(++dirs)), fsync });
    variants.push({
      name: `${label}put`,
      fsync,
      store,
      run: async (n) => {
        const spent = { wall: 0, cpu: 0 };
        for (let i = 0; i < n; i++) await timed(spent, () => store.put(`k/${i % 100}`, value));
        return spent;
      },
    });
  }
  const store = await FileStore.open({ root: join(root, String(++dirs)), fsync });
  const conditional = (name: string, options: (key: string, round: number) => Promise<PutOptions>, keyOf: (i: number, round: number) => string) =>
    variants.push({
      name,
      fsync,
      store,
      run: async (n, round) => {
        const spent = { wall: 0, cpu: 0 };
        for (let i = 0; i < n; i++) {
          const key = keyOf(i, round);
          const given = await options(key, round);
          await timed(spent, () => store.put(key, value, given));
        }
        return spent;
      },
    });
  conditional("put ifNoneMatch (create)", async () => ({ ifNoneMatch: "*" }), (i, round) => `new/${round}/${i}`);
  for (let i = 0; i < 100; i++) await store.put(`m/${i}`, value);
  conditional("put ifMatch", async (key) => ({ ifMatch: (await store.stat(key)).etag }), (i) => `m/${i % 100}`);
}

const samples = new Map<Variant, Spent[]>(variants.map((v) => [v, []]));
for (const v of variants) await v.run(50, -1); // warm up
for (let round = 0; round < ROUNDS; round++) {
  const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
  for (const v of order) samples.get(v)!.push(await v.run(PUTS, round));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const perPut = (v: Variant, what: keyof Spent) => median(samples.get(v)!.map((s) => s[what] / PUTS));
for (const fsync of [true, false]) {
  const own = variants.find((v) => v.fsync === fsync && v.name === "put")!;
  console.log(`fsync=${fsync}                    wall µs/put          CPU µs/put`);
  for (const v of variants.filter((x) => x.fsync === fsync)) {
    const [wall, cpu] = [perPut(v, "wall"), perPut(v, "cpu")];
    const ratio = (x: number, what: keyof Spent) => `${(x / perPut(own, what)).toFixed(2)}x`;
    console.log(`  ${v.name.padEnd(26)} ${wall.toFixed(0).padStart(6)} ${ratio(wall, "wall").padStart(6)}   ${cpu.toFixed(0).padStart(6)} ${ratio(cpu, "cpu").padStart(6)}`);
  }
}
for (const v of variants) await v.store.close();
rmSync(root, { recursive: true, force: true });
