/**
 * Property-based key tests (fast-check) on EVERY backend: memory, file, NATS, PostgreSQL, S3.
 *
 * - Valid keys, drawn from the characters backends get wrong (`*` `>` `.` NATS tokens, `%` `_`
 *   LIKE wildcards, `\` and `:` Windows separators, encoded `%2e%2e/%2f` traversal look-alikes,
 *   spaces, astral unicode, empty segments, trailing `/`, keys near 1024 bytes) round-trip
 *   exactly and list exactly: `list(p)` is precisely the stored keys starting with `p`, in
 *   UTF-8 byte order, for prefixes cut from the keys (so `%`/`_`/`*`/`>` land in prefixes).
 * - Invalid keys (a control character or NUL inserted, a `.`/`..` segment, a leading `/`,
 *   a lone surrogate, over 1024 bytes, not a string) are refused by put/get/delete/stat with
 *   a classified `invalid` error whose message says why, and nothing is written.
 * - File backend: nothing is ever created outside the store's directory.
 *
 * Bounded: 100 runs of up to 5 keys per backend and property (seeded by fast-check; a failure
 * prints the seed and the shrunk counterexample).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { openStore, StorageError, type Store } from "../src/index.js";
import { keyProblem, MAX_KEY_BYTES, sortKeys } from "../src/keys.js";
import { sharedNats } from "./fixtures/nats.js";
import { dropStoreTables, findPostgres, storeUrl as pgStoreUrl, uniqueTable } from "./fixtures/postgres.js";
import { createBucket, deleteBucket, motoAvailable, startMotoServer, storeUrl as s3StoreUrl, uniqueBucket, type S3ServerHandle } from "./fixtures/s3.js";
import { isCI, unavailable, uniqueName } from "./fixtures/services.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 100);

// ---- arbitraries -----------------------------------------------------------------------------

/** Characters and fragments that mean something to some backend or file system. */
const TRICKY = [
  "*", ">", ".", "..", "...", "%", "_", "%25", "%2e%2e", "%2f", "%00", "\\", "..\\", "C:", ":", "~", "=", "+", "#", "?", "&",
  " ", "\u00a0", "é", "键", "🔑", "\u{10ffff}", "\ufffd", "\ufeff", "$", "'", '"', "`", "[", "]", "{", "}", "<", "|", "^", "@", "!",
  "KV_", "$KV", "$O", "_large", "con", "nul", "aux", "-", "__",
];
const trickyUnit = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...TRICKY) },
  { weight: 3, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 3 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 2 }) },
);
const segment = fc.string({ unit: trickyUnit, minLength: 0, maxLength: 6 });
/** Random keys, then filtered to the valid ones (dot segments and controls are the invalid property's). */
const anyKey = fc.oneof(
  { weight: 12, arbitrary: fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => parts.join("/")) },
  // Near the byte limit, in 1-, 2-, 3- and 4-byte characters.
  { weight: 1, arbitrary: fc.constantFrom("k", "é", "键", "🔑").chain((c) => fc.integer({ min: 1, max: MAX_KEY_BYTES }).map((n) => c.repeat(Math.max(1, Math.floor(n / Buffer.byteLength(c)))))) },
);
const validKey = anyKey.filter((k) => keyProblem(k) === undefined);
const validKeys = fc.uniqueArray(validKey, { minLength: 1, maxLength: 5 });

/** Keys made invalid in each way the contract names, with why. */
const invalidKey: fc.Arbitrary<unknown> = fc.oneof(
  fc.tuple(validKey, fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)), fc.nat()).map(([k, c, at]) => insert(k, c, at)),
  fc.tuple(validKey, fc.nat()).map(([k, at]) => insert(k, "\u007f", at)),
  fc.tuple(validKey, fc.constantFrom(".", ".."), fc.constantFrom("before", "after", "alone")).map(([k, dots, where]) =>
    where === "before" ? `${dots}/${k}` : where === "after" ? `${k}/${dots}` : dots,
  ),
  fc.tuple(validKey, fc.constantFrom("./", "../", "a/../", "x/./")).map(([k, mid]) => `${mid}${k}`),
  validKey.map((k) => `/${k}`),
  fc.tuple(validKey, fc.integer({ min: 0xd800, max: 0xdfff }), fc.nat()).map(([k, s, at]) => insert(k, String.fromCharCode(s), at)),
  fc.tuple(validKey, fc.constantFrom("k", "é", "🔑")).map(([k, c]) => k + c.repeat(MAX_KEY_BYTES)),
  fc.constantFrom("", 0, 42, null, undefined, true, {}, [], Symbol.for("k")),
);

function insert(key: string, what: string, at: number): string {
  // Never between the halves of a surrogate pair: that would be a different mistake.
  let i = at % (key.length + 1);
  if (i > 0 && i < key.length && /[\ud800-\udbff]/.test(key[i - 1]!)) i--;
  return key.slice(0, i) + what + key.slice(i);
}

/**
 * Prefixes to list with (a few per run, listings are the slow part on NATS and S3): everything,
 * one of the characters that are wildcards somewhere, and cuts of the stored keys picked by
 * `picks` (so `%`, `_`, `*`, `>`, `.` and astral characters land in prefixes).
 */
const prefixPicks = fc.tuple(fc.constantFrom("%", "_", "*", ">", ".", "\\", "🔑", "a"), fc.array(fc.nat(), { minLength: 1, maxLength: 3 }));

function prefixesOf(keys: string[], [wildcard, picks]: [string, number[]]): string[] {
  const out = new Set<string>(["", wildcard]);
  for (const pick of picks) {
    const key = keys[pick % keys.length]!;
    const chars = [...key];
    const slash = key.indexOf("/");
    // Alternate between a cut at a character and a cut just after the first "/".
    out.add(pick % 2 === 0 || slash < 0 ? chars.slice(0, 1 + (pick % chars.length)).join("") : key.slice(0, slash + 1));
  }
  return [...out];
}

const bytesOf = (key: string) => new TextEncoder().encode(`value of ${key}`);

// ---- the properties, for any store -----------------------------------------------------------

async function roundTripAndList(store: Store, keys: string[], picks: [string, number[]]): Promise<void> {
  try {
    for (const key of keys) await store.put(key, bytesOf(key));
    for (const key of keys) assert.deepEqual(Buffer.from(await store.get(key)), Buffer.from(bytesOf(key)), `get ${JSON.stringify(key)}`);
    for (const prefix of prefixesOf(keys, picks)) {
      assert.deepEqual(await store.list(prefix), sortKeys(keys.filter((k) => k.startsWith(prefix))), `list(${JSON.stringify(prefix)}), in UTF-8 byte order`);
    }
  } finally {
    // Also after a failure: fast-check re-runs smaller cases on the same store while shrinking.
    for (const key of keys) await store.delete(key).catch(() => undefined);
  }
}

async function refusedAndNothingWritten(store: Store, key: unknown): Promise<void> {
  const problem = keyProblem(key);
  assert.ok(problem, `the arbitrary made a valid key: ${JSON.stringify(key)}`);
  const attempts: [string, () => Promise<unknown>][] = [
    ["put", () => store.put(key as string, bytesOf("x"))],
    ["get", () => store.get(key as string)],
    ["delete", () => store.delete(key as string)],
  ];
  if (store.capabilities.stat) attempts.push(["stat", () => store.stat(key as string)]);
  for (const [op, attempt] of attempts) {
    const err = await attempt().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof StorageError, `${op} ${describeKey(key)}: expected a StorageError, got ${String(err)}`);
    assert.equal(err.kind, "invalid", `${op} ${describeKey(key)}: kind ${err.kind}: ${err.message}`);
    assert.ok(err.message.includes(problem), `${op}: the message says why (${problem}): ${err.message}`);
  }
  assert.deepEqual(await store.list(""), [], "nothing was written");
}

function describeKey(key: unknown): string {
  return typeof key === "string" ? JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}…(${key.length})` : key) : String(key);
}

// ---- the backends ----------------------------------------------------------------------------

interface Backend {
  name: string;
  skip: string | false;
  open(): Promise<Store>;
  destroy(): Promise<void>;
  /** Checked after the properties ran (the file backend: nothing outside its directory). */
  finalCheck?(): Promise<void>;
}

const natsUrl = await sharedNats();
const postgres = await findPostgres();
const motoSkip = !motoAvailable() && !isCI ? "moto_server is not installed" : false;

function backends(): Backend[] {
  let parent = "";
  let natsBucket = "";
  let table = "";
  let moto: S3ServerHandle | undefined;
  let s3Bucket = "";
  return [
    { name: "memory", skip: false, open: () => openStore("memory:"), destroy: async () => undefined },
    {
      name: "file",
      skip: false,
      async open() {
        parent = await mkdtemp(join(tmpdir(), "stowage-fuzz-"));
        return openStore(`file:${join(parent, "store")}`);
      },
      async finalCheck() {
        // Traversal-looking keys (`..\`, `%2e%2e/%2f`, `C:`) must all stay inside the store's directory.
        assert.deepEqual(await readdir(parent), ["store"], "the file backend wrote nothing beside its directory");
      },
      destroy: () => rm(parent, { recursive: true, force: true }),
    },
    {
      name: "nats",
      skip: natsUrl ? false : "no NATS server",
      async open() {
        natsBucket = uniqueName("fuzz").replace(/[^-\w]/g, "_");
        return openStore(`${natsUrl}/${natsBucket}`);
      },
      async destroy() {
        const nc = await connect({ servers: natsUrl! });
        const jsm = await jetstreamManager(nc);
        for (const stream of [`KV_${natsBucket}`, `OBJ_${natsBucket}_large`]) await jsm.streams.delete(stream).catch(() => undefined);
        await nc.close();
      },
    },
    {
      name: "postgres",
      skip: "skip" in postgres ? postgres.skip : false,
      async open() {
        table = uniqueTable("stowage_fuzz");
        return openStore(pgStoreUrl((postgres as { url: string }).url, { table }));
      },
      destroy: () => dropStoreTables((postgres as { url: string }).url, [table]),
    },
    {
      name: "s3 (moto)",
      skip: motoSkip,
      async open() {
        moto = await startMotoServer();
        s3Bucket = uniqueBucket("fuzz");
        await createBucket(s3Bucket, { server: moto });
        return openStore(s3StoreUrl(moto, s3Bucket));
      },
      async destroy() {
        if (!moto) return;
        await deleteBucket(s3Bucket, { server: moto }).catch(() => undefined);
        await moto.stop();
      },
    },
  ];
}

for (const backend of backends()) {
  describe(`fuzz keys: ${backend.name}`, { skip: backend.skip, timeout: 300_000 }, () => {
    let store: Store;
    after(async () => {
      await backend.finalCheck?.();
      await store?.close();
      await backend.destroy();
    });

    it(`every valid key round-trips and lists exactly (${RUNS} runs)`, async () => {
      store = await backend.open();
      await fc.assert(
        fc.asyncProperty(validKeys, prefixPicks, (keys, picks) => roundTripAndList(store, keys, picks)),
        { numRuns: RUNS, includeErrorInReport: true },
      );
      assert.deepEqual(await store.list(""), [], "every key deleted");
    });

    it(`every invalid key is refused with a classified invalid error, nothing written (${RUNS} runs)`, async () => {
      await fc.assert(
        fc.asyncProperty(invalidKey, (key) => refusedAndNothingWritten(store, key)),
        { numRuns: RUNS, includeErrorInReport: true },
      );
    });
  });
}

if (!natsUrl) unavailable("NATS", "the NATS key fuzz needs a server");
