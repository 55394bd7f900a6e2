/**
 * In-process stores: a plain Map (the floor: what any store costs at least), stowage's memory
 * backend, unstorage's memory driver and OpenDAL's memory service.
 */
import { Operator } from "opendal";
import { createStorage } from "unstorage";
import memoryDriver from "unstorage/drivers/memory";
import { MemoryStore } from "../stowage.js";
import { defineSuite } from "../harness.js";
import { standardCases, storeAdapter, type Adapter } from "../standard.js";
import { opendalAdapter, unstorageAdapter } from "../peers.js";

function mapAdapter(): Adapter {
  const map = new Map<string, Uint8Array>();
  return {
    name: "Map",
    put: async (key, data) => void map.set(key, data.slice()),
    get: async (key) => {
      const value = map.get(key);
      if (!value) throw new Error(`${key} not found`);
      return value.slice();
    },
    list: async (prefix) => [...map.keys()].filter((k) => k.startsWith(prefix)).sort(),
    delete: async (key) => map.delete(key),
  };
}

export default defineSuite("memory", async (b) => {
  const ours = new MemoryStore();
  const adapters: Adapter[] = [
    mapAdapter(),
    storeAdapter("stowage memory:", ours),
    unstorageAdapter("unstorage memory", createStorage({ driver: memoryDriver() })),
    opendalAdapter("OpenDAL memory", new Operator("memory", {})),
  ];
  try {
    await standardCases(b, adapters, { baseline: "Map", streamBytes: 0 });
  } finally {
    await ours.close();
  }
});
