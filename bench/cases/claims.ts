/**
 * Claim check (issue #21), `npm run bench -- claims`:
 *
 * - publish-and-consume of 4 MiB and 64 MiB messages: `ClaimCheck.publish` on core NATS with a
 *   NATS store, the consumer resolving with `consume` (verified size and SHA-256), against the
 *   approach the NATS docs suggest by hand: `@nats-io/obj` `putBlob`, a signal message with the
 *   object's name, `getBlob` in the consumer (the object store checks its own digest). Producer
 *   and consumer have a connection each; one message in flight; an operation ends when the
 *   consumer holds the payload.
 * - the pass-through cost of a 1 KiB message (under the threshold): `checkIn` alone, and
 *   `ClaimCheck.publish` against `nc.publish`.
 *
 * Deleting what a round wrote (and sweeping the store's unreferenced objects) happens between
 * rounds, untimed, for both approaches.
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { Objm } from "@nats-io/obj";
import { ClaimCheck, openStore, type NatsStore } from "../stowage.js";
import { defineSuite, KiB, MiB, type BenchContext, type CaseSpec } from "../harness.js";
import { removeStreams } from "../nats-clients.js";
import { pattern } from "../standard.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const OURS = "ClaimCheck (nats: store)";
const HAND = "hand-rolled (@nats-io/obj + signal)";

/** Hands each delivered payload's size to the operation waiting for it. */
class Deliveries {
  #waiting: { resolve: (size: number) => void; reject: (err: unknown) => void }[] = [];
  next(): Promise<number> {
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }
  deliver(size: number): void {
    this.#waiting.shift()?.resolve(size);
  }
  fail(err: unknown): void {
    this.#waiting.shift()?.reject(err);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export default defineSuite("claims", async (b) => {
  const sizes = [
    { label: "4 MiB", bytes: 4 * MiB },
    { label: "64 MiB", bytes: 64 * MiB },
  ].filter((s) => b.wants(`claims publish-consume ${s.label}`));
  const passThrough = b.wants("claims pass-through 1 KiB");
  if (sizes.length === 0 && !passThrough) return;

  let producer: NatsConnection;
  let consumer: NatsConnection;
  try {
    producer = await connect({ servers: NATS_URL, timeout: 3000 });
    consumer = await connect({ servers: NATS_URL, timeout: 3000 });
  } catch (err) {
    b.skip("(all claims cases)", `no NATS server at ${NATS_URL}: ${message(err)}`);
    return;
  }
  if (producer.info?.version) b.server("nats-server", producer.info.version);
  const marker = `bench${process.pid}c${Math.random().toString(36).slice(2, 7)}`;
  const stores: NatsStore[] = [];
  try {
    // Our side: one bucket, opened by the producer and by the consumer on their own connections.
    // history=1 and an immediate sweep let the untimed cleanup reclaim every object.
    const url = `${NATS_URL.replace(/\/$/, "")}/${marker}_claims?history=1`;
    const natsOptions = { sweepInterval: 0, sweepGrace: 0 };
    const producerStore = (await openStore(url, { nats: { ...natsOptions, connection: producer } })) as NatsStore;
    const consumerStore = (await openStore(url, { nats: { ...natsOptions, connection: consumer } })) as NatsStore;
    stores.push(producerStore, consumerStore);
    const sending = new ClaimCheck({ store: producerStore, instance: "bench", connection: producer });
    const receiving = new ClaimCheck({ store: consumerStore, instance: "bench", connection: consumer });

    // The hand-rolled side: an object store bucket, a handle on each connection.
    const bucket = `${marker}_obj`;
    const osOut = await new Objm(producer).create(bucket);
    const osIn = await new Objm(consumer).open(bucket);

    for (const size of sizes) await publishConsume(b, size, { producer, consumer, sending, receiving, producerStore, osOut, osIn, marker });
    if (passThrough) await passThroughCase(b, producer, sending, marker);
  } finally {
    for (const store of stores) await store.close().catch(() => undefined);
    await removeStreams(producer, marker).catch(() => undefined);
    await producer.close();
    await consumer.close();
  }
});

interface Sides {
  producer: NatsConnection;
  consumer: NatsConnection;
  sending: ClaimCheck;
  receiving: ClaimCheck;
  producerStore: NatsStore;
  osOut: Awaited<ReturnType<Objm["create"]>>;
  osIn: Awaited<ReturnType<Objm["open"]>>;
  marker: string;
}

async function publishConsume(b: BenchContext, size: { label: string; bytes: number }, s: Sides): Promise<void> {
  const payload = pattern(size.bytes);
  const big = size.bytes >= 64 * MiB;

  // ClaimCheck: publish, and a consumer resolving claims with consume().
  const oursSubject = `${s.marker}.ours.${size.bytes}`;
  const ours = new Deliveries();
  const oursSub = s.consumer.subscribe(oursSubject);
  void (async () => {
    for await (const m of s.receiving.consume(oursSub, { onError: (err) => ours.fail(err) })) ours.deliver(m.data.byteLength);
  })();

  // By hand: putBlob, a signal carrying the object's name, getBlob on the other side.
  const handSubject = `${s.marker}.hand.${size.bytes}`;
  const hand = new Deliveries();
  const handSub = s.consumer.subscribe(handSubject);
  void (async () => {
    for await (const m of handSub) {
      try {
        const data = await s.osIn.getBlob(m.string());
        if (!data) throw new Error(`object ${m.string()} not found`);
        hand.deliver(data.byteLength);
      } catch (err) {
        hand.fail(err);
      }
    }
  })();
  await s.consumer.flush();

  const written: string[] = [];
  const expect = async (delivered: Promise<number>) => {
    const got = await delivered;
    if (got !== size.bytes) throw new Error(`the consumer got ${got} bytes of ${size.bytes}`);
  };
  const spec: CaseSpec = {
    name: `claims publish-consume ${size.label}`,
    bytesPerOp: size.bytes,
    baseline: HAND,
    ...(big ? { rounds: b.scale(5, 2), roundMs: 1, warmupMs: 1, maxOpsPerRound: 1, trackMemory: true } : { roundMs: 1000 }),
    competitors: [
      {
        name: HAND,
        beforeRound: async () => {
          for (const name of written.splice(0)) await s.osOut.delete(name);
        },
        op: async (i) => {
          const delivered = hand.next();
          const name = `m${i}`;
          written.push(name);
          await s.osOut.putBlob({ name }, payload);
          s.producer.publish(handSubject, name);
          await expect(delivered);
        },
      },
      {
        name: OURS,
        beforeRound: async () => {
          await s.producerStore.deleteMany(await s.producerStore.list(s.sending.prefix));
          await s.producerStore.sweep();
        },
        op: async () => {
          const delivered = ours.next();
          await s.sending.publish(s.producer, oursSubject, payload);
          await expect(delivered);
        },
      },
    ],
    targets: [{ issue: "#21", kind: "ratio", of: OURS, vs: HAND, atLeast: 1 }],
    note: "One message in flight; an operation is publish until the consumer holds the verified payload. Producer and consumer each have their own NATS connection; the claim store is a nats: store, the hand-rolled objects are in an @nats-io/obj bucket on the same server.",
  };
  try {
    await b.run(spec);
  } finally {
    oursSub.unsubscribe();
    handSub.unsubscribe();
  }
}

async function passThroughCase(b: BenchContext, nc: NatsConnection, claims: ClaimCheck, marker: string): Promise<void> {
  const small = pattern(KiB);
  const subject = `${marker}.small`;
  await b.run({
    name: "claims pass-through 1 KiB",
    bytesPerOp: KiB,
    baseline: "nc.publish",
    competitors: [
      { name: "nc.publish", op: async () => nc.publish(subject, small) },
      { name: "ClaimCheck.publish", op: () => claims.publish(nc, subject, small) },
      { name: "ClaimCheck.checkIn", op: () => claims.checkIn(small) },
    ],
    targets: [{ issue: "#21", kind: "latency", of: "ClaimCheck.checkIn", stat: "p50", atMostMs: 0.005 }],
    note: "A 1 KiB payload is under the threshold: checkIn returns it unchanged and publish hands it to nc.publish. Nobody subscribes to the subject. Latencies include the harness's own timing of each call.",
  });
}
