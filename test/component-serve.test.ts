/**
 * `stowage serve` as a process: the schema, refusing a bad configuration by field, and SIGTERM
 * draining requests in flight before exiting 0 (against the real NATS and a file store).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { openStore } from "../src/open.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";

const url = await sharedNats();
// Module hooks that hold the CLI's program module for 1.5 s after writing `$SLOW_START_MARKER`:
// a start-up long enough to send a signal into, deterministically. They run off the main thread
// (module.register), so the program's event loop stays free to take the signal. Where tsx
// resolves in-thread first (Node 22.15+, 24), it hands this hook the specifier with the
// extension it found, so both spellings are matched.
const SLOW_START_HOOKS = `
import { writeFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  if (/(^|\\/)program\\.(js|ts)$/.test(specifier) && context.parentURL?.includes("/cli/main.")) {
    writeFileSync(process.env.SLOW_START_MARKER, "");
    await new Promise((r) => setTimeout(r, 1500));
  }
  return next(specifier, context);
}`;

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

    it("exits 0 when SIGTERM or SIGINT arrives while it is still starting", async () => {
      writeFileSync(join(dir, "slow-hooks.mjs"), SLOW_START_HOOKS);
      const preload = join(dir, "slow-start.mjs");
      writeFileSync(preload, `import { register } from "node:module"; register(${JSON.stringify(pathToFileURL(join(dir, "slow-hooks.mjs")).href)});`);
      for (const signal of ["SIGTERM", "SIGINT"] as const) {
        const marker = join(dir, `loading-${signal}`);
        const starting = spawn(process.execPath, ["--import", "tsx", "--import", pathToFileURL(preload).href, resolve("src/cli/main.ts"), "serve", "--store", "memory:", "--nats", url!, "--name", uniqueName("early")], {
          env: { ...process.env, SLOW_START_MARKER: marker },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stderr = "";
        starting.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        const exited = new Promise<number | string | null>((done) => starting.once("exit", (code, sig) => done(code ?? sig)));
        try {
          const deadline = Date.now() + 30_000;
          while (!existsSync(marker)) {
            if (Date.now() > deadline) assert.fail(`the program never started loading: ${stderr}`);
            await new Promise((r) => setTimeout(r, 10));
          }
          starting.kill(signal);
          assert.equal(await exited, 0, `${signal} while loading: ${stderr}`);
          assert.ok(!stderr.includes('"msg":"started"'), "asked to stop before it started: nothing is started");
        } finally {
          // A failed assertion must not leave a serving process behind (it would keep this file's run alive).
          if (starting.exitCode === null && starting.signalCode === null) starting.kill("SIGKILL");
        }
      }
    });

    it("logs the store URL as given: file:./data stays relative", async () => {
      const name = uniqueName("shown");
      const run = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), resolve("src/cli/main.ts"), "serve", "--store", "file:./data", "--nats", url!, "--name", name], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      run.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((done) => run.once("exit", (code) => done(code)));
      const deadline = Date.now() + 30_000;
      while (!stderr.includes('"msg":"started"')) {
        if (Date.now() > deadline || run.exitCode !== null) assert.fail(`serve did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      run.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /"store":"file:\.\/data"/);
      assert.ok(existsSync(join(dir, "data")), "the store is where the URL says, relative to the working directory");
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
