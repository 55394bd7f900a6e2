/**
 * Moving data between stores (issue #23), `npm run bench -- move`: `copy` from a nats: store to
 * an s3: store (s3rver, as in the s3 suite, or S3_ENDPOINT), against what one writes by hand
 * with the raw clients: a loop that reads each value from NATS (`@nats-io/kv` get of the entry
 * the nats: store wrote; for a large value, the `@nats-io/obj` object it names) and writes it
 * to S3 (PutObject; lib-storage `Upload` for a stream), one key after another.
 *
 * - 10,000 × 1 KiB: one operation is the whole job; `copy` runs its default 8 workers.
 * - 16 × 64 MiB: one operation copies the 16 values; beside the loop, each side alone (read the
 *   16 from NATS, upload 16 to S3) shows the raw streamed throughput the copy is held to, and
 *   the copy's RSS growth is tracked.
 *
 * Every operation copies into a fresh prefix of the destination bucket (a rerun would skip
 * everything); the bucket and the source's streams are removed at the end.
 */
import { Readable } from "node:stream";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Kvm, type KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { copy, openStore } from "../stowage.js";
import type { Store } from "../../src/types.js";
import { encodeKey } from "../../src/backends/nats/key-codec.js";
import { clientConfig, createBucket, deleteBucket, startS3Server, storeUrl, type S3ServerHandle } from "../../test/fixtures/s3.js";
import { defineSuite, KiB, MiB, type BenchContext } from "../harness.js";
import { packageVersion } from "../machine.js";
import { fromStream, removeStreams } from "../nats-clients.js";
import { pattern } from "../standard.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const OURS = "stowage copy (8 workers)";
const LOOP = "raw get-then-put loop";
const NATS_READ = "raw NATS read alone";
const S3_UPLOAD = "raw S3 upload alone";
/** The header naming a large value's object (see src/backends/nats/entry.ts). */
const OBJECT_HEADER = "Stowage-Object";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface Sides {
  nc: NatsConnection;
  source: Store;
  destination: Store;
  kv: KV;
  /** The nats: store's bucket (its large values are in the object store `<bucket>_large`). */
  natsBucket: string;
  jsm: JetStreamManager;
  client: S3Client;
  bucket: string;
}

export default defineSuite("move", async (b) => {
  const small = b.scale(10_000, 2_000);
  const bigCount = b.scale(16, 4);
  const smallName = `move cp ${small / 1000}k x 1 KiB nats -> s3`;
  const bigName = `move cp ${bigCount} x 64 MiB nats -> s3`;
  if (!b.wants(smallName) && !b.wants(bigName)) return;

  let nc: NatsConnection;
  try {
    nc = await connect({ servers: NATS_URL, timeout: 3000 });
  } catch (err) {
    b.skip("(all move cases)", `no NATS server at ${NATS_URL}: ${message(err)}`);
    return;
  }
  let server: S3ServerHandle;
  try {
    server = await startS3Server();
  } catch (err) {
    await nc.close();
    b.skip("(all move cases)", `cannot start s3rver (and S3_ENDPOINT is not set): ${message(err)}`);
    return;
  }
  if (nc.info?.version) b.server("nats-server", nc.info.version);
  b.server(server.kind === "s3rver" ? "s3rver" : `S3 (${server.kind})`, server.kind === "s3rver" ? packageVersion("s3rver") : server.endpoint);

  const marker = `bench${process.pid}m${Math.random().toString(36).slice(2, 7)}`;
  const bucket = `${marker}-move`.toLowerCase();
  const client = new S3Client(clientConfig(server));
  const stores: Store[] = [];
  try {
    await createBucket(bucket, { server });
    const source = await openStore(`${NATS_URL.replace(/\/$/, "")}/${marker}_move`);
    const destination = await openStore(storeUrl(server, bucket));
    stores.push(source, destination);
    const kv = await new Kvm(nc).open(`${marker}_move`);
    const sides: Sides = { nc, source, destination, kv, natsBucket: `${marker}_move`, jsm: await jetstreamManager(nc), client, bucket };
    if (b.wants(smallName)) await smallCase(b, smallName, small, sides);
    if (b.wants(bigName)) await bigCase(b, bigName, bigCount, sides);
  } finally {
    for (const store of stores) await store.close().catch(() => undefined);
    // A server of our own goes with its directory; only an external one needs emptying.
    if (server.kind === "external") await deleteBucket(bucket, { server }).catch(() => undefined);
    client.destroy();
    await removeStreams(nc, marker).catch(() => undefined);
    await nc.close();
    await server.stop();
  }
});

async function smallCase(b: BenchContext, name: string, count: number, s: Sides): Promise<void> {
  const keys = Array.from({ length: count }, (_, i) => `small/${String(i).padStart(6, "0")}`);
  for (let i = 0; i < count; i += 500) {
    await s.source.putMany(keys.slice(i, i + 500).map((key, j) => ({ key, data: pattern(KiB, i + j) })));
  }
  await b.run({
    name,
    bytesPerOp: count * KiB,
    baseline: LOOP,
    rounds: 1,
    // One operation a round (maxOpsPerRound); the round's time only bounds when it may start,
    // and a busy machine can take more than a millisecond to get there.
    roundMs: 1000,
    warmupMs: 0,
    maxOpsPerRound: 1,
    competitors: [
      {
        name: LOOP,
        op: async (i) => {
          for (const key of keys) {
            const entry = await s.kv.get(encodeKey(key));
            if (!entry || entry.length === 0) throw new Error(`${key}: no value in NATS`);
            await s.client.send(new PutObjectCommand({ Bucket: s.bucket, Key: `loop${i}/${key}`, Body: entry.value }));
          }
        },
      },
      {
        name: OURS,
        op: async (i) => {
          const summary = await copy(s.source, s.destination, { prefix: "small/", destinationPrefix: `cp${i}/small/` });
          if (summary.copied !== count) throw new Error(`copied ${summary.copied} of ${count} (failed ${summary.failed}: ${summary.failures[0]?.error.message})`);
        },
      },
    ],
    targets: [{ issue: "#23", kind: "ratio", of: OURS, vs: LOOP, atLeast: 5 }],
    note: `One operation copies all ${count} keys into a fresh prefix. The loop reads each KV entry the nats: store wrote and PUTs it, one key at a time; copy also reads the metadata (stat) and walks the destination's listing (one LIST per 1,000 keys) to know what is there.`,
  });
}

async function bigCase(b: BenchContext, name: string, count: number, s: Sides): Promise<void> {
  const keys = Array.from({ length: count }, (_, i) => `big/${String(i).padStart(3, "0")}`);
  const value = pattern(64 * MiB);
  for (const key of keys) await s.source.putStream(key, slices(value, MiB));
  const os: ObjectStore = await new Objm(s.nc).open(`${s.natsBucket}_large`);
  const objectOf = async (key: string): Promise<string> => {
    const entry = await s.jsm.direct.getMessage(`KV_${s.natsBucket}`, { last_by_subj: `$KV.${s.natsBucket}.${encodeKey(key)}` });
    const object = entry?.header?.get(OBJECT_HEADER);
    if (!object) throw new Error(`${key}: no object named in its NATS entry`);
    return object;
  };
  const readObject = async (key: string): Promise<AsyncIterable<Uint8Array>> => {
    const result = await os.get(await objectOf(key));
    if (!result) throw new Error(`${key}: its object is missing`);
    return fromStream(result.data);
  };
  const upload = (key: string, body: AsyncIterable<Uint8Array>) =>
    new Upload({ client: s.client, params: { Bucket: s.bucket, Key: key, Body: body instanceof Readable ? body : Readable.from(body) }, partSize: 8 * MiB, queueSize: 4 }).done();

  await b.run({
    name,
    bytesPerOp: count * 64 * MiB,
    baseline: [NATS_READ, S3_UPLOAD],
    rounds: 1,
    // One operation a round (maxOpsPerRound); the round's time only bounds when it may start,
    // and a busy machine can take more than a millisecond to get there.
    roundMs: 1000,
    warmupMs: 0,
    maxOpsPerRound: 1,
    trackMemory: true,
    competitors: [
      {
        name: NATS_READ,
        op: async () => {
          for (const key of keys) for await (const chunk of await readObject(key)) void chunk;
        },
      },
      {
        name: S3_UPLOAD,
        op: async (i) => {
          for (const key of keys) await upload(`up${i}/${key}`, Readable.from(slices(value, MiB)));
        },
      },
      {
        name: LOOP,
        op: async (i) => {
          for (const key of keys) await upload(`loop${i}/${key}`, await readObject(key));
        },
      },
      {
        name: OURS,
        op: async (i) => {
          const summary = await copy(s.source, s.destination, { prefix: "big/", destinationPrefix: `cp${i}/big/` });
          if (summary.copied !== count) throw new Error(`copied ${summary.copied} of ${count} (failed ${summary.failed}: ${summary.failures[0]?.error.message})`);
        },
      },
    ],
    targets: [
      { issue: "#23", kind: "ratio", of: OURS, vs: [NATS_READ, S3_UPLOAD], atLeast: 0.9 },
      { issue: "#23", kind: "memory", of: OURS, belowBytes: 128 * MiB },
    ],
    note: `One operation moves ${count} × 64 MiB. The two "alone" rows are each side of the copy by itself (the S3 upload from memory, the NATS read drained), streamed with the raw clients; the slower of them in this run bounds any copy: the target and the ratios are against it. Uploads use lib-storage with 8 MiB parts, 4 at a time, as the s3: store does.`,
  });
}

function* slices(data: Uint8Array, size: number): Generator<Uint8Array> {
  for (let at = 0; at < data.byteLength; at += size) yield data.subarray(at, at + size);
}
