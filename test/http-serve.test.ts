/**
 * `stowage serve --http` as a real process: the gateway alone (no NATS), tokens from the
 * environment and never printed, SIGTERM exits 0; the gateway beside the NATS component in one
 * process; a non-loopback address without a token refused.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { runStowage, type ServeProcess } from "./fixtures/serve-process.js";
import { raw } from "./fixtures/http.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName, waitFor } from "./fixtures/services.js";

const TOKEN = "serve-token-Vb93-never-printed";
const natsUrl = await sharedNats();
const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "stowage-http-serve-"));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function start(args: string[], env: Record<string, string> = {}): ServeProcess {
  const serve = runStowage(args, env);
  cleanup.push(() => serve.stop("SIGKILL"));
  return serve;
}

function httpUrl(stderr: string): string {
  const url = /"http":"(http:\/\/[^"]+)"/.exec(stderr)?.[1];
  assert.ok(url, `no http URL in ${stderr}`);
  return url;
}

describe("stowage serve --http", () => {
  it("runs the gateway alone on a file store, the token from the environment, and stops on SIGTERM with exit 0", async () => {
    const dir = await tempDir();
    const serve = start(["--store", `file:${dir}`, "serve", "--http", "127.0.0.1:0"], { STOWAGE_HTTP_TOKEN: TOKEN });
    await serve.started;
    const base = httpUrl(serve.stderr());
    assert.doesNotMatch(serve.stderr(), /"api":/, "no NATS component was started");
    const auth = { authorization: `Bearer ${TOKEN}` };
    assert.equal((await raw(base, "/v1/objects/a/b.txt")).status, 401);
    assert.equal((await raw(base, "/v1/objects/a/b.txt", { method: "PUT", body: "over http", headers: auth })).status, 201);
    assert.equal((await raw(base, "/v1/objects/a/b.txt", { headers: auth })).text(), "over http");
    assert.equal(await serve.stop("SIGTERM"), 0);
    assert.doesNotMatch(serve.stdout() + serve.stderr(), new RegExp(TOKEN));
  });

  it("refuses a non-loopback address without a token (usage error, exit 2)", async () => {
    const dir = await tempDir();
    const serve = start(["--store", `file:${dir}`, "serve", "--http", "0.0.0.0:0"]);
    assert.equal(await serve.exited, 2);
    assert.match(serve.stderr(), /without a token/);
  });

  it("runs the gateway beside the NATS component in one process", { skip: natsUrl === undefined ? "no NATS server" : false }, async () => {
    const dir = await tempDir();
    const name = uniqueName("httpsvc").replace(/[^\w-]/g, "_");
    const serve = start(["--store", `file:${dir}`, "serve", "--name", name, "--nats", natsUrl!, "--http", "127.0.0.1:0"]);
    await serve.started;
    await waitFor("the gateway", async () => /"msg":"http started"/.test(serve.stderr()));
    const base = httpUrl(serve.stderr());
    const nc = await connect({ servers: natsUrl });
    try {
      const reply = await nc.request(`storage.${name}.api`, JSON.stringify({ action: "put", key: "via/nats", data: "hi" }), { timeout: 5000 });
      assert.deepEqual(reply.json(), { success: true, key: "via/nats" });
    } finally {
      await nc.close();
    }
    const got = await raw(base, "/v1/objects/via/nats");
    assert.equal(got.status, 200);
    assert.equal(await serve.stop("SIGTERM"), 0);
  });
});
