/**
 * The gateway's defences over a file store: tokens (401 without or with a wrong one, 403 for a
 * write with the read-only one), loopback-only without a token, TLS, oversized headers (431),
 * clients too slow to send their headers or body (cut by the timeouts), bounded connections,
 * and the fallback for paths outside the API.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../src/open.js";
import { startGateway, type GatewayServer, type StartGatewayOptions } from "../src/http/index.js";
import type { Store } from "../src/types.js";
import { raw } from "./fixtures/http.js";
import { waitFor } from "./fixtures/services.js";

const WRITE = "w-token-Qz81-never-shown";
const READ = "r-token-Lk22-never-shown";

let dir: string;
let store: Store;
const servers: GatewayServer[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "stowage-http-sec-"));
  store = await openStore(`file:${join(dir, "store")}`);
  await store.put("doc.txt", Buffer.from("hello"));
});
after(async () => {
  for (const s of servers) await s.close(500);
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function serve(options: StartGatewayOptions = {}): Promise<string> {
  const server = await startGateway(store, { port: 0, ...options });
  servers.push(server);
  return server.url;
}

/** Resolves with the milliseconds until the server closed `socket`. */
function closedAfter(socket: Socket): Promise<{ ms: number; data: string }> {
  const started = Date.now();
  let data = "";
  socket.on("data", (c: Buffer) => (data += c.toString()));
  socket.on("error", () => undefined);
  return new Promise((resolve) => socket.once("close", () => resolve({ ms: Date.now() - started, data })));
}

function open(base: string): Promise<Socket> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => resolve(socket));
    socket.once("error", reject);
  });
}

describe("http gateway security", () => {
  it("tokens: none is 401, a wrong one is 401, the read token reads but cannot write (403), the write token does both", async () => {
    const base = await serve({ token: WRITE, readToken: READ });
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    const missing = await raw(base, "/v1/objects/doc.txt");
    assert.equal(missing.status, 401);
    assert.match(String(missing.headers["www-authenticate"]), /^Bearer/);
    assert.equal((missing.json() as { kind: string }).kind, "unauthorized");
    assert.equal((await raw(base, "/v1/objects/doc.txt", { headers: bearer("wrong") })).status, 401);
    assert.equal((await raw(base, "/v1/objects/doc.txt", { headers: bearer(`${READ}x`) })).status, 401);
    assert.equal((await raw(base, "/v1/objects/doc.txt", { headers: { authorization: `Basic ${READ}` } })).status, 401);
    assert.equal((await raw(base, "/v1/list", { headers: bearer(READ) })).status, 200);
    assert.equal((await raw(base, "/v1/objects/doc.txt", { headers: bearer(READ) })).text(), "hello");
    const denied = await raw(base, "/v1/objects/new", { method: "PUT", body: "x", headers: bearer(READ) });
    assert.equal(denied.status, 403);
    assert.equal((await raw(base, "/v1/objects/doc.txt", { method: "DELETE", headers: bearer(READ) })).status, 403);
    await assert.rejects(store.get("new"), (err: { kind?: string }) => err.kind === "not_found");
    assert.equal((await raw(base, "/v1/objects/new", { method: "PUT", body: "x", headers: bearer(WRITE) })).status, 201);
    assert.equal((await raw(base, "/v1/objects/new", { method: "DELETE", headers: bearer(WRITE) })).status, 204);
    // Reads take ?token= (EventSource, <img>, <video> cannot send headers); writes never do.
    assert.equal((await raw(base, `/v1/objects/doc.txt?token=${READ}`)).status, 200);
    assert.equal((await raw(base, `/v1/objects/x?token=${WRITE}`, { method: "PUT", body: "x" })).status, 401);
    assert.equal((await raw(base, "/metrics")).status, 401);
    assert.equal((await raw(base, "/metrics", { headers: bearer(READ) })).status, 200);
    assert.equal((await raw(base, "/healthz")).status, 200, "health needs no token");
  });

  it("refuses a non-loopback address without a token, binds it with one", async () => {
    await assert.rejects(startGateway(store, { host: "0.0.0.0", port: 0 }), (err: { kind?: string; message: string }) => err.kind === "invalid" && /without a token/.test(err.message));
    const url = await serve({ host: "0.0.0.0", readToken: READ });
    assert.match(url, /^http:\/\/0\.0\.0\.0:\d+$/);
    assert.equal((await serve()).startsWith("http://127.0.0.1:"), true, "loopback by default");
  });

  it("serves over TLS with --http-cert/--http-key", async (t) => {
    try {
      execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=127.0.0.1"], { stdio: "ignore" });
    } catch {
      t.skip("no openssl to make a certificate");
      return;
    }
    const base = await serve({ cert: await readFile(join(dir, "cert.pem")), key: await readFile(join(dir, "key.pem")) });
    assert.match(base, /^https:/);
    const { hostname, port } = new URL(base);
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest({ host: hostname, port, path: "/v1/objects/doc.txt", ca: undefined, rejectUnauthorized: false }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve(text));
      });
      req.on("error", reject);
      req.end();
    });
    assert.equal(body, "hello");
    await assert.rejects(startGateway(store, { port: 0, cert: "x" }), /both a certificate and a key/);
  });

  it("oversized headers are refused with 431", async () => {
    const base = await serve({ maxHeaderBytes: 16 * 1024 });
    const res = await raw(base, "/v1/objects/doc.txt", { headers: { "x-padding": "a".repeat(20 * 1024) } });
    assert.equal(res.status, 431);
    assert.equal((await raw(base, "/v1/objects/doc.txt", { headers: { "x-padding": "a".repeat(8 * 1024) } })).status, 200);
  });

  it("a client sending its headers byte by byte is cut at the headers timeout", async () => {
    const base = await serve({ headersTimeoutMs: 1000 });
    const socket = await open(base);
    const closed = closedAfter(socket);
    const line = "GET /v1/objects/doc.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + "a".repeat(200);
    let sent = 0;
    const trickle = setInterval(() => {
      if (socket.destroyed || sent >= line.length) return clearInterval(trickle);
      socket.write(line[sent++]!);
    }, 50);
    const { ms, data } = await closed;
    clearInterval(trickle);
    assert.ok(sent < line.length, "the headers were never finished");
    assert.ok(ms >= 900 && ms < 4000, `closed after ${ms} ms`);
    assert.match(data, /^(HTTP\/1\.1 408|$)/);
  });

  it("a PUT body sent too slowly is cut at the request timeout and stores nothing", async () => {
    const base = await serve({ headersTimeoutMs: 500, requestTimeoutMs: 1500 });
    const socket = await open(base);
    const closed = closedAfter(socket);
    socket.write("PUT /v1/objects/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    const trickle = setInterval(() => !socket.destroyed && socket.write("x"), 100);
    const { ms } = await closed;
    clearInterval(trickle);
    assert.ok(ms < 5000, `closed after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
    await assert.rejects(store.get("slow"), (err: { kind?: string }) => err.kind === "not_found");
  });

  it("connections beyond maxConnections are refused at once", async () => {
    const base = await serve({ maxConnections: 3 });
    const held = await Promise.all([open(base), open(base), open(base)]);
    await waitFor("the server to count them", async () => (await raw(base, "/healthz").then(() => false, () => true)));
    const extra = await open(base);
    const { ms } = await closedAfter(extra);
    assert.ok(ms < 2000);
    for (const s of held) s.destroy();
    await waitFor("room again", async () => (await raw(base, "/healthz")).status === 200);
  });

  it("closing the gateway ends its watch streams and answers 503 to new requests", async () => {
    const memory = await openStore("memory:");
    const server = await startGateway(memory, { port: 0 });
    try {
      const { hostname, port } = new URL(server.url);
      let text = "";
      const ended = new Promise<void>((resolve, reject) => {
        const req = request({ host: hostname, port, path: "/v1/watch" }, (res) => {
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", resolve);
          res.on("error", resolve);
        });
        req.on("error", reject);
        req.end();
      });
      await waitFor("the ready event", async () => text.includes("event: ready"));
      server.gateway.close();
      await ended;
      assert.equal((await raw(server.url, "/v1/list")).status, 503);
    } finally {
      await server.close(500);
      await memory.close();
    }
  });

  it("paths outside the API go to the fallback", async () => {
    const base = await serve({ fallback: (req, res) => void res.writeHead(200, { "content-type": "text/plain" }).end(`console at ${req.url}`) });
    assert.equal((await raw(base, "/")).text(), "console at /");
    assert.equal((await raw(base, "/assets/app.js")).text(), "console at /assets/app.js");
    assert.equal((await raw(base, "/v1/nope")).status, 404, "the API's own 404, not the fallback");
  });
});
