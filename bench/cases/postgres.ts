/**
 * PostgreSQL (issue #4): stowage's postgres: backend (defaults: versions kept; and with
 * versions off) against raw `pg` with prepared statements on a `COLLATE "C"` key, keyv with
 * `@keyv/postgres`, and OpenDAL's postgresql service, each in its own tables of one database.
 */
import pg from "pg";
import KeyvPostgres from "@keyv/postgres";
import Keyv from "keyv";
import { Operator } from "opendal";
import { prefixUpperBound } from "../../src/keys.js";
import { openStore } from "../stowage.js";
import type { Store } from "../../src/types.js";
import { defineSuite, type Target } from "../harness.js";
import { keyvAdapter, opendalAdapter } from "../peers.js";
import { standardCases, storeAdapter, type Adapter } from "../standard.js";

const DATABASE_URL = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
const OURS = "stowage postgres:";
const OURS_NO_VERSIONS = "stowage postgres: versions=false";
const RAW = "raw pg";
const KEYV = "keyv + @keyv/postgres";
const OPENDAL = "OpenDAL postgresql";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Raw pg: one table, named prepared statements, upsert, range scan for a prefix. */
function rawPgAdapter(pool: pg.Pool, table: string): Adapter {
  const q = (name: string, text: string, values: unknown[]) => pool.query({ name: `${table}_${name}`, text, values });
  return {
    name: RAW,
    put: (key, data) => q("put", `INSERT INTO ${table} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [key, data]),
    get: async (key) => {
      const { rows } = await q("get", `SELECT value FROM ${table} WHERE key = $1`, [key]);
      if (rows.length === 0) throw new Error(`${key} not found`);
      return (rows[0] as { value: Buffer }).value;
    },
    list: async (prefix) => {
      const upper = prefixUpperBound(prefix);
      const { rows } = upper === undefined
        ? await q("list_open", `SELECT key FROM ${table} WHERE key >= $1 ORDER BY key`, [prefix])
        : await q("list", `SELECT key FROM ${table} WHERE key >= $1 AND key < $2 ORDER BY key`, [prefix, upper]);
      return rows.map((r: { key: string }) => r.key);
    },
    delete: (key) => q("delete", `DELETE FROM ${table} WHERE key = $1`, [key]),
    fill: async (keys, data) => {
      for (let i = 0; i < keys.length; i += 5000) {
        await pool.query(`INSERT INTO ${table} (key, value) SELECT k, $2 FROM unnest($1::text[]) AS k ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [keys.slice(i, i + 5000), data]);
      }
    },
    noStream: "pg sends a bytea as one parameter (no streaming)",
  };
}

function unavailableAdapter(name: string, reason: string): Adapter {
  return { name, skip: reason, put: async () => {}, get: async () => new Uint8Array(), list: async () => [], delete: async () => {} };
}

export default defineSuite("postgres", async (b) => {
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  try {
    const { rows } = await admin.query<{ server_version: string }>("SHOW server_version");
    b.server("PostgreSQL", rows[0]?.server_version ?? "unknown");
  } catch (err) {
    await admin.end();
    b.skip("(all PostgreSQL cases)", `no PostgreSQL at ${DATABASE_URL.replace(/:[^:@/]*@/, ":***@")}: ${message(err)} (set DATABASE_URL)`);
    return;
  }
  const id = `bench${process.pid}x${Math.random().toString(36).slice(2, 7)}`;
  const tables = { raw: `${id}_raw`, ours: `${id}_ours`, plain: `${id}_plain`, keyv: `${id}_keyv`, opendal: `${id}_opendal`, ranged: `${id}_ranged` };
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
  const stores: Store[] = [];
  let keyv: Keyv | undefined;
  try {
    await admin.query(`CREATE TABLE ${tables.raw} (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)`);
    await admin.query(`CREATE TABLE ${tables.opendal} (key text PRIMARY KEY, value bytea NOT NULL)`);
    const ours = async (name: string, query: string) => {
      try {
        const store = await openStore(`${DATABASE_URL}${DATABASE_URL.includes("?") ? "&" : "?"}${query}`);
        stores.push(store);
        return storeAdapter(name, store);
      } catch (err) {
        return unavailableAdapter(name, `cannot open a postgres: store: ${message(err)}`);
      }
    };
    keyv = new Keyv({ store: new KeyvPostgres({ uri: DATABASE_URL, table: tables.keyv }) });
    const noPgStream = "OpenDAL's postgresql service writes a value as one bytea (no bounded-memory stream)";
    const adapters: Adapter[] = [
      rawPgAdapter(pool, tables.raw),
      await ours(OURS, `table=${tables.ours}`),
      await ours(OURS_NO_VERSIONS, `table=${tables.plain}&versions=false`),
      keyvAdapter(KEYV, keyv),
      opendalAdapter(OPENDAL, new Operator("postgresql", { connection_string: DATABASE_URL, table: tables.opendal, key_field: "key", value_field: "value" }), {
        noList: "OpenDAL's postgresql service cannot list",
        noStream: noPgStream,
      }),
    ];
    const listLabel = b.options.quick ? "list 1k of 10k" : "list 1k of 100k";
    const vsRawAndPeers = (withPeers: boolean): Target[] => [
      { issue: "#4", kind: "ratio", of: OURS, vs: RAW, atLeast: 0.9 },
      ...(withPeers ? [KEYV, OPENDAL].map((peer): Target => ({ issue: "#4", kind: "ratio", of: OURS, vs: peer, atLeast: 1 })) : []),
    ];
    await standardCases(b, adapters, {
      baseline: RAW,
      // A commit waits for fsync and now and then for a checkpoint: 1 s rounds average over those.
      roundMs: b.scale(1000, 300),
      // No warm-up by count (unlike s3): small operations run thousands a second, and 8 s of
      // 1 MiB puts per competitor would write gigabytes of WAL whose checkpoints then land in
      // the timed rounds.
      baselines: { "put 64 MiB streamed": OURS, "get 64 MiB streamed": OURS },
      list: { total: b.scale(100_000, 10_000), matching: 1000, label: listLabel },
      incompressible: true,
      targets: {
        "put 1 KiB": vsRawAndPeers(true),
        "get 1 KiB": vsRawAndPeers(true),
        "put 1 MiB": vsRawAndPeers(true),
        "put 1 MiB incompressible": vsRawAndPeers(true),
        "get 1 MiB": vsRawAndPeers(true),
        [listLabel]: vsRawAndPeers(false),
      },
    });
    await rangeCase(b, stores, DATABASE_URL, id);
  } finally {
    for (const store of stores) await store.close().catch(() => undefined);
    await keyv?.disconnect().catch(() => undefined);
    await pool.end();
    for (const t of Object.values(tables)) {
      await admin.query(`DROP TABLE IF EXISTS ${t}, ${t}_versions, ${t}_chunks CASCADE`).catch(() => undefined);
      await admin.query(`DROP SEQUENCE IF EXISTS ${t}_version_seq CASCADE`).catch(() => undefined);
      for (const fn of ["drop_chunks", "notify", "fence"]) await admin.query(`DROP FUNCTION IF EXISTS ${t}_${fn} CASCADE`).catch(() => undefined);
    }
    await admin.end();
  }
});

const RANGE_VALUE_BYTES = 256 * 1024 * 1024;
const RANGE_BYTES = 64 * 1024;

/**
 * A 64 KiB range at the end of a 256 MiB value against one at its start (issue #22: within 3x):
 * the store reads only the chunk rows that hold the range.
 */
async function rangeCase(b: Parameters<Parameters<typeof defineSuite>[1]>[0], stores: Store[], url: string, id: string): Promise<void> {
  const name = "get 64 KiB range of 256 MiB";
  if (!b.wants(name)) return;
  const store = await openStore(`${url}${url.includes("?") ? "&" : "?"}table=${id}_ranged`);
  stores.push(store);
  const piece = new Uint8Array(1024 * 1024).map((_, i) => (i * 31) & 0xff);
  async function* body() {
    for (let written = 0; written < RANGE_VALUE_BYTES; written += piece.byteLength) yield piece;
  }
  await store.putStream("big", body());
  const ranged = (offset: number) => () => store.get("big", { range: { offset, length: RANGE_BYTES } });
  await b.run({
    name,
    bytesPerOp: RANGE_BYTES,
    baseline: "range at the start",
    competitors: [
      { name: "range at the start", op: ranged(0) },
      { name: "range at the end", op: ranged(RANGE_VALUE_BYTES - RANGE_BYTES) },
    ],
    targets: [{ issue: "#22", kind: "ratio", of: "range at the end", vs: "range at the start", atLeast: 1 / 3 }],
    note: "stowage postgres: with 1 MiB chunk rows; a range reads the rows that hold it, cut on the server",
  });
}
