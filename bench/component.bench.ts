/**
 * The storage component (issue #6): api `get` of 1 KiB from a memory store, 64 requests in
 * flight, against a raw NATS responder answering every request with 1 KiB, in the same run
 * over the same server. The ratio is what the component costs on top of NATS request/reply:
 * parsing, validation, the store call, the JSON response, the `retrieved` event, flow and
 * Prometheus counters. `npm run bench -- component`.
 */
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { MemoryStore, StorageComponent, silentLogger } from "./stowage.js";
import { defineSuite, KiB } from "./harness.js";
import { pattern } from "./standard.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const CASE = "component api get 1 KiB, 64 in flight";

/** A 1 KiB JSON document (what `data` of a JSON-mode get carries). */
function jsonValue(): Uint8Array {
  const doc = { sensor: "temp-123", readings: [] as number[] };
  while (JSON.stringify(doc).length < KiB - 8) doc.readings.push(doc.readings.length * 1.5);
  const text = JSON.stringify(doc);
  return new TextEncoder().encode(text.padEnd(KiB, " "));
}

export default defineSuite("component", async (b) => {
  if (!b.wants(CASE)) return;
  const connections: NatsConnection[] = [];
  const open = async () => {
    const nc = await connect({ servers: NATS_URL });
    connections.push(nc);
    return nc;
  };
  let component: StorageComponent | undefined;
  try {
    const client = await open();
    const server = await open();
    const suffix = `${process.pid}_${Date.now().toString(36)}`;
    b.server("nats-server", client.info?.version ?? "unknown");

    // The raw responder: its own connection, like the component's, replying with 1 KiB.
    const reply = pattern(KiB);
    const echoSubject = `bench.echo.${suffix}`;
    server.subscribe(echoSubject, { callback: (_err, msg) => void msg.respond(reply) });
    await server.flush();

    const store = new MemoryStore();
    await store.put("bench/json", jsonValue());
    await store.put("bench/binary", pattern(KiB));
    component = new StorageComponent({ config: { name: `bench_${suffix}`, nats: { servers: NATS_URL }, max_in_flight: 1024 }, store, logger: silentLogger });
    await component.start();
    const api = component.config.api.subject;
    const getJson = new TextEncoder().encode(JSON.stringify({ action: "get", key: "bench/json" }));
    const rawHeaders = headers();
    rawHeaders.set("Stowage-Action", "get");
    rawHeaders.set("Stowage-Key", "bench/binary");
    const empty = new Uint8Array(0);

    await b.run({
      name: CASE,
      bytesPerOp: KiB,
      concurrency: 64,
      baseline: "raw NATS responder",
      competitors: [
        { name: "raw NATS responder", op: () => client.request(echoSubject, getJson, { timeout: 10_000 }) },
        { name: "component get (JSON)", op: () => client.request(api, getJson, { timeout: 10_000 }) },
        { name: "component get (raw mode)", op: () => client.request(api, empty, { timeout: 10_000, headers: rawHeaders }) },
      ],
      targets: [{ issue: "#6", kind: "ratio", of: "component get (JSON)", vs: "raw NATS responder", atLeast: 0.5 }],
      note: "One client connection sends; the responder and the component each have their own connection to the same server. JSON mode returns the 1 KiB JSON document embedded in the response; raw mode returns 1 KiB of bytes as the body. Every component get also publishes a `retrieved` event.",
    });
  } finally {
    await component?.stop(5000);
    for (const nc of connections) await nc.close().catch(() => undefined);
  }
});
