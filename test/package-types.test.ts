/**
 * The published types work for a strict consumer: the package as `npm pack` makes it, installed
 * into a project of its own with nothing but its `dependencies`, compiled under `strict`,
 * `nodenext` and `skipLibCheck: false`, importing `stowage`, `stowage/core` and `stowage/testing`.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createRequire } from "node:module";

const root = resolve(import.meta.dirname, "..");
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

const CONSUMER = `
import { openStore, MemoryStore, NatsStore, PostgresStore, S3Store, StorageComponent, withCache, isStorageError, type Store, type OpenStoreOptions, type ObjectInfo } from "stowage";
import { openStore as openCore, FileStore, type ListPage } from "stowage/core";
import { testStore, type TestRunner } from "stowage/testing";

// Options of every backend are known to a program that imports only stowage/core.
const options: OpenStoreOptions = { nats: { history: 5 }, postgres: { table: "t" }, s3: { region: "eu-west-1" }, file: { fsync: false }, memory: { history: 2 }, create: false };
const cached = await openStore("memory:", { cache: {} });
await cached.ready; // typed as the cache layer
const hits: number = cached.cacheStats().hits;
const store: Store = await openCore("file:./data", options);
const info: ObjectInfo = await store.stat("k");
const etag: string = info.etag;
await store.put("k", new Uint8Array(1), { ifMatch: etag });
const page: ListPage = await store.listPage("", { delimiter: "/" });
const folders: string[] | undefined = page.prefixes;
const range = await store.get("k", { range: { offset: 0, length: 1 } });
const runner = {} as TestRunner;
testStore("consumer", { open: async () => new MemoryStore(), runner });
const closed: boolean = store.closed;
void [hits, folders, range, closed, withCache, isStorageError, FileStore, NatsStore, PostgresStore, S3Store, StorageComponent];
`;

describe("published types", () => {
  const dir = mkdtempSync(join(tmpdir(), "stowage-consumer-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  // dist is the build `npm test` made before the tests (npm run typecheck builds it).
  it("compile in a strict consumer (nodenext, skipLibCheck false) with only the package's dependencies", { timeout: 300_000 }, () => {
    execFileSync("npm", ["pack", "--silent", "--ignore-scripts", "--pack-destination", dir], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
    const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack made no tarball");
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
    // The consumer's own @types/node, as any Node program has; the rest comes from stowage's dependencies.
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts", `./${tarball}`, "@types/node@20"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
    writeFileSync(join(dir, "index.ts"), CONSUMER);
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", skipLibCheck: false, noEmit: true, types: ["node"] }, files: ["index.ts"] }),
    );
    const result = spawnSync(process.execPath, [tsc, "-p", dir], { encoding: "utf8" });
    assert.equal(result.status, 0, `tsc failed:\n${result.stdout}${result.stderr}`);
  });
});
