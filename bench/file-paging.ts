/**
 * Probe: what a page of a file-store listing costs deep into a large listing, against the first
 * page, and what one pass over every key costs against one `list`. Two layouts of N keys: flat
 * (`flat/000000` … all in one directory) and nested (`nest/000/000` … 1,000 per directory).
 * The keys are written straight to disk in the store's format (a put per key would take minutes).
 *
 *   node --import tsx bench/file-paging.ts [keys=100000] [page=100] [rounds=7]
 *
 * A filesystem lists a directory unsorted, so a listing reads each directory it enters whole;
 * the store keeps the sorted entries of a large directory once its stamp has settled
 * (src/backends/file/entries.ts). "changing" times pages of a directory written to between
 * pages (a key put and deleted before each), "settled" of directories left alone for SETTLE_MS
 * after a first read (list, keys and pages are timed settled).
 * Prints the median of `rounds` calls, in milliseconds.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { FileStore } from "../src/backends/file.js";
import { SETTLE_MS } from "../src/backends/file/entries.js";
import { encodeHeader } from "../src/backends/file/format.js";
import { keyPath } from "../src/backends/file/names.js";

const N = Number(process.argv[2] ?? 100_000);
const PAGE = Number(process.argv[3] ?? 100);
const ROUNDS = Number(process.argv[4] ?? 7);

const root = mkdtempSync(join(tmpdir(), "stowage-paging-"));
const layouts: [string, string, (i: number) => string][] = [
  ["flat", "flat/", (i) => `flat/${String(i).padStart(6, "0")}`],
  ["nested", "nest/", (i) => `nest/${String(Math.floor(i / 1000)).padStart(3, "0")}/${String(i % 1000).padStart(3, "0")}`],
];

async function median(run: () => Promise<unknown>, before?: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await before?.();
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const f = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(0));

try {
  const store = await FileStore.open({ root, names: "readable", sweepOnOpen: false, fsync: false });
  const value = Buffer.concat([encodeHeader(undefined, 1), Buffer.from("x")]);
  for (const [name, prefix, keyOf] of layouts) {
    const made = new Set<string>();
    for (let i = 0; i < N; i++) {
      const { dir, file } = keyPath(keyOf(i), "readable");
      const path = join(root, ...dir);
      if (!made.has(path)) {
        mkdirSync(path, { recursive: true });
        made.add(path);
      }
      writeFileSync(join(path, file[0]!), value);
    }
    const deepIndex = Math.floor(N * 0.9);
    const deep = keyOf(deepIndex);
    const check = async () => {
      const page = await store.listPage(prefix, { limit: PAGE, after: deep });
      if (page.keys.length !== PAGE || page.keys[0] !== keyOf(deepIndex + 1)) throw new Error(`${name}: wrong deep page ${page.keys[0]}`);
    };
    await check();
    // A put and a delete in the first directory of the layout: it never settles.
    const touched = `${keyOf(0).slice(0, keyOf(0).lastIndexOf("/") + 1)}~touch`;
    const touch = async () => {
      await store.put(touched, value);
      await store.delete(touched);
    };
    const firstChanging = await median(() => store.listPage(prefix, { limit: PAGE }), touch);
    const deepChanging = await median(() => store.listPage(prefix, { limit: PAGE, after: deep }), touch);
    // Every directory read once, then left alone: the next reads keep their listings.
    await store.list(prefix);
    await sleep(SETTLE_MS + 500);
    await store.list(prefix);
    const first = await median(() => store.listPage(prefix, { limit: PAGE }));
    const deepPage = await median(() => store.listPage(prefix, { limit: PAGE, after: deep }));
    await check();
    const list = await median(() => store.list(prefix));
    const keysPass = await median(async () => {
      let n = 0;
      for await (const _key of store.keys(prefix)) n++;
      if (n !== N) throw new Error(`${name}: keys() gave ${n}`);
    });
    const pagesPass = await median(async () => {
      let n = 0;
      let after: string | undefined;
      do {
        const page = await store.listPage(prefix, { limit: 1000, after });
        n += page.keys.length;
        after = page.next;
      } while (after !== undefined);
      if (n !== N) throw new Error(`${name}: pages gave ${n}`);
    });
    console.log(`${name}, ${N} keys, pages of ${PAGE}:`);
    console.log(`  changing: first page ${f(firstChanging)} ms, page after ${deep} ${f(deepChanging)} ms (${(deepChanging / firstChanging).toFixed(2)}x)`);
    console.log(`  settled:  first page ${f(first)} ms, page after ${deep} ${f(deepPage)} ms (${(deepPage / first).toFixed(2)}x)`);
    console.log(`  list ${f(list)} ms; keys() ${f(keysPass)} ms (${(keysPass / list).toFixed(2)}x); listPage pages of 1000 ${f(pagesPass)} ms (${(pagesPass / list).toFixed(2)}x)`);
  }
  await store.close();
} finally {
  rmSync(root, { recursive: true, force: true });
}
