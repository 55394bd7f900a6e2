/**
 * The main job on the embedded default: archive a stream of sensor readings into the file
 * store in ./.stowage (no server), then find and read them back as a consumer would.
 * Run: npm run demo   (then try: npx stowage ls entities/)
 */
import { Archiver, EntityKeyGenerator, openStore } from "../src/index.js";

const store = await openStore(process.env.STOWAGE_STORE ?? "file:./.stowage");
const archiver = new Archiver(store, { keyGenerator: new EntityKeyGenerator() });

// What would arrive on a NATS subject such as sensors.>: readings from five sensors.
const sensors = ["temp-1", "temp-2", "humidity-1", "pressure-1", "temp-3"];
const started = performance.now();
const keys = await Promise.all(
  Array.from({ length: 100 }, (_, i) =>
    archiver.archive({
      entityType: "sensor",
      entityId: sensors[i % sensors.length],
      value: Math.round((20 + Math.sin(i / 7) * 5) * 100) / 100,
      at: new Date(Date.now() - (100 - i) * 1000).toISOString(),
    }),
  ),
);
const ms = performance.now() - started;
console.log(`archived ${keys.length} readings in ${ms.toFixed(0)} ms into ${store.constructor.name} (./.stowage)`);

const temp1 = await store.list("entities/sensor/temp-1/");
console.log(`temp-1 has ${temp1.length} readings; its latest key: ${temp1.at(-1)}`);
const info = await store.stat(temp1.at(-1)!);
const reading = JSON.parse(new TextDecoder().decode(await store.get(info.key))) as { value: number };
console.log(`latest temp-1 reading: ${reading.value} (${info.size} bytes, metadata ${JSON.stringify(info.metadata)})`);
console.log(`all sensors: ${(await store.list("entities/sensor/")).length} keys; try: npx stowage ls entities/sensor/temp-2/`);
await store.close();
