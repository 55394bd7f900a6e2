/**
 * `stowage serve` as a process: the schema, refusing a bad configuration by field, and SIGTERM
 * draining requests in flight before exiting 0 (against the real NATS and a file store).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { openStore } from "../src/open.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";

const url = await sharedNats();
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 60_000 });

describe("stowage serve", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "stowage-serve-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("--print-schema prints the configuration's JSON Schema", () => {
    const run = cli(["serve", "--print-schema"]);
    assert.equal(run.status, 0, run.stderr);
    const schema = JSON.parse(run.stdout) as { type: string; properties: Record<string, { default?: unknown }>; additionalProperties: boolean };
    assert.equal(schema.type, "object");
    assert.equal(schema.properties.name!.default, "objectstore");
    for (const field of ["store", "nats", "ports", "data_cache", "timeouts", "max_value_size", "queue_group", "write", "metrics_port"]) assert.ok(field in schema.properties, field);
    assert.equal(schema.additionalProperties, false);
  });

  it("refuses a bad configuration at start, naming the field", () => {
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ ports: { inputs: [{ name: "api", subject: "storage.*.api" }] }, data_cache: { ttl: "forever" }, surprise: 1 }));
    const run = cli(["serve", "--config", file, "--store", "memory:"]);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /ports\.inputs\[0\]\.subject: must be a NATS subject/);
    assert.match(run.stderr, /data_cache\.ttl/);
    assert.match(run.stderr, /Unrecognized key: "surprise"/);
    const flags = cli(["serve", "--store", "memory:", "--metrics-port", "lots"]);
    assert.equal(flags.status, 2);
    assert.match(flags.stderr, /metrics_port/);
  });

  describe("with NATS", { skip: url === undefined ? "no NATS" : undefined }, () => {
    let nc: NatsConnection;
    let child: ChildProcess | undefined;
    before(async () => {
      nc = await connect({ servers: url! });
    });
    after(async () => {
      child?.kill("SIGKILL");
      await nc.close();
    });

    it("on SIGTERM finishes the requests in flight, closes the store and exits 0; secrets stay out of the log", async () => {
      const name = uniqueName("serve");
      const storeDir = join(dir, "store");
      const config = join(dir, "serve.json");
      writeFileSync(config, JSON.stringify({ name, nats: { servers: url }, timeouts: { default: "30s" } }));
      const token = "s3cret-token-do-not-log";
      child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "serve", "--config", config, "--store", `file:${storeDir}`], {
        env: { ...process.env, STOWAGE_NATS_TOKEN: token },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)));
      const deadline = Date.now() + 30_000;
      while (!stderr.includes('"msg":"started"')) {
        if (Date.now() > deadline) assert.fail(`serve did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const value = Buffer.alloc(128 * 1024, 7).toString("base64");
      const requests = Array.from({ length: 60 }, (_, i) =>
        nc.request(`storage.${name}.api`, JSON.stringify({ action: "put", key: `drain/${i}`, data_base64: value }), { timeout: 30_000 }),
      );
      // Everything published has reached the server (and so the component) before the signal.
      await nc.flush();
      child.kill("SIGTERM");
      const replies = await Promise.all(requests);
      for (const r of replies) assert.deepEqual(r.json(), { success: true, key: r.json<{ key: string }>().key });
      assert.equal(await exited, 0, stderr);
      child = undefined;
      assert.match(stderr, /"msg":"stopped","drained":true/);
      const atStop = /"msg":"stopping","inFlight":(\d+)/.exec(stderr);
      assert.ok(Number(atStop?.[1]) > 0, "requests were in flight when the signal came (else this tests nothing)");
      assert.ok(!stderr.includes(token), "the token never appears in the log");
      const store = await openStore(`file:${storeDir}`);
      assert.equal((await store.list("drain/")).length, 60);
      await store.close();
    });
  });
});
