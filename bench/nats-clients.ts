/**
 * Adapters over NATS JetStream used the raw way: a KV bucket (`@nats-io/kv`), an object store
 * (`@nats-io/obj`), and the seed's approach (one ObjectStore object per key; list = list every
 * object then filter by prefix; get = getBlob), each in its own bucket.
 */
import { Kvm, type KV } from "@nats-io/kv";
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Adapter } from "./standard.js";

/** Raw KV: `/` in keys becomes `.`, so a prefix ending at `/` is a subject filter (`a.b.>`). */
export async function rawKvAdapter(nc: NatsConnection, bucket: string): Promise<Adapter & { kv: KV }> {
  const kv = await new Kvm(nc).create(bucket, { history: 1 });
  const toKv = (key: string) => key.replace(/\//g, ".");
  return {
    name: "raw KV",
    kv,
    put: (key, data) => kv.put(toKv(key), data),
    get: async (key) => {
      const entry = await kv.get(toKv(key));
      if (!entry || entry.operation !== "PUT") throw new Error(`${key} not found`);
      return entry.value;
    },
    list: async (prefix) => {
      const keys: string[] = [];
      for await (const k of await kv.keys(`${toKv(prefix)}>`)) keys.push(k.replace(/\./g, "/"));
      return keys.sort();
    },
    delete: (key) => kv.delete(toKv(key)),
    noStream: "a KV value is one message (at most the server's max_payload)",
    cannot: {
      "put 1 MiB": "a KV value is one message: 1 MiB plus headers exceeds the server's 1 MiB max_payload",
      "get 1 MiB": "a KV value is one message: 1 MiB plus headers exceeds the server's 1 MiB max_payload",
    },
  };
}

export async function* fromStream(stream: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

function toReadableStream(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  });
}

/** Raw ObjectStore with streams: `put(meta, ReadableStream)`, `get(name).data`. */
export async function rawObjAdapter(nc: NatsConnection, bucket: string, name = "raw @nats-io/obj"): Promise<Adapter & { os: ObjectStore }> {
  const os = await new Objm(nc).create(bucket);
  return {
    name,
    os,
    put: (key, data) => os.putBlob({ name: key }, data),
    get: async (key) => {
      const data = await os.getBlob(key);
      if (!data) throw new Error(`${key} not found`);
      return data;
    },
    list: async (prefix) => (await os.list()).filter((o) => !o.deleted && o.name.startsWith(prefix)).map((o) => o.name).sort(),
    delete: (key) => os.delete(key),
    putStream: (key, source) => os.put({ name: key }, toReadableStream(source)),
    getStream: async (key) => {
      const result = await os.get(key);
      if (!result) throw new Error(`${key} not found`);
      return fromStream(result.data);
    },
  };
}

/** The seed's approach: an ObjectStore object per key, buffered values, list everything then filter. */
export async function seedAdapter(nc: NatsConnection, bucket: string): Promise<Adapter & { os: ObjectStore }> {
  const raw = await rawObjAdapter(nc, bucket, "seed (ObjectStore per key)");
  const { putStream: _p, getStream: _g, ...buffered } = raw;
  return { ...buffered, noStream: "the seed's API takes and returns whole values; the streamed ObjectStore is the raw @nats-io/obj row" };
}

/** Removes every stream whose name contains `marker` (the benchmark's unique bucket names). */
export async function removeStreams(nc: NatsConnection, marker: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const removed: string[] = [];
  for await (const info of jsm.streams.list()) {
    if (info.config.name.includes(marker)) {
      await jsm.streams.delete(info.config.name);
      removed.push(info.config.name);
    }
  }
  return removed;
}
