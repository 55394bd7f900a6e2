/**
 * The tables a PostgreSQL store uses, their DDL, and creating or checking them on open.
 *
 * All named after the store's table `T`. With versions kept (the default):
 * - `T`: one row per key ever written, with its current version and whether it is deleted
 *   (`T_live`, an index of the keys not deleted, is what `list` scans). Every write of a key
 *   writes its row, so the row lock orders the writes of one key;
 * - `T_versions`: one row per put and per delete marker; a key's newest row is its value.
 * With `versions=false`:
 * - `T`: one row per key holding its value; a put is one upsert.
 * Both:
 * - `T_chunks`: the pieces of values larger than the inline limit, keyed by (key, version, seq);
 * - `T_version_seq`: version numbers, drawn under the key's row lock, so they increase in the
 *   order the writes of a key take effect;
 * - `T_fence(deadline, in_transaction)`: refuses a write that reaches the server after its
 *   deadline (see fenceSql);
 * - `T_writes`: the ids (`writeId`) of the writes that took effect lately, recorded in the
 *   write's own statement or transaction, so a retried attempt of a write that already took
 *   effect changes nothing (see `once` in statements.ts); ids older than the store's dedupe
 *   window are swept;
 * - triggers that drop chunk rows once no row refers to them;
 * - with `watch`: a trigger that sends a NOTIFY for each write (see notifySql).
 */
import { createHash } from "node:crypto";
import type { Pool, PoolClient } from "pg";
import { StorageError } from "../../errors.js";

/** Where a store's tables live: validated identifiers and their quoted, qualified forms. */
export interface TableNames {
  schema: string;
  table: string;
  /** `"schema"."table"` and friends, ready to paste into SQL. */
  main: string;
  versions: string;
  chunks: string;
  /** The ids of recent writes (see the module comment). */
  writes: string;
  sequence: string;
  /** The sequence as a string literal for `nextval(...)`. */
  sequenceLiteral: string;
  gcFunction: string;
  fenceFunction: string;
  notifyFunction: string;
  /**
   * The NOTIFY channel of the table's changes: `stowage_` and a hash of `schema.table` (a
   * channel name is at most 63 bytes; schema and table together may be longer).
   */
  channel: string;
  /** For messages: schema.table unquoted. */
  display: string;
}

/** The table name used when the URL and options name none. */
export const DEFAULT_TABLE = "stowage_objects";
/** Room left for the longest derived suffix (`_version_seq`) within PostgreSQL's 63-byte names. */
export const MAX_TABLE_NAME = 48;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * Schemas a store must never write into: `information_schema` and every `pg_` schema (the
 * catalogs, TOAST storage, the per-session temporary schemas whose tables vanish with the
 * connection; PostgreSQL reserves the prefix, so no schema of a user's starts with it).
 */
const SYSTEM_SCHEMA = /^(pg_|information_schema$)/i;

/** The SQLSTATE the fence function raises when a write arrives after its deadline. */
export const DEADLINE_PASSED = "SWDL0";

/**
 * Checks a table or schema name: a letter or `_`, then letters, digits and `_` (no quoting
 * surprises, no case folding ambiguity: names are always quoted, so `Events` stays `Events`).
 * A schema of the system's own (`pg_catalog`, `information_schema`, `pg_toast`, `pg_temp…`) is
 * refused.
 */
export function assertIdentifier(name: unknown, what: "table" | "schema"): asserts name is string {
  const max = what === "table" ? MAX_TABLE_NAME : 63;
  if (typeof name !== "string" || !IDENTIFIER.test(name) || name.length > max) {
    throw new StorageError("invalid", `${what} name ${JSON.stringify(name)} must be 1-${max} characters of letters, digits and '_', not starting with a digit`, { op: "open" });
  }
  if (what === "schema" && SYSTEM_SCHEMA.test(name)) {
    throw new StorageError("invalid", `schema ${JSON.stringify(name)} belongs to PostgreSQL itself; give a schema of your own (?schema=, default the connection's current schema)`, { op: "open" });
  }
}

/** Quotes an identifier for SQL (names are validated first; doubling `"` keeps this safe regardless). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function tableNames(schema: string, table: string): TableNames {
  assertIdentifier(schema, "schema");
  assertIdentifier(table, "table");
  const q = (name: string) => `${quoteIdent(schema)}.${quoteIdent(name)}`;
  const sequence = q(`${table}_version_seq`);
  return {
    schema,
    table,
    main: q(table),
    versions: q(`${table}_versions`),
    chunks: q(`${table}_chunks`),
    writes: q(`${table}_writes`),
    sequence,
    sequenceLiteral: `'${sequence.replace(/'/g, "''")}'`,
    gcFunction: q(`${table}_drop_chunks`),
    fenceFunction: q(`${table}_fence`),
    notifyFunction: q(`${table}_notify`),
    channel: `stowage_${createHash("sha1").update(`${schema}.${table}`).digest("hex").slice(0, 24)}`,
    display: `${schema}.${table}`,
  };
}

/** What shape a store's tables have: see the module comment. */
export interface SchemaOptions {
  /** Keep versions (the default): live keys in `T`, values in `T_versions`. */
  versions?: boolean;
  /** Compress value columns with lz4 (PostgreSQL 14+, when built with it). */
  lz4?: boolean;
  /** Send a NOTIFY on the table's channel for every write (what `watch` listens to). */
  watch?: boolean;
}

/** A plpgsql function of the schema: its body is compared on open, so an outdated one is replaced. */
interface FunctionDef {
  name: string;
  signature: string;
  returns: string;
  body: string;
}

const functionSql = (f: FunctionDef) => `CREATE OR REPLACE FUNCTION ${f.name}(${f.signature}) RETURNS ${f.returns} LANGUAGE plpgsql AS $$${f.body}$$;`;

/** A value's chunk rows go once the one row that refers to them is replaced, deleted or trimmed. */
function gcFunction(n: TableNames, holder: string): FunctionDef {
  return {
    name: n.gcFunction,
    signature: "",
    returns: "trigger",
    body: `
BEGIN
  DELETE FROM ${n.chunks} c
   WHERE c.key = OLD.key AND c.version = OLD.version
     AND NOT EXISTS (SELECT 1 FROM ${holder} h WHERE h.key = OLD.key AND h.version = OLD.version);
  RETURN NULL;
END `,
  };
}

/**
 * The fence: called by every write after it holds its key's row lock (in a single statement),
 * or as the last statement before COMMIT (in a transaction). A write whose deadline (epoch
 * milliseconds, on the server's clock) has passed is refused: the statement fails and changes
 * nothing, so a write whose caller already gave up cannot take effect later. In a transaction
 * it also arms idle_in_transaction_session_timeout for the time left: a COMMIT that arrives
 * after the deadline finds the session ended and the transaction rolled back.
 */
function fenceFunction(n: TableNames): FunctionDef {
  return {
    name: n.fenceFunction,
    signature: "deadline double precision, in_transaction boolean",
    returns: "boolean",
    body: `
DECLARE
  left_ms double precision := deadline - extract(epoch FROM clock_timestamp()) * 1000;
BEGIN
  IF left_ms <= 0 THEN
    RAISE EXCEPTION 'the write reached the server % ms after its deadline', ceil(-left_ms) USING ERRCODE = '${DEADLINE_PASSED}';
  END IF;
  IF in_transaction THEN
    PERFORM set_config('idle_in_transaction_session_timeout', least(ceil(left_ms), 2147483647)::bigint::text, true);
  END IF;
  RETURN true;
END `,
  };
}

/**
 * NOTIFY for every write, from statement-level triggers (one call per statement, however many
 * rows a batch writes), in version order. The payload is `op version time-ms key` (`p` or `d`;
 * `-` for the version of a delete without history). A stowage key is at most 1,024 bytes, far
 * below NOTIFY's 8,000-byte payload limit; a longer key written by other means is skipped
 * rather than failing the write.
 */
function notifyFunction(n: TableNames, versions: boolean): FunctionDef {
  const notify = (op: string, version: string, rows: string) => `
  PERFORM pg_notify('${n.channel}', ${op} || ' ' || ${version} || ' ' || (extract(epoch FROM modified) * 1000)::bigint || ' ' || key)
     FROM ${rows} WHERE octet_length(key) <= 7900 ORDER BY version;`;
  const body = versions
    ? `
BEGIN${notify("CASE WHEN deleted THEN 'd' ELSE 'p' END", "version", "added")}
  RETURN NULL;
END `
    : `
BEGIN
  IF TG_OP = 'DELETE' THEN${notify("'d'", "'-'", "removed")}
  ELSE${notify("'p'", "version", "added")}
  END IF;
  RETURN NULL;
END `;
  return { name: n.notifyFunction, signature: "", returns: "trigger", body };
}

type Mode = "versioned" | "plain";
/** Per layout: the trigger that collects chunks, and the ones that send notifications. */
const TRIGGERS: Record<Mode, { gc: string[]; notify: string[] }> = {
  versioned: { gc: ["trimmed"], notify: ["notify"] },
  plain: { gc: ["replaced", "deleted"], notify: ["notify_insert", "notify_update", "notify_delete"] },
};

function notifyTriggers(n: TableNames, versions: boolean): string {
  const trigger = (name: string) => quoteIdent(`${n.table}_${name}`);
  const create = (name: string, event: string, table: string, transition: string) => `
DROP TRIGGER IF EXISTS ${trigger(name)} ON ${table};
CREATE TRIGGER ${trigger(name)} AFTER ${event} ON ${table} REFERENCING ${transition}
  FOR EACH STATEMENT EXECUTE FUNCTION ${n.notifyFunction}();`;
  if (versions) return create("notify", "INSERT", n.versions, "NEW TABLE AS added");
  return [
    create("notify_insert", "INSERT", n.main, "NEW TABLE AS added"),
    create("notify_update", "UPDATE", n.main, "NEW TABLE AS added"),
    create("notify_delete", "DELETE", n.main, "OLD TABLE AS removed"),
  ].join("");
}

/**
 * The DDL for a store's tables, idempotent (`IF NOT EXISTS`, `CREATE OR REPLACE`): what a store
 * runs when it creates them, and what a team that migrates by hand applies (see docs/postgres.md).
 */
export function schemaSql(n: TableNames, options: SchemaOptions = {}): string {
  const versions = options.versions ?? true;
  const trigger = (name: string) => quoteIdent(`${n.table}_${name}`);
  // lz4 compresses large values several times faster than the default pglz (docs/postgres.md).
  const lz4 = options.lz4
    ? `
ALTER TABLE ${versions ? n.versions : n.main} ALTER COLUMN data SET COMPRESSION lz4;
ALTER TABLE ${n.chunks} ALTER COLUMN bytes SET COMPRESSION lz4;`
    : "";
  const watch = options.watch ? `\n\n${functionSql(notifyFunction(n, versions))}${notifyTriggers(n, versions)}` : "";
  const chunks = `
CREATE TABLE IF NOT EXISTS ${n.chunks} (
  key      text COLLATE "C" NOT NULL,
  version  bigint  NOT NULL,
  seq      integer NOT NULL,
  bytes    bytea   NOT NULL,
  PRIMARY KEY (key, version, seq)
);

CREATE TABLE IF NOT EXISTS ${n.writes} (
  write_id   text COLLATE "C" PRIMARY KEY,
  written_at timestamptz NOT NULL DEFAULT now()
);`;
  if (!versions) {
    // Every overwrite rewrites the key's row: fillfactor 80 leaves room in each page for the
    // new row version, so an upsert is a HOT update (no index entry to add).
    return `
CREATE SEQUENCE IF NOT EXISTS ${n.sequence};

CREATE TABLE IF NOT EXISTS ${n.main} (
  key      text COLLATE "C" PRIMARY KEY,
  version  bigint      NOT NULL,
  size     bigint      NOT NULL,
  modified timestamptz NOT NULL DEFAULT now(),
  metadata jsonb,
  data     bytea,
  chunks   integer     NOT NULL DEFAULT 0
) WITH (fillfactor = 80);
${chunks}

${functionSql(gcFunction(n, n.main))}

DROP TRIGGER IF EXISTS ${trigger("replaced")} ON ${n.main};
CREATE TRIGGER ${trigger("replaced")} AFTER UPDATE ON ${n.main}
  FOR EACH ROW WHEN (OLD.chunks > 0 AND OLD.version <> NEW.version) EXECUTE FUNCTION ${n.gcFunction}();
DROP TRIGGER IF EXISTS ${trigger("deleted")} ON ${n.main};
CREATE TRIGGER ${trigger("deleted")} AFTER DELETE ON ${n.main}
  FOR EACH ROW WHEN (OLD.chunks > 0) EXECUTE FUNCTION ${n.gcFunction}();

${functionSql(fenceFunction(n))}
${lz4}${watch}`.trim();
  }
  // Every write rewrites its key's row in T (a HOT update: no index entry changes while the key
  // stays live): fillfactor 80 keeps room for it in the page.
  return `
CREATE SEQUENCE IF NOT EXISTS ${n.sequence};

CREATE TABLE IF NOT EXISTS ${n.main} (
  key      text COLLATE "C" PRIMARY KEY,
  version  bigint      NOT NULL,
  deleted  boolean     NOT NULL DEFAULT false
) WITH (fillfactor = 80);

CREATE INDEX IF NOT EXISTS ${quoteIdent(`${n.table}_live`)} ON ${n.main} (key) WHERE NOT deleted;

CREATE TABLE IF NOT EXISTS ${n.versions} (
  key      text COLLATE "C" NOT NULL,
  version  bigint      NOT NULL,
  size     bigint      NOT NULL,
  modified timestamptz NOT NULL DEFAULT now(),
  metadata jsonb,
  data     bytea,
  chunks   integer     NOT NULL DEFAULT 0,
  deleted  boolean     NOT NULL DEFAULT false,
  PRIMARY KEY (key, version)
);
${chunks}

${functionSql(gcFunction(n, n.versions))}

DROP TRIGGER IF EXISTS ${trigger("trimmed")} ON ${n.versions};
CREATE TRIGGER ${trigger("trimmed")} AFTER DELETE ON ${n.versions}
  FOR EACH ROW WHEN (OLD.chunks > 0) EXECUTE FUNCTION ${n.gcFunction}();

${functionSql(fenceFunction(n))}
${lz4}${watch}`.trim();
}

type Role = "main" | "versions" | "chunks";

const VALUE_COLUMNS = { version: "bigint", size: "bigint", modified: "timestamp with time zone", metadata: "jsonb", data: "bytea", chunks: "integer" };
const CHUNK_COLUMNS = { key: "text C", version: "bigint", seq: "integer", bytes: "bytea" };
const WRITES_COLUMNS = { write_id: "text C", written_at: "timestamp with time zone" };
/** Columns each table must have, with their types (`format_type`) and, for keys, collation. */
const EXPECTED: Record<Mode, Partial<Record<Role, Record<string, string>>>> = {
  versioned: {
    main: { key: "text C", version: "bigint", deleted: "boolean" },
    versions: { key: "text C", ...VALUE_COLUMNS, deleted: "boolean" },
    chunks: CHUNK_COLUMNS,
  },
  plain: {
    main: { key: "text C", ...VALUE_COLUMNS },
    chunks: CHUNK_COLUMNS,
  },
};

/** What is there, what is missing or outdated (the store can create it), what is wrong (a person must act). */
interface SchemaState {
  /** Tables that do not exist, as `schema.name`. */
  missingTables: string[];
  /** Other objects missing or outdated that every use needs: the sequence, chunk clean-up. */
  missing: string[];
  /**
   * Objects missing or outdated that reads can do without: the fence function (writes then
   * fail saying what to apply) and the index of live keys (listings then filter the keys).
   */
  missingForWrites: string[];
  wrong: string[];
  /**
   * The table of write ids is missing: writes can go without it (a retried attempt is then
   * not recognised as a duplicate), so without `create` the store opens all the same.
   */
  missingDedupe: boolean;
  /** The main table has the other setting's shape: opened with the wrong `versions`. */
  otherMode?: boolean;
  /** The table of keys is an earlier stowage's (keys only, no version): see docs/postgres.md. */
  earlier?: boolean;
  /** Every write of the table sends a NOTIFY (its triggers and an up-to-date function are there). */
  notifies: boolean;
}

async function inspect(db: Pool | PoolClient, n: TableNames, versions: boolean): Promise<SchemaState> {
  const mode: Mode = versions ? "versioned" : "plain";
  const names: Record<Role, string> = { main: n.table, versions: `${n.table}_versions`, chunks: `${n.table}_chunks` };
  const writesTable = `${n.table}_writes`;
  const { rows } = await db.query<{ table: string; column: string; type: string; collation: string | null }>(
    `SELECT c.relname AS "table", a.attname AS "column", format_type(a.atttypid, a.atttypmod) AS "type", co.collname AS "collation"
       FROM pg_class c
       JOIN pg_namespace s ON s.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
      WHERE s.nspname = $1 AND c.relname = ANY($2::text[])`,
    [n.schema, [...Object.values(names), writesTable]],
  );
  const triggers = TRIGGERS[mode];
  const unquoted = (name: string) => `${n.table}_${name}`;
  const { rows: extra } = await db.query<{ sequences: number; live: number; triggers: string[]; functions: { name: string; body: string }[] | null }>(
    `SELECT (SELECT count(*)::int FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
              WHERE s.nspname = $1 AND c.relname = $2 AND c.relkind = 'S') AS sequences,
            (SELECT count(*)::int FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
              WHERE s.nspname = $1 AND c.relname = $5 AND c.relkind = 'i') AS live,
            ARRAY(SELECT t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace s ON s.oid = c.relnamespace
              WHERE s.nspname = $1 AND t.tgname = ANY($3::text[])) AS triggers,
            (SELECT json_agg(json_build_object('name', p.proname, 'body', p.prosrc)) FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace
              WHERE s.nspname = $1 AND p.proname = ANY($4::text[])) AS functions`,
    [n.schema, `${n.table}_version_seq`, [...triggers.gc, ...triggers.notify].map(unquoted), ["drop_chunks", "fence", "notify"].map(unquoted), unquoted("live")],
  );
  const found = extra[0]!;
  const body = (name: string) => found.functions?.find((f) => f.name === unquoted(name))?.body;
  const state: SchemaState = { missingTables: [], missing: [], missingForWrites: [], wrong: [], missingDedupe: false, notifies: false };
  const columnsOf = (name: string) => new Map(rows.filter((r) => r.table === name).map((r) => [r.column, r.collation === "C" ? `${r.type} C` : r.type]));
  const main = columnsOf(names.main);
  // A table of the other setting: versioned, the main table holds keys only; plain, the values too.
  const other = EXPECTED[versions ? "plain" : "versioned"].main!;
  if (main.size === Object.keys(other).length && Object.entries(other).every(([column, type]) => main.get(column) === type)) state.otherMode = true;
  if (versions && main.size === 1 && main.get("key") === "text C" && columnsOf(names.versions).size > 0) state.earlier = true;
  for (const [role, expected] of Object.entries(EXPECTED[mode]) as [Role, Record<string, string>][]) {
    const columns = columnsOf(names[role]);
    if (columns.size === 0) {
      state.missingTables.push(`${n.schema}.${names[role]}`);
      continue;
    }
    for (const [column, type] of Object.entries(expected)) {
      const have = columns.get(column);
      if (have !== type) state.wrong.push(`${n.schema}.${names[role]}.${column} is ${have === undefined ? "missing" : `"${have}"`}, expected "${type}"`);
    }
  }
  const writes = columnsOf(writesTable);
  if (writes.size === 0) state.missingDedupe = true;
  for (const [column, type] of Object.entries(WRITES_COLUMNS)) {
    const have = writes.get(column);
    if (writes.size > 0 && have !== type) state.wrong.push(`${n.schema}.${writesTable}.${column} is ${have === undefined ? "missing" : `"${have}"`}, expected "${type}"`);
  }
  if (found.sequences === 0) state.missing.push(`sequence ${n.schema}.${n.table}_version_seq`);
  if (!triggers.gc.every((t) => found.triggers.includes(unquoted(t)))) state.missing.push("chunk clean-up triggers");
  if (body("drop_chunks") !== gcFunction(n, versions ? n.versions : n.main).body) state.missing.push(`function ${n.schema}.${n.table}_drop_chunks()`);
  if (body("fence") !== fenceFunction(n).body) state.missingForWrites.push(`function ${n.schema}.${n.table}_fence()`);
  if (versions && found.live === 0) state.missingForWrites.push(`index ${n.schema}.${n.table}_live`);
  state.notifies = triggers.notify.every((t) => found.triggers.includes(unquoted(t))) && body("notify") === notifyFunction(n, versions).body;
  return state;
}

function wrongSchema(n: TableNames, state: SchemaState, versions: boolean): StorageError {
  if (state.earlier) {
    return new StorageError(
      "fatal",
      `table ${n.display} was made by an earlier stowage (its table of keys has no version column); stop its writers and apply the upgrade in docs/postgres.md ("Tables made by an earlier stowage")`,
      { op: "open" },
    );
  }
  if (state.otherMode) {
    const message = versions
      ? `table ${n.display} keeps one row per key and no history (it was made with versions=false): open it with versions=false, or choose another ?table=`
      : `table ${n.display} keeps versions (it was made with versions on, the default): open it without versions=false, or choose another ?table=`;
    return new StorageError("fatal", message, { op: "open" });
  }
  return new StorageError(
    "fatal",
    `table ${n.display} exists but is not a stowage table (${state.wrong.slice(0, 3).join("; ")}); choose another ?table= or migrate it to the schema in docs/postgres.md`,
    { op: "open" },
  );
}

/** Whether the server can compress with lz4 (PostgreSQL 14+ built with it). */
export async function hasLz4(db: Pool | PoolClient): Promise<boolean> {
  const { rows } = await db.query<{ lz4: boolean }>("SELECT 'lz4' = ANY(enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'");
  return rows[0]?.lz4 === true;
}

// Two keys for pg_advisory_xact_lock(int, int): a constant for stowage, then a hash of the table.
const LOCK_CLASS = 0x53_54_4f_57; // "STOW"

export interface EnsureSchemaOptions {
  /** Create what is missing (false: create nothing; a missing table is `not_found`). */
  create: boolean;
  versions: boolean;
  /** Make every write of the table send a NOTIFY (creates the triggers when missing). */
  watch: boolean;
}

/** What a store's tables offer beyond the basics. */
export interface SchemaFeatures {
  /** Every write of the table sends a NOTIFY (watch works). */
  notifies: boolean;
  /** The table of write ids is there: writes with a `writeId` take effect once. */
  dedupe: boolean;
}

/**
 * Makes sure the store's tables exist with the right columns, and says whether the table's
 * writes send notifications. Creates what is missing (unless `create` is false) under an
 * advisory lock, so two processes opening the same new table at once do not race on `CREATE
 * ... IF NOT EXISTS` (which is not safe under concurrency by itself). Checks first without
 * DDL, so a role without CREATE can use tables made by hand.
 */
export async function ensureSchema(pool: Pool, n: TableNames, options: EnsureSchemaOptions): Promise<SchemaFeatures> {
  const { create, versions, watch } = options;
  let state = await inspect(pool, n, versions);
  if (state.otherMode || state.earlier || state.wrong.length > 0) throw wrongSchema(n, state, versions);
  const needed = () => state.missingTables.length > 0 || state.missing.length > 0 || state.missingForWrites.length > 0 || state.missingDedupe || (watch && !state.notifies);
  if (!needed()) return { notifies: state.notifies, dedupe: true };
  if (!create) {
    if (state.missingTables.length > 0) {
      throw new StorageError("not_found", `table ${state.missingTables.join(", ")} does not exist (opened with create: false, so nothing was created)`, { op: "open" });
    }
    if (watch && !state.notifies) {
      throw new StorageError("fatal", `the writes of table ${n.display} send no notifications for watch; open it once with watch and a role that may create triggers, or apply the SQL in docs/postgres.md`, { op: "open" });
    }
    // What only writes need is left to them: a write then fails saying what to apply. Without
    // the table of write ids, writes go without recognising retried attempts (docs/postgres.md).
    if (state.missing.length === 0) return { notifies: state.notifies, dedupe: !state.missingDedupe };
    throw new StorageError("fatal", `${state.missing.join(", ")} missing (opened with create: false); apply the SQL in docs/postgres.md`, { op: "open" });
  }
  const client = await pool.connect();
  // A dropped connection makes a checked-out client emit 'error': unheard, it would crash the process.
  let broken: Error | undefined;
  const onError = (err: Error) => (broken = err);
  client.on("error", onError);
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [LOCK_CLASS, n.display]);
    state = await inspect(client, n, versions); // another process may have finished while we waited
    if (state.otherMode || state.earlier || state.wrong.length > 0) throw wrongSchema(n, state, versions);
    if (needed()) await client.query(schemaSql(n, { versions, lz4: await hasLz4(client), watch: watch || state.notifies }));
    await client.query("COMMIT");
    return { notifies: watch || state.notifies, dedupe: true };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}
