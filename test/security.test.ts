/**
 * Security: the component (and the NATS store) authenticate with what they are configured
 * with — user/password, token, nkey, TLS — against private nats-servers that require it, and
 * no secret ever shows: not in logs, errors, events, `$SRV.INFO`, discovery (`describe`) or
 * `stowage serve` output (started with the password in its URLs, as a careless operator would).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nkeys } from "@nats-io/nats-core";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { openStore, StorageError } from "../src/index.js";
import { StorageComponent, type ComponentConfigInput, type Logger } from "../src/component/index.js";
import { natsServerBinary, startNatsServer, type NatsServerHandle } from "./fixtures/nats.js";
import { runStowage } from "./fixtures/serve-process.js";
import { unavailable, uniqueName } from "./fixtures/services.js";

const skip = natsServerBinary() ? false : unavailable("nats-server", "a nats-server binary to start private servers");
const PASSWORD = "pw-Zq8-never-log-me";
const TOKEN = "tok-Xr4-never-log-me";

/** A logger that keeps every line, to search for secrets. */
function recordingLogger(lines: string[]): Logger {
  const log = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push(JSON.stringify({ level, msg, ...fields }));
  return { info: log("info"), warn: log("warn"), error: log("error") };
}

const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

async function server(args: string[]): Promise<NatsServerHandle> {
  const handle = await startNatsServer(args);
  cleanup.push(() => handle.destroy());
  return handle;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "stowage-security-"));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a component with `nats` settings, runs put+get through its api with `client`, returns what it logged. */
async function roundTrip(nats: ComponentConfigInput["nats"], client: NatsConnection): Promise<{ component: StorageComponent; lines: string[] }> {
  const lines: string[] = [];
  const component = new StorageComponent({ config: { name: uniqueName("sec").replace(/[^\w-]/g, "_"), store: "memory:", nats }, logger: recordingLogger(lines) });
  await component.start();
  cleanup.push(() => component.stop(2000));
  const api = component.config.api.subject;
  assert.deepEqual((await client.request(api, JSON.stringify({ action: "put", key: "k", data: 1 }), { timeout: 5000 })).json(), { success: true, key: "k" });
  assert.deepEqual((await client.request(api, JSON.stringify({ action: "get", key: "k" }), { timeout: 5000 })).json(), { success: true, key: "k", encoding: "json", data: 1 });
  return { component, lines };
}

/** What `start()` rejects with. */
async function startFailure(nats: ComponentConfigInput["nats"]): Promise<{ err: StorageError; lines: string[] }> {
  const lines: string[] = [];
  const component = new StorageComponent({ config: { name: "sec_fail", store: "memory:", nats }, logger: recordingLogger(lines) });
  const err = await component.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  await component.stop(100);
  assert.ok(err instanceof StorageError, `expected a StorageError, got ${String(err)}`);
  return { err, lines };
}

function assertNoSecret(where: string, text: string, ...secrets: string[]): void {
  for (const secret of secrets) assert.ok(!text.includes(secret), `${where} contains a secret: ${text.slice(Math.max(0, text.indexOf(secret) - 80), text.indexOf(secret) + 40)}`);
}

describe("security: NATS authentication", { skip, timeout: 180_000 }, () => {
  it("user/password: the component connects with them; a wrong password fails to start without echoing it", async () => {
    const s = await server(["--user", "svc", "--pass", PASSWORD]);
    const client = await connect({ servers: s.url, user: "svc", pass: PASSWORD });
    cleanup.push(() => client.close());
    const { lines } = await roundTrip({ servers: s.url, user: "svc", pass: PASSWORD }, client);
    assertNoSecret("the component's log", lines.join("\n"), PASSWORD);
    // The password inside the server URL works too, and stays out of the log.
    const inUrl = await roundTrip({ servers: `nats://svc:${PASSWORD}@127.0.0.1:${s.port}` }, client);
    assertNoSecret("the component's log (password in the URL)", inUrl.lines.join("\n"), PASSWORD);

    const wrong = "wrong-pw-also-secret";
    const { err, lines: failLines } = await startFailure({ servers: `nats://svc:${wrong}@127.0.0.1:${s.port}` });
    assertNoSecret("the start error", `${err.message} ${String(err.cause)}`, wrong);
    assertNoSecret("the log of a failed start", failLines.join("\n"), wrong);
    const none = await startFailure({ servers: s.url });
    assert.match(none.err.message, /NATS/);
  });

  it("token: the component and a store URL (nats://TOKEN@host/BUCKET) connect with it, and errors never show it", async () => {
    const s = await server(["--auth", TOKEN]);
    const client = await connect({ servers: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    const { lines } = await roundTrip({ servers: s.url, token: TOKEN }, client);
    assertNoSecret("the component's log", lines.join("\n"), TOKEN);

    const bucket = uniqueName("sec").replace(/[^-\w]/g, "_");
    const store = await openStore(`nats://${TOKEN}@127.0.0.1:${s.port}/${bucket}`);
    await store.put("a", new Uint8Array([1]));
    assert.deepEqual([...(await store.get("a"))], [1]);
    await store.close();
    // A bad option in a URL holding the token: the message names the option, not the token.
    const bad = await openStore(`nats://${TOKEN}@127.0.0.1:${s.port}/${bucket}?history=zero`).catch((e: unknown) => e);
    assert.ok(bad instanceof StorageError && bad.kind === "invalid");
    assert.match(bad.message, /history/);
    assertNoSecret("an open error", bad.message, TOKEN);
    const refused = await openStore(`nats://wrong-${TOKEN}@127.0.0.1:${s.port}/${bucket}`).catch((e: unknown) => e);
    assert.ok(refused instanceof StorageError, String(refused));
    assertNoSecret("a refused connection's error", `${refused.message}`, TOKEN);
    const jsm = await jetstreamManager(client);
    await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
  });

  it("nkey: the component connects with an nkey seed", async () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const dir = await tempDir();
    const conf = join(dir, "nkey.conf");
    await writeFile(conf, `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }\n`);
    const s = await server(["-c", conf]);
    const client = await connect({ servers: s.url, authenticator: (await import("@nats-io/nats-core")).nkeyAuthenticator(user.getSeed()) });
    cleanup.push(() => client.close());
    const { lines } = await roundTrip({ servers: s.url, nkey_seed: seed }, client);
    assertNoSecret("the component's log", lines.join("\n"), seed);
    const { err } = await startFailure({ servers: s.url, nkey_seed: new TextDecoder().decode(nkeys.createUser().getSeed()) });
    assertNoSecret("the start error", err.message, seed);
  });

  const openssl = spawnSync("openssl", ["version"], { encoding: "utf8" }).status === 0;
  it("TLS: the component connects over TLS when configured, verifying the server against a CA file", { skip: openssl ? false : "openssl is not installed: cannot make a certificate for the TLS test" }, async () => {
    const dir = await tempDir();
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    const made = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], { encoding: "utf8" });
    assert.equal(made.status, 0, made.stderr);
    const s = await server(["--tls", "--tlscert", cert, "--tlskey", key]);
    const client = await connect({ servers: s.url, tls: { caFile: cert } });
    cleanup.push(() => client.close());
    await roundTrip({ servers: s.url, tls: { ca_file: cert } }, client);
    // Without the CA the server's certificate is not trusted: no silent downgrade.
    const { err } = await startFailure({ servers: s.url, tls: {} });
    assert.equal(err.kind, "transient");
  });
});

describe("security: no secret in stowage serve's output, events, $SRV.INFO or discovery", { skip, timeout: 180_000 }, () => {
  it("passwords and tokens in the NATS and store URLs never appear", async () => {
    const s = await server(["--user", "svc", "--pass", PASSWORD]);
    const client = await connect({ servers: s.url, user: "svc", pass: PASSWORD });
    cleanup.push(() => client.close());
    const name = uniqueName("sec").replace(/[^\w-]/g, "_");
    const bucket = uniqueName("sec").replace(/[^-\w]/g, "_");
    // Both URLs carry the password; the store is a NATS bucket on the same server.
    const serve = runStowage(["--store", `nats://svc:${PASSWORD}@127.0.0.1:${s.port}/${bucket}`, "serve", "--name", name, "--nats", `nats://svc:${PASSWORD}@127.0.0.1:${s.port}`]);
    cleanup.push(() => serve.stop("SIGKILL"));
    await serve.started;
    const api = `storage.${name}.api`;
    const events: string[] = [];
    const sub = client.subscribe(`storage.${name}.events`, { callback: (_e, m) => void events.push(m.string()) });
    assert.deepEqual((await client.request(api, JSON.stringify({ action: "put", key: "a", data: 1 }), { timeout: 5000 })).json(), { success: true, key: "a" });
    const failed = (await client.request(api, JSON.stringify({ action: "get", key: "missing" }), { timeout: 5000 })).string();
    const describeText = (await client.request(`${api}.describe`, "", { timeout: 5000 })).string();
    const info = (await client.request(`$SRV.INFO.${name}`, "", { timeout: 5000 })).string();
    const stats = (await client.request(`$SRV.STATS.${name}`, "", { timeout: 5000 })).string();
    await client.flush();
    sub.unsubscribe();
    assert.ok(events.length > 0, "an event was published");
    assert.match(describeText, /"meta"/);
    assert.equal(await serve.stop("SIGTERM"), 0);

    for (const [where, text] of [
      ["stdout", serve.stdout()],
      ["stderr", serve.stderr()],
      ["events", events.join("\n")],
      ["an error answer", failed],
      ["describe", describeText],
      ["$SRV.INFO", info],
      ["$SRV.STATS", stats],
    ] as const) {
      assertNoSecret(where, text, PASSWORD);
    }
    assert.match(serve.stderr(), /"msg":"started"/);
    assert.match(serve.stderr(), /\*\*\*/, "the store URL is logged redacted");

    const schema = runStowage(["serve", "--print-schema", "--nats", `nats://svc:${PASSWORD}@127.0.0.1:${s.port}`]);
    await schema.exited;
    assertNoSecret("--print-schema", schema.stdout() + schema.stderr(), PASSWORD);
    const jsm = await jetstreamManager(client);
    await jsm.streams.delete(`KV_${bucket}`).catch(() => undefined);
  });

  it("a token as the URL user, and a refused start, never appear either", async () => {
    const s = await server(["--auth", TOKEN]);
    const name = uniqueName("sec").replace(/[^\w-]/g, "_");
    const serve = runStowage(["--store", `nats://${TOKEN}@127.0.0.1:${s.port}/B${name.replace(/-/g, "_")}`, "serve", "--name", name, "--nats", `nats://${TOKEN}@127.0.0.1:${s.port}`]);
    cleanup.push(() => serve.stop("SIGKILL"));
    await serve.started;
    assert.equal(await serve.stop("SIGTERM"), 0);
    assertNoSecret("stowage serve output", serve.stdout() + serve.stderr(), TOKEN);

    // Refused: wrong password via the environment, and a wrong one in the URL.
    const wrong = runStowage(["--store", "memory:", "serve", "--nats", s.url, "--nats-user", "svc"], { STOWAGE_NATS_PASS: PASSWORD });
    const code = await wrong.exited;
    assert.notEqual(code, 0);
    assertNoSecret("a refused start", wrong.stdout() + wrong.stderr(), PASSWORD);
    const wrongUrl = runStowage(["--store", "memory:", "serve", "--nats", `nats://bad-${TOKEN}@127.0.0.1:${s.port}`]);
    assert.notEqual(await wrongUrl.exited, 0);
    assertNoSecret("a refused start (token in the URL)", wrongUrl.stdout() + wrongUrl.stderr(), TOKEN);
    assert.match(wrongUrl.stderr(), /NATS/);
  });
});
