/**
 * Api fuzz: at least 10,000 random and mutated requests against a running component (shared
 * NATS, a memory store): malformed and truncated JSON, wrong types in every field, random
 * bytes (non-UTF-8), empty bodies, huge bodies near max_payload, deep nesting, raw-mode headers
 * full of garbage, requests on the per-action subjects, mixed with valid requests.
 *
 * Checked: every request is answered (answered == sent), every answer is a well-formed success
 * or a classified error (kind + NATS service error code), nothing is answered `fatal` or logged
 * as unexpected, and the component is healthy and correct afterwards. Seeded (FUZZ_SEED) so a
 * failure can be replayed.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { connect, headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { ACTIONS, RAW_HEADERS, StorageComponent, type Logger } from "../src/component/index.js";
import { sharedNats } from "./fixtures/nats.js";
import { uniqueName } from "./fixtures/services.js";

const url = await sharedNats();
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const COUNT = Number(process.env.FUZZ_REQUESTS ?? 10_000);
const IN_FLIGHT = 64;
const KINDS = new Set(["invalid", "not_found", "transient", "fatal", "unsupported"]);

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with FUZZ_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface FuzzRequest {
  kind: string;
  subject: string;
  body: Uint8Array;
  headers?: Record<string, string>;
}

const encoder = new TextEncoder();

function generator(seed: number, api: string) {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const jsonValues = fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: 400, seed });
  const strings = [...fc.sample(fc.string({ unit: "binary", maxLength: 40 }), { numRuns: 200, seed }), "", "a/b", "../etc/passwd", "a\u0000b", "%", "*", ">", "k".repeat(1100)];
  const fields = ["action", "key", "data", "data_base64", "prefix", "version", "limit", "after", "metadata", "encoding"];
  const valid = (): Record<string, unknown> => {
    const action = pick(ACTIONS);
    const key = `fuzz/${int(50)}`;
    switch (action) {
      case "put":
        return { action, key, data: pick(jsonValues), metadata: { "content-type": "application/json" } };
      case "store":
        return { action, data: { id: int(1000), v: pick(jsonValues) } };
      case "list":
        return int(2) ? { action, prefix: "fuzz/" } : { action, prefix: "fuzz/", limit: 1 + int(10) };
      default:
        return { action, key };
    }
  };
  const mutateBytes = (bytes: Uint8Array): Uint8Array => {
    const out = Array.from(bytes);
    for (let n = 1 + int(4); n > 0; n--) {
      const at = int(out.length + 1);
      const op = int(4);
      if (op === 0 && out.length > 0) out.splice(at, 1);
      else if (op === 1) out.splice(at, 0, int(256));
      else if (op === 2 && out.length > 0) out[at % out.length] = int(256);
      else out.length = Math.min(out.length, at); // truncate
    }
    return new Uint8Array(out);
  };
  const randomHeaderValue = () => pick(["", "get", "put", "PUT", "%", "%zz", "%E0%A4%A", "-1", "1e9", "99999999999", "../x", "a%00b", "\u00e9\u00e8", "🔑", "x".repeat(2000), pick(strings).replace(/[\r\n\u0000]/g, "")]);
  const makers: [number, string, () => FuzzRequest][] = [
    [3, "valid", () => ({ kind: "valid", subject: api, body: encoder.encode(JSON.stringify(valid())) })],
    [4, "mutated json", () => ({ kind: "mutated json", subject: api, body: mutateBytes(encoder.encode(JSON.stringify(valid()))) })],
    [
      4,
      "wrong types",
      () => {
        const request = valid();
        for (let n = 1 + int(3); n > 0; n--) request[pick(fields)] = pick(jsonValues);
        return { kind: "wrong types", subject: api, body: encoder.encode(JSON.stringify(request)) };
      },
    ],
    [2, "random json", () => ({ kind: "random json", subject: api, body: encoder.encode(JSON.stringify(pick(jsonValues))) })],
    [2, "random bytes", () => ({ kind: "random bytes", subject: api, body: Uint8Array.from({ length: int(300) }, () => int(256)) })],
    [1, "empty", () => ({ kind: "empty", subject: pick([api, `${api}.${pick(ACTIONS)}`]), body: new Uint8Array(0) })],
    [
      1,
      "deep nesting",
      () => {
        const depth = pick([500, 999, 1001, 5000, 50_000]);
        const open = int(2) ? "[" : '{"a":';
        const close = open === "[" ? "]" : "}";
        const nested = open.repeat(depth) + "1" + close.repeat(depth);
        const body = int(2) ? `{"action":"put","key":"fuzz/deep","data":${nested}}` : nested;
        return { kind: "deep nesting", subject: api, body: encoder.encode(body) };
      },
    ],
    [
      2,
      "raw garbage",
      () => {
        const h: Record<string, string> = { [RAW_HEADERS.action]: randomHeaderValue() };
        for (const name of [RAW_HEADERS.key, RAW_HEADERS.prefix, RAW_HEADERS.version, RAW_HEADERS.limit, RAW_HEADERS.after, `${RAW_HEADERS.metaPrefix}${pick(["x", "Content-Type", "a.b", "UPPER", "_"])}`]) {
          if (int(2)) h[name] = randomHeaderValue();
        }
        return { kind: "raw garbage", subject: pick([api, `${api}.${pick(ACTIONS)}`]), body: Uint8Array.from({ length: int(200) }, () => int(256)), headers: h };
      },
    ],
    [
      2,
      "action endpoint",
      () => {
        const action = pick(ACTIONS);
        const body = int(2) ? JSON.stringify({ ...valid(), action: int(3) ? undefined : pick(ACTIONS) }) : JSON.stringify(pick(jsonValues));
        return { kind: "action endpoint", subject: `${api}.${action}`, body: encoder.encode(body) };
      },
    ],
  ];
  const total = makers.reduce((sum, [w]) => sum + w, 0);
  return (): FuzzRequest => {
    let r = int(total);
    for (const [weight, , make] of makers) {
      if (r < weight) return make();
      r -= weight;
    }
    return makers[0]![2]();
  };
}

/** Huge bodies, sent a few times (they are slow): just under max_payload, in JSON and raw mode. */
function hugeRequests(api: string, maxPayload: number): FuzzRequest[] {
  const near = maxPayload - 8 * 1024;
  const json = (n: number) => encoder.encode(`{"action":"put","key":"fuzz/huge","data":"${"x".repeat(n)}"}`);
  return [
    { kind: "huge", subject: api, body: json(near) },
    { kind: "huge", subject: api, body: encoder.encode(`{"action":"put","key":"fuzz/huge","data_base64":"${"QUFB".repeat(Math.floor(near / 4))}"}`) },
    { kind: "huge", subject: api, body: new Uint8Array(near).fill(0xff), headers: { [RAW_HEADERS.action]: "put", [RAW_HEADERS.key]: "fuzz/huge-raw" } },
    { kind: "huge", subject: api, body: encoder.encode(`[${"1,".repeat(Math.floor(near / 2) - 2)}1]`) },
    { kind: "huge", subject: api, body: encoder.encode(`{"action":"get","key":"${"k".repeat(near)}"}`) },
  ];
}

function toHeaders(h: Record<string, string> | undefined): MsgHdrs | undefined {
  if (!h) return undefined;
  const out = natsHeaders();
  for (const [name, value] of Object.entries(h)) out.set(name, value);
  return out;
}

describe("fuzz: the component api", { skip: url === undefined ? "no NATS" : undefined, timeout: 300_000 }, () => {
  let nc: NatsConnection;
  let component: StorageComponent;
  const logged: { level: string; msg: string }[] = [];
  const logger: Logger = {
    info: () => undefined,
    warn: (msg) => logged.push({ level: "warn", msg }),
    error: (msg) => logged.push({ level: "error", msg }),
  };

  before(async () => {
    nc = await connect({ servers: url! });
    component = new StorageComponent({ config: { name: uniqueName("fuzz").replace(/[^\w-]/g, "_"), store: "memory:?history=3", nats: { servers: url! } }, logger });
    await component.start();
  });
  after(async () => {
    await component?.stop(5000);
    await nc?.close();
  });

  it(`answers ${COUNT} random and mutated requests, each with a classified answer; 0 crashes (seed ${SEED})`, async () => {
    const api = component.config.api.subject;
    const next = generator(SEED, api);
    const requests = [...hugeRequests(api, nc.info!.max_payload), ...Array.from({ length: COUNT }, next)];
    const byKind = new Map<string, { sent: number; answered: number; ok: number }>();
    const errorKinds = new Map<string, number>();
    const failures: string[] = [];
    let sent = 0;
    let answered = 0;
    let index = 0;
    const started = performance.now();

    async function one(request: FuzzRequest): Promise<void> {
      const tally = byKind.get(request.kind) ?? { sent: 0, answered: 0, ok: 0 };
      byKind.set(request.kind, tally);
      tally.sent++;
      sent++;
      let reply;
      try {
        reply = await nc.request(request.subject, request.body, { timeout: 15_000, headers: toHeaders(request.headers) });
      } catch (err) {
        if (failures.length < 10) failures.push(`${request.kind}: no answer (${String(err)}) to ${Buffer.from(request.body.subarray(0, 80)).toString("latin1")}`);
        return;
      }
      answered++;
      tally.answered++;
      const kind = reply.headers?.get(RAW_HEADERS.errorKind);
      if (kind) {
        errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
        if (!KINDS.has(kind)) failures.push(`${request.kind}: unknown error kind ${kind}`);
        if (!/^\d{3}$/.test(reply.headers?.get("Nats-Service-Error-Code") ?? "")) failures.push(`${request.kind}: error without a service error code`);
        const body = reply.json<{ success: boolean; error: string; kind: string; op: string }>();
        if (body.success !== false || body.kind !== kind || typeof body.error !== "string" || body.error.length === 0 || typeof body.op !== "string") failures.push(`${request.kind}: malformed error body ${reply.string().slice(0, 200)}`);
      } else {
        tally.ok++;
        // A success in JSON mode is a JSON object with success: true; raw gets return the bare value.
        if (!request.headers) {
          const body = reply.json<{ success: boolean }>();
          if (body.success !== true) failures.push(`${request.kind}: answer without success flag ${reply.string().slice(0, 200)}`);
        }
      }
    }
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (index < requests.length) await one(requests[index++]!);
      }),
    );
    const seconds = (performance.now() - started) / 1000;

    assert.deepEqual(failures, [], `seed ${SEED}`);
    assert.equal(answered, sent, `every request answered (seed ${SEED})`);
    assert.ok(sent >= 10_000 || COUNT < 10_000, `${sent} requests sent`);
    assert.equal(errorKinds.get("fatal") ?? 0, 0, `no request made the component fail (seed ${SEED})`);
    assert.deepEqual(logged.filter((l) => l.level === "error"), [], "nothing unexpected logged");
    const health = component.health();
    assert.equal(health.healthy, true, JSON.stringify(health));
    assert.equal(health.errorCount, 0, `fuzz input is the caller's fault, never counted as a component error: ${JSON.stringify(health.lastError)}`);
    // Still correct after the storm.
    const put = await nc.request(api, JSON.stringify({ action: "put", key: "after/fuzz", data: { ok: true } }), { timeout: 5000 });
    assert.equal(put.json<{ success: boolean }>().success, true);
    const got = await nc.request(api, JSON.stringify({ action: "get", key: "after/fuzz" }), { timeout: 5000 });
    assert.deepEqual(got.json(), { success: true, key: "after/fuzz", encoding: "json", data: { ok: true } });

    const kinds = [...byKind].map(([k, t]) => `${k} ${t.sent} (${t.ok} ok)`).join(", ");
    const errors = [...errorKinds].map(([k, n]) => `${n} ${k}`).join(", ");
    console.log(`# api fuzz (seed ${SEED}): ${sent} requests sent, ${answered} answered in ${seconds.toFixed(1)} s, 0 crashes; ${kinds}; errors: ${errors}`);
  });
});
