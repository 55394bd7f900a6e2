/**
 * The component's configuration: one zod 4 schema (the single source of validation, defaults
 * and the JSON Schema `stowage serve --print-schema` prints) and {@link resolveConfig}, which
 * turns a validated file into the camel-cased, fully defaulted {@link ComponentConfig} the
 * component runs on.
 */
import { z } from "zod";
import { StorageError } from "../errors.js";
import { keyProblem } from "../keys.js";
import { DURATION_PATTERN, parseDuration, parseSize, SIZE_PATTERN } from "../internal/units.js";

/** The api actions; each is also a NATS micro-service endpoint `<api subject>.<action>`. */
export const ACTIONS = ["get", "store", "list", "put", "delete", "stat", "versions"] as const;
export type Action = (typeof ACTIONS)[number];

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
// Literal subject tokens only: the api subject gets `.<action>` appended, and a wildcard here
// would make one component answer another's requests.
const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

const duration = z
  .union([z.number().nonnegative(), z.string().regex(DURATION_PATTERN, 'must be milliseconds or a duration such as "500ms", "30s", "5m"')])
  .describe('milliseconds, or a string with a unit: "500ms", "30s", "5m", "1h", "1d"');
const size = z
  .union([
    z.number().int().nonnegative(),
    z
      .string()
      .regex(SIZE_PATTERN, 'must be bytes or a size such as "512KiB", "1MiB", "10MB"')
      // Only for a size the pattern took: others already have their message.
      .refine((text) => !SIZE_PATTERN.test(text) || parseSize(text) !== undefined, "must be at most 2^53 - 1 bytes"),
  ])
  .describe('bytes, or a string with a unit: "512KiB", "1MiB", "10MB" (KB, MB, GB are powers of ten)');
const subject = z.string().regex(SUBJECT, "must be a NATS subject of literal tokens (no spaces, wildcards or empty tokens)");
const secret = (what: string) => z.string().min(1).describe(`${what}; never logged. Prefer the environment variable over the file.`);

const apiPort = z
  .object({
    name: z.literal("api"),
    type: z.literal("request").default("request").describe("request/reply"),
    subject: subject.describe("default storage.<name>.api; actions also answer on <subject>.<action>"),
    description: z.string().optional(),
  })
  .strict();
const writePort = z
  .object({
    name: z.literal("write"),
    type: z
      .enum(["subscribe", "jetstream"])
      .default("subscribe")
      .describe("subscribe: a plain queue subscription (messages sent while no instance runs are lost); jetstream: a durable consumer on a stream (see `write`)"),
    subject: subject.describe("default storage.<name>.write"),
    description: z.string().optional(),
  })
  .strict();
const eventsPort = z
  .object({
    name: z.literal("events"),
    type: z.literal("publish").default("publish"),
    subject: subject.describe("default storage.<name>.events"),
    description: z.string().optional(),
  })
  .strict();

/** The JSON configuration file, as validated. Snake case, like the Go component's config. */
export const configSchema = z
  .object({
    name: z.string().regex(NAME, "must be 1-64 characters of A-Z a-z 0-9 _ -").default("objectstore").describe("component and micro-service name; subjects default to storage.<name>.*"),
    description: z.string().optional(),
    store: z.string().min(1).default("file:./.stowage").describe("store URL: memory:, file:DIR, nats://host:port/BUCKET, s3://BUCKET?..., postgres://..."),
    nats: z
      .object({
        servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).default("nats://127.0.0.1:4222"),
        user: z.string().min(1).optional(),
        pass: secret("password for user").optional(),
        token: secret("authentication token (env STOWAGE_NATS_TOKEN)").optional(),
        nkey_seed: secret("NKey seed, SU... (env STOWAGE_NATS_NKEY_SEED)").optional(),
        creds_file: z.string().min(1).optional().describe("path to a .creds file (JWT + NKey seed)"),
        tls: z
          .object({
            ca_file: z.string().min(1).optional(),
            cert_file: z.string().min(1).optional(),
            key_file: z.string().min(1).optional(),
            handshake_first: z.boolean().optional(),
          })
          .strict()
          .optional()
          .describe("present (even {}): require TLS"),
        connection_name: z.string().optional(),
      })
      .strict()
      .prefault({}),
    ports: z
      .object({
        inputs: z.array(z.discriminatedUnion("name", [apiPort, writePort])).max(2).optional(),
        outputs: z.array(eventsPort).max(1).optional(),
      })
      .strict()
      .optional()
      .describe("like the Go component's port config; a port left out gets its default"),
    data_cache: z
      .object({
        enabled: z.boolean().default(false),
        strategy: z.enum(["lru", "ttl", "hybrid"]).default("hybrid"),
        max_size: z.number().int().positive().default(1000).describe("entries"),
        max_bytes: size.default("64MiB"),
        ttl: duration.default("1h"),
      })
      .strict()
      .prefault({}),
    timeouts: z
      .object({
        default: duration.default("5s"),
        get: duration.optional(),
        store: duration.optional(),
        list: duration.optional(),
        put: duration.optional(),
        delete: duration.optional(),
        stat: duration.optional(),
        versions: duration.optional(),
      })
      .strict()
      .prefault({})
      .describe("per-request deadline per action; a request over it is answered with a transient error"),
    max_value_size: size.optional().describe("largest value the api and write ports accept (default: what fits one NATS message)"),
    max_in_flight: z
      .number()
      .int()
      .positive()
      .default(256)
      .describe("requests and write-port messages in flight at once, counted until the store has finished with them (a request answered 'timed out' still counts); more are answered with a transient 'busy' error"),
    max_in_flight_bytes: size
      .default("64MiB")
      .describe("payload bytes in flight at once, counted like max_in_flight; more are answered 'busy' (a single larger request still runs when nothing else is in flight)"),
    queue_group: z.string().regex(NAME, "must be 1-64 characters of A-Z a-z 0-9 _ -").default("stowage").describe("instances sharing this group share the api and write subjects"),
    write: z
      .object({
        key_prefix: z.string().min(1).default("messages").describe("keys are <key_prefix>/YYYY/MM/DD/HH/<id>"),
        stream: z.string().regex(NAME).optional().describe("jetstream mode; default STOWAGE_<NAME>"),
        create_stream: z.boolean().default(true).describe("create the stream (capturing the write subject) when missing"),
        replicas: z.number().int().min(1).max(5).optional().describe("jetstream mode: replicas of the stream when the component creates it (default: the server's, 1); an existing stream is left as it is"),
        storage: z.enum(["file", "memory"]).optional().describe("jetstream mode: storage of the stream when the component creates it (default file); an existing stream is left as it is"),
        durable: z.string().regex(NAME).optional().describe("jetstream mode; default stowage-<name>"),
        max_deliver: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(5)
          .describe("failures caused by a message (the store otherwise healthy) before it goes to the dead-letter stream; a store outage pauses the port instead"),
        backoff: z.array(duration).min(1).default(["1s", "5s", "30s"]).describe("redelivery delay after the 1st, 2nd... failure (the last repeats)"),
        ack_wait: duration.default("30s"),
        dead_letter_subject: subject.optional().describe("default storage.<name>.write.dead"),
        dead_letter_stream: z
          .string()
          .regex(NAME)
          .optional()
          .describe("jetstream mode: the stream that keeps dead letters, created (capturing dead_letter_subject) when no stream captures that subject; default STOWAGE_<NAME>_DEAD"),
      })
      .strict()
      .prefault({}),
    claims: z
      .object({
        prefix: z.string().min(1).default("claims/").describe("claims (streamed puts with claim: true, and expiry) live under this key prefix, ending with /"),
        ttl: duration.optional().describe('delete claims older than this under prefix, on a schedule (e.g. "7d"); absent: no expiry'),
        expire_interval: duration.default("10m").describe("how often expiry runs when ttl is set"),
      })
      .strict()
      .prefault({})
      .describe("the claim check: claims uploaded through the component and their expiry (docs/claims.md)"),
    mirror: z
      .array(
        z
          .object({
            to: z.string().min(1).describe("destination store URL (s3://..., postgres://...); may hold secrets, never logged"),
            prefix: z.string().default("").describe("mirror the keys starting with this (default: all)"),
            to_prefix: z.string().optional().describe("put them under this prefix in the destination (default: the same keys)"),
            deletes: z.boolean().default(false).describe("delete from the destination what is deleted here"),
            name: z.string().regex(NAME, "must be 1-64 characters of A-Z a-z 0-9 _ -").optional().describe("names its checkpoint (.stowage/mirror/<name> in the destination) and its lag metric; default <component name>-<index>"),
            interval: duration.default("5s").describe("for a store without a change feed (file:): how often it is listed"),
          })
          .strict(),
      )
      .default([])
      .describe("keep other stores in step with this one (docs/move.md); lag in health and stowage_mirror_lag_seconds"),
    retention: z
      .array(
        z
          .object({
            prefix: z.string().describe("delete keys under this prefix..."),
            max_age: duration.describe('...last modified longer ago than this, e.g. "30d"'),
            time_ordered_keys: z.boolean().default(false).describe("keys sort by write time (the archiver's): stop at the first younger key"),
          })
          .strict(),
      )
      .default([])
      .describe("age out local data: prune runs at start and every retention_interval; the last run is in health"),
    retention_interval: duration.default("1h").describe("how often retention runs"),
    metrics_port: z.number().int().min(0).max(65535).optional().describe("serve Prometheus metrics at http://127.0.0.1:<port>/metrics (0: any free port)"),
    metrics_host: z.string().default("127.0.0.1"),
  })
  .strict();

/** The configuration file as written (every field optional). */
export type ComponentConfigInput = z.input<typeof configSchema>;

/** A port as discovery reports it. */
export interface PortInfo {
  name: string;
  type: string;
  subject: string;
  description: string;
}

/** The configuration the component runs on: validated, defaulted, units converted. */
export interface ComponentConfig {
  name: string;
  description: string;
  /** Store URL; may hold secrets, never log it (use `redactUrl`). */
  store: string;
  nats: {
    servers: string[];
    user?: string;
    pass?: string;
    token?: string;
    nkeySeed?: string;
    credsFile?: string;
    tls?: { caFile?: string; certFile?: string; keyFile?: string; handshakeFirst?: boolean };
    connectionName?: string;
  };
  api: PortInfo;
  write: PortInfo & { type: "subscribe" | "jetstream" };
  events: PortInfo;
  dataCache: { enabled: boolean; strategy: "lru" | "ttl" | "hybrid"; maxEntries: number; maxBytes: number; ttlMs: number };
  /** Deadline per action, milliseconds. */
  timeoutsMs: Record<Action, number>;
  /** Largest value accepted, bytes; undefined: bounded by the server's max_payload. */
  maxValueBytes: number | undefined;
  maxInFlight: number;
  /** Payload bytes in flight at once. */
  maxInFlightBytes: number;
  queueGroup: string;
  jetstream: {
    stream: string;
    createStream: boolean;
    /** Replicas of the stream when the component creates it; undefined: the server's default (1). */
    replicas: number | undefined;
    /** Storage of the stream when the component creates it; undefined: the server's default (file). */
    storage: "file" | "memory" | undefined;
    durable: string;
    maxDeliver: number;
    backoffMs: number[];
    ackWaitMs: number;
    deadLetterSubject: string;
    /** The stream created for dead letters when none captures the subject. */
    deadLetterStream: string;
  };
  keyPrefix: string;
  /** Claims: their key prefix, and (when `ttlMs` is set) how old they get before expiry deletes them. */
  claims: { prefix: string; ttlMs: number | undefined; expireIntervalMs: number };
  /** Mirrors of the store; `to` may hold secrets, never log it (use `redactUrl`). */
  mirrors: { name: string; to: string; prefix: string; toPrefix: string | undefined; deletes: boolean; intervalMs: number }[];
  /** Retention rules: keys under `prefix` older than `maxAgeMs` are pruned every `retentionIntervalMs`. */
  retention: { prefix: string; maxAgeMs: number; timeOrderedKeys: boolean }[];
  retentionIntervalMs: number;
  metricsPort: number | undefined;
  metricsHost: string;
}

/** The JSON Schema (draft 2020-12) of the configuration file. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: "input" }) as Record<string, unknown>;
}

/**
 * Validates a configuration and fills in every default. A bad one is refused with a
 * StorageError of kind `invalid` naming each bad field by its path, e.g.
 * `config: ports.inputs[0].subject: must be a NATS subject...`. Values are never echoed
 * (they may be secrets).
 */
export function resolveConfig(input: unknown): ComponentConfig {
  const parsed = configSchema.safeParse(input ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${formatPath(issue.path)}: ${issue.message}`);
    throw new StorageError("invalid", `bad configuration: ${problems.join("; ")}`, { op: "config" });
  }
  const c = parsed.data;
  const inputs = c.ports?.inputs ?? [];
  const api = inputs.find((p) => p.name === "api");
  const write = inputs.find((p) => p.name === "write");
  const events = c.ports?.outputs?.[0];
  if (inputs.filter((p) => p.name === "api").length > 1 || inputs.filter((p) => p.name === "write").length > 1) {
    throw new StorageError("invalid", "bad configuration: ports.inputs: each of api and write may appear once", { op: "config" });
  }
  const base = `storage.${c.name}`;
  const timeouts = c.timeouts as Record<string, number | string | undefined>;
  const defaultTimeout = parseDuration(timeouts.default!)!;
  const config: ComponentConfig = {
    name: c.name,
    description: c.description ?? `stowage storage component: a ${c.store.split(":")[0]} store served over NATS`,
    store: c.store,
    nats: {
      servers: [c.nats.servers].flat(),
      user: c.nats.user,
      pass: c.nats.pass,
      token: c.nats.token,
      nkeySeed: c.nats.nkey_seed,
      credsFile: c.nats.creds_file,
      tls: c.nats.tls && { caFile: c.nats.tls.ca_file, certFile: c.nats.tls.cert_file, keyFile: c.nats.tls.key_file, handshakeFirst: c.nats.tls.handshake_first },
      connectionName: c.nats.connection_name,
    },
    api: { name: "api", type: "request", subject: api?.subject ?? `${base}.api`, description: api?.description ?? "request/reply: get, store, list, put, delete, stat, versions" },
    write: {
      name: "write",
      type: write?.type ?? "subscribe",
      subject: write?.subject ?? `${base}.write`,
      description: write?.description ?? "fire-and-forget messages, stored through the archiver",
    },
    events: { name: "events", type: "publish", subject: events?.subject ?? `${base}.events`, description: events?.description ?? "stored / retrieved / deleted events" },
    dataCache: {
      enabled: c.data_cache.enabled,
      strategy: c.data_cache.strategy,
      maxEntries: c.data_cache.max_size,
      maxBytes: parseSize(c.data_cache.max_bytes)!,
      ttlMs: parseDuration(c.data_cache.ttl)!,
    },
    timeoutsMs: Object.fromEntries(ACTIONS.map((a) => [a, timeouts[a] === undefined ? defaultTimeout : parseDuration(timeouts[a])!])) as Record<Action, number>,
    maxValueBytes: c.max_value_size === undefined ? undefined : parseSize(c.max_value_size),
    maxInFlight: c.max_in_flight,
    maxInFlightBytes: parseSize(c.max_in_flight_bytes)!,
    queueGroup: c.queue_group,
    jetstream: {
      stream: c.write.stream ?? `STOWAGE_${c.name.toUpperCase()}`,
      createStream: c.write.create_stream,
      replicas: c.write.replicas,
      storage: c.write.storage,
      durable: c.write.durable ?? `stowage-${c.name}`,
      maxDeliver: c.write.max_deliver,
      backoffMs: c.write.backoff.map((d) => parseDuration(d)!),
      ackWaitMs: parseDuration(c.write.ack_wait)!,
      deadLetterSubject: c.write.dead_letter_subject ?? `${base}.write.dead`,
      deadLetterStream: c.write.dead_letter_stream ?? `STOWAGE_${c.name.toUpperCase()}_DEAD`,
    },
    keyPrefix: c.write.key_prefix,
    claims: {
      prefix: c.claims.prefix,
      ttlMs: c.claims.ttl === undefined ? undefined : parseDuration(c.claims.ttl),
      expireIntervalMs: parseDuration(c.claims.expire_interval)!,
    },
    mirrors: c.mirror.map((m, i) => ({ name: m.name ?? `${c.name}-${i}`, to: m.to, prefix: m.prefix, toPrefix: m.to_prefix, deletes: m.deletes, intervalMs: parseDuration(m.interval)! })),
    retention: c.retention.map((r) => ({ prefix: r.prefix, maxAgeMs: parseDuration(r.max_age)!, timeOrderedKeys: r.time_ordered_keys })),
    retentionIntervalMs: parseDuration(c.retention_interval)!,
    metricsPort: c.metrics_port,
    metricsHost: c.metrics_host,
  };
  checkSubjects(config);
  if (config.jetstream.deadLetterStream === config.jetstream.stream) {
    throw new StorageError("invalid", `bad configuration: write.dead_letter_stream: must differ from the write stream ${config.jetstream.stream}`, { op: "config" });
  }
  if (!config.claims.prefix.endsWith("/") || keyProblem(`${config.claims.prefix}x`) !== undefined) {
    throw new StorageError("invalid", 'bad configuration: claims.prefix: must be a key prefix ending with "/" (like "claims/")', { op: "config" });
  }
  if (config.claims.expireIntervalMs < 1000) {
    throw new StorageError("invalid", "bad configuration: claims.expire_interval: must be at least 1s", { op: "config" });
  }
  checkMoves(config);
  if (config.nats.pass !== undefined && config.nats.user === undefined) {
    throw new StorageError("invalid", "bad configuration: nats.pass: needs nats.user", { op: "config" });
  }
  return config;
}

function checkMoves(config: ComponentConfig): void {
  const names = new Set<string>();
  config.mirrors.forEach((m, i) => {
    if (names.has(m.name)) throw new StorageError("invalid", `bad configuration: mirror[${i}].name: ${m.name} is used twice (it names the checkpoint)`, { op: "config" });
    names.add(m.name);
    if (m.intervalMs < 100) throw new StorageError("invalid", `bad configuration: mirror[${i}].interval: must be at least 100ms`, { op: "config" });
  });
  if (config.retention.length > 0 && config.retentionIntervalMs < 1000) {
    throw new StorageError("invalid", "bad configuration: retention_interval: must be at least 1s", { op: "config" });
  }
}

function checkSubjects(config: ComponentConfig): void {
  const subjects: [string, string][] = [
    ["ports api", config.api.subject],
    ["ports write", config.write.subject],
    ["ports events", config.events.subject],
    ["write.dead_letter_subject", config.jetstream.deadLetterSubject],
  ];
  for (let i = 0; i < subjects.length; i++) {
    for (let j = i + 1; j < subjects.length; j++) {
      const [a, sa] = subjects[i]!;
      const [b, sb] = subjects[j]!;
      // An api action endpoint is <api>.<action>: the write/events subjects must not be one of those.
      const clash = sa === sb || (i === 0 && [...ACTIONS, "describe"].some((x) => `${sa}.${x}` === sb));
      if (clash) throw new StorageError("invalid", `bad configuration: ${b}: subject ${sb} clashes with ${a}`, { op: "config" });
    }
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(top level)";
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");
}
