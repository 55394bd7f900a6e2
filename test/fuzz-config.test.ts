/**
 * Configuration and URLs: malformed store URLs for every backend and bad component
 * configurations are refused with a StorageError of kind `invalid` whose message names the
 * problem (and never echoes a password); random configurations and random URL options are
 * always either accepted or refused that way, never with a raw error. Everything stays on
 * loopback: URLs that parse point at a closed port (127.0.0.1:1).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { openStore, StorageError } from "../src/index.js";
import { resolveConfig, StorageComponent } from "../src/component/index.js";

const SECRET = "s3cr3t-pw";
const P = `u:${SECRET}@`;

const BAD_URLS: [string, RegExp][] = [
  [`nats://${P}127.0.0.1:4222`, /no bucket: use nats:\/\/host:4222\/BUCKET/],
  [`nats://${P}127.0.0.1:99999/B`, /malformed/],
  [`nats://${P}127.0.0.1:4222/B?replicas=abc`, /replicas must be a whole number, got "abc"/],
  ["nats://127.0.0.1:4222/B?replicas=7", /replicas must be an integer from 1 to 5/],
  ["nats://127.0.0.1:4222/B?history=0", /history must be an integer from 1 to 64/],
  ["nats://127.0.0.1:4222/bad.bucket", /bucket "bad.bucket" must be letters, digits/],
  ["nats://127.0.0.1:4222/B?storage=disk", /storage must be one of file, memory/],
  ["nats://127.0.0.1:4222/B?timeout=-5", /timeout must be a duration/],
  ["nats://127.0.0.1:4222/B?chunkSize=1", /chunkSize must be an integer from 1024/],
  ["s3://", /names no bucket/],
  ["s3:///key", /names no bucket/],
  [`s3://${P}bucket?partSize=1`, /partSize must be an integer number of bytes from 5242880/],
  ["s3://bucket?queueSize=abc", /queueSize must be a whole number, got "abc"/],
  ["s3://bucket?endpoint=notaurl", /endpoint must be an http:\/\/ or https:\/\/ URL/],
  ["s3://Bad_Bucket!", /bucket name .* is not valid/],
  ["s3://bucket?versioning=maybe", /versioning must be true or false/],
  ["s3://bucket?region=", /region must be a non-empty value/],
  ["s3://bucket?region=+", /region must be a name such as us-east-1/],
  [`postgres://${P}127.0.0.1:1/test?table=bad;name`, /table name "bad;name" must be 1-48 characters of letters, digits and '_'/],
  ["postgres://127.0.0.1:1/test?table=x%25y", /table name "x%y"/],
  ["postgres://127.0.0.1:1", /names no database/],
  ["postgres://127.0.0.1:1/test?versions=maybe", /versions must be true or false/],
  ["postgres://127.0.0.1:1/test?history=x", /history must be a positive integer/],
  ["postgres://127.0.0.1:1/test?chunkBytes=5", /chunkBytes must be an integer from 1024/],
  ["postgres://127.0.0.1:99999/test", /malformed/],
  ['postgres://127.0.0.1:1/test?schema=a"b', /schema name .* must be 1-63 characters/],
  ["file:", /needs a directory/],
  ["file://remotehost/x", /not a host/],
  ["memory:?history=abc", /history must be a whole number/],
  ["ftp://x", /unknown store scheme "ftp:".*known schemes/],
  ["http://127.0.0.1/x", /unknown store scheme "http:"/],
  ["nats://[::1/b", /malformed/],
  ["", /non-empty/],
  ["just words", /has no scheme/],
];

const BAD_CONFIGS: [string, unknown, RegExp][] = [
  ["a name with spaces", { name: "bad name!" }, /name: must be 1-64 characters/],
  ["a wildcard subject", { ports: { inputs: [{ name: "api", subject: "storage.*.api" }] } }, /ports\.inputs\[0\]\.subject: must be a NATS subject of literal tokens/],
  ["an empty subject token", { ports: { outputs: [{ name: "events", subject: "a..b" }] } }, /ports\.outputs\[0\]\.subject/],
  ["a bad duration", { timeouts: { default: "5 parsecs" } }, /timeouts\.default/],
  ["a bad size", { max_value_size: "12 furlongs" }, /max_value_size/],
  ["zero in flight", { max_in_flight: 0 }, /max_in_flight/],
  ["a password without a user", { nats: { pass: SECRET } }, /nats\.pass: needs nats\.user/],
  ["a password of the wrong type", { nats: { user: "u", pass: 12345 } }, /nats\.pass/],
  ["an unknown field", { nmae: "typo" }, /nmae/],
  ["an unknown cache strategy", { data_cache: { strategy: "fifo" } }, /data_cache\.strategy/],
  ["a metrics port out of range", { metrics_port: 70_000 }, /metrics_port/],
  ["max_deliver 0", { write: { max_deliver: 0 } }, /write\.max_deliver/],
  ["a write mode that does not exist", { ports: { inputs: [{ name: "write", type: "kafka", subject: "w" }] } }, /ports\.inputs\[0\]/],
  ["events on an api action subject", { ports: { inputs: [{ name: "api", subject: "s.api" }], outputs: [{ name: "events", subject: "s.api.get" }] } }, /clashes with ports api/],
  ["api twice", { ports: { inputs: [{ name: "api", subject: "a" }, { name: "api", subject: "b" }] } }, /each of api and write may appear once/],
  ["not an object", "store=memory:", /(top level)/],
];

describe("fuzz: configuration and URLs", () => {
  it("refuses malformed store URLs of every backend with invalid and a message that names the problem, never the password", async () => {
    for (const [url, message] of BAD_URLS) {
      const err = await openStore(url).then(
        async (store) => {
          await store.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      assert.ok(err instanceof StorageError, `${url}: expected a StorageError, got ${String(err)}`);
      assert.equal(err.kind, "invalid", `${url}: ${err.message}`);
      assert.match(err.message, message, url);
      assert.ok(!err.message.includes(SECRET), `${url}: the password is not in "${err.message}"`);
    }
  });

  it("refuses bad component configurations with invalid, naming the field, never echoing the value", () => {
    for (const [label, config, message] of BAD_CONFIGS) {
      let caught: unknown;
      try {
        new StorageComponent({ config: config as never });
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof StorageError, `${label}: expected a StorageError, got ${String(caught)}`);
      assert.equal(caught.kind, "invalid", label);
      assert.match(caught.message, /^config: bad configuration: /, label);
      assert.match(caught.message, message, label);
      assert.ok(!caught.message.includes(SECRET), `${label}: the secret is not echoed`);
    }
  });

  it("random configurations are accepted or refused as invalid naming a field, never with a raw error (300 runs)", () => {
    const fieldValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom("5s", "1MiB", "storage.x", "memory:", -1, 0, 1e9, "", "a.*", ">"));
    const section = fc.dictionary(fc.constantFrom("servers", "user", "pass", "token", "enabled", "strategy", "max_size", "ttl", "default", "get", "key_prefix", "max_deliver", "backoff", "name", "subject", "type"), fieldValue, { maxKeys: 3 });
    const config = fc.dictionary(
      fc.constantFrom("name", "store", "nats", "ports", "data_cache", "timeouts", "max_value_size", "max_in_flight", "queue_group", "write", "metrics_port", "bogus"),
      fc.oneof(fieldValue, section),
      { maxKeys: 5 },
    );
    fc.assert(
      fc.property(config, (input) => {
        try {
          const resolved = resolveConfig(input);
          assert.equal(typeof resolved.name, "string");
        } catch (err) {
          assert.ok(err instanceof StorageError, `a raw ${String(err)} for ${JSON.stringify(input)}`);
          assert.equal(err.kind, "invalid");
          assert.match(err.message, /^config: bad configuration: \S/);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("random options in store URLs are accepted or refused as invalid; never a raw error (200 runs, loopback closed port)", async () => {
    const value = fc.oneof(fc.string({ maxLength: 8 }), fc.integer({ min: -10, max: 1e7 }).map(String), fc.constantFrom("true", "false", "abc", "", "1e3", "0x10", "%", "NaN"));
    const params = {
      nats: ["history", "replicas", "storage", "maxBytes", "ttl", "inlineMax", "chunkSize", "timeout", "sweepInterval", "sweepGrace", "bogus"],
      postgres: ["table", "schema", "versions", "history", "chunkBytes", "createSchema", "connect_timeout"],
      s3: ["partSize", "queueSize", "concurrency", "versioning", "forcePathStyle", "region", "checksums", "bogus"],
    } as const;
    const base = { nats: "nats://127.0.0.1:1/B", postgres: "postgres://127.0.0.1:1/test", s3: "s3://bucket" } as const;
    const url = fc.constantFrom("nats", "postgres", "s3").chain((scheme) =>
      fc.dictionary(fc.constantFrom(...params[scheme]), value, { maxKeys: 3 }).map((query) => `${base[scheme]}?${new URLSearchParams({ ...(scheme === "s3" ? { endpoint: "http://127.0.0.1:1" } : {}), ...query, ...(scheme === "nats" ? { timeout: "200" } : {}) })}`),
    );
    await fc.assert(
      fc.asyncProperty(url, async (u) => {
        // Valid options reach a closed port: transient (cannot connect). S3 gets credentials, so the
        // SDK never looks further for some (its chain ends at the instance-metadata address).
        const s3 = { versioning: false, credentials: { accessKeyId: "fuzz", secretAccessKey: "fuzz" }, clientConfig: { maxAttempts: 1 } };
        const outcome = await openStore(u, { s3 }).then(
          async (store) => {
            await store.close();
            return undefined;
          },
          (e: unknown) => e,
        );
        if (outcome === undefined) return;
        assert.ok(outcome instanceof StorageError, `${u}: a raw ${String(outcome)}`);
        assert.ok(outcome.kind === "invalid" || outcome.kind === "transient", `${u}: ${outcome.kind}: ${outcome.message}`);
      }),
      { numRuns: 200 },
    );
  });
});
