/**
 * Adapters over the peer libraries, each used the way its documentation shows: unstorage
 * (raw item API, `:`-separated keys), OpenDAL's Node binding (paths, writer/reader streams),
 * flydrive (Disk) and keyv.
 */
import { Readable } from "node:stream";
import type { Disk } from "flydrive";
import type Keyv from "keyv";
import type { Operator } from "opendal";
import type { Storage } from "unstorage";
import type { Adapter } from "./standard.js";

/** unstorage: keys use `:` as the separator (it rewrites `/` to `:`), `getKeys(base)` lists. */
export function unstorageAdapter(name: string, storage: Storage, extra: Partial<Adapter> = {}): Adapter {
  const toKey = (key: string) => key.replace(/\//g, ":");
  return {
    name,
    put: (key, data) => storage.setItemRaw(toKey(key), data),
    get: async (key) => {
      // Drivers differ: memory gives back what it was given, s3 an ArrayBuffer, fs a Buffer.
      const value = (await storage.getItemRaw(toKey(key))) as Uint8Array | ArrayBuffer | null;
      if (value === null || value === undefined) throw new Error(`${key} not found`);
      return value instanceof ArrayBuffer ? new Uint8Array(value) : value;
    },
    list: async (prefix) => (await storage.getKeys(toKey(prefix))).map((k) => k.replace(/:/g, "/")),
    delete: (key) => storage.removeItem(toKey(key)),
    noStream: "unstorage has no streaming API (values are buffered whole)",
    ...extra,
  };
}

/** OpenDAL: `list(dir)` lists one directory level; streams through `writer`/`reader`. */
export function opendalAdapter(name: string, op: Operator, extra: Partial<Adapter> = {}): Adapter {
  return {
    name,
    put: (key, data) => op.write(key, Buffer.from(data.buffer, data.byteOffset, data.length)),
    get: (key) => op.read(key),
    list: async (prefix) =>
      (await op.list(prefix))
        .map((e) => e.path())
        .filter((p) => !p.endsWith("/")),
    delete: (key) => op.delete(key),
    putStream: async (key, source) => {
      const writer = await op.writer(key);
      for await (const chunk of source) await writer.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      await writer.close();
    },
    getStream: async (key) => (await op.reader(key)).createReadStream() as AsyncIterable<Uint8Array>,
    ...extra,
  };
}

/** flydrive: `Disk` with `listAll(prefix, { recursive })`, `putStream(Readable)`, `getStream`. */
export function flydriveAdapter(name: string, disk: Disk, extra: Partial<Adapter> = {}): Adapter {
  return {
    name,
    put: (key, data) => disk.put(key, data),
    get: (key) => disk.getBytes(key),
    list: async (prefix) => {
      const keys: string[] = [];
      // flydrive lists "directories": the prefix without its trailing slash.
      const { objects } = await disk.listAll(prefix.replace(/\/$/, ""), { recursive: true });
      for (const o of objects) if (o.isFile) keys.push(o.key);
      return keys;
    },
    delete: (key) => disk.delete(key),
    putStream: (key, source) => disk.putStream(key, Readable.from(source)),
    getStream: async (key) => (await disk.getStream(key)) as AsyncIterable<Uint8Array>,
    ...extra,
  };
}

/** keyv: a key-value API without listing by prefix or streams; values go through its serializer. */
export function keyvAdapter(name: string, keyv: Keyv, extra: Partial<Adapter> = {}): Adapter {
  return {
    name,
    put: (key, data) => keyv.set(key, Buffer.from(data.buffer, data.byteOffset, data.length)),
    get: async (key) => {
      const value = (await keyv.get(key)) as Uint8Array | undefined;
      if (value === undefined) throw new Error(`${key} not found`);
      return value;
    },
    list: () => Promise.reject(new Error("keyv cannot list by prefix")),
    delete: (key) => keyv.delete(key),
    noList: "keyv has no listing by prefix (only iterating the whole namespace)",
    noStream: "keyv has no streaming API",
    ...extra,
  };
}
